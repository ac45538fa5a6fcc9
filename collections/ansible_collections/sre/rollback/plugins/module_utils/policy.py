"""The rollback policy of an environment and the runbook's decision matrix.

A policy holds the decision matrix (severity, impact, time to fix -> rollback levels), the
services' recovery objectives, communication settings, escalation, revenue impact and the
automatic-rollback triggers. Every section may be omitted: the runbook's values fill it.

One copy of this logic serves everyone: the ``rollbackctl`` wrapper imports it, and the
``sre.rollback`` filter plugins wrap it for playbooks and AWX. Standard library only: the
caller parses YAML and passes plain data in.

Decision semantics (the README and the policy files say the same):

- Rows are matched on severity; a row holds when its impact and time-to-fix conditions hold.
- The declared severity is a floor: milder numbers never lower it. When the severity's row
  does not hold because the numbers fall short of it, that row is used anyway, and the
  reason says which conditions did not hold.
- When the numbers exceed the severity's row (e.g. a "low" incident hitting 50 % of users),
  the decision walks up to the next more severe row, until a row is not exceeded.
- When a more severe row holds outright, it is used (the most severe such row).
- At a boundary the more severe side wins: the default matrix says ``>= 50%``, ``< 10%``,
  ``>= 1h``, ``>= 30m``, ``>= 15m``, ``< 15m``; ``all`` means exactly 100 %.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low")
"""Most severe first."""

PRIORITIES = SEVERITIES

LEVEL_NAMES = {
    1: "feature flag",
    2: "configuration",
    3: "code",
    4: "database",
    5: "full system",
}

ACTIONS = ("rollback", "fix_forward")

TEMPLATE_NAMES = ("internal", "customer")

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
"""Placeholders a communication template may use, written ``{name}`` (str.format)."""

POLICY_VARIABLE = "rollback_policy"
"""A policy file is an inventory source too (it lives in the inventory directory), so it is
written as ``all: {vars: {rollback_policy: ...}}``: the yaml inventory plugin then reads it
as a variable of group ``all`` instead of turning its sections into bogus groups."""

DEFAULT_POLICY: dict[str, Any] = {
    "matrix": [
        {"severity": "critical", "impact": "all", "time_to_fix": ">= 1h", "levels": "3-5"},
        {"severity": "high", "impact": ">= 50%", "time_to_fix": ">= 30m", "levels": "2-3"},
        {"severity": "medium", "impact": "< 50%", "time_to_fix": ">= 15m", "levels": "1-2"},
        {
            "severity": "low",
            "impact": "< 10%",
            "time_to_fix": "< 15m",
            "action": "fix_forward",
        },
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
        "error_rate": {"enabled": True, "above": "10%", "for": "5m"},
        "response_time_p95": {"enabled": True, "above": "5s", "for": "5m"},
        "health_check_failures": {"enabled": True, "consecutive_above": 3},
        "memory": {"enabled": True, "above": "95%", "for": "0s"},
        "db_pool": {"enabled": True, "in_use_at_least": "100%", "for": "0s"},
    },
}
"""The runbook's values. Sections that are mappings are merged key by key with what a policy
file gives; ``matrix`` and ``services`` are replaced whole when a file gives them."""

REPLACED_SECTIONS = ("matrix", "services")


# --------------------------------------------------------------------------------------------
# Errors


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` lists (key path, what to fix)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}"]
        lines = [_problem_line(source, path, message) for path, message in problems]
        super().__init__("\n".join(lines))


def _problem_line(source: str, path: str, message: str) -> str:
    return f"{source}: {path}: {message}" if path else f"{source}: {message}"


class InputError(ValueError):
    """A decision input (severity, impact, time to fix) that cannot be understood."""


# --------------------------------------------------------------------------------------------
# Durations and percentages

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*")
DURATION_HELP = "write e.g. 90s, 5m, 5 min, 1h, 2 hours, 1h30m, or a whole number of seconds"


def parse_duration(value: Any) -> int:
    """Seconds in ``value``: an int (seconds) or text such as ``90s``, ``5 min``, ``1h30m``."""
    if isinstance(value, bool):
        raise InputError(f"{value!r} is not a duration: {DURATION_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{value} is negative: a duration is 0 or more")
        return value
    text = str(value).strip().lower()
    if text.isdigit():
        return int(text)
    return _parse_duration_text(text, value)


def _parse_duration_text(text: str, original: Any) -> int:
    total = 0.0
    seen: set[int] = set()
    position = 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match or match.group(2) not in _UNITS:
            raise InputError(f"{original!r} is not a duration: {DURATION_HELP}")
        unit = _UNITS[match.group(2)]
        if unit in seen:
            raise InputError(f"{original!r} gives the same unit twice: {DURATION_HELP}")
        seen.add(unit)
        total += float(match.group(1)) * unit
        position = match.end()
    if not seen:
        raise InputError(f"{original!r} is not a duration: {DURATION_HELP}")
    if total != int(total):
        raise InputError(f"{original!r} is not a whole number of seconds")
    return int(total)


def format_duration(seconds: float) -> str:
    """Short text for a number of seconds: ``1h30m``, ``5m``, ``90s`` -> ``1m30s``."""
    remaining = round(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)


_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)\s*%?$")
PERCENT_HELP = "write a percentage between 0 and 100, e.g. 50% or 12.5"


def parse_percent(value: Any) -> float:
    """A percentage 0..100 from ``50``, ``50%``, ``12.5 %``."""
    if isinstance(value, bool):
        raise InputError(f"{value!r} is not a percentage: {PERCENT_HELP}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _PERCENT.match(str(value).strip())
        if not match:
            raise InputError(f"{value!r} is not a percentage: {PERCENT_HELP}")
        number = float(match.group(1))
    if not 0 <= number <= 100:
        raise InputError(f"{value!r} is out of range: {PERCENT_HELP}")
    return number


def format_percent(value: float) -> str:
    return f"{value:g}%"


def parse_impact(value: Any) -> float:
    """Share of users affected: a percentage, or ``all`` (= 100 %)."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return 100.0
    try:
        return parse_percent(value)
    except InputError as error:
        raise InputError(f"impact: {error} (or 'all' for every user)") from None


def parse_severity(value: Any) -> str:
    severity = str(value).strip().lower()
    if severity not in SEVERITIES:
        raise InputError(f"severity: {value!r} is not one of {', '.join(SEVERITIES)}")
    return severity


# --------------------------------------------------------------------------------------------
# Matrix conditions: intervals over impact (0..100 %) and time to fix (0..inf seconds)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    low_closed: bool = True
    high_closed: bool = True

    def is_empty(self) -> bool:
        if self.low == self.high:
            return not (self.low_closed and self.high_closed)
        return self.low > self.high

    def position(self, value: float) -> str:
        """``within``, ``below`` (milder than the interval) or ``above`` (worse than it)."""
        if value < self.low or (value == self.low and not self.low_closed):
            return "below"
        if value > self.high or (value == self.high and not self.high_closed):
            return "above"
        return "within"

    def intersect(self, other: Interval) -> Interval:
        low, low_closed = _tighter(self.low, self.low_closed, other.low, other.low_closed, max)
        high, high_closed = _tighter(
            self.high, self.high_closed, other.high, other.high_closed, min
        )
        return Interval(low, high, low_closed, high_closed)

    def sample(self) -> float:
        """A value inside the (non-empty) interval, to show in an overlap message."""
        if self.low_closed:
            return self.low
        if math.isinf(self.high):
            return self.low + 1
        return (self.low + self.high) / 2


def _tighter(a: float, a_closed: bool, b: float, b_closed: bool, pick: Any) -> tuple[float, bool]:
    if a == b:
        return a, a_closed and b_closed
    return (a, a_closed) if pick(a, b) == a else (b, b_closed)


@dataclass(frozen=True)
class Condition:
    """One cell of the matrix, e.g. ``>= 50%``: its text (normalised) and its interval."""

    text: str
    interval: Interval

    def position(self, value: float) -> str:
        return self.interval.position(value)


_OPERATOR = re.compile(r"^(>=|<=|>|<)\s*(.+)$")
IMPACT_RANGE = Interval(0.0, 100.0)
TIME_RANGE = Interval(0.0, math.inf)


def parse_condition(value: Any, kind: str) -> Condition:
    """``any``, ``all`` (impact only) or ``<op> <value>`` with op one of > >= < <=."""
    text = str(value).strip().lower()
    full = IMPACT_RANGE if kind == "impact" else TIME_RANGE
    if text == "any":
        return Condition("any", full)
    if text == "all" and kind == "impact":
        return Condition("all", Interval(100.0, 100.0))
    match = _OPERATOR.match(text)
    if not match:
        extra = ", 'all' (100 %)" if kind == "impact" else ""
        raise InputError(
            f"{value!r} is not a condition: write '>= 50%'-style text with one of "
            f">, >=, <, <= (quoted in YAML), or 'any'{extra}"
        )
    operator, operand = match.groups()
    number = parse_percent(operand) if kind == "impact" else float(parse_duration(operand))
    shown = format_percent(number) if kind == "impact" else format_duration(number)
    condition = Condition(f"{operator} {shown}", _interval(operator, number, full))
    if condition.interval.is_empty():
        raise InputError(f"{value!r} can never hold")
    return condition


def _interval(operator: str, number: float, full: Interval) -> Interval:
    if operator == ">":
        return Interval(number, full.high, False, True)
    if operator == ">=":
        return Interval(number, full.high, True, True)
    if operator == "<":
        return Interval(full.low, number, True, False)
    return Interval(full.low, number, True, True)


def parse_levels(value: Any) -> tuple[int, ...]:
    """``3-5`` -> (3, 4, 5); ``2`` -> (2,). Levels are 1..5, lower level first."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+)\s*(?:-|\u2013|\.\.)\s*(\d+)|(\d+)", text)
    if isinstance(value, bool) or not match:
        raise InputError(f"{value!r} is not a level range: write e.g. 3-5, or 2 for one level")
    first, last = (match.group(3), match.group(3)) if match.group(3) else match.group(1, 2)
    low, high = int(first), int(last)
    if not (1 <= low <= 5 and 1 <= high <= 5):
        raise InputError(f"{value!r} is out of range: levels are 1 to 5")
    if low > high:
        raise InputError(f"{value!r} is reversed: write the lower level first, e.g. {high}-{low}")
    return tuple(range(low, high + 1))


def format_levels(levels: tuple[int, ...]) -> str:
    if not levels:
        return "none"
    return str(levels[0]) if len(levels) == 1 else f"{levels[0]}-{levels[-1]}"


# --------------------------------------------------------------------------------------------
# The policy, typed


@dataclass(frozen=True)
class MatrixRow:
    index: int
    severity: str
    impact: Condition
    time_to_fix: Condition
    action: str
    levels: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"matrix[{self.index}]"

    def describe(self) -> str:
        what = "fix forward" if self.action == "fix_forward" else f"levels {format_levels(self.levels)}"
        return (
            f"{self.label} ({self.severity}: impact {self.impact.text}, "
            f"time_to_fix {self.time_to_fix.text} -> {what})"
        )

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
    key: str
    name: str
    rto: int
    rpo: int
    priority: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rto": self.rto, "rpo": self.rpo, "priority": self.priority}


@dataclass(frozen=True)
class Channels:
    stdout: bool
    file: str | None
    webhook_url_env: str | None


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
class ThresholdTrigger:
    """A metric above a threshold for a while (``for_seconds`` 0 = at once)."""

    enabled: bool
    above: float
    for_seconds: int


@dataclass(frozen=True)
class CountTrigger:
    enabled: bool
    consecutive_above: int


@dataclass(frozen=True)
class Triggers:
    error_rate: ThresholdTrigger  # above: percent of requests failing
    response_time_p95: ThresholdTrigger  # above: seconds
    health_check_failures: CountTrigger
    memory: ThresholdTrigger  # above: percent used
    db_pool: ThresholdTrigger  # above: percent of the pool in use ("in_use_at_least")


@dataclass(frozen=True)
class Policy:
    matrix: tuple[MatrixRow, ...]
    services: dict[str, Service]
    communication: Communication
    escalation: Escalation
    revenue: Revenue
    triggers: Triggers
    source: str = "built-in defaults"

    def as_dict(self) -> dict[str, Any]:
        """Plain data: durations in seconds, percentages as numbers."""
        return {
            "matrix": [row.as_dict() for row in self.matrix],
            "services": {key: service.as_dict() for key, service in self.services.items()},
            "communication": _plain(self.communication),
            "escalation": _plain(self.escalation),
            "revenue": _plain(self.revenue),
            "triggers": {
                name: _plain(getattr(self.triggers, name)) for name in _TRIGGER_SPECS
            },
        }


def _plain(obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in obj.__dataclass_fields__:
        value = getattr(obj, name)
        key = "for" if name == "for_seconds" else name
        result[key] = _plain(value) if hasattr(value, "__dataclass_fields__") else value
    if "in_use_at_least" in _TRIGGER_SPECS.get("db_pool", {}) and obj.__class__ is Triggers:
        pass
    return result


# --------------------------------------------------------------------------------------------
# Reading a policy: a small checker that collects every problem with its key path


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"must be a mapping (key: value lines), got {_kind(value)}")
        return {}

    def known_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(_join(path, str(key)), _unknown_key_message(str(key), allowed))

    def convert(self, parse: Any, value: Any, path: str, fallback: Any) -> Any:
        try:
            return parse(value)
        except InputError as error:
            self.fail(path, str(error))
            return fallback

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(path, f"must be true or false, got {value!r}")
        return False

    def text(self, value: Any, path: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            return value
        self.fail(path, f"must be text, got {_kind(value)}")
        return ""

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.fail(path, f"must be a whole number from {low} to {high}, got {value!r}")
        return low


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"{value!r}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key: {hint}valid keys here: {', '.join(allowed)}"


def _merge(defaults: Any, given: Any) -> Any:
    """``given`` over ``defaults``, key by key for mappings; a null value means default."""
    if given is None:
        return copy.deepcopy(defaults)
    if isinstance(defaults, Mapping) and isinstance(given, Mapping):
        merged = {key: copy.deepcopy(value) for key, value in defaults.items()}
        for key, value in given.items():
            merged[key] = _merge(defaults.get(key), value) if key in defaults else value
        return merged
    return given


def _with_defaults(given: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for section, default in DEFAULT_POLICY.items():
        value = given.get(section)
        if section in REPLACED_SECTIONS:
            merged[section] = copy.deepcopy(default) if value is None else value
        else:
            merged[section] = _merge(default, value)
    for key, value in given.items():
        merged.setdefault(key, value)
    return merged


def unwrap_document(document: Any, checker: _Checker) -> tuple[Mapping[str, Any], str]:
    """The policy mapping in a file and its key path: ``all.vars.rollback_policy`` in an
    inventory-shaped file, or the top level of a bare policy mapping."""
    if document is None:
        return {}, ""
    data = checker.mapping(document, "")
    if "all" not in data:
        return data, ""
    path = "all"
    for key in ("vars", POLICY_VARIABLE):
        checker.known_keys(data, (key,) if path != "all" else ("all",), "")
        data = checker.mapping(data.get(path.rsplit(".", 1)[-1]) if False else data, path)
        break
    return _unwrap_inventory_shape(document, checker)


def _unwrap_inventory_shape(document: Mapping[str, Any], checker: _Checker) -> tuple[Any, str]:
    checker.known_keys(document, ("all",), "")
    group = checker.mapping(document.get("all"), "all")
    checker.known_keys(group, ("vars",), "all")
    variables = checker.mapping(group.get("vars"), "all.vars")
    checker.known_keys(variables, (POLICY_VARIABLE,), "all.vars")
    path = f"all.vars.{POLICY_VARIABLE}"
    policy = variables.get(POLICY_VARIABLE)
    return ({} if policy is None else checker.mapping(policy, path)), path
