# GPL-3.0-or-later
"""The policy, typed: matrix rows, services, communication, escalation, revenue, triggers.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy.conditions import (
    Condition,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.units import (
    format_levels,
)


@dataclass(frozen=True)
class MatrixRow:
    index: int
    severity: str
    impact: Condition
    time_to_fix: Condition
    action: str
    levels: tuple[int, ...]

    def describe(self) -> str:
        outcome = "fix forward" if self.action == "fix_forward" else f"levels {self.level_text}"
        return (
            f"matrix[{self.index}] ({self.severity}: impact {self.impact.text}, "
            f"time to fix {self.time_to_fix.text} -> {outcome})"
        )

    @property
    def level_text(self) -> str:
        return format_levels(self.levels)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "severity": self.severity,
            "impact": self.impact.text,
            "time_to_fix": self.time_to_fix.text,
            "action": self.action,
            "levels": list(self.levels),
        }


@dataclass(frozen=True)
class Service:
    name: str
    rto: int  # seconds
    rpo: int  # seconds
    priority: str


@dataclass(frozen=True)
class Channels:
    stdout: bool
    file: str | None
    webhook_url_env: str | None  # the NAME of the variable holding the URL, never the URL


@dataclass(frozen=True)
class Communication:
    lead: str
    status_page_url: str
    channels: Channels
    templates: dict[str, str]


@dataclass(frozen=True)
class Escalation:
    on_failed_verification: bool
    max_level: int


@dataclass(frozen=True)
class Revenue:
    per_minute: float
    currency: str


@dataclass(frozen=True)
class TriggerAction:
    """The incident a firing trigger declares: ``decide`` turns it into rollback levels."""

    severity: str = "critical"
    impact: float = 100.0
    time_to_fix: int = 3600


@dataclass(frozen=True)
class ThresholdTrigger:
    """A metric above a threshold for ``for_seconds`` (0: at once)."""

    enabled: bool
    above: float  # percent, or seconds for response_time_p95
    for_seconds: int
    no_data: str = "reset"
    action: TriggerAction = TriggerAction()


@dataclass(frozen=True)
class PoolTrigger:
    enabled: bool
    in_use_at_least: float  # percent of the pool
    for_seconds: int
    no_data: str = "reset"
    action: TriggerAction = TriggerAction("high", 50.0, 1800)


@dataclass(frozen=True)
class CountTrigger:
    enabled: bool
    consecutive_above: int
    # How long a rollout's health gate watches a restarted service at least (a crash loop
    # answers between its deaths): the roles' *_health_observe default.
    observe_for_seconds: int = 10
    no_data: str = "reset"
    action: TriggerAction = TriggerAction()


@dataclass(frozen=True)
class Triggers:
    error_rate: ThresholdTrigger
    response_time_p95: ThresholdTrigger
    health_check_failures: CountTrigger
    memory: ThresholdTrigger
    db_pool: PoolTrigger
    # The service the triggers watch (a key of ``services``), the Prometheus job that
    # scrapes it, and how often the rules are evaluated (and the targets scraped).
    service: str = "core_api"
    job: str = "demo-app"
    evaluation_interval_seconds: int = 15


@dataclass(frozen=True)
class Policy:
    matrix: tuple[MatrixRow, ...]
    services: dict[str, Service]
    communication: Communication
    escalation: Escalation
    revenue: Revenue
    triggers: Triggers
    source: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data: durations in seconds, percentages as numbers 0..100."""
        return {
            "matrix": [row.as_dict() for row in self.matrix],
            "services": {key: dataclasses.asdict(s) for key, s in self.services.items()},
            "communication": dataclasses.asdict(self.communication),
            "escalation": dataclasses.asdict(self.escalation),
            "revenue": dataclasses.asdict(self.revenue),
            "triggers": dataclasses.asdict(self.triggers),
            "source": self.source,
        }
