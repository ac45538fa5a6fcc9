"""Render a run record as Markdown (the runbook's lessons-learned template), JSON or JUnit
XML, through Jinja2 templates that users can replace (``--template FILE``).

Templates get ``record`` (the run record as written) and ``view`` (the same, prepared for
display: formatted times and durations, rows for the tables). The package's templates are
in ``rollbackctl/templates/``; a user template may ``{% extends %}`` or ``{% include %}``
them by name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import jinja2
from markdown_it import MarkdownIt

from ansible_collections.sre.rollback.plugins.plugin_utils.phases import PHASE_ORDER
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import format_duration
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    CHECKLIST_ITEMS,
    CHECKLIST_TITLES,
    finalize,
    level_label,
    message_line,
    parse_time,
    violations,
)
from rollbackctl import records
from rollbackctl.timeline_svg import incident_svg

FORMATS = {
    "markdown": "report.md.j2",
    "html": "report.md.j2",  # the Markdown, as an HTML page (markdown-it)
    "json": "report.json.j2",
    "junit": "report.junit.xml.j2",
}
MARKS = {"done": "x", "failed": "!", "skipped": "-", "open": " "}
OBJECTIVE_TEXT = {"met": "met", "violated": "**VIOLATED**", "unknown": "unknown"}
JUNIT_FAILED = ("failed", "unreachable", "canceled")


class TemplateProblem(Exception):
    """A template that cannot be read or rendered; the message says where."""


# --------------------------------------------------------------------------------------------
# Formatting helpers (also Jinja filters)


def when(value: Any) -> str:
    """``2026-11-29 10:02:00 UTC``, or ``not recorded``."""
    try:
        moment = parse_time(value)
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "not recorded"


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "unknown"
    return format_duration(seconds)


def to_json(value: Any, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, default=str)


def cell(value: Any) -> str:
    """Text safe in a Markdown table cell."""
    return message_line(value if value is not None else "").replace("|", "\\|")


# --------------------------------------------------------------------------------------------
# The view


def report_view(
    record: Mapping[str, Any], related: Sequence[Mapping[str, Any]] = (), picture: bool = True
) -> dict[str, Any]:
    """``related``: the records of the incident's earlier levels (an escalation), drawn in
    the timeline picture before this one. Without ``picture`` the report says how to get
    it instead (an inline SVG is noise on a terminal or in a job log)."""
    metrics = record.get("metrics") or {}
    timeline = record.get("timeline") or {}
    return {
        "title": _title(record),
        "date": when(record.get("started"))[:10],
        "summary": _summary(record),
        "timeline": [
            ("Detection", _when_or(timeline.get("detected"), "not given (--detected-at)")),
            ("Decision", _decision_line(timeline)),
            ("Started", when(timeline.get("started"))),
            ("Completed", _completed_line(record, timeline)),
        ],
        "picture": incident_svg([*related, record]) if picture else "",
        "impact": [
            ("Users affected", _users(metrics)),
            ("Duration", _measure_text(metrics.get("total_downtime"))),
            ("Data loss", _measure_text(metrics.get("data_loss"))),
            ("Revenue impact", _revenue(metrics.get("revenue_impact") or {})),
        ],
        "metrics": _metric_rows(metrics),
        "objectives": _objective_rows(record),
        "violations": violations(record),
        "hosts": _host_rows(record),
        "phases": _phase_cases(record),
        "checklist": _checklist(record),
        "messages": record.get("messages") or [],
        "escalation": record.get("escalation") or [],
        "notes": record.get("notes") or [],
        "improvements": _improvements(record),
    }


def _title(record: Mapping[str, Any]) -> str:
    reason = record.get("reason") or "rollback"
    what = level_label(record.get("level"))
    incident = f"{record['incident']}: " if record.get("incident") else ""
    return f"{incident}{reason} ({what} rollback)"


def _summary(record: Mapping[str, Any]) -> str:
    hosts = record.get("hosts") or {}
    ok = sum(1 for host in hosts.values() if host.get("status") == "ok")
    text = (
        f"Run {record.get('run_id')} ({record.get('playbook')}) by {record.get('who')}: "
        f"{level_label(record.get('level'))} rollback, status **{record.get('status')}**, "
        f"{ok} of {len(hosts)} host(s) ok."
    )
    if record.get("reason"):
        text += f" Reason: {record['reason']}."
    decision = record.get("decision") or {}
    if decision.get("summary"):
        text += f" Decision: {decision['summary']}."
    if record.get("check_mode"):
        text += " Check mode: nothing was changed."
    return text


def _when_or(value: Any, missing: str) -> str:
    return when(value) if value else missing


def _decision_line(timeline: Mapping[str, Any]) -> str:
    if not timeline.get("decided"):
        return "not recorded"
    source = timeline.get("decided_source")
    suffix = f" (from the {source})" if source and source != "given" else ""
    return when(timeline["decided"]) + suffix


def _completed_line(record: Mapping[str, Any], timeline: Mapping[str, Any]) -> str:
    if timeline.get("completed"):
        return when(timeline["completed"])
    status = record.get("status")
    if timeline.get("finished"):
        return f"not completed: the run {status} at {when(timeline['finished'])}"
    return f"not completed ({status})"


def _users(metrics: Mapping[str, Any]) -> str:
    users = metrics.get("users_affected") or {}
    if users.get("value") is None:
        return f"not recorded: {users.get('note', '')}".rstrip(": ")
    return f"{users['value']:,}"


def _measure_text(measure: Mapping[str, Any] | None) -> str:
    if not measure:
        return "unknown"
    text = str(measure.get("text") or "unknown")
    if isinstance(measure.get("seconds"), int | float) and measure["seconds"] >= 60:
        text += f" ({measure['minutes']:g} min)"
    if measure.get("note"):
        text += f"; {measure['note']}"
    return text


def _revenue(revenue: Mapping[str, Any]) -> str:
    if revenue.get("amount") is None:
        return str(revenue.get("note") or "unknown")
    return f"{revenue['amount']:,.2f} {revenue.get('currency', '')} ({revenue.get('note', '')})"


def _metric_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    names = (
        ("Time to detection", "time_to_detection"),
        ("Time to decision", "time_to_decision"),
        ("Time to rollback", "time_to_rollback"),
        ("Total downtime", "total_downtime"),
    )
    rows = [(label, _measure_text(metrics.get(key))) for label, key in names]
    rows.append(("Users affected", _users(metrics)))
    rows.append(("Revenue impact", _revenue(metrics.get("revenue_impact") or {})))
    return rows


def _objective_rows(record: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "service": str(row.get("name")),
            "priority": str(row.get("priority")),
            "rto": duration(row.get("rto")),
            "downtime": duration(row.get("downtime")),
            "rto_status": OBJECTIVE_TEXT.get(str(row.get("rto_status")), "unknown"),
            "rpo": duration(row.get("rpo")),
            "data_loss": duration(row.get("data_loss")),
            "rpo_status": OBJECTIVE_TEXT.get(str(row.get("rpo_status")), "unknown"),
        }
        for row in record.get("recovery_objectives") or []
    ]


def release_text(value: Any) -> str:
    """A release as a run record holds it ({tag, release, commit} or a name), for people."""
    if isinstance(value, Mapping):
        return str(value.get("tag") or value.get("release") or "-")
    return str(value) if value else "-"


def host_releases(data: Mapping[str, Any]) -> tuple[str, str]:
    """(before, after) of a host: its published result, else, after a cancel or a kill,
    what the host itself said (``end``: the release its call started from, the release it
    runs now), so that a run that did not finish still says what the hosts run."""
    result = data.get("result") or {}
    end = data.get("end") or {}
    after = result.get("after") or end.get("current")
    before = result.get("before") or end.get("before")
    if before is None and end.get("outcome") in ("not started", "stopped before switch"):
        before = end.get("current")
    return release_text(before), release_text(after)


def _host_rows(record: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for host, data in sorted((record.get("hosts") or {}).items()):
        result = data.get("result") or {}
        phases = data.get("phases") or {}
        before, after = host_releases(data)
        rows.append(
            {
                "host": host,
                "status": str(data.get("status")),
                "before": before,
                "after": after,
                "path": str(result.get("path") or "-"),
                "phases": ", ".join(
                    f"{name} {phase.get('status')} {duration(phase.get('duration'))}"
                    for name, phase in _ordered(phases)
                ),
                "msg": message_line(data.get("msg")),
            }
        )
    return rows


def _ordered(phases: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rank = {name: index for index, name in enumerate(PHASE_ORDER)}
    return sorted(phases.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def _phase_cases(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One JUnit test case per host and phase."""
    cases = []
    for host, data in sorted((record.get("hosts") or {}).items()):
        for name, phase in _ordered(data.get("phases") or {}):
            status = str(phase.get("status"))
            cases.append(
                {
                    "host": host,
                    "phase": name,
                    "status": status,
                    "seconds": float(phase.get("duration") or 0.0),
                    "failed": status in JUNIT_FAILED,
                    "message": str(phase.get("msg") or data.get("msg") or status),
                    "started": phase.get("started"),
                }
            )
    return cases


def _checklist(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    stages = record.get("checklist") or {}
    result = []
    for stage in CHECKLIST_ITEMS:
        items = [
            {**item, "mark": MARKS.get(str(item.get("state")), " "), "when": when(item["at"])}
            if item.get("at")
            else {**item, "mark": MARKS.get(str(item.get("state")), " "), "when": ""}
            for item in stages.get(stage) or []
        ]
        result.append({"stage": stage, "title": CHECKLIST_TITLES[stage], "items": items})
    return result


def _improvements(record: Mapping[str, Any]) -> list[str]:
    """What the numbers suggest; a starting point for the team, not its conclusions."""
    found = [f"Recovery objective violated: {text}." for text in violations(record)]
    metrics = record.get("metrics") or {}
    detection = (metrics.get("time_to_detection") or {}).get("seconds")
    if isinstance(detection, int | float) and detection > 300:
        found.append(
            f"Detection took {format_duration(detection)}: review the triggers and alerts."
        )
    failed = [
        f"{item['item']} ({item.get('note')})"
        for stage in (record.get("checklist") or {}).values()
        for item in stage
        if item.get("state") == "failed"
    ]
    found += [f"Checklist item failed: {text}." for text in failed]
    return found


# --------------------------------------------------------------------------------------------
# Rendering


def environment(template: Path | None = None, autoescape: bool = False) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if template is not None:
        loaders.append(jinja2.FileSystemLoader(str(template.resolve().parent)))
    loaders.append(jinja2.PackageLoader("rollbackctl", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=autoescape,  # noqa: S701 - Markdown and JSON are not HTML; XML is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update({"when": when, "duration": duration, "to_json": to_json, "cell": cell})
    return env


def render_report(
    record: dict[str, Any],
    fmt: str = "markdown",
    template: Path | None = None,
    related: Sequence[Mapping[str, Any]] = (),
    picture: bool = True,
) -> str:
    """The record rendered with the format's template, or ``template`` instead; ``html`` is
    the Markdown as a page (always with its picture)."""
    if fmt not in FORMATS:
        raise TemplateProblem(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    if record.get("schema", 0) >= 1 and "hosts" in record:
        finalize(record)
    env = environment(template, autoescape=fmt == "junit")
    name = template.name if template is not None else FORMATS[fmt]
    try:
        view = report_view(record, related, picture or fmt == "html")
        text = env.get_template(name).render(record=record, view=view)
    except jinja2.TemplateNotFound:
        raise TemplateProblem(f"template {template or name} not found") from None
    except jinja2.TemplateError as error:
        where = f"{template or name}"
        line = getattr(error, "lineno", None)
        raise TemplateProblem(f"{where}{f', line {line}' if line else ''}: {error}") from None
    return html_page(text, _title(record)) if fmt == "html" else text


def html_page(markdown: str, title: str) -> str:
    """A Markdown report as one HTML page (tables, the inline SVG kept as it is)."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
        f"</head><body>\n{body}</body></html>\n"
    )


def earlier_levels(directory: Path, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of the levels an emergency ran before this one (its escalation), for the
    timeline picture; a record that is gone is left out."""
    found = []
    for step in record.get("escalation") or []:
        run_id = step.get("run_id") if isinstance(step, dict) else None
        if not run_id or run_id == record.get("run_id"):
            continue
        try:
            found.append(records.find(directory, str(run_id))[1])
        except records.RecordNotFound:
            continue
    return found
