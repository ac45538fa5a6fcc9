"""The level registry (plugin_utils/levels.py) is the one place outside the roles that
names a level's role variables; the wrapper and the callback read it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils import levels
from tests.conftest import COLLECTION, REPO

WRAPPER = REPO / "wrapper" / "rollbackctl"


def registry_variables() -> set[str]:
    names: set[str] = set()
    for level in levels.LEVELS.values():
        names |= {target.var for target in level.targets}
        names |= set(level.recorded) | {level.lock, level.cancel.root_var}
        if level.required:
            names.add(level.required.var)
    return names


def test_no_role_variable_of_a_level_appears_in_the_wrapper() -> None:
    """grep: the wrapper says none of the registry's variables itself."""
    names = registry_variables()
    pattern = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted(WRAPPER.rglob("*"))
        if path.is_file() and path.suffix in (".py", ".j2", ".md")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "read them from plugin_utils/levels.py instead:\n" + "\n".join(found)


def test_the_callback_reads_levels_from_the_registry() -> None:
    callback = (COLLECTION / "plugins" / "callback" / "run_record.py").read_text(encoding="utf-8")
    assert "rollback-l" not in callback
    assert not registry_variables() & set(re.findall(r"\"([a-z_]+)\"", callback))


def test_every_built_level_has_its_playbook_and_its_variables_are_the_roles() -> None:
    """The registry says what the playbooks and roles really are: a built level's playbook
    exists, and each of its variables is an input of one of the collection's roles."""
    inputs: set[str] = set()
    for spec in (COLLECTION / "roles").glob("*/meta/argument_specs.yml"):
        for entry in (yaml.safe_load(spec.read_text(encoding="utf-8")) or {})[
            "argument_specs"
        ].values():
            inputs |= set((entry or {}).get("options") or {})
    for level in levels.LEVELS.values():
        if not level.built:
            continue
        assert (REPO / "playbooks" / level.playbook).is_file(), level.playbook
        names = {t.var for t in level.targets} | set(level.recorded) | {level.lock}
        assert names <= inputs, f"level {level.number}: {sorted(names - inputs)} are no inputs"


def test_level_five_is_registered_as_planned() -> None:
    five = levels.level(5)
    assert five.playbook == "rollback-l5.yml" and five.target == "dr_restore_point"
    assert five.budget == 3600 and levels.LEVELS[4].budget == 1800


def test_level_of_a_playbook_file() -> None:
    assert levels.level_of_playbook("rollback-l3.yml") == 3
    assert levels.level_of_playbook(str(Path("/x/playbooks/rollback-l4.yaml"))) == 4
    assert levels.level_of_playbook("deploy.yml") is None
    assert levels.level_of_playbook("rollback-l3.yml.bak") is None


def test_settle_arguments_name_the_run_and_the_lock_root() -> None:
    args = levels.settle_args(3, "run-1", 60)
    assert args == "app_root={{ release_app_root }} state=unlocked run_id=run-1 wait=60"
