# GPL-3.0-or-later
"""The phase of a task: decided here, once, for the run record and the live view.

The roles tag every task ``phase_<name>`` (plan, build, switch, restart, health, revert,
unlock, record), on the task or on a block or include around it. ``task_phase`` decides
a task's phase from the Task Ansible runs (its tags and those of its parents): the
``sre.rollback.run_record`` callback calls it for the record and publishes the decision
in the task's events (``EVENT_KEY`` in the event data, when ansible-runner's event
callback is there), where ``rollbackctl``'s live progress reads it. Nothing else infers
a phase (tests/unit/test_phases.py checks it).

API: ``task_phase(task)`` (the callback), ``event_phase(event_data)`` (the live view),
``decide(action, tag_lists)`` (the rule both use), ``tag_phase(tags)``,
``refused_inputs(action, result, failed)`` (a role's input check refused: the host's
preflight), ``publish(phase)``, ``is_loader(action)``, ``short_action(action)``,
``EVENT_KEY``, ``PHASE_ORDER``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping
from typing import Any

EVENT_KEY = "sre_rollback_phase"
"""The key of the event data that carries the task's phase (ansible-runner events)."""

TAG_PREFIX = "phase_"
PREFLIGHT = "preflight"

PHASE_ORDER = (
    "preflight",
    "plan",
    "build",
    "hook",
    "change",
    "set",
    "switch",
    "restart",
    "health",
    "verify",
    "revert",
    "unlock",
    "record",
)
"""The order phases are shown in (others follow in the order they were seen)."""

LOADERS = frozenset({"include_role", "include_tasks", "import_role", "import_tasks"})
"""Includes load tasks on the controller: no work on the host, no phase of their own."""


def short_action(action: Any) -> str:
    return str(action or "").rsplit(".", 1)[-1]


def is_loader(action: Any) -> bool:
    return short_action(action) in LOADERS


def tag_phase(tags: Any) -> str | None:
    """The phase a list of tags names (its first ``phase_*`` tag), or None."""
    if isinstance(tags, str):
        tags = [tags]
    for tag in tags or []:
        if str(tag).startswith(TAG_PREFIX):
            return str(tag)[len(TAG_PREFIX) :]
    return None


def decide(action: Any, tag_lists: Iterable[Any]) -> str | None:
    """THE phase rule: a role's argument check is its preflight; else the first
    ``phase_*`` tag of the task's own tags, then of each block or include around it
    (innermost first); None when nothing names one."""
    if short_action(action) == "validate_argument_spec":
        return PREFLIGHT
    for tags in tag_lists:
        found = tag_phase(tags)
        if found:
            return found
    return None


def task_phase(task: Any) -> str:
    """The phase of an Ansible Task (``decide`` over it and its parents), else its role,
    else ``play``: what the run record says and publishes to the events."""
    chain = []
    node = task
    while node is not None:
        chain.append(getattr(node, "tags", None))
        node = getattr(node, "_parent", None)
    decided = decide(getattr(task, "action", ""), chain)
    if decided:
        return decided
    role = getattr(task, "_role", None)
    return role.get_name() if role else "play"


def event_phase(event_data: Mapping[str, Any]) -> str | None:
    """The phase of a task event: the callback's decision it carries (``EVENT_KEY``), else
    ``decide`` over what the event says (its action and ``task_tags``, which some
    ansible-runner versions send), else None."""
    published = event_data.get(EVENT_KEY)
    if published:
        return str(published)
    return decide(event_data.get("task_action"), [event_data.get("task_tags")])


def refused_inputs(action: Any, result: Mapping[str, Any], failed: bool) -> bool:
    """A ``role_inputs`` task that failed on the inputs (with ``then`` it is tagged with
    the phase of the action it runs, which then never ran): the host's preflight."""
    return failed and short_action(action) == "role_inputs" and "argument_errors" in result


def publish(phase: str) -> None:
    """Put the phase of the task that starts into ansible-runner's event data (every
    event of the task carries it as ``EVENT_KEY``). Without ansible-runner's event
    callback (plain ansible-playbook, AWX's own) there is nothing to do."""
    context = _runner_event_context()
    if context is not None:
        context.add_global(**{EVENT_KEY: phase})


@functools.cache
def _runner_event_context() -> Any:
    """ansible-runner's event context, when its stdout callback (loaded before any other
    callback) runs in this process; looked up once."""
    for name, module in list(sys.modules.items()):
        if name.endswith("awx_display"):
            context = getattr(module, "event_context", None)
            if context is not None and hasattr(context, "add_global"):
                return context
    return None
