# GPL-3.0-or-later
"""Filters over release inspections: decide a rollback or deploy target once for all hosts."""

from __future__ import annotations

from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.releases import (
    DEFAULT_STABLE_PATTERN,
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


def version_sort(tags: list[str]) -> list[str]:
    """Tags ordered by version (v1.10 after v1.9), oldest first."""
    return sorted(tags, key=version_key)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"release_plan": release_plan, "version_sort": version_sort}
