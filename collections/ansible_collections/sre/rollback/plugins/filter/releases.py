# GPL-3.0-or-later
"""Filters over the release role's registered results: decide a rollback or deploy target
once for all hosts, and publish the rollout results of a batch of hosts in one task."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.releases import (
    DEFAULT_STABLE_PATTERN,
    blame,
    lock_refusals,
    plan_target,
    version_key,
)


def release_plan(
    hostvars: dict[str, Any],
    hosts: list[str],
    result_var: str = "__release_inspect",
    pattern: str = DEFAULT_STABLE_PATTERN,
    named: str | None = None,
) -> dict[str, Any]:
    """The target release for the hosts, from each host's registered inspection; with
    ``rollout``, the hosts that roll out in one module call and those that go step by step
    (the inspection's ``values.step_by_step``, worked out on each host by role_inputs)."""
    inspections = {h: hostvars[h].get(result_var) or {} for h in hosts}
    plan = plan_target(inspections, pattern, named or None)
    steps = [h for h in hosts if _mapping(inspections[h].get("values")).get("step_by_step")]
    plan["rollout"] = {ONE_CALL: [h for h in hosts if h not in steps], STEPS: steps}
    return plan


def release_locks(
    hostvars: dict[str, Any],
    hosts: list[str],
    run_id: str,
    result_var: str = "__release_inspect",
) -> list[str]:
    """Why each host that another run has locked refuses this run (empty: none is)."""
    return lock_refusals({h: hostvars[h].get(result_var) or {} for h in hosts}, run_id)


# The rollout paths of the release role and what their tasks register (tasks/rollout_*.yml).
ONE_CALL, STEPS = "one_call", "steps"
ROLLOUT = "__release_rollout"  # one_call: the one module call (not run on the steps path)
BUILD, SWITCH, HEALTH = "__release_build", "__release_switch", "__release_health"  # steps
REVERT = "__release_revert"  # steps: the rescue's first task, so defined once a step failed
UNLOCK = "__release_unlock"  # one_call: the rescue's unlock; steps: the always unlock


def release_results(
    hostvars: Mapping[str, Any],
    hosts: list[str],
    action: str,
    path: str = ONE_CALL,
    published_var: str = "__release_published",
    now: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Each host's rollout result ({host: result}, as ``release_results`` publishes them),
    for the hosts that rolled out on ``path`` and reached the task that publishes them: one
    task per batch (run_once) instead of one per host.

    ``hosts`` is every host of the play (a failed host drops out of ``ansible_play_batch``);
    a host counts when its registered results say it rolled out on this path, and not when it
    went unreachable (it never gets to the ``always`` section: nothing published, as before).
    A host that an earlier batch published already (``published_var``: what the publishing
    task registered, on every host of its batch) is left out when its result is the same
    but for the total time, so its published data never changes.
    """
    at = time.time() if now is None else float(now)
    results: dict[str, dict[str, Any]] = {}
    for host in hosts:
        if host not in hostvars:
            continue
        hvars = hostvars[host]
        if not _reached_publish(hvars, path):
            continue
        result = host_result(hvars, action, path, at)
        if not _published_before(hvars, published_var, host, result):
            results[host] = result
    return results


def host_result(hvars: Mapping[str, Any], action: str, path: str, now: float) -> dict[str, Any]:
    """One host's result from its registered results: what the release role published per
    host (``__release_host_result``) before it published once per batch."""
    inspect = _registered(hvars, "__release_inspect")
    if path == ONE_CALL:
        switched = _registered(hvars, ROLLOUT)
        gate = _mapping(switched.get("health"))
        build: Mapping[str, Any] = {}
        revert: Mapping[str, Any] = {}
        failed = bool(switched.get("failed"))
    else:
        switched = _registered(hvars, SWITCH)
        gate = _registered(hvars, HEALTH)
        build = _registered(hvars, BUILD)
        revert = _registered(hvars, REVERT)
        # The rescue's first task registers __release_revert (skipped or not) on every host
        # whose step failed: a failed build, hook, switch, restart or health gate.
        failed = REVERT in hvars or any(
            _registered(hvars, name).get("failed") for name in (BUILD, SWITCH, HEALTH)
        )
    outcome = "ok" if switched.get("changed", False) else "unchanged"
    current = inspect.get("current")
    return {
        "action": action,
        "status": "failed" if failed else outcome,
        "before": switched.get("before", current),
        "after": revert.get("current")
        if revert.get("changed", False)
        else switched.get("current", current),
        "path": "rebuild"
        if build.get("path", "none") == "rebuild"
        else switched.get("path", "none"),
        "reverted": revert.get("changed", False) or switched.get("reverted", False),
        "timings": {
            **_mapping(build.get("timings")),
            **_mapping(switched.get("timings")),
            "health": gate.get("elapsed"),
            "total": _elapsed(hvars, now),
        },
        "health": {"healthy": gate.get("healthy"), "attempts": gate.get("attempts", 0)},
        "run_id": hvars.get("__release_run_id"),
        "target": planned_target(hvars),
    }


def planned_target(hvars: Mapping[str, Any]) -> dict[str, Any] | None:
    """The release the plan chose for every host (``__release_plan``), also in check mode,
    where ``after`` stays the current release."""
    plan = _mapping(hvars.get("__release_plan"))
    if not plan.get("release"):
        return None
    return {key: plan.get(key) for key in ("release", "tag", "commit")}


def _reached_publish(hvars: Mapping[str, Any], path: str) -> bool:
    """Whether the host rolled out on this path and got to the publishing task."""
    rollout = _registered(hvars, ROLLOUT)
    one_call = ROLLOUT in hvars  # rollout.yml includes one path or the other, never both
    unlock = _registered(hvars, UNLOCK)
    if path == ONE_CALL:
        # Every task of this path registers: the module call, then on failure the unlock.
        return one_call and not rollout.get("unreachable") and not unlock.get("unreachable")
    # Step by step: the unlock in `always` runs on every host that gets there; a host whose
    # unlock failed stops before the publishing task (and an unreachable one never gets there).
    return (
        not one_call
        and UNLOCK in hvars
        and not any(unlock.get(key) for key in ("skipped", "failed", "unreachable"))
    )


def _published_before(
    hvars: Mapping[str, Any], published_var: str, host: str, result: Mapping[str, Any]
) -> bool:
    stats = _mapping(_registered(hvars, published_var).get("ansible_stats"))
    earlier = _mapping(_mapping(_mapping(stats.get("data")).get("release_results")).get(host))
    return bool(earlier) and _sans_total(earlier) == _sans_total(result)


def _sans_total(result: Mapping[str, Any]) -> dict[str, Any]:
    timings = {k: v for k, v in _mapping(result.get("timings")).items() if k != "total"}
    return {**result, "timings": timings}


def _registered(hvars: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A registered result of the host, or {} when it has none."""
    return _mapping(hvars[name]) if name in hvars else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _elapsed(hvars: Mapping[str, Any], now: float) -> float | None:
    """Seconds since the plan started (``__release_started``, epoch seconds)."""
    try:
        return round(now - float(hvars["__release_started"]), 3)
    except (KeyError, TypeError, ValueError):
        return None


def release_blame(
    failure: str | None, had_healthy: bool | None = None, proven_elsewhere: bool = False
) -> dict[str, str]:
    """What a failed health gate says of the release ({state: bad|suspect, why}): bad only
    with evidence (module_utils releases.blame)."""
    return blame(failure or None, had_healthy, bool(proven_elsewhere))


def version_sort(tags: list[str]) -> list[str]:
    """Tags ordered by version (v1.10 after v1.9), oldest first."""
    return sorted(tags, key=version_key)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "release_plan": release_plan,
            "release_locks": release_locks,
            "release_results": release_results,
            "version_sort": version_sort,
            "release_blame": release_blame,
        }
