# GPL-3.0-or-later
"""The part every one-call rollout shares: restart the service, gate on health, and say
what happened as phases the run record shows per host.

Used by ``sre.rollback.release`` (``state=rolled_out``) and ``sre.rollback.config_revision``
(with ``service``): each changes its own thing, then calls :func:`restart_and_gate`; when
that returns a cause, the module puts back what it changed and calls :func:`restart_back`.
Stdlib only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils import controller_watch, services
from ansible_collections.sre.rollback.plugins.module_utils import health as health_gate

# argument_spec entries, the same in every module that restarts and gates.
SERVICE_SPEC: dict[str, Any] = {
    "type": "dict",
    "options": {
        "manager": {"type": "str", "default": "systemd", "choices": list(services.MANAGERS)},
        "name": {"type": "str"},
        "start_command": {"type": "str", "default": ""},
        "stop_command": {"type": "str", "default": ""},
        "status_command": {"type": "str", "default": ""},
        "command_timeout": {"type": "int", "default": 60},
    },
}
HEALTH_SPEC: dict[str, Any] = {"type": "dict", "options": health_gate.OPTIONS}


def phase(name: str, started: float, status: str = "ok", msg: str = "") -> dict[str, Any]:
    """One phase of a one-call rollout ({phase, status, seconds[, msg]}), as the run
    record's callback reads them from the module's ``phases``."""
    entry: dict[str, Any] = {
        "phase": name,
        "status": status,
        "seconds": round(time.monotonic() - started, 3),
    }
    if msg:
        entry["msg"] = msg[:500]
    return entry


def spec_problems(service: Mapping[str, Any] | None, health: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with the service and health settings, before anything changes."""
    found = services.problems(service) if service else []
    if health:
        problem = health_gate.check_url(str(health.get("url") or ""))
        if problem:
            found.append(f"health {problem}")
    return found


def restart_and_gate(
    service: Mapping[str, Any] | None,
    health: Mapping[str, Any] | None,
    phases: list[dict[str, Any]],
    result: dict[str, Any],
    watch: controller_watch.ControllerWatch | None = None,
) -> str | None:
    """Restart (when a service is given), then wait until healthy (when a health gate is
    given). Appends the phases, sets result["restart"] and result["health"] (and
    result["failure"], the kind of failure: restart_failed, or the gate's), and returns
    None when the host is healthy, else the cause (a sentence). With a watch, raises
    ControllerLost before the restart, after it, or between the gate's polls when the
    controller is gone (a restart in progress is finished first)."""
    timings = result.setdefault("timings", {})
    if service:
        if watch is not None:
            watch.check("restart")
        started = time.monotonic()
        try:
            result["restart"] = services.restart(service)
        except services.ServiceError as exc:
            cause = f"the restart failed: {exc}"
            result["failure"] = "restart_failed"
            phases.append(phase("restart", started, "failed", cause))
            timings["restart"] = phases[-1]["seconds"]
            return cause
        phases.append(phase("restart", started, "changed"))
        timings["restart"] = phases[-1]["seconds"]
    if not health:
        return None
    if not health.get("unit") and services.unit_to_watch(service):
        health = {**health, "unit": services.unit_to_watch(service)}  # see its restarts
    started = time.monotonic()
    if watch is not None:
        watch.check("health")
        checked = health_gate.wait_healthy(health, sleep=watch.sleep)
    else:
        checked = health_gate.wait_healthy(health)
    problem: str | None = checked.pop("msg") or None
    result["health"] = checked
    timings["health"] = checked["elapsed"]
    phases.append(phase("health", started, "ok" if checked["healthy"] else "failed", problem or ""))
    if not checked["healthy"]:
        result["failure"] = checked["failure"]
    return problem


# How long what a host had may take to answer well again after it was put back, when the
# gate checks whether it fails too (then the fault is not the change's).
RECHECK_DEADLINE = 15.0


def recheck(
    service: Mapping[str, Any] | None,
    health: Mapping[str, Any] | None,
    phases: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """After a failed gate and putting back what the host had: gate it again (the same gate,
    no observation window, RECHECK_DEADLINE at most) and add a ``recheck`` phase. Returns
    {healthy, attempts, last_error}, or None without a gate. Whether what the host had is
    healthy is the evidence for or against the change (module_utils releases.blame)."""
    if not health:
        return None
    started = time.monotonic()
    gate = {
        **health,
        "observe": 0.0,
        "deadline": min(float(health.get("deadline") or 60.0), RECHECK_DEADLINE),
        "unit": health.get("unit") or services.unit_to_watch(service),
    }
    checked = health_gate.wait_healthy(gate)
    # Evidence, not a step that failed: the host's failed phase stays the one that went wrong.
    said = "healthy" if checked["healthy"] else f"unhealthy too: {checked['msg']}"
    phases.append(phase("recheck", started, "ok", said))
    return {k: checked[k] for k in ("healthy", "attempts", "last_error")}


def restart_back(service: Mapping[str, Any] | None, what: str) -> tuple[bool, str]:
    """Restart after putting ``what`` back; (worked, sentence for the message)."""
    if not service:
        return True, f"Put back {what}."
    try:
        services.restart(service)
    except services.ServiceError as exc:
        return False, f"Put back {what}, but restarting it failed: {exc}. The host needs attention."
    return True, f"Put back {what} and restarted."
