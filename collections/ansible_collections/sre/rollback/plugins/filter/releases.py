# GPL-3.0-or-later
"""Filters over release inspections: decide a rollback or deploy target once for all hosts."""

from __future__ import annotations

from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.releases import (
    DEFAULT_STABLE_PATTERN,
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
    """The target release for the hosts, from each host's registered inspection."""
    inspections = {h: hostvars[h].get(result_var) or {} for h in hosts}
    return plan_target(inspections, pattern, named or None)


def release_locks(
    hostvars: dict[str, Any],
    hosts: list[str],
    run_id: str,
    result_var: str = "__release_inspect",
) -> list[str]:
    """Why each host that another run has locked refuses this run (empty: none is)."""
    return lock_refusals({h: hostvars[h].get(result_var) or {} for h in hosts}, run_id)


def version_sort(tags: list[str]) -> list[str]:
    """Tags ordered by version (v1.10 after v1.9), oldest first."""
    return sorted(tags, key=version_key)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "release_plan": release_plan,
            "release_locks": release_locks,
            "version_sort": version_sort,
        }
