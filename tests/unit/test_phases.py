"""One function decides a task's phase (plugin_utils/phases.py): the run record's callback
calls it and publishes the decision in the task's events, the live view reads it."""

from __future__ import annotations

import re
from types import SimpleNamespace

from ansible_collections.sre.rollback.plugins.plugin_utils import phases
from tests.conftest import COLLECTION, REPO

READERS = [
    REPO / "wrapper" / "rollbackctl" / "progress.py",
    COLLECTION / "plugins" / "callback" / "run_record.py",
]


def test_one_phase_inference_function() -> None:
    """grep: nobody but phases.py looks at ``phase_`` tags or parses task files."""
    sources = [
        *(REPO / "wrapper" / "rollbackctl").rglob("*.py"),
        *(COLLECTION / "plugins").rglob("*.py"),
    ]
    offenders = [
        str(path.relative_to(REPO))
        for path in sources
        if path.name != "phases.py"
        and re.search(r"\"phase_\"|startswith\(\"phase_|yaml\.compose|task_path", path.read_text())
    ]
    assert offenders == []
    for reader in READERS:
        assert "phases import" in reader.read_text(encoding="utf-8")


def task(tags: list[str], action: str = "ansible.builtin.command", parent: object = None) -> object:
    return SimpleNamespace(tags=tags, action=action, _parent=parent, _role=None)


def test_the_task_its_blocks_and_includes_name_the_phase() -> None:
    block = SimpleNamespace(tags=["phase_restart"], _parent=None)
    assert phases.task_phase(task([], parent=block)) == "restart"
    assert phases.task_phase(task(["phase_health"], parent=block)) == "health"
    assert phases.task_phase(task([], "ansible.builtin.validate_argument_spec")) == "preflight"
    assert phases.task_phase(task([])) == "play"


def test_the_live_view_reads_the_callbacks_decision() -> None:
    event = {"task_action": "ansible.builtin.command", phases.EVENT_KEY: "switch"}
    assert phases.event_phase({**event, "task_tags": ["phase_plan"]}) == "switch"
    assert phases.event_phase({"task_tags": ["phase_plan"]}) == "plan"
    assert phases.event_phase({"task_action": "validate_argument_spec"}) == "preflight"
    assert phases.event_phase({"task_action": "ansible.builtin.command"}) is None
