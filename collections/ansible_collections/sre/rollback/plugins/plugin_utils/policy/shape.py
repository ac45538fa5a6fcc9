# GPL-3.0-or-later
"""What a policy file may hold: its published schema (``plugins/plugin_utils/policy.schema.json``)
and the names read from it (sections, actions, message templates, no-data policies), the
severities, message template fields and the runbook's defaults.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils import levels

SCHEMA_FILE = Path(__file__).parent.with_name("policy.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
"""The policy file's JSON Schema (Draft 2020-12); ``schema.py`` checks files against it."""

SCHEMA_VERSION = int(SCHEMA["$id"].rsplit("/", 1)[1].split(".")[0])

_POLICY = SCHEMA["$defs"]["policy"]["properties"]

SEVERITIES = ("critical", "high", "medium", "low")
"""Most severe first."""

LEVEL_NAMES = levels.LEVEL_NAMES

ACTIONS = tuple(SCHEMA["$defs"]["matrix_row"]["properties"]["action"]["enum"])

SECTIONS = tuple(_POLICY)

TEMPLATE_NAMES = tuple(_POLICY["communication"]["properties"]["templates"]["properties"])

NO_DATA_POLICIES = tuple(SCHEMA["$defs"]["no_data"]["enum"])
"""What a trigger does when its metric has no data at an evaluation: ``reset`` (the window
starts again once data is back, and the trigger says it was reset by no data; a gap never
fires, never counts towards a window). The only policy Prometheus' ``for:`` can express
without letting a gap complete a window."""

TEMPLATE_FIELDS = (
    "time",
    "reason",
    "impact",
    "severity",
    "level",
    "level_name",
    "eta",
    "lead",
    "timeframe",
    "environment",
    "status_page_url",
)
"""Placeholders a communication template may use, written ``{name}`` (str.format style, so
that Jinja leaves them alone when Ansible reads the policy as inventory variables)."""

_INVENTORY_VARS = SCHEMA["then"]["properties"]["all"]["properties"]["vars"]["properties"]

POLICY_VARIABLE = next(iter(_INVENTORY_VARS))
"""A policy file lives in the inventory directory, so Ansible reads it as an inventory
source too. It is therefore written ``all: {vars: {rollback_policy: ...}}``: the yaml
inventory plugin takes it as a variable of group ``all`` (which playbooks can use) instead of
turning each section into a bogus group with warnings. A bare policy mapping is accepted too
(for ``--policy FILE`` outside an inventory)."""

DEFAULT_POLICY: dict[str, Any] = {
    "matrix": [
        {"severity": "critical", "impact": "all", "time_to_fix": ">= 1h", "levels": "3-5"},
        {"severity": "high", "impact": ">= 50%", "time_to_fix": ">= 30m", "levels": "2-3"},
        {"severity": "medium", "impact": "< 50%", "time_to_fix": ">= 15m", "levels": "1-2"},
        {"severity": "low", "impact": "< 10%", "time_to_fix": "< 15m", "action": "fix_forward"},
    ],
    "services": {
        "core_api": {"name": "Core API", "rto": "5m", "rpo": "1m", "priority": "critical"},
        "user_auth": {"name": "User Auth", "rto": "5m", "rpo": "1m", "priority": "critical"},
        "database": {"name": "Database", "rto": "15m", "rpo": "5m", "priority": "critical"},
        "file_storage": {"name": "File Storage", "rto": "30m", "rpo": "15m", "priority": "high"},
        "analytics": {"name": "Analytics", "rto": "2h", "rpo": "1h", "priority": "medium"},
    },
    "communication": {
        "lead": "",
        "status_page_url": "https://status.example.com",
        "channels": {"stdout": True, "file": None, "webhook_url_env": None},
        "templates": {
            "internal": (
                "ROLLBACK INITIATED\n\nTime: {time}\nReason: {reason}\nImpact: {impact}\n"
                "Level: {level}\nETA: {eta}\nLead: {lead}\n"
            ),
            "customer": (
                "We are currently experiencing technical difficulties with our service.\n"
                "Our team is working on resolving the issue.\n"
                "We expect normal service to resume within {timeframe}.\n"
                "We apologize for any inconvenience.\n"
            ),
        },
    },
    "escalation": {"on_failed_verification": True, "max_level": 5},
    "revenue": {"per_minute": 0, "currency": "USD"},
    "triggers": {
        "service": "core_api",
        "job": "demo-app",
        "evaluation_interval": "15s",
        "error_rate": {
            "enabled": True,
            "above": "10%",
            "for": "5m",
            "no_data": "reset",
            "action": {"severity": "critical", "impact": "all", "time_to_fix": "1h"},
        },
        "response_time_p95": {
            "enabled": True,
            "above": "5s",
            "for": "5m",
            "no_data": "reset",
            "action": {"severity": "critical", "impact": "all", "time_to_fix": "1h"},
        },
        "health_check_failures": {
            "enabled": True,
            "consecutive_above": 3,
            "observe_for": "10s",
            "no_data": "reset",
            "action": {"severity": "critical", "impact": "all", "time_to_fix": "1h"},
        },
        "memory": {
            "enabled": True,
            "above": "95%",
            "for": "0s",
            "no_data": "reset",
            "action": {"severity": "high", "impact": "50%", "time_to_fix": "30m"},
        },
        "db_pool": {
            "enabled": True,
            "in_use_at_least": "100%",
            "for": "0s",
            "no_data": "reset",
            "action": {"severity": "high", "impact": "50%", "time_to_fix": "30m"},
        },
    },
}
"""The runbook's values. Sections that are mappings are merged key by key with what a policy
file gives (a null value means "the default"); ``matrix`` and ``services`` are replaced
whole when a file gives them."""

REPLACED_SECTIONS = ("matrix", "services")
