# GPL-3.0-or-later
"""The rollback policy of an environment and the runbook's decision matrix.

A policy holds the decision matrix (severity, impact, time to fix -> rollback levels), the
services' recovery objectives, communication settings, escalation, revenue impact and the
automatic-rollback triggers. Every section may be omitted: the runbook's values fill it.

The package is split by job: ``shape`` (sections, defaults), ``units`` (errors, durations,
percentages, levels), ``conditions`` (interval algebra), ``model`` (the typed policy),
``schema`` (the published JSON Schema of a policy file, checked by jsonschema, and its
messages), ``reader`` (a policy file to the model: schema, then the rules across matrix
rows, then the defaults), ``decision`` (the matrix). Import from the package.

One copy of this logic serves everyone: the ``rollbackctl`` wrapper imports it, and the
``sre.rollback`` filter plugins wrap it for playbooks and AWX. Standard library and
``jsonschema`` (to check a policy file): the caller parses YAML and passes plain data in.

Decision semantics (the README and the policy files say the same):

1. The declared severity is a floor: milder numbers never lower it. When the severity's row
   does not hold because the numbers fall short of it, that row applies anyway and the
   reason names the conditions that did not hold.
2. When the numbers exceed the severity's row (a "low" incident that hits 50 % of users, or
   whose fix takes 15 minutes or more), the decision moves up one severity at a time until
   it reaches a row that the numbers do not exceed.
3. When a more severe row holds outright, the most severe such row applies.
4. At a boundary the more severe side wins: the default matrix reads ``all`` (exactly
   100 %), ``>= 50%``, ``< 50%``, ``< 10%``, ``>= 1h``, ``>= 30m``, ``>= 15m``, ``< 15m``.
"""

from __future__ import annotations

from ansible_collections.sre.rollback.plugins.plugin_utils.policy.conditions import (
    Condition,
    Interval,
    parse_condition,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.decision import (
    ConditionCheck,
    Decision,
    RowVerdict,
    decide,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.model import (
    Channels,
    Communication,
    CountTrigger,
    Escalation,
    MatrixRow,
    Policy,
    PoolTrigger,
    Revenue,
    Service,
    ThresholdTrigger,
    TriggerAction,
    Triggers,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.reader import (
    default_policy,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.shape import (
    ACTIONS,
    DEFAULT_POLICY,
    LEVEL_NAMES,
    NO_DATA_POLICIES,
    POLICY_VARIABLE,
    REPLACED_SECTIONS,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    SECTIONS,
    SEVERITIES,
    TEMPLATE_FIELDS,
    TEMPLATE_NAMES,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.units import (
    DURATION_HELP,
    PERCENT_HELP,
    InputError,
    PolicyError,
    duration_parts,
    format_duration,
    format_levels,
    format_percent,
    parse_duration,
    parse_impact,
    parse_levels,
    parse_percent,
    parse_seconds,
    parse_severity,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICY",
    "DURATION_HELP",
    "LEVEL_NAMES",
    "NO_DATA_POLICIES",
    "PERCENT_HELP",
    "POLICY_VARIABLE",
    "REPLACED_SECTIONS",
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "SECTIONS",
    "SEVERITIES",
    "TEMPLATE_FIELDS",
    "TEMPLATE_NAMES",
    "Channels",
    "Communication",
    "Condition",
    "ConditionCheck",
    "CountTrigger",
    "Decision",
    "Escalation",
    "InputError",
    "Interval",
    "MatrixRow",
    "Policy",
    "PolicyError",
    "PoolTrigger",
    "Revenue",
    "RowVerdict",
    "Service",
    "ThresholdTrigger",
    "TriggerAction",
    "Triggers",
    "decide",
    "default_policy",
    "duration_parts",
    "format_duration",
    "format_levels",
    "format_percent",
    "parse_condition",
    "parse_duration",
    "parse_impact",
    "parse_levels",
    "parse_percent",
    "parse_seconds",
    "parse_severity",
    "validate_policy",
]
