# GPL-3.0-or-later
"""Filters over the rollback policy: the runbook's decision matrix for playbooks and AWX.

The logic lives once in ``plugin_utils/policy/`` (the wrapper imports the same module);
these functions only turn its errors into filter errors. Documentation: one ``.yml`` file
per filter next to this one (``ansible-doc -t filter sre.rollback.rollback_decision``).
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    InputError,
    Policy,
    PolicyError,
    decide,
    default_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    parse_duration as _parse_duration,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    validate_policy as _validate_policy,
)


def _policy(policy: Any, source: str | None) -> Policy:
    if policy is None or policy == "":
        return default_policy()
    return _validate_policy(policy, source or "the policy given to the filter")


def rollback_decision(
    severity: Any,
    impact: Any,
    time_to_fix: Any,
    policy: Any = None,
    source: str | None = None,
) -> dict[str, Any]:
    """The decision (action, levels, start and max level, matched row, reason)."""
    try:
        return decide(_policy(policy, source), severity, impact, time_to_fix).as_dict()
    except (InputError, PolicyError) as error:
        raise AnsibleFilterError(str(error)) from error


def validate_policy(policy: Any, source: str | None = None) -> dict[str, Any]:
    """The effective policy (defaults filled in, durations in seconds), or an error that
    names every key to fix."""
    try:
        return _policy(policy, source).as_dict()
    except PolicyError as error:
        raise AnsibleFilterError(str(error)) from error


def parse_duration(value: Any) -> int:
    """Seconds in ``90s``, ``5m``, ``5 min``, ``1h``, ``2 hours``, ``1h30m`` or an int."""
    try:
        return _parse_duration(value)
    except InputError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "rollback_decision": rollback_decision,
            "validate_policy": validate_policy,
            "parse_duration": parse_duration,
        }
