# GPL-3.0-or-later
"""Series for the trigger evaluator on the controller: OpenMetrics text with timestamps (the
format ``promtool tsdb create-blocks-from openmetrics`` reads) in and out, the staleness
Prometheus would have written, replay over a series, and the ``promtool test rules`` file
that checks the same series against the rendered rules.

Staleness: Prometheus marks a target's series stale when a scrape fails (``up`` is 0) and
when a series is missing from a successful scrape. A series file records scrapes through
``up``: at every ``up`` sample of a target (``job``, ``instance``), its other series that
have no sample at that time (and had one before) get a staleness marker. Without ``up``
samples a missing sample is a plain gap (Prometheus itself was down: the lookback bridges
it for gauges).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import Policy
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    Event,
    Labels,
    Rule,
    RuleEvaluator,
    Samples,
    decide_for,
)

_LINE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)"
    r"(?:\s+(?P<timestamp>\S+))?\s*$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


class SeriesError(ValueError):
    """A series file that cannot be read; the message names the line."""


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def _parse_labels(text: str, where: str) -> list[tuple[str, str]]:
    labels = []
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if not match:
            raise SeriesError(f"{where}: cannot read the labels {{{text}}}")
        labels.append((match.group(1), _unescape(match.group(2))))
        position = match.end()
    return labels


def parse_openmetrics(text: str, source: str = "series") -> Samples:
    """Samples from OpenMetrics text with timestamps (seconds), staleness inferred."""
    samples = Samples()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}:{number}"
        match = _LINE.match(line)
        if not match:
            raise SeriesError(f"{where}: not a sample line: {line[:80]}")
        if match.group("timestamp") is None:
            raise SeriesError(f"{where}: the sample has no timestamp (seconds): {line[:80]}")
        labels = _parse_labels(match.group("labels") or "", where)
        try:
            value = float(match.group("value").replace("Inf", "inf"))
            timestamp = float(match.group("timestamp"))
        except ValueError:
            raise SeriesError(f"{where}: not a number: {line[:80]}") from None
        key = tuple(sorted([("__name__", match.group("name")), *labels]))
        samples.add(key, timestamp, value)
    samples.sort()
    _mark_stale(samples)
    return samples


def _target(labels: Labels) -> tuple[str, str]:
    as_dict = dict(labels)
    return as_dict.get("job", ""), as_dict.get("instance", "")


def _mark_stale(samples: Samples) -> None:
    scrapes: dict[tuple[str, str], list[float]] = {}
    for labels, points in samples.series.items():
        if dict(labels).get("__name__") == "up":
            scrapes[_target(labels)] = [t for t, _value in points]
    for labels, points in samples.series.items():
        times = scrapes.get(_target(labels))
        if dict(labels).get("__name__") == "up" or not times:
            continue
        have = {t for t, _value in points}
        stale = []
        present = False
        for scrape in times:
            if scrape in have:
                present = True
            elif present:
                stale.append((scrape, None))
                present = False
        if stale:
            points.extend(stale)
            points.sort(key=lambda point: point[0])


def format_openmetrics(rows: Mapping[Labels, Sequence[tuple[float, float | None]]]) -> str:
    """OpenMetrics text with timestamps for series given as (time, value); None (a gap or a
    staleness marker) writes nothing: staleness comes back from ``up``."""
    lines = []
    for labels, points in sorted(rows.items()):
        as_dict = dict(labels)
        name = as_dict.pop("__name__")
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(as_dict.items()))
        for timestamp, value in points:
            if value is None:
                continue
            lines.append(f"{name}{{{label_text}}} {_number(value)} {timestamp:g}")
    lines.sort(key=lambda line: float(line.rsplit(" ", 1)[1]))
    return "\n".join([*lines, "# EOF"]) + "\n"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


# --------------------------------------------------------------------------------------------
# Replay


def evaluation_times(start: float, end: float, interval: int) -> list[float]:
    """Every evaluation from ``start`` to ``end`` (both included), ``interval`` apart."""
    count = math.floor((end - start) / interval + 1e-9)
    return [start + index * interval for index in range(count + 1)]


def replay(
    policy: Policy,
    rules: Sequence[Rule],
    times: Sequence[float],
    values_at: Any,
) -> dict[str, Any]:
    """The timeline of every rule over ``times``; ``values_at(rule, t)`` gives the rule's
    values (from a series file, or from Prometheus' range queries)."""
    timeline: list[dict[str, Any]] = []
    fired: dict[str, list[dict[str, Any]]] = {}
    evaluators = {rule.name: RuleEvaluator(rule) for rule in rules}
    for at in times:
        for rule in rules:
            for event in evaluators[rule.name].step(at, values_at(rule, at)):
                entry = event.as_dict()
                if event.kind == "firing":
                    entry["decision"] = decide_for(policy, rule)
                    started = evaluators[rule.name].alerts[event.group].active_at
                    entry["condition_since"] = started
                    entry["detected_after"] = at - started
                    fired.setdefault(rule.name, []).append(entry)
                timeline.append(entry)
    return {
        "from": times[0] if times else None,
        "to": times[-1] if times else None,
        "interval": policy.triggers.evaluation_interval_seconds,
        "rules": [rule.as_dict() for rule in rules],
        "timeline": timeline,
        "fired": fired,
        "policy": policy.source,
    }


def firing_at(events: Iterable[Event]) -> list[tuple[float, str, Labels]]:
    return [(e.at, e.rule, e.group) for e in events if e.kind == "firing"]


# --------------------------------------------------------------------------------------------
# promtool test rules, from the same series


def promtool_input_series(
    rows: Mapping[Labels, Sequence[tuple[float, float | str | None]]], start: float, step: int
) -> list[dict[str, str]]:
    """``input_series`` for a promtool test: one value per ``step`` from ``start``; ``_`` for
    a gap, ``stale`` for a staleness marker."""
    result = []
    for labels, points in sorted(rows.items()):
        by_index = {round((t - start) / step): value for t, value in points}
        last = max(by_index) if by_index else -1
        values = []
        for index in range(last + 1):
            value = by_index.get(index)
            if value is None:
                values.append("_")
            elif isinstance(value, str):
                values.append(value)
            else:
                values.append(_number(value))
        as_dict = dict(labels)
        name = as_dict.pop("__name__")
        label_text = ",".join(f'{k}="{v}"' for k, v in sorted(as_dict.items()))
        result.append({"series": f"{name}{{{label_text}}}", "values": " ".join(values)})
    return result


def stale_rows(samples: Samples) -> dict[Labels, list[tuple[float, float | str | None]]]:
    """The samples as promtool rows, staleness markers written ``stale``."""
    return {
        labels: [(t, "stale" if v is None else v) for t, v in points]
        for labels, points in samples.series.items()
    }


def expected_alerts(policy: Policy, rule: Rule, alerts: Iterable[Labels]) -> list[dict[str, Any]]:
    """promtool's ``exp_alerts`` for firing groups of a rule."""
    return [
        {
            "exp_labels": {**dict(group), **rule.labels(policy)},
            "exp_annotations": rule.annotations(),
        }
        for group in sorted(alerts)
    ]
