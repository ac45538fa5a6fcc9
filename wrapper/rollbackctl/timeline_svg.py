"""The incident as a picture, for the report: an inline SVG (our own few lines, no plotting
library) with the incident's moments (started, detected, decided, rollback started,
completed, verified), one lane per level and host with its phases as bars on one time
axis, and the error-ratio curve before and after the rollback where the record has
samples of it (``observations.error_ratio``: ``[{"at": ISO time, "value": ratio}]``;
``observations.error_ratio_trigger``, the trigger's threshold, as a dashed line).

Markdown viewers that allow HTML show it in place; ``rollbackctl report -f html`` always
does. One line of markup per element and no blank line, so a Markdown parser keeps the
whole ``<svg>`` as one HTML block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import parse_time

WIDTH = 760
LABEL = 110  # left margin for lane labels
LANE = 18
CHART = 90  # height of the error-ratio chart
COLOURS = {
    "ok": "#3a9a4a",
    "changed": "#3a9a4a",
    "failed": "#c62828",
    "unreachable": "#c62828",
    "unknown": "#8e24aa",
    "canceled": "#8e24aa",
    "skipped": "#9e9e9e",
}
MOMENTS = (
    ("incident_started", "incident started"),
    ("detected", "detected"),
    ("decided", "decided"),
    ("started", "rollback started"),
    ("completed", "completed"),
)


def _at(value: Any) -> float | None:
    try:
        moment: datetime | None = parse_time(value)
    except ValueError:
        return None
    return moment.timestamp() if moment else None


def moments(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The incident's moments the record knows, in time order: (label, epoch seconds)."""
    timeline = record.get("timeline") or {}
    found = [(label, _at(timeline.get(key))) for key, label in MOMENTS]
    validation = record.get("validation") or {}
    if validation.get("status") == "ok":
        found.append(("verified", _at(validation.get("at"))))
    return sorted(((label, at) for label, at in found if at is not None), key=lambda m: m[1])


def lanes(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """One lane per level and host: its phases with start, end, status."""
    found = []
    for record in records:
        level = record.get("level")
        for host, data in sorted((record.get("hosts") or {}).items()):
            bars = []
            for name, phase in (data.get("phases") or {}).items():
                start = _at(phase.get("started"))
                if start is None:
                    continue
                seconds = float(phase.get("duration") or 0.0)
                end = _at(phase.get("finished")) or start + seconds
                bars.append(
                    {"phase": name, "start": start, "end": max(end, start + seconds),
                     "status": str(phase.get("status"))}
                )  # fmt: skip
            bars.sort(key=lambda bar: (bar["start"], bar["end"]))
            if bars:
                found.append((f"L{level} {host}", bars))
    return found


def error_ratio(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    samples = []
    for record in records:
        for sample in (record.get("observations") or {}).get("error_ratio") or []:
            at, value = _at(sample.get("at")), sample.get("value")
            if at is not None and isinstance(value, int | float):
                samples.append((at, float(value)))
    return sorted(samples)


def _threshold(records: Sequence[Mapping[str, Any]]) -> float | None:
    for record in reversed(records):
        value = (record.get("observations") or {}).get("error_ratio_trigger")
        if isinstance(value, int | float):
            return float(value)
    return None


def incident_svg(records: Sequence[Mapping[str, Any]]) -> str:
    """The picture of one incident (one record per level that ran, oldest first); "" when
    the records hold no time to draw."""
    if not records:
        return ""
    marks = sorted({m for record in records for m in moments(record)}, key=lambda m: m[1])
    rows = lanes(records)
    curve = error_ratio(records)
    times = [at for _label, at in marks]
    times += [t for _name, bars in rows for bar in bars for t in (bar["start"], bar["end"])]
    times += [at for at, _value in curve]
    if not times:
        return ""
    first, last = min(times), max(times)
    span = max(last - first, 1.0)

    def x(at: float) -> float:
        return round(LABEL + (at - first) / span * (WIDTH - LABEL - 20), 1)

    top = 16 + 12 * len(marks)
    height = top + LANE * len(rows) + (CHART + 30 if curve else 0) + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="10" '
        'role="img" aria-label="incident timeline">',
        "<title>Incident timeline</title>",
    ]
    for index, (label, at) in enumerate(marks):
        y = 12 + 12 * index
        out.append(
            f'<line class="moment" x1="{x(at)}" y1="{y}" x2="{x(at)}" y2="{height - 20}" '
            'stroke="#555" stroke-dasharray="2,2"/>'
        )
        out.append(f'<text x="{x(at) + 3}" y="{y}" fill="#333">{escape(label)}</text>')
    for index, (name, bars) in enumerate(rows):
        y = top + LANE * index
        out.append(f'<text x="4" y="{y + 12}" fill="#000">{escape(name)}</text>')
        for bar in bars:
            width = max(x(bar["end"]) - x(bar["start"]), 1.5)
            seconds = bar["end"] - bar["start"]
            out.append(
                f'<rect class="phase" data-phase={quoteattr(bar["phase"])} x="{x(bar["start"])}" '
                f'y="{y + 2}" width="{round(width, 1)}" height="{LANE - 5}" '
                f'fill="{COLOURS.get(bar["status"], "#607d8b")}" stroke="#fff" stroke-width="0.5">'
                f"<title>{escape(name)} {escape(bar['phase'])}: {escape(bar['status'])} "
                f"{seconds:.1f}s</title></rect>"
            )
    if curve:
        out += _chart(curve, _threshold(records), top + LANE * len(rows) + 18, x)
    out.append(f'<text x="{LABEL}" y="{height - 6}" fill="#555">{escape(_clock(first))} UTC</text>')
    out.append(
        f'<text x="{WIDTH - 20}" y="{height - 6}" fill="#555" text-anchor="end">'
        f"{escape(_clock(last))} UTC ({span:.0f} s)</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def _chart(
    curve: list[tuple[float, float]], threshold: float | None, y0: float, x: Any
) -> list[str]:
    highest = max([value for _at, value in curve] + [threshold or 0.0, 0.01])

    def y(value: float) -> float:
        return round(y0 + CHART - value / highest * CHART, 1)

    points = " ".join(f"{x(at)},{y(value)}" for at, value in curve)
    out = [
        f'<text x="4" y="{y0 + 10}" fill="#000">error ratio</text>',
        f'<text x="4" y="{y0 + 22}" fill="#555">max {highest:.0%}</text>',
        f'<line x1="{LABEL}" y1="{y0 + CHART}" x2="{WIDTH - 20}" y2="{y0 + CHART}" stroke="#999"/>',
        f'<polyline class="error-ratio" points="{points}" fill="none" stroke="#c62828" '
        'stroke-width="1.5"/>',
    ]
    if threshold is not None:
        out.append(
            f'<line class="threshold" x1="{LABEL}" y1="{y(threshold)}" x2="{WIDTH - 20}" '
            f'y2="{y(threshold)}" stroke="#ef6c00" stroke-dasharray="4,3"/>'
        )
        out.append(
            f'<text x="{WIDTH - 20}" y="{y(threshold) - 2}" fill="#ef6c00" text-anchor="end">'
            f"trigger {threshold:.0%}</text>"
        )
    return out


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")
