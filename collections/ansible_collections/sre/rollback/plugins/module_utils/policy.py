"""The rollback policy of an environment and the runbook's decision matrix.

A policy holds the decision matrix (severity, impact, time to fix -> rollback levels), the
services' recovery objectives, communication settings, escalation, revenue impact and the
automatic-rollback triggers. Every section may be omitted: the runbook's values fill it.

One copy of this logic serves everyone: the ``rollbackctl`` wrapper imports it, and the
``sre.rollback`` filter plugins wrap it for playbooks and AWX. Standard library only: the
caller parses YAML and passes plain data in.

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

import copy
import dataclasses
import difflib
import itertools
import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils import levels

SEVERITIES = ("critical", "high", "medium", "low")
"""Most severe first."""

LEVEL_NAMES = levels.LEVEL_NAMES

ACTIONS = ("rollback", "fix_forward")

SECTIONS = ("matrix", "services", "communication", "escalation", "revenue", "triggers")

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
"""Placeholders a communication template may use, written ``{name}`` (str.format style, so
that Jinja leaves them alone when Ansible reads the policy as inventory variables)."""

POLICY_VARIABLE = "rollback_policy"
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


# --------------------------------------------------------------------------------------------
# Errors


class InputError(ValueError):
    """A value that cannot be understood: a severity, impact, duration, level range..."""


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` lists (key path, what to fix)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {path}: {message}" for path, message in problems))


# --------------------------------------------------------------------------------------------
# Durations, percentages, severities, levels

_UNIT_NAMES = {
    0.001: ("ms",),
    1: ("s", "sec", "secs", "second", "seconds"),
    60: ("m", "min", "mins", "minute", "minutes"),
    3600: ("h", "hr", "hrs", "hour", "hours"),
    86400: ("d", "day", "days"),
}
_UNITS = {name: size for size, names in _UNIT_NAMES.items() for name in names}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*")
DURATION_HELP = "write e.g. 90s, 5m, 5 min, 1h, 2 hours, 1h30m, or a whole number of seconds"


def parse_duration(value: Any) -> int:
    """Whole seconds in ``value``: an int (seconds) or text such as ``90s``, ``5 min``,
    ``2 hours``, ``1h30m``."""
    seconds = parse_seconds(value)
    if seconds != int(seconds):
        raise InputError(f"{value!r} is not a whole number of seconds")
    return int(seconds)


def parse_seconds(value: Any) -> float:
    """Like parse_duration, but fractions are allowed (``500ms``, ``0.5s``): for latencies."""
    if isinstance(value, bool) or value is None:
        raise InputError(f"{value!r} is not a duration: {DURATION_HELP}")
    if isinstance(value, int | float):
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise InputError(f"{value!r} is not a duration of 0 seconds or more")
        return float(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    return _parse_duration_text(text, value)


def _parse_duration_text(text: str, original: Any) -> float:
    total = 0.0
    seen: set[float] = set()
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
    return round(total, 3)


def format_duration(seconds: float) -> str:
    """Short text for seconds: 5400 -> ``1h30m``, 90 -> ``1m30s``, 0.5 -> ``0.5s``."""
    if 0 < seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    remaining = round(seconds)
    parts = []
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts) or "0s"


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%?")
PERCENT_HELP = "write a percentage from 0 to 100, e.g. 50% or 12.5"


def parse_percent(value: Any) -> float:
    """A percentage 0..100 from ``50``, ``50%``, ``12.5 %``."""
    if isinstance(value, bool) or value is None:
        raise InputError(f"{value!r} is not a percentage: {PERCENT_HELP}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _PERCENT.fullmatch(str(value).strip())
        if not match:
            raise InputError(f"{value!r} is not a percentage: {PERCENT_HELP}")
        number = float(match.group(1))
    if not 0 <= number <= 100:
        raise InputError(f"{value!r} is out of range: {PERCENT_HELP}")
    return number


def format_percent(value: float) -> str:
    return f"{value:g}%"


def parse_impact(value: Any) -> float:
    """Share of users affected: a percentage 0..100, or ``all`` (= 100 %)."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return 100.0
    try:
        return parse_percent(value)
    except InputError as error:
        raise InputError(f"{error}, or 'all' for every user") from None


def parse_severity(value: Any) -> str:
    """``critical``, ``high``, ``medium`` or ``low``, in any letter case."""
    severity = str(value).strip().lower()
    if severity not in SEVERITIES:
        raise InputError(f"{value!r} is not a severity: use one of {', '.join(SEVERITIES)}")
    return severity


_LEVEL_RANGE = re.compile(r"(\d+)(?:\s*(?:-|\u2013|\.\.)\s*(\d+))?")


def parse_levels(value: Any) -> tuple[int, ...]:
    """``3-5`` -> (3, 4, 5); ``2`` -> (2,). Levels are 1..5, the lower level first."""
    match = None if isinstance(value, bool) else _LEVEL_RANGE.fullmatch(str(value).strip())
    if not match:
        raise InputError(f"{value!r} is not a level range: write e.g. 3-5, or 2 for one level")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not (1 <= low <= 5 and 1 <= high <= 5):
        raise InputError(f"{value!r} is out of range: levels are 1 to 5")
    if low > high:
        raise InputError(f"{value!r} is reversed: write the lower level first ({high}-{low})")
    return tuple(range(low, high + 1))


def format_levels(levels: tuple[int, ...]) -> str:
    if len(levels) == 1:
        return str(levels[0])
    return f"{levels[0]}-{levels[-1]}" if levels else "none"


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
        """``within``; ``below`` (milder than the interval); ``above`` (worse than it)."""
        if value < self.low or (value == self.low and not self.low_closed):
            return "below"
        if value > self.high or (value == self.high and not self.high_closed):
            return "above"
        return "within"

    def intersect(self, other: Interval) -> Interval:
        if self.low == other.low:
            low, low_closed = self.low, self.low_closed and other.low_closed
        else:
            low, low_closed = max((self.low, self.low_closed), (other.low, other.low_closed))
        if self.high == other.high:
            high, high_closed = self.high, self.high_closed and other.high_closed
        else:
            high, high_closed = min((self.high, self.high_closed), (other.high, other.high_closed))
        return Interval(low, high, low_closed, high_closed)

    def sample(self) -> float:
        """A value inside this (non-empty) interval, to show in a message."""
        if self.low_closed:
            return self.low
        if math.isinf(self.high):
            return self.low + 1
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class Condition:
    """One cell of the matrix, e.g. ``>= 50%``: its normalised text and its interval."""

    text: str
    interval: Interval


_OPERATOR = re.compile(r"(>=|<=|>|<)\s*(.+)")
_FULL_RANGE = {"impact": Interval(0.0, 100.0), "time_to_fix": Interval(0.0, math.inf)}


def parse_condition(value: Any, field: str) -> Condition:
    """``any``, ``all`` (impact only, = 100 %), or ``<op> <value>`` with op > >= < <=."""
    text = str(value).strip().lower()
    full = _FULL_RANGE[field]
    if text == "any":
        return Condition("any", full)
    if text == "all" and field == "impact":
        return Condition("all", Interval(100.0, 100.0))
    match = _OPERATOR.fullmatch(text)
    if not match or isinstance(value, bool):
        example, extra = ("'>= 50%'", ", 'all' (100 %)") if field == "impact" else ("'>= 30m'", "")
        raise InputError(
            f"{value!r} is not a condition: write an operator (>, >=, <, <=) and a value, "
            f"e.g. {example} (quoted: YAML reads a leading '>' as a block), or 'any'{extra}"
        )
    operator, operand = match.groups()
    if field == "impact":
        number, shown = parse_percent(operand), format_percent(parse_percent(operand))
    else:
        number = float(parse_duration(operand))
        shown = format_duration(number)
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


NO_DATA_POLICIES = ("reset",)
"""What a trigger does when its metric has no data at an evaluation: ``reset`` (the window
starts again once data is back, and the trigger says it was reset by no data; a gap never
fires, never counts towards a window). The only policy Prometheus' ``for:`` can express
without letting a gap complete a window."""


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


# --------------------------------------------------------------------------------------------
# Reading a policy: a checker collects every problem with its key path in the file


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.prefix = ""

    def fail(self, path: str, message: str) -> None:
        self.problems.append((_join(self.prefix, path) or "(top level)", message))

    def mapping(self, value: Any, path: str) -> Mapping[Any, Any]:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"must be a mapping (key: value lines), got {_kind(value)}")
        return {}

    def known_keys(self, data: Mapping[Any, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(_join(path, str(key)), _unknown_key_message(str(key), allowed))

    def required(self, data: Mapping[Any, Any], key: str, path: str, hint: str) -> bool:
        if data.get(key) is not None:
            return True
        self.fail(_join(path, key), f"missing: {hint}")
        return False

    def parsed(self, parse: Callable[[Any], Any], value: Any, path: str, fallback: Any) -> Any:
        try:
            return parse(value)
        except InputError as error:
            self.fail(path, str(error))
            return fallback

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(path, f"must be true or false, got {_kind(value)}")
        return False

    def text(self, value: Any, path: str) -> str:
        if isinstance(value, str):
            return value
        self.fail(path, f"must be text, got {_kind(value)}")
        return ""

    def optional_text(self, value: Any, path: str) -> str | None:
        return None if value in (None, "") else self.text(value, path)

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.fail(path, f"must be a whole number from {low} to {high}, got {_kind(value)}")
        return low


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return repr(value)


def _join(path: str, key: str) -> str:
    if not path or not key:
        return path or key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key: {hint}valid keys here: {', '.join(allowed)}"


def _merge(defaults: Any, given: Any) -> Any:
    """``given`` over ``defaults``, key by key for mappings; null means the default."""
    if given is None:
        return copy.deepcopy(defaults)
    if isinstance(defaults, Mapping) and isinstance(given, Mapping):
        merged = copy.deepcopy(dict(defaults))
        for key, value in given.items():
            merged[key] = _merge(defaults[key], value) if key in defaults else value
        return merged
    return given


def _with_defaults(given: Mapping[Any, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for section, default in DEFAULT_POLICY.items():
        value = given.get(section)
        if section in REPLACED_SECTIONS and value is not None:
            merged[section] = value
        else:
            merged[section] = _merge(default, value)
    return merged


def _unwrap(document: Any, checker: _Checker) -> tuple[Mapping[Any, Any], str]:
    """The policy in a file and its key path: ``all.vars.rollback_policy`` in the
    inventory-shaped file, or the top level of a bare policy mapping."""
    if document is None:
        return {}, ""
    data = checker.mapping(document, "")
    if "all" not in data:
        return data, ""
    checker.known_keys(data, ("all",), "")
    group = checker.mapping(data.get("all"), "all")
    checker.known_keys(group, ("vars",), "all")
    variables = checker.mapping(group.get("vars"), "all.vars")
    checker.known_keys(variables, (POLICY_VARIABLE,), "all.vars")
    path = f"all.vars.{POLICY_VARIABLE}"
    policy = variables.get(POLICY_VARIABLE)
    return ({} if policy is None else checker.mapping(policy, path)), path


def validate_policy(document: Any, source: str = "policy") -> Policy:
    """The typed policy from a parsed policy file (inventory-shaped or bare, or None for the
    defaults). Raises PolicyError listing every problem with its key path."""
    checker = _Checker()
    given, checker.prefix = _unwrap(document, checker)
    checker.known_keys(given, SECTIONS, "")
    merged = _with_defaults(given)
    policy = Policy(
        matrix=_read_matrix(checker, merged["matrix"]),
        services=_read_services(checker, merged["services"]),
        communication=_read_communication(checker, merged["communication"]),
        escalation=_read_escalation(checker, merged["escalation"]),
        revenue=_read_revenue(checker, merged["revenue"]),
        triggers=_read_triggers(checker, merged["triggers"]),
        source=source,
    )
    if checker.problems:
        raise PolicyError(source, checker.problems)
    return policy


def default_policy() -> Policy:
    """The runbook's policy."""
    return validate_policy(None, "built-in defaults (the runbook)")


# --- matrix

_ROW_KEYS = ("severity", "impact", "time_to_fix", "action", "levels")


def _read_matrix(checker: _Checker, value: Any) -> tuple[MatrixRow, ...]:
    if not isinstance(value, list) or not value:
        checker.fail("matrix", "must be a list of rows (severity, impact, time_to_fix, levels)")
        return ()
    rows = [_read_row(checker, item, index) for index, item in enumerate(value)]
    given = [item.get("severity") for item in value if isinstance(item, Mapping)]
    named = {str(severity).strip().lower() for severity in given}
    missing = [severity for severity in SEVERITIES if severity not in named]
    if missing:
        checker.fail(
            "matrix",
            f"no row for severity {', '.join(missing)}: every severity "
            f"({', '.join(SEVERITIES)}) needs at least one row",
        )
    complete = [row for row in rows if row is not None]
    _check_overlaps(checker, complete)
    return tuple(complete)


def _read_row(checker: _Checker, item: Any, index: int) -> MatrixRow | None:
    path = f"matrix[{index}]"
    data = checker.mapping(item, path)
    checker.known_keys(data, _ROW_KEYS, path)
    if not checker.required(data, "severity", path, f"one of {', '.join(SEVERITIES)}"):
        return None
    before = len(checker.problems)
    severity = checker.parsed(parse_severity, data["severity"], f"{path}.severity", "")
    impact = checker.parsed(
        lambda v: parse_condition(v, "impact"), _or(data, "impact", "any"), f"{path}.impact", None
    )
    time_to_fix = checker.parsed(
        lambda v: parse_condition(v, "time_to_fix"),
        _or(data, "time_to_fix", "any"),
        f"{path}.time_to_fix",
        None,
    )
    action = _or(data, "action", "rollback")
    levels = _read_row_levels(checker, data, action, path)
    if len(checker.problems) > before:
        return None
    return MatrixRow(index, severity, impact, time_to_fix, action, levels)


def _or(data: Mapping[Any, Any], key: str, default: Any) -> Any:
    """``data[key]``, or ``default`` when it is missing or null."""
    value = data.get(key)
    return default if value is None else value


def _read_row_levels(
    checker: _Checker, data: Mapping[Any, Any], action: Any, path: str
) -> tuple[int, ...]:
    if action == "fix_forward":
        if data.get("levels") is not None:
            checker.fail(f"{path}.levels", "a fix_forward row has no levels: remove the key")
        return ()
    if action != "rollback":
        checker.fail(f"{path}.action", f"{action!r} is not an action: use rollback or fix_forward")
        return ()
    if not checker.required(data, "levels", path, "the level range to roll back, e.g. 3-5"):
        return ()
    levels: tuple[int, ...] = checker.parsed(parse_levels, data["levels"], f"{path}.levels", ())
    return levels


def _check_overlaps(checker: _Checker, rows: list[MatrixRow]) -> None:
    for first, second in itertools.combinations(rows, 2):
        if first.severity != second.severity:
            continue
        impact = first.impact.interval.intersect(second.impact.interval)
        time_to_fix = first.time_to_fix.interval.intersect(second.time_to_fix.interval)
        if impact.is_empty() or time_to_fix.is_empty():
            continue
        checker.fail(
            f"matrix[{second.index}]",
            f"overlaps matrix[{first.index}]: both match severity {first.severity} with "
            f"impact {format_percent(impact.sample())} and time to fix "
            f"{format_duration(time_to_fix.sample())}; narrow one of the two rows' impact "
            f"or time_to_fix so that every input matches one row",
        )


# --- services

_SERVICE_KEYS = ("name", "rto", "rpo", "priority")
_SERVICE_REQUIRED = {
    "rto": "recovery time objective, e.g. 5m",
    "rpo": "recovery point objective, e.g. 1m",
    "priority": f"one of {', '.join(SEVERITIES)}",
}
_SERVICE_KEY = re.compile(r"[a-z][a-z0-9_]*")


def _read_services(checker: _Checker, value: Any) -> dict[str, Service]:
    services: dict[str, Service] = {}
    for key, item in checker.mapping(value, "services").items():
        path = f"services.{key}"
        if not _SERVICE_KEY.fullmatch(str(key)):
            checker.fail(path, "a service key is lowercase letters, digits and _, e.g. core_api")
        data = checker.mapping(item, path)
        checker.known_keys(data, _SERVICE_KEYS, path)
        present = [
            checker.required(data, field, path, hint) for field, hint in _SERVICE_REQUIRED.items()
        ]
        if not all(present):
            continue
        services[str(key)] = Service(
            name=checker.text(data.get("name", str(key).replace("_", " ").title()), f"{path}.name"),
            rto=checker.parsed(parse_duration, data["rto"], f"{path}.rto", 0),
            rpo=checker.parsed(parse_duration, data["rpo"], f"{path}.rpo", 0),
            priority=_read_priority(checker, data["priority"], f"{path}.priority"),
        )
    return services


def _read_priority(checker: _Checker, value: Any, path: str) -> str:
    priority = str(value).strip().lower()
    if priority not in SEVERITIES:
        checker.fail(path, f"{value!r} is not a priority: use one of {', '.join(SEVERITIES)}")
    return priority


# --- communication

_COMMUNICATION_KEYS = ("lead", "status_page_url", "channels", "templates")
_CHANNEL_KEYS = ("stdout", "file", "webhook_url_env")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _read_communication(checker: _Checker, value: Any) -> Communication:
    data = checker.mapping(value, "communication")
    checker.known_keys(data, _COMMUNICATION_KEYS, "communication")
    url = checker.text(data.get("status_page_url") or "", "communication.status_page_url")
    if url and not re.match(r"https?://", url):
        checker.fail("communication.status_page_url", f"{url!r} is not an http(s):// URL")
    return Communication(
        lead=checker.text(data.get("lead") or "", "communication.lead"),
        status_page_url=url,
        channels=_read_channels(checker, data.get("channels")),
        templates=_read_templates(checker, data.get("templates")),
    )


def _read_channels(checker: _Checker, value: Any) -> Channels:
    path = "communication.channels"
    data = checker.mapping(value, path)
    checker.known_keys(data, _CHANNEL_KEYS, path)
    env_name = checker.optional_text(data.get("webhook_url_env"), f"{path}.webhook_url_env")
    if env_name is not None and not _ENV_NAME.fullmatch(env_name):
        checker.fail(
            f"{path}.webhook_url_env",
            "must be the NAME of the environment variable that holds the webhook URL "
            "(e.g. ROLLBACK_WEBHOOK_URL), never the URL itself: the URL is a secret",
        )
        env_name = None
    return Channels(
        stdout=checker.boolean(data.get("stdout"), f"{path}.stdout"),
        file=checker.optional_text(data.get("file"), f"{path}.file"),
        webhook_url_env=env_name,
    )


def _read_templates(checker: _Checker, value: Any) -> dict[str, str]:
    path = "communication.templates"
    data = checker.mapping(value, path)
    checker.known_keys(data, TEMPLATE_NAMES, path)
    templates = {}
    for name in TEMPLATE_NAMES:
        text = checker.text(data.get(name), f"{path}.{name}")
        problem = _template_problem(text)
        if problem:
            checker.fail(f"{path}.{name}", problem)
        templates[name] = text
    return templates


def _template_problem(text: str) -> str | None:
    try:
        parsed = string.Formatter().parse(text)
        fields = [field for _literal, field, _spec, _conv in parsed if field is not None]
    except ValueError as error:
        return f"{error}: placeholders are written {{name}}; write {{{{ and }}}} for braces"
    unknown = sorted({field for field in fields if field not in TEMPLATE_FIELDS})
    if unknown:
        names = ", ".join(f"{{{field}}}" for field in unknown)
        return f"unknown placeholder {names}: use {', '.join(TEMPLATE_FIELDS)}"
    return None


# --- escalation, revenue


def _read_escalation(checker: _Checker, value: Any) -> Escalation:
    data = checker.mapping(value, "escalation")
    checker.known_keys(data, ("on_failed_verification", "max_level"), "escalation")
    return Escalation(
        on_failed_verification=checker.boolean(
            data.get("on_failed_verification"), "escalation.on_failed_verification"
        ),
        max_level=checker.integer(data.get("max_level"), "escalation.max_level", 1, 5),
    )


def _read_revenue(checker: _Checker, value: Any) -> Revenue:
    data = checker.mapping(value, "revenue")
    checker.known_keys(data, ("per_minute", "currency"), "revenue")
    per_minute = data.get("per_minute")
    if isinstance(per_minute, bool) or not isinstance(per_minute, int | float) or per_minute < 0:
        checker.fail("revenue.per_minute", f"must be a number >= 0, got {_kind(per_minute)}")
        per_minute = 0
    currency = checker.text(data.get("currency"), "revenue.currency")
    if not currency.strip():
        checker.fail("revenue.currency", "must name a currency, e.g. USD")
    return Revenue(per_minute=float(per_minute), currency=currency)


# --- triggers

_TRIGGER_NAMES = ("error_rate", "response_time_p95", "health_check_failures", "memory", "db_pool")
_TRIGGER_SETTINGS = ("service", "job", "evaluation_interval")
_TRIGGER_COMMON = ("enabled", "no_data", "action")


def _read_triggers(checker: _Checker, value: Any) -> Triggers:
    data = checker.mapping(value, "triggers")
    checker.known_keys(data, _TRIGGER_NAMES + _TRIGGER_SETTINGS, "triggers")
    sections = {
        name: checker.mapping(data.get(name), f"triggers.{name}")
        for name in _TRIGGER_NAMES
        if name in data
    }
    count = sections.get("health_check_failures", {})
    path = "triggers.health_check_failures"
    checker.known_keys(count, (*_TRIGGER_COMMON, "consecutive_above", "observe_for"), path)
    pool = sections.get("db_pool", {})
    checker.known_keys(pool, (*_TRIGGER_COMMON, "in_use_at_least", "for"), "triggers.db_pool")
    return Triggers(
        error_rate=_read_threshold(checker, sections.get("error_rate", {}), "error_rate"),
        response_time_p95=_read_threshold(
            checker, sections.get("response_time_p95", {}), "response_time_p95"
        ),
        health_check_failures=CountTrigger(
            enabled=checker.boolean(count.get("enabled"), f"{path}.enabled"),
            consecutive_above=checker.integer(
                count.get("consecutive_above"), f"{path}.consecutive_above", 0, 1000
            ),
            observe_for_seconds=checker.parsed(
                parse_duration, count.get("observe_for", "10s"), f"{path}.observe_for", 0
            ),
            no_data=_read_no_data(checker, count, path),
            action=_read_action(checker, count.get("action"), path),
        ),
        memory=_read_threshold(checker, sections.get("memory", {}), "memory"),
        db_pool=PoolTrigger(
            enabled=checker.boolean(pool.get("enabled"), "triggers.db_pool.enabled"),
            in_use_at_least=checker.parsed(
                parse_percent, pool.get("in_use_at_least"), "triggers.db_pool.in_use_at_least", 0
            ),
            for_seconds=checker.parsed(parse_duration, pool.get("for"), "triggers.db_pool.for", 0),
            no_data=_read_no_data(checker, pool, "triggers.db_pool"),
            action=_read_action(checker, pool.get("action"), "triggers.db_pool"),
        ),
        service=_read_trigger_service(checker, data.get("service")),
        job=checker.text(data.get("job"), "triggers.job"),
        evaluation_interval_seconds=_read_interval(checker, data.get("evaluation_interval")),
    )


def _read_threshold(checker: _Checker, data: Mapping[Any, Any], name: str) -> ThresholdTrigger:
    path = f"triggers.{name}"
    checker.known_keys(data, (*_TRIGGER_COMMON, "above", "for"), path)
    parse_above = parse_seconds if name == "response_time_p95" else parse_percent
    return ThresholdTrigger(
        enabled=checker.boolean(data.get("enabled"), f"{path}.enabled"),
        above=checker.parsed(parse_above, data.get("above"), f"{path}.above", 0.0),
        for_seconds=checker.parsed(parse_duration, data.get("for"), f"{path}.for", 0),
        no_data=_read_no_data(checker, data, path),
        action=_read_action(checker, data.get("action"), path),
    )


def _read_no_data(checker: _Checker, data: Mapping[Any, Any], path: str) -> str:
    value = data.get("no_data", "reset")
    if value not in NO_DATA_POLICIES:
        checker.fail(
            f"{path}.no_data",
            f"{value!r} is not a no-data policy: use {', '.join(NO_DATA_POLICIES)} (a gap "
            "never fires; the window starts again once data is back, and says so)",
        )
    return str(value)


def _read_action(checker: _Checker, value: Any, path: str) -> TriggerAction:
    path = f"{path}.action"
    data = checker.mapping(value if value is not None else {}, path)
    checker.known_keys(data, ("severity", "impact", "time_to_fix"), path)
    default = TriggerAction()
    return TriggerAction(
        severity=checker.parsed(
            parse_severity, data.get("severity", default.severity), f"{path}.severity", "critical"
        ),
        impact=checker.parsed(
            parse_impact, data.get("impact", default.impact), f"{path}.impact", 100.0
        ),
        time_to_fix=checker.parsed(
            parse_duration,
            data.get("time_to_fix", default.time_to_fix),
            f"{path}.time_to_fix",
            3600,
        ),
    )


def _read_trigger_service(checker: _Checker, value: Any) -> str:
    service = checker.text(value, "triggers.service")
    if service and not _SERVICE_KEY.fullmatch(service):
        checker.fail("triggers.service", "a service key is lowercase letters, digits and _")
    return service


def _read_interval(checker: _Checker, value: Any) -> int:
    seconds: int = checker.parsed(parse_duration, value, "triggers.evaluation_interval", 15)
    if seconds < 1:
        checker.fail("triggers.evaluation_interval", "must be 1s or more, e.g. 15s")
        return 15
    return seconds


# --------------------------------------------------------------------------------------------
# The decision


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
