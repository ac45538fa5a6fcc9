# GPL-3.0-or-later
"""Errors, and the units a policy and the CLI are written in: durations, percentages, impact,
severities, level ranges.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

import math
import re
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy.shape import (
    SEVERITIES,
)


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


def duration_parts(seconds: float) -> list[tuple[int, str]]:
    """Whole seconds split into (count, unit) from days down, zero counts left out:
    5400 -> ``[(1, "hour"), (30, "minute")]``. The one split both formats below use."""
    remaining = round(seconds)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append((count, unit))
    return parts


def format_duration(seconds: float) -> str:
    """Short text for seconds: 5400 -> ``1h30m``, 90 -> ``1m30s``, 0.5 -> ``0.5s``."""
    if 0 < seconds < 60 and seconds != int(seconds):
        return f"{seconds:g}s"
    return "".join(f"{count}{unit[0]}" for count, unit in duration_parts(seconds)) or "0s"


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
