# Two commands for a newcomer: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# ansible-core imports DSA from cryptography, which warns on every Ansible command: not ours to
# fix, so only that warning is filtered, for everything make runs (rollbackctl sets the same
# filter for the runs it starts: rollbackctl.runner.ANSIBLE_WARNING_FILTER).
ANSIBLE_WARNING_FILTER := ignore:DSA is deprecated:UserWarning:ansible._internal._ssh._ssh_agent
comma := ,
export PYTHONWARNINGS := $(ANSIBLE_WARNING_FILTER)$(if $(PYTHONWARNINGS),$(comma)$(PYTHONWARNINGS))

.PHONY: demo test test-readme test-dr venv system-deps lint unit integration eda-rig test-triggers clean

demo: venv system-deps
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo

test: venv system-deps lint sanity awx-collection
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: the test setup is broken" >&2; exit 1; fi; \
	exit $$rc

# The README's incident walk-through, run as written on a rig (5-7 min; make test only checks
# that its commands and options exist). TESTHOSTS_INSTANCE=N picks the rig.
test-readme: venv system-deps
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -s tests/integration/walkthrough_readme.py $(PYTEST_ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@py=$$(scripts/find-python) && echo "make: creating $(VENV) with $$py" && \
	  { [ -x $(PY) ] || $$py -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(PY) -m pip install -e '.[test]' >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@echo "make: $(VENV) ready: $$($(BIN)/ansible --version | sed -n 1p), rollbackctl $$($(BIN)/rollbackctl --version | cut -d' ' -f3)"
	@touch $@

system-deps:
	@scripts/install-system-deps

lint: venv
	@echo "lint: ruff"; $(BIN)/ruff check . && $(BIN)/ruff format --check .
	@echo "lint: mypy"; $(BIN)/mypy && $(BIN)/mypy tests/hosts/testhosts && $(BIN)/mypy scripts/demo
	@echo "lint: yamllint"; $(BIN)/yamllint -s .
	@echo "lint: ansible-lint (production profile)"; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint -q

unit: venv
	@$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

integration: venv system-deps
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m integration $(PYTEST_ARGS)

# Longer than make test allows (~1 min): the shipped rulebook, through ansible-rulebook, runs
# the real level 3 on the rig (tests/integration/test_eda_rig.py).
eda-rig: venv system-deps
	@SRE_ROLLBACK_EDA_RIG=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -m integration tests/integration/test_eda_rig.py $(PYTEST_ARGS)

# The trigger scenarios make test has no time for (~8 min): watch against a real Prometheus
# (stand-in exporter, then the rig's app hosts: health -> level 3, pool -> level 2, bad
# release -> level 3, level 4 after approve). TESTHOSTS_INSTANCE=N picks the rig.
test-triggers: venv system-deps
	@SRE_ROLLBACK_TRIGGER_SCENARIOS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest tests/unit/test_trigger_action.py tests/unit/test_trigger_watch.py tests/integration/test_triggers_rig.py $(PYTEST_ARGS)

# Level 5 on its own rig (~10 min): full backup set, wipe the db and app hosts, rebuild from
# the backups alone, PITR through rollbackctl, a damaged repository refused in preflight
# (tests/integration/test_level5.py). TESTHOSTS_INSTANCE=N picks the rig.
test-dr: venv system-deps
	@SRE_ROLLBACK_DR_SCENARIOS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -s tests/integration/test_level5.py $(PYTEST_ARGS)

# ansible-test sanity on the collection (scripts/ansible-test-sanity: controller tests on the
# venv's Python, host tests on Python 3.11). make test runs every test, pylint included
# (make sanity: 29 s at load ~1; pylint alone 21 s at load 0.9, 127 s at load 13): pylint's
# ansible-bad-function and friends are the collection's rules and ruff does not replace them.
# It cannot be cut down (ansible-test refuses --python with --controller/--target-python, and
# the 3.11 host run is the modules' floor). sanity-fast skips pylint, for quick local runs.
# awx.awx for playbooks/awx-configure.yml and rollbackctl awx validate's lint, taken out of
# the ansible 12.x wheel from PyPI into .collections-awx/ (the venv's ansible-core unchanged).
.PHONY: awx-collection
awx-collection: venv
	@scripts/install-awx-collection

# The collection as users get it (~50 s): the built tarball installed in an empty directory
# rolls the rig back with ansible-playbook sre.rollback.rollback_l3. TESTHOSTS_INSTANCE=N.
.PHONY: test-collection
test-collection: venv system-deps
	@SRE_ROLLBACK_COLLECTION_TESTS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest tests/integration/test_collection_tarball.py $(PYTEST_ARGS)

# The AWX tests alone (all in make test too): awx validate's rules and lint, AWX's runtime
# conventions through ansible-runner (5-15 s), the merged report of a sliced job, and on the
# rig a sliced level 3 job and a level 1 job with survey answers (tests/integration/
# test_awx_jobs.py, 30-70 s plus the demo app's setup). TESTHOSTS_INSTANCE=N picks the rig.
.PHONY: test-awx
test-awx: venv system-deps awx-collection
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest tests/unit/test_awx.py tests/unit/test_awx_runtime.py tests/unit/test_report_slices.py tests/integration/test_awx_jobs.py $(PYTEST_ARGS)

.PHONY: sanity sanity-fast
sanity: venv system-deps
	@echo "sanity: ansible-test sanity (all tests)"; scripts/ansible-test-sanity

sanity-fast: venv system-deps
	@echo "sanity: ansible-test sanity (all but pylint: make sanity runs it)"; scripts/ansible-test-sanity --skip-test pylint

# The rollback drills (molecule/<drill>/, 3-4 min each; not part of make test): each brings
# its own rig up (TESTHOSTS_INSTANCE, default 0), breaks it, rolls it back through rollbackctl,
# checks everything is back and writes a drill record (.artifacts/drills/records/), then the
# compliance report. DRILLS="drill-code drill-flag" runs some.
DRILLS ?= $(sort $(notdir $(wildcard molecule/drill-*)))
.PHONY: drills
drills: venv system-deps
	@rc=0; for drill in $(DRILLS); do \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/rollbackctl drill run $$drill || rc=1; \
	done; PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/rollbackctl drill report; exit $$rc

clean:
	@[ ! -x tests/hosts/testhosts ] || tests/hosts/testhosts down
	rm -rf $(VENV) .testhosts .pytest_cache .mypy_cache .ruff_cache
