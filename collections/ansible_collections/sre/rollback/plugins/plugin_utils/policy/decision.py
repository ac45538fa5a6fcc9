# GPL-3.0-or-later
"""The decision: severity, impact and time to fix -> a level range, with the reason.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy.model import (
    Escalation,
    MatrixRow,
    Policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.shape import (
    LEVEL_NAMES,
    SEVERITIES,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.units import (
    InputError,
    format_duration,
    format_percent,
    parse_duration,
    parse_impact,
    parse_severity,
)


@dataclass(frozen=True)
class ConditionCheck:
    row: int
    severity: str
    field: str  # impact | time_to_fix
    rule: str  # e.g. ">= 50%"
    value: str  # e.g. "80%"
    position: str  # within | below (milder than the rule) | above (worse than the rule)

    @property
    def held(self) -> bool:
        return self.position == "within"

    def describe(self) -> str:
        name = self.field.replace("_", " ")
        return f"{name} {self.value} is {self.position} '{self.rule}'"

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "severity": self.severity,
            "field": self.field,
            "rule": self.rule,
            "value": self.value,
            "held": self.held,
            "position": self.position,
        }


@dataclass(frozen=True)
class RowVerdict:
    row: MatrixRow
    checks: tuple[ConditionCheck, ...]

    @property
    def holds(self) -> bool:
        return all(check.held for check in self.checks)

    @property
    def exceeded(self) -> bool:
        return any(check.position == "above" for check in self.checks)

    def failures(self) -> str:
        return "; ".join(check.describe() for check in self.checks if not check.held)


@dataclass(frozen=True)
class Decision:
    severity: str
    impact: float
    time_to_fix: int
    verdict: RowVerdict
    considered: tuple[RowVerdict, ...]
    start_level: int | None
    max_level: int | None
    summary: str
    reason: str
    policy_source: str

    @property
    def row(self) -> MatrixRow:
        return self.verdict.row

    @property
    def action(self) -> str:
        return self.row.action

    @property
    def escalated_from(self) -> str | None:
        return self.severity if self.row.severity != self.severity else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "levels": list(self.row.levels),
            "start_level": self.start_level,
            "max_level": self.max_level,
            "row": self.row.as_dict(),
            "summary": self.summary,
            "reason": self.reason,
            "conditions": [c.as_dict() for v in self.considered for c in v.checks],
            "severity": self.severity,
            "escalated_from": self.escalated_from,
            "inputs": {
                "severity": self.severity,
                "impact": self.impact,
                "time_to_fix": self.time_to_fix,
            },
            "policy": self.policy_source,
        }


def decide(policy: Policy, severity: Any, impact: Any, time_to_fix: Any) -> Decision:
    """The rollback decision for an incident; see the module docstring for the rules."""
    declared = _input("severity", parse_severity, severity)
    impact_percent = _input("impact", parse_impact, impact)
    seconds = _input("time_to_fix", parse_duration, time_to_fix)
    verdicts = {
        severity_name: [
            _verdict(row, impact_percent, seconds)
            for row in policy.matrix
            if row.severity == severity_name
        ]
        for severity_name in SEVERITIES
    }
    walked = _walk_up(declared, verdicts)
    jumped = _most_severe_holding(walked[-1].row.severity, verdicts)
    chosen = jumped or walked[-1]
    start_level, max_level = _level_bounds(chosen.row, policy.escalation)
    sentences = [f"Severity {declared}, impact {format_percent(impact_percent)}, "]
    sentences[0] += f"time to fix {format_duration(seconds)}."
    sentences += _path_sentences(declared, walked, jumped)
    summary = _summary(chosen.row, start_level, max_level, policy.escalation)
    return Decision(
        severity=declared,
        impact=impact_percent,
        time_to_fix=seconds,
        verdict=chosen,
        considered=tuple(walked) + ((jumped,) if jumped else ()),
        start_level=start_level,
        max_level=max_level,
        summary=summary,
        reason=" ".join(sentences),
        policy_source=policy.source,
    )


def _input(name: str, parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except InputError as error:
        raise InputError(f"{name}: {error}") from None


def _verdict(row: MatrixRow, impact: float, seconds: int) -> RowVerdict:
    checks = (
        ConditionCheck(
            row.index,
            row.severity,
            "impact",
            row.impact.text,
            format_percent(impact),
            row.impact.interval.position(impact),
        ),
        ConditionCheck(
            row.index,
            row.severity,
            "time_to_fix",
            row.time_to_fix.text,
            format_duration(seconds),
            row.time_to_fix.interval.position(seconds),
        ),
    )
    return RowVerdict(row, checks)


def _pick(verdicts: list[RowVerdict]) -> RowVerdict:
    """The row of one severity: the one that holds (rows never overlap), else the most
    conservative of those the numbers do not exceed, else the most conservative."""
    holding = [verdict for verdict in verdicts if verdict.holds]
    if holding:
        return holding[0]
    candidates = [verdict for verdict in verdicts if not verdict.exceeded] or verdicts
    return max(candidates, key=lambda verdict: _conservativeness(verdict.row))


def _conservativeness(row: MatrixRow) -> tuple[int, int, int]:
    if row.action == "fix_forward":
        return (0, 0, 0)
    return (1, row.levels[0], row.levels[-1])


def _walk_up(declared: str, verdicts: dict[str, list[RowVerdict]]) -> list[RowVerdict]:
    """Rules 1 and 2: from the declared severity up while the numbers exceed its row."""
    index = SEVERITIES.index(declared)
    walked = [_pick(verdicts[declared])]
    while index > 0 and walked[-1].exceeded:
        index -= 1
        walked.append(_pick(verdicts[SEVERITIES[index]]))
    return walked


def _most_severe_holding(severity: str, verdicts: dict[str, list[RowVerdict]]) -> RowVerdict | None:
    """Rule 3: a more severe row that holds outright wins."""
    for more_severe in SEVERITIES[: SEVERITIES.index(severity)]:
        holding = [verdict for verdict in verdicts[more_severe] if verdict.holds]
        if holding:
            return holding[0]
    return None


def _path_sentences(
    declared: str, walked: list[RowVerdict], jumped: RowVerdict | None
) -> list[str]:
    sentences = [
        f"{verdict.row.describe()} is exceeded ({verdict.failures()}): moving up one severity."
        for verdict in walked[:-1]
    ]
    last = walked[-1]
    if last.holds:
        sentences.append(f"{last.row.describe()} holds.")
    elif last.row.severity == declared and not last.exceeded:
        sentences.append(
            f"{last.row.describe()} does not hold ({last.failures()}), but milder numbers "
            "never lower a declared severity, so it applies."
        )
    elif last.exceeded:
        sentences.append(
            f"{last.row.describe()} is exceeded too ({last.failures()}), and no row is "
            "more severe, so it applies."
        )
    else:
        sentences.append(
            f"{last.row.describe()} is not exceeded ({last.failures()}), so it applies."
        )
    if jumped:
        sentences.append(
            f"{jumped.row.describe()} holds too and is more severe, so it applies instead."
        )
    return sentences


def _level_bounds(row: MatrixRow, escalation: Escalation) -> tuple[int | None, int | None]:
    """The level to start with and the highest one escalation may reach."""
    if row.action == "fix_forward":
        return None, None
    start = row.levels[0]
    if not escalation.on_failed_verification:
        return start, start
    return start, max(start, min(row.levels[-1], escalation.max_level))


def _summary(row: MatrixRow, start: int | None, highest: int | None, escalation: Escalation) -> str:
    """E.g. ``roll back, levels 3-5: start at level 3 (code), escalate ... fails``."""
    if start is None or highest is None:
        return "fix forward, no rollback"
    text = f"roll back, levels {row.level_text}: start at level {start} "
    text += f"({LEVEL_NAMES[start]})"
    if not escalation.on_failed_verification:
        return text + "; no escalation (escalation.on_failed_verification is false)"
    if highest > start:
        text += f", escalate one level at a time up to level {highest} ({LEVEL_NAMES[highest]})"
        text += " if verification fails"
    if highest < row.levels[-1]:
        text += f" (capped by escalation.max_level {escalation.max_level})"
    return text
