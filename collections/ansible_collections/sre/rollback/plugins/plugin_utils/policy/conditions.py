# GPL-3.0-or-later
"""The decision matrix's conditions: intervals over impact (0..100 %) and time to fix.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy.units import (
    InputError,
    format_duration,
    format_percent,
    parse_duration,
    parse_percent,
)


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
