"""The release action plugin's direct path (plugins/plugin_utils/stdlib_module.py): the
module's work shipped to the host's Python without AnsibleModule. Real runs: the program
is executed by real interpreters, and whole ad-hoc Ansible calls on the local connection
show the direct path and the usual module path give the same results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import release_ops
from ansible_collections.sre.rollback.plugins.plugin_utils import stdlib_module as sm
from tests.conftest import COLLECTION
from tests.support.adhoc import adhoc as run_adhoc

PYTHONS = sorted({sys.executable, *filter(None, [shutil.which("python3")])})


def params(**over: Any) -> dict[str, Any]:
    validated, errors, _ = sm.validate(release_ops.ARGUMENT_SPEC, release_ops.REQUIRED_IF, over)
    assert not errors
    return validated


def run_program(python: str, code: bytes) -> dict[str, Any]:
    # -S: no site-packages (no Ansible, no collection): the program carries what it imports.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run(
        [python, "-S"], input=code, capture_output=True, env=env, cwd="/", check=False, timeout=60
    )
    return sm.parse_answer(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


ACTIONS = sorted(
    path.stem
    for path in (COLLECTION / "plugins" / "action").glob("*.py")
    if "(StdlibModuleAction)" in path.read_text()
)


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_ships_stdlib_only_sources(action: str) -> None:
    source = (COLLECTION / "plugins" / "action" / f"{action}.py").read_text()
    ops = source.split('OPS = "')[1].split('"')[0]
    assert (COLLECTION / "plugins" / "modules" / f"{action}.py").exists()
    sources = sm.shipped_sources(ops)
    for text in sources.values():
        assert all(name.startswith(sm.PREFIX) for name in sm._imports(text))
    # The module's own argument spec is the one the controller validates against.
    module = (COLLECTION / "plugins" / "modules" / f"{action}.py").read_text()
    assert f"ops_module.run({ops})" in module


def test_the_release_work_ships_what_it_imports() -> None:
    short = {name.rsplit(".", 1)[-1] for name in sm.shipped_sources("release_ops")}
    assert {"release_ops", "releases", "applock", "rollout", "services", "health"} <= short


def test_a_module_util_that_needs_ansible_is_refused(tmp_path: Path) -> None:
    (tmp_path / "uses_basic.py").write_text("from ansible.module_utils.basic import X\n")
    (tmp_path / "entry.py").write_text(f"from {sm.PREFIX} import uses_basic\n")
    with pytest.raises(
        sm.NotShippable, match=r"uses_basic: it imports ansible\.module_utils\.basic"
    ):
        sm.shipped_sources("entry", str(tmp_path))


def test_arguments_are_checked_on_the_controller_like_ansiblemodule() -> None:
    _, errors, _ = sm.validate(
        release_ops.ARGUMENT_SPEC, release_ops.REQUIRED_IF, {"app_root": "/x", "state": "nope"}
    )
    assert errors == [
        "value of state must be one of: inspect, present, switched, rolled_out, "
        "marked, unlocked, got: nope"
    ]
    _, errors, _ = sm.validate(
        release_ops.ARGUMENT_SPEC, release_ops.REQUIRED_IF, {"app_root": "/x", "state": "marked"}
    )
    assert errors == ["state is marked but all of the following are missing: mark"]
    _, errors, _ = sm.validate(release_ops.ARGUMENT_SPEC, [], {"app_root": "/x", "bogus": 1})
    assert errors and "bogus" in errors[0]
    # A path is expanded where it is used (the host), not on the controller.
    validated = params(app_root="~/app")
    assert validated["app_root"] == "~/app"
    assert sm.path_options(release_ops.ARGUMENT_SPEC)[1] == ["app_root"]


@pytest.mark.parametrize("python", PYTHONS)
def test_the_program_does_what_execute_does(python: str, tmp_path: Path) -> None:
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    direct = run_program(python, sm.program("release_ops", params(app_root=str(root)), False, []))
    failed, expected = release_ops.execute(params(app_root=str(root)), False)
    assert not failed
    assert direct == {**json.loads(json.dumps(expected)), "failed": False, "changed": False}

    # A failure comes back as a failed result with the step's own message.
    answer = run_program(
        python,
        sm.program("release_ops", params(app_root=str(root), state="unlocked"), False, []),
    )
    assert answer["failed"] is True
    assert "state=unlocked needs run_id" in answer["msg"]


def test_the_work_is_prepared_once_in_the_process_that_forks_the_workers() -> None:
    # Defining an action class (the strategy does it in the main process, before forking a
    # worker per host and task) imports the work and computes what is shipped.
    from ansible_collections.sre.rollback.plugins.action.release import ActionModule

    assert ActionModule.OPS in sm._SHIPPED
    assert f"{sm.PREFIX}.{ActionModule.OPS}" in sys.modules
    shipped = json.loads(sm._SHIPPED[ActionModule.OPS])
    assert shipped == sm.shipped_sources(ActionModule.OPS)


@pytest.mark.parametrize("python", PYTHONS)
def test_the_bootstrap_imports_little_on_the_host(python: str, tmp_path: Path) -> None:
    # importlib.abc / importlib.util cost ~15 ms of the host's CPU per call (they pull in
    # importlib.resources, pathlib, tempfile); the bootstrap needs neither.
    code = sm.program("release_ops", params(app_root=str(tmp_path)), False, [])
    probe = code + b"\nimport sys\nprint(sorted(m for m in sys.modules if 'importlib' in m))\n"
    proc = subprocess.run([python, "-S", "-"], input=probe, capture_output=True, check=True)
    loaded = proc.stdout.decode().rsplit("\n", 2)[-2]
    assert "importlib.abc" not in loaded and "importlib.util" not in loaded, loaded


def test_path_options_are_expanded_on_the_host(tmp_path: Path) -> None:
    (tmp_path / "app" / "releases").mkdir(parents=True)
    code = sm.program("release_ops", params(app_root="$APPS/app"), False, ["app_root"])
    env = {"PATH": os.environ["PATH"], "APPS": str(tmp_path)}
    proc = subprocess.run([sys.executable], input=code, capture_output=True, env=env, check=True)
    assert json.loads(proc.stdout)["app_root"] == str(tmp_path / "app")


def test_a_host_without_a_working_python_is_a_clear_failure() -> None:
    answer = sm.parse_answer(127, "", "/bin/sh: 1: /usr/bin/python9: not found\n")
    assert answer["failed"] is True
    assert "python9: not found" in answer["msg"]
    assert "ansible_python_interpreter" in answer["msg"]
    crashed = run_program(sys.executable, b"raise SystemExit('boom')\n")
    assert crashed["failed"] is True and "boom" in crashed["msg"]


def adhoc(
    tmp_path: Path, args: str, python: str = sys.executable, **env: str
) -> tuple[dict[str, Any], str, int]:
    """One real ad-hoc call of the release module on the local connection (-vvv): its
    result, its whole output and its exit status."""
    return run_adhoc(tmp_path, "release", args, python=python, **env)


def test_direct_and_usual_paths_give_the_same_result(tmp_path: Path) -> None:
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    direct, log, _ = adhoc(tmp_path, f"app_root={root}", ANSIBLE_PIPELINING="true")
    assert "the usual module path" not in log
    usual, log, _ = adhoc(tmp_path, f"app_root={root}", ANSIBLE_PIPELINING="false")
    assert "the usual module path (pipelining is off" in log
    assert direct == {k: v for k, v in usual.items() if k != "invocation"}
    assert direct["app_root"] == str(root) and direct["releases"] == {}


def test_bad_input_fails_before_the_host_is_contacted(tmp_path: Path) -> None:
    # The interpreter does not exist: only a controller-side refusal can give this message.
    result, _, status = adhoc(tmp_path, "app_root=/x state=marked", python="/nonexistent")
    assert status != 0
    assert result["msg"] == "state is marked but all of the following are missing: mark"
