# GPL-3.0-or-later
"""The runbook's rollback metrics, recovery objectives and checklists, from a run record.

A run record (written by the ``sre.rollback.run_record`` callback for every playbook run:
wrapper, plain ``ansible-playbook`` or AWX) holds what happened: per host and phase the
result and timings, the times the operator gave (incident start, detection, decision), the
decision, and what the wrapper adds (messages sent, validation). ``finalize`` derives from
it, in place:

* ``timeline``: incident start, detection, decision, start and completion of the rollback;
* ``metrics``: the runbook's "Rollback Metrics" (time to detection, time to decision, time
  to rollback, total downtime, users affected, data loss, revenue impact);
* ``recovery_objectives``: each policy service's RTO/RPO against the measured downtime and
  data loss, violations flagged;
* ``checklist``: the runbook's pre-, during- and post-rollback checklists, each item with
  its state (done, failed, skipped, open), when, and why.

The callback and the ``rollbackctl`` wrapper both call it, so AWX and the wrapper agree.
Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils import levels
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    LEVEL_NAMES,
    InputError,
    Policy,
    duration_parts,
    format_duration,
    parse_duration,
)

SCHEMA = 2

LEVEL_BUDGETS = levels.LEVEL_BUDGETS
"""The runbook's time budget of each level, in seconds (< 1 min ... < 1 h)."""

DATA_RESTORING_LEVELS = (4, 5)
"""Levels 1-3 touch flags, configuration and code only: they lose no data."""

STATES = ("done", "failed", "skipped", "open")

CHECKLIST_ITEMS = {
    "pre": (
        "Identify issue severity",
        "Determine rollback level",
        "Notify team members",
        "Prepare rollback commands",
        "Document current state",
    ),
    "during": (
        "Execute rollback procedure",
        "Monitor progress",
        "Communicate status",
        "Verify each step",
        "Document actions taken",
    ),
    "post": (
        "Confirm system stable",
        "Verify functionality restored",
        "Update status page",
        "Send notifications",
        "Begin incident review",
    ),
}
"""The runbook's "Rollback Checklist", in its order."""

CHECKLIST_TITLES = {"pre": "Pre-Rollback", "during": "During Rollback", "post": "Post-Rollback"}

FAILED_STATUSES = ("failed", "unreachable", "unknown")

# --------------------------------------------------------------------------------------------
# Times

_AGO = re.compile(r"^(?:-\s*(?P<minus>.+)|(?P<ago>.+?)\s+ago)$", re.IGNORECASE)
TIME_HELP = (
    "write an ISO 8601 time (2026-11-29T10:02:00Z; no zone means UTC), seconds since the "
    "epoch, 'now', or how long ago: '15m ago', '-1h30m'"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: Any, now: datetime | None = None) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text, epoch seconds, ``now``, ``15m ago`` or
    ``-15m``; None for None or empty text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, bool):
        raise InputError(f"{value!r} is not a time: {TIME_HELP}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    text = str(value).strip()
    reference = now or utcnow()
    if text.lower() == "now":
        return reference
    relative = _AGO.match(text)
    if relative:
        amount = relative.group("minus") or relative.group("ago")
        try:
            return reference - timedelta(seconds=parse_duration(amount.strip()))
        except InputError:
            raise InputError(f"{value!r} is not a time: {TIME_HELP}") from None
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        return _aware(datetime.fromisoformat(text.replace("z", "Z")))
    except ValueError:
        raise InputError(f"{value!r} is not a time: {TIME_HELP}") from None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """``2026-11-29T10:02:00Z`` (UTC, whole seconds)."""
    if moment is None:
        return None
    return _aware(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> datetime | None:
    """A time already written into a record; a damaged one counts as unknown."""
    try:
        return parse_time(value)
    except InputError:
        return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def human_duration(seconds: float | None) -> str:
    """``15 minutes``, ``1 hour``, ``1 hour 30 minutes``, ``45 seconds``: for messages."""
    if seconds is None:
        return "unknown"
    parts = [
        f"{count} {unit}{'s' if count != 1 else ''}" for count, unit in duration_parts(seconds)
    ]
    return " ".join(parts[:2]) or "0 seconds"


# Ansible's words for a host it cannot reach over ssh, before ssh's own reason.
_UNREACHABLE = re.compile(
    r"(Task failed: )?(Failed to connect to the host via ssh|Data could not be sent to remote "
    r'host "[^"]*"\. Make sure this host can be reached over ssh):\s*'
)


def message_line(text: Any) -> str:
    """A host's message on one line (its lines joined with " / "; a carriage return never
    hides what came before it), Ansible's boilerplate for an unreachable host shortened to
    "unreachable over ssh:" so that ssh's own reason is what a reader sees."""
    value = _UNREACHABLE.sub("unreachable over ssh: ", str(text or ""))
    parts = [part.strip() for part in re.split(r"[\r\n]+", value) if part.strip()]
    line = " / ".join(parts)
    if line.endswith("over ssh:"):
        line += " (ssh said no more: the connection dropped or timed out)"
    return line


def level_label(level: Any) -> str:
    if isinstance(level, int) and level in LEVEL_NAMES:
        return f"level {level} ({LEVEL_NAMES[level]})"
    return "level unknown"


# --------------------------------------------------------------------------------------------
# What a record carries about the policy


def policy_snapshot(policy: Policy) -> dict[str, Any]:
    """The parts of a policy a record needs to be judged later without the policy file:
    revenue, the services' recovery objectives (a list: service keys are data, not record
    keys), the lead and the status page."""
    return {
        "source": policy.source,
        "revenue": {"per_minute": policy.revenue.per_minute, "currency": policy.revenue.currency},
        "services": [
            {
                "service": key,
                "name": service.name,
                "rto": service.rto,
                "rpo": service.rpo,
                "priority": service.priority,
            }
            for key, service in policy.services.items()
        ],
        "lead": policy.communication.lead,
        "status_page_url": policy.communication.status_page_url,
    }


# --------------------------------------------------------------------------------------------
# Timeline and metrics


def build_timeline(record: Mapping[str, Any]) -> dict[str, Any]:
    given = record.get("given") or {}
    decision_time, decision_source = _decision_time(record)
    started = _time(given.get("procedure_started")) or _time(record.get("started"))
    finished = _time(record.get("finished"))
    completed = finished if record.get("status") == "ok" else None
    return {
        "incident_started": iso(_time(given.get("incident_started"))),
        "detected": iso(_time(given.get("detected"))),
        "decided": iso(decision_time),
        "decided_source": decision_source,
        "started": iso(started),
        "completed": iso(completed),
        "finished": iso(finished),
    }


def _decision_time(record: Mapping[str, Any]) -> tuple[datetime | None, str | None]:
    given = record.get("given") or {}
    if _time(given.get("decided")):
        return _time(given.get("decided")), "given"
    decision = record.get("decision") or {}
    if isinstance(decision, Mapping) and _time(decision.get("decided_at")):
        return _time(decision.get("decided_at")), "decision"
    started = _time(given.get("procedure_started")) or _time(record.get("started"))
    return started, "rollback start" if started else None


def _measure(seconds: float | None, note: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "minutes": None if seconds is None else round(seconds / 60, 1),
        "text": "unknown" if seconds is None else format_duration(seconds),
        "note": note,
        **extra,
    }


def build_metrics(record: Mapping[str, Any], timeline: Mapping[str, Any]) -> dict[str, Any]:
    times = {key: _time(value) for key, value in timeline.items() if key != "decided_source"}
    downtime = _downtime(record, times)
    return {
        "time_to_detection": _measure(
            _seconds(times["incident_started"], times["detected"]),
            "" if times["incident_started"] and times["detected"] else _needs("incident start"),
        ),
        "time_to_decision": _measure(
            _seconds(times["detected"], times["decided"]),
            f"decision time from: {timeline['decided_source']}" if times["detected"] else "",
        ),
        "time_to_rollback": _measure(
            _seconds(times["started"], times["completed"] or times["finished"]),
            "" if times["completed"] else _not_recovered(record),
        ),
        "total_downtime": downtime,
        "users_affected": _users_affected(record),
        "data_loss": _data_loss(record),
        "revenue_impact": _revenue(record, downtime),
    }


def _needs(what: str) -> str:
    return (
        f"not measured: give the {what} (rollbackctl --incident-started / --detected-at, "
        "or the extra vars rollback_incident_started_at / rollback_detected_at)"
    )


def _not_recovered(record: Mapping[str, Any]) -> str:
    status = record.get("status")
    if status == "running":
        return "still running: time so far"
    return f"not recovered (run {status}): time until the run ended"


def _downtime(record: Mapping[str, Any], times: Mapping[str, datetime | None]) -> dict[str, Any]:
    origins = (
        ("incident_started", "from the incident start"),
        ("detected", "from detection (give the incident start for the full figure)"),
        ("started", "from the rollback start only: a lower bound (give --detected-at)"),
    )
    origin, note = next(((key, text) for key, text in origins if times[key]), (None, ""))
    end = times["completed"] or times["finished"]
    seconds = _seconds(times[origin], end) if origin else None
    ongoing = times["completed"] is None
    if ongoing and seconds is not None:
        note += "; not recovered by this run: at least this long"
    return _measure(seconds, note, origin=origin, ongoing=ongoing)


def _users_affected(record: Mapping[str, Any]) -> dict[str, Any]:
    value = (record.get("given") or {}).get("users_affected")
    if value is None or value == "":
        return {"value": None, "note": "not given (--users-affected, rollback_users_affected)"}
    try:
        count = int(value)
    except (TypeError, ValueError):
        return {"value": None, "note": f"not a number: {value!r}"}
    return {"value": count, "note": "given"}


def _data_loss(record: Mapping[str, Any]) -> dict[str, Any]:
    given = (record.get("given") or {}).get("data_loss")
    if given not in (None, ""):
        try:
            return _measure(float(parse_duration(given)), "given")
        except InputError:
            return _measure(None, f"not a duration: {given!r}")
    published = [
        host.get("result", {}).get("data_loss_seconds")
        for host in (record.get("hosts") or {}).values()
        if isinstance(host.get("result"), Mapping)
    ]
    numbers = [float(value) for value in published if isinstance(value, int | float)]
    if numbers:
        return _measure(max(numbers), "as the level's roles reported it (worst host)")
    level = record.get("level")
    if isinstance(level, int) and level not in DATA_RESTORING_LEVELS:
        return _measure(0.0, f"none: {level_label(level)} restores no data")
    return _measure(None, "unknown: give rollback_data_loss (how much recent data was lost)")


def _revenue(record: Mapping[str, Any], downtime: Mapping[str, Any]) -> dict[str, Any]:
    revenue = (record.get("policy") or {}).get("revenue") or {}
    per_minute = float(revenue.get("per_minute") or 0)
    currency = str(revenue.get("currency") or "USD")
    result: dict[str, Any] = {"amount": None, "currency": currency, "per_minute": per_minute}
    if per_minute <= 0:
        result["note"] = "not reported: the policy's revenue.per_minute is 0"
    elif downtime["seconds"] is None:
        result["note"] = "unknown: the downtime is unknown"
    else:
        result["amount"] = round(per_minute * downtime["seconds"] / 60, 2)
        result["note"] = f"{per_minute:g} {currency}/min x {downtime['minutes']:g} min of downtime"
        if downtime["ongoing"]:
            result["note"] += " (at least: not recovered)"
    return result


# --------------------------------------------------------------------------------------------
# Recovery objectives


def build_objectives(record: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per service of the policy (or of ``given.services`` when the operator named
    the services the incident hit): RTO against downtime, RPO against data loss."""
    services = (record.get("policy") or {}).get("services") or []
    wanted = _wanted_services(record)
    downtime, loss = metrics["total_downtime"], metrics["data_loss"]
    rows = []
    for service in services:
        if wanted and service.get("service") not in wanted:
            continue
        rows.append(
            {
                **service,
                "downtime": downtime["seconds"],
                "data_loss": loss["seconds"],
                "rto_status": _objective(downtime["seconds"], service.get("rto"), downtime),
                "rpo_status": _objective(loss["seconds"], service.get("rpo"), {}),
            }
        )
    return rows


def _wanted_services(record: Mapping[str, Any]) -> list[str]:
    value = (record.get("given") or {}).get("services") or []
    if isinstance(value, str):
        value = value.split(",")
    return [str(item).strip() for item in value if str(item).strip()]


def _objective(measured: float | None, objective: Any, measure: Mapping[str, Any]) -> str:
    if measured is None or not isinstance(objective, int | float):
        return "unknown"
    if measured > objective:
        return "violated"
    if measure.get("ongoing"):
        return "unknown"  # not recovered yet, but not over the objective so far
    return "met"


def violations(record: Mapping[str, Any]) -> list[str]:
    """``Core API: RTO 5m, downtime 12m30s`` for each objective a record violates."""
    found = []
    for row in record.get("recovery_objectives") or []:
        if row.get("rto_status") == "violated":
            found.append(
                f"{row['name']}: RTO {format_duration(row['rto'])}, "
                f"downtime {format_duration(row['downtime'])}"
            )
        if row.get("rpo_status") == "violated":
            found.append(
                f"{row['name']}: RPO {format_duration(row['rpo'])}, "
                f"data loss {format_duration(row['data_loss'])}"
            )
    return found


# --------------------------------------------------------------------------------------------
# Checklists


def _item(name: str, state: str, at: Any = None, note: str = "") -> dict[str, Any]:
    return {"item": name, "state": state, "at": at, "note": note}


def _phases(record: Mapping[str, Any], phase: str) -> dict[str, dict[str, Any]]:
    """Host -> the record of one phase, for the hosts that ran it."""
    return {
        name: host["phases"][phase]
        for name, host in (record.get("hosts") or {}).items()
        if phase in (host.get("phases") or {})
    }


def _last(entries: list[dict[str, Any]], key: str = "finished") -> Any:
    times = sorted(str(entry.get(key)) for entry in entries if entry.get(key))
    return times[-1] if times else None


def _messages(record: Mapping[str, Any], *kinds: str) -> list[dict[str, Any]]:
    return [
        message
        for message in record.get("messages") or []
        if message.get("kind") in kinds
        and any(delivery.get("ok") for delivery in message.get("deliveries") or [])
    ]


def _failed_hosts(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: host
        for name, host in (record.get("hosts") or {}).items()
        if host.get("status") in FAILED_STATUSES
    }


def _check_severity(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Identify issue severity"
    decision = record.get("decision") or {}
    severity = decision.get("severity") or (record.get("given") or {}).get("severity")
    if not severity:
        return _item(name, "open", note="no severity recorded (rollbackctl emergency/decide)")
    note = f"severity {severity}"
    inputs = decision.get("inputs") or {}
    if inputs:
        note += (
            f", impact {inputs.get('impact'):g}%, "
            f"time to fix {format_duration(inputs.get('time_to_fix') or 0)}"
        )
    return _item(name, "done", record["timeline"]["decided"], note)


def _check_level(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Determine rollback level"
    level = record.get("level")
    if level is None:
        return _item(name, "open", note="this playbook is not a rollback level")
    note = level_label(level)
    decision = record.get("decision") or {}
    if decision.get("summary"):
        note += f"; decision matrix: {decision['summary']}"
    return _item(name, "done", record["timeline"]["decided"], note)


def _check_notify(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Notify team members"
    sent = _messages(record, "internal")
    if sent:
        return _item(name, "done", sent[0].get("at"), _channels(sent[0]))
    notified = (record.get("given") or {}).get("notified")
    if notified:
        return _item(name, "done", notified, "given (rollback_notified_at)")
    return _item(name, "open", note="no internal message recorded")


def _channels(message: Mapping[str, Any]) -> str:
    ok = [d["channel"] for d in message.get("deliveries") or [] if d.get("ok")]
    return f"{message.get('kind')} message via {', '.join(ok)}"


def _check_prepare(record: Mapping[str, Any]) -> dict[str, Any]:
    target = record.get("target") or {}
    named = ", ".join(f"{k}={v}" for k, v in sorted(target.items()) if v not in (None, ""))
    note = f"{record.get('playbook')}" + (f" ({named})" if named else "")
    return _item("Prepare rollback commands", "done", record.get("started"), note)


def _check_current_state(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Document current state"
    plan = _phases(record, "plan")
    if not plan:
        return _item(name, "open", note="the run recorded no plan (inspection) phase")
    failed = sorted(h for h, phase in plan.items() if phase.get("status") in FAILED_STATUSES)
    if failed:
        return _item(name, "failed", _last(list(plan.values())), f"inspection failed on {failed}")
    states = []
    for host in sorted(plan):
        before = ((record["hosts"][host].get("result") or {}).get("before")) or {}
        if isinstance(before, Mapping) and before.get("release"):
            states.append(f"{host}: {before.get('tag') or before['release']}")
    note = "inspected every host before any change"
    if states:
        note += ": " + ", ".join(states)
    return _item(name, "done", _last(list(plan.values())), note)


def _check_execute(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Execute rollback procedure"
    status = record.get("status")
    finished = record.get("finished")
    hosts = record.get("hosts") or {}
    if record.get("check_mode"):
        return _item(name, "skipped", finished, "check mode: planned, nothing changed")
    if status == "ok":
        return _item(name, "done", finished, f"{len(hosts)} host(s) ok")
    if status == "running":
        return _item(name, "open", note="running")
    if status == "canceled":
        return _item(name, "failed", finished, "canceled by the operator")
    if status == "killed":
        return _item(name, "failed", finished, "ansible-playbook was killed before the end")
    if status == "empty":
        return _item(name, "failed", finished, "no host matched the level's hosts")
    failed = _failed_hosts(record)
    detail = "; ".join(
        f"{h}: {message_line(v.get('msg') or v.get('status'))}"[:300] for h, v in failed.items()
    )
    return _item(name, "failed", finished, detail or f"run {status}")


def _check_monitor(record: Mapping[str, Any]) -> dict[str, Any]:
    tasks = record.get("tasks") or []
    if not tasks:
        return _item("Monitor progress", "open", note="no task results recorded")
    hosts = {task.get("host") for task in tasks}
    note = f"{len(tasks)} task results from {len(hosts)} host(s) recorded as they happened"
    return _item("Monitor progress", "done", tasks[-1].get("at"), note)


def _check_communicate(record: Mapping[str, Any]) -> dict[str, Any]:
    sent = _messages(record, "internal", "customer", "escalation")
    if not sent:
        return _item("Communicate status", "open", note="no message recorded during the run")
    kinds = sorted({message["kind"] for message in sent})
    return _item("Communicate status", "done", sent[-1].get("at"), f"sent: {', '.join(kinds)}")


def _check_verify(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Verify each step"
    if record.get("check_mode"):
        return _item(name, "skipped", note="check mode")
    health = _phases(record, "health")
    if not health:
        return _item(name, "open", note="no health gate ran")
    failed = sorted(h for h, phase in health.items() if phase.get("status") in FAILED_STATUSES)
    at = _last(list(health.values()))
    if failed:
        return _item(name, "failed", at, f"health gate failed on {', '.join(failed)}")
    return _item(name, "done", at, f"health gate passed on {', '.join(sorted(health))}")


def _check_document_actions(record: Mapping[str, Any]) -> dict[str, Any]:
    if not record.get("finished"):
        return _item("Document actions taken", "open", note="the run has not finished")
    note = f"run record {record.get('run_id')}: {len(record.get('tasks') or [])} actions"
    return _item("Document actions taken", "done", record.get("finished"), note)


def _check_stable(record: Mapping[str, Any], verify: Mapping[str, Any]) -> dict[str, Any]:
    name = "Confirm system stable"
    if record.get("check_mode"):
        return _item(name, "skipped", note="check mode")
    if record.get("status") in ("failed", "canceled", "killed", "empty"):
        return _item(name, "failed", record.get("finished"), f"run {record.get('status')}")
    if record.get("status") == "ok" and verify["state"] == "done":
        return _item(name, "done", verify["at"], "every host passed its health gate")
    return _item(name, "open", note="no health evidence in this run")


def _check_functionality(record: Mapping[str, Any]) -> dict[str, Any]:
    name = "Verify functionality restored"
    validation = record.get("validation") or {}
    if not validation:
        return _item(name, "open", note="no validation ran (playbooks/validate.yml)")
    state = "done" if validation.get("status") == "ok" else "failed"
    return _item(name, state, validation.get("at"), validation.get("note", ""))


def _check_status_page(record: Mapping[str, Any]) -> dict[str, Any]:
    url = (record.get("policy") or {}).get("status_page_url")
    note = f"update {url} by hand" if url else "no status page in the policy"
    return _item("Update status page", "open", note=note)


def _check_notifications(record: Mapping[str, Any]) -> dict[str, Any]:
    sent = _messages(record, "closing")
    if sent:
        return _item("Send notifications", "done", sent[-1].get("at"), _channels(sent[-1]))
    return _item("Send notifications", "open", note="no closing message recorded")


def _check_review(record: Mapping[str, Any]) -> dict[str, Any]:
    note = f"draft: rollbackctl report {record.get('run_id')}"
    return _item("Begin incident review", "open", note=note)


def build_checklist(record: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    verify = _check_verify(record)
    checks: dict[str, list[Callable[[], dict[str, Any]]]] = {
        "pre": [
            lambda: _check_severity(record),
            lambda: _check_level(record),
            lambda: _check_notify(record),
            lambda: _check_prepare(record),
            lambda: _check_current_state(record),
        ],
        "during": [
            lambda: _check_execute(record),
            lambda: _check_monitor(record),
            lambda: _check_communicate(record),
            lambda: verify,
            lambda: _check_document_actions(record),
        ],
        "post": [
            lambda: _check_stable(record, verify),
            lambda: _check_functionality(record),
            lambda: _check_status_page(record),
            lambda: _check_notifications(record),
            lambda: _check_review(record),
        ],
    }
    return {stage: [check() for check in stage_checks] for stage, stage_checks in checks.items()}


# --------------------------------------------------------------------------------------------
# All of it


def finalize(record: dict[str, Any]) -> dict[str, Any]:
    """Derive timeline, metrics, recovery objectives and checklist from what the record
    holds; safe to call again after the record changed (messages, validation added)."""
    record["schema"] = SCHEMA
    record["timeline"] = build_timeline(record)
    record["metrics"] = build_metrics(record, record["timeline"])
    record["recovery_objectives"] = build_objectives(record, record["metrics"])
    record["checklist"] = build_checklist(record)
    return record
