"""Drills: the runbook's monthly and quarterly rollback exercises as Molecule scenarios.

Each drill is a scenario under ``molecule/<name>/`` with a ``drill.yml`` that says what it
breaks, which level(s) bring it back, the policy services it stands for and how often the
runbook wants it (``monthly`` or ``quarterly``). While a drill runs, its steps append
events (JSON lines, epoch seconds) to the run's folder, ``<artifacts>/drills/runs/<run id>/``;
at the end ``build_record`` turns them into the drill record (JSON and JUnit under
``<artifacts>/drills/records/``): the timeline, the measured RTO (fault injected -> verified
healthy, and per phase), the RPO (acknowledged writes lost, from the heartbeat) and both
against the policy's RTO/RPO table and the runbook budget of the level.

This module is the one writer of the events, the run folder and the records; ``rollbackctl
drill`` and the scenarios' playbooks and tests go through it.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import secrets
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import Policy, format_duration
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import LEVEL_BUDGETS, iso
from rollbackctl.project import private_dir

SCHEMA = 1
SCHEDULE_MONTHS = {"monthly": 1, "quarterly": 3}
HEARTBEAT_PID = "heartbeat.pid"
"""The pid file of the drill's load (molecule/shared/heartbeat.py) in its run folder."""
GOAL_FRACTION = 0.1
"""The project's goal: every drill's RTO at most a tenth of the level's runbook budget."""

# The steps of a drill, in order, and the event that says each one is done.
STEPS = (
    ("create", "rig_up"),
    ("prepare", "prepared"),
    ("side_effect", "fault_injected"),
    ("verify fault", "verified_fault"),
    ("converge", "rollback_finished"),
    ("verify recovered", "verified_recovered"),
    ("destroy", "destroyed"),
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class DrillError(Exception):
    """A drill cannot be found, started or recorded; the message says what to do."""


# --------------------------------------------------------------------------------------------
# The catalogue: molecule/<name>/drill.yml


@dataclass(frozen=True)
class DrillSpec:
    name: str
    title: str
    fault: str
    levels: tuple[int, ...]
    schedule: str
    services: tuple[str, ...]

    @property
    def budget(self) -> int:
        """The runbook budget of the highest level the drill runs, in seconds."""
        return LEVEL_BUDGETS[max(self.levels)]


def scenarios_dir(project_root: Path) -> Path:
    return project_root / "molecule"


def load_spec(path: Path) -> DrillSpec:
    """A scenario's ``drill.yml``; errors name the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise DrillError(f"{path}: cannot read the drill description: {error}") from None
    drill = data.get("drill") if isinstance(data, Mapping) else None
    if not isinstance(drill, Mapping):
        raise DrillError(f"{path}: needs a top-level `drill:` mapping")
    name = path.parent.name
    problems = []
    levels = drill.get("levels")
    if not (isinstance(levels, list) and levels and all(lv in LEVEL_BUDGETS for lv in levels)):
        problems.append("levels: a list of levels 1-5")
        levels = [1]
    if drill.get("schedule") not in SCHEDULE_MONTHS:
        problems.append(f"schedule: one of {', '.join(SCHEDULE_MONTHS)}")
    services = drill.get("services")
    if not (isinstance(services, list) and services):
        problems.append("services: the policy services the drill stands for (core_api...)")
        services = []
    for key in ("title", "fault"):
        if not str(drill.get(key) or "").strip():
            problems.append(f"{key}: say it in words")
    if problems:
        raise DrillError(f"{path}: " + "; ".join(problems))
    return DrillSpec(
        name=name,
        title=str(drill["title"]),
        fault=str(drill["fault"]),
        levels=tuple(int(lv) for lv in levels),
        schedule=str(drill["schedule"]),
        services=tuple(str(s) for s in services),
    )


def catalogue(project_root: Path) -> list[DrillSpec]:
    """Every drill of the project, by name."""
    return [load_spec(path) for path in sorted(scenarios_dir(project_root).glob("*/drill.yml"))]


def spec_named(project_root: Path, name: str) -> DrillSpec:
    for spec in catalogue(project_root):
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in catalogue(project_root)) or "none"
    raise DrillError(f"no drill {name!r} (molecule/{name}/drill.yml); drills: {known}")


# --------------------------------------------------------------------------------------------
# A run in progress: its folder, its events


def drills_dir(artifacts: Path) -> Path:
    return artifacts / "drills"


def records_dir(artifacts: Path) -> Path:
    return drills_dir(artifacts) / "records"


def _pointer(artifacts: Path, scenario: str) -> Path:
    return drills_dir(artifacts) / f"{scenario}.current"


def begin(artifacts: Path, scenario: str, instance: int) -> Path:
    """A new run folder for ``scenario`` on rig ``instance``, made the scenario's current
    run (a drill left unfinished is replaced: its folder stays)."""
    if not _NAME.match(scenario):
        raise DrillError(f"{scenario!r} is not a drill name (molecule/<name>)")
    run_id = f"{scenario}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    run_dir = private_dir(drills_dir(artifacts) / "runs" / run_id)
    private_dir(run_dir / "logs")
    meta = {"run_id": run_id, "scenario": scenario, "instance": instance}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    pointer = _pointer(artifacts, scenario)
    tmp = pointer.with_name(f".{pointer.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path("runs") / run_id)
    os.replace(tmp, pointer)
    mark(run_dir, "created", instance=instance)
    return run_dir


def current(artifacts: Path, scenario: str) -> Path | None:
    """The scenario's run in progress, or None."""
    pointer = _pointer(artifacts, scenario)
    return pointer.resolve() if pointer.is_symlink() and pointer.resolve().is_dir() else None


def finish(artifacts: Path, scenario: str) -> None:
    _pointer(artifacts, scenario).unlink(missing_ok=True)


def mark(run_dir: Path, event: str, at: float | None = None, **data: Any) -> dict[str, Any]:
    """Append one event (``at``: epoch seconds, now by default)."""
    entry = {"event": event, "at": time.time() if at is None else at, **data}
    with (run_dir / "events.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
    return entry


def events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "event" in entry:
            found.append(entry)
    return found


def meta(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DrillError(f"{run_dir}: not a drill run folder ({error})") from None
    return dict(data)


# --------------------------------------------------------------------------------------------
# Evidence: data lost


def data_loss(acks: Iterable[Mapping[str, Any]], present: Iterable[int]) -> dict[str, Any]:
    """The RPO evidence from the heartbeat: every write the service acknowledged (``{at,
    order_id}``) and the ids the database holds after the rollback. The data lost spans from
    the last acknowledged write that survived before the first lost one (the restore point)
    to the newest lost write; 0 when nothing acknowledged is missing."""
    written = sorted(
        (float(ack["at"]), int(ack["order_id"])) for ack in acks if ack.get("order_id") is not None
    )
    kept = set(present)
    lost = [(at, oid) for at, oid in written if oid not in kept]
    result: dict[str, Any] = {"acknowledged": len(written), "lost": len(lost), "seconds": 0.0}
    if not written:
        result["note"] = "no acknowledged write: no evidence (was the heartbeat running?)"
        result["seconds"] = None
        return result
    if lost:
        first_lost = lost[0][0]
        before = [at for at, oid in written if oid in kept and at < first_lost]
        since = before[-1] if before else written[0][0]
        result["seconds"] = round(lost[-1][0] - since, 3)
        result["lost_ids"] = [oid for _, oid in lost][:50]
        result["note"] = (
            f"{len(lost)} of {len(written)} acknowledged writes are gone: from "
            f"{iso(_utc(since))} to {iso(_utc(lost[-1][0]))}"
        )
    else:
        result["note"] = f"every one of {len(written)} acknowledged writes is in the database"
    return result


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# --------------------------------------------------------------------------------------------
# The drill record


def _first(found: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in found if e["event"] == name), None)


def _last(found: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in reversed(found) if e["event"] == name), None)


def _span(start: Mapping[str, Any] | None, end: Mapping[str, Any] | None) -> float | None:
    if not start or not end:
        return None
    return round(float(end["at"]) - float(start["at"]), 3)


def rto_phases(found: list[dict[str, Any]]) -> dict[str, Any]:
    """RTO = fault injected -> verified healthy, and its phases: detection (the fault seen
    by the verify), hand-over to the rollback, each level's run (with its own phases from
    the level's run record), and the verification that everything is back."""
    fault = _first(found, "fault_injected")
    seen = _first(found, "verified_fault")
    recovered = _last(found, "verified_recovered")
    healthy = recovered if recovered and not recovered.get("failed") else None
    starts = [e for e in found if e["event"] == "rollback_started"]
    ends = [e for e in found if e["event"] == "rollback_finished"]
    phases: list[dict[str, Any]] = [{"phase": "detection", "seconds": _span(fault, seen)}]
    if starts:
        phases.append({"phase": "hand-over", "seconds": _span(seen, starts[0])})
    for start, end in zip(starts, ends, strict=False):
        phases.append(
            {
                "phase": "rollback level "
                + ", ".join(str(lv) for lv in end.get("levels_run") or [start.get("level")]),
                "seconds": _span(start, end),
                "exit_code": end.get("exit_code"),
                "run_id": end.get("run_id"),
                "level_phases": end.get("phases") or {},
            }
        )
    phases.append(
        {"phase": "verification", "seconds": _span(ends[-1] if ends else seen, recovered)}
    )
    return {
        "seconds": _span(fault, healthy),
        "from": "fault_injected",
        "to": "verified_recovered",
        "phases": phases,
    }


def objectives(
    spec: DrillSpec, rto: float | None, rpo: float | None, policy: Policy
) -> list[dict[str, Any]]:
    """Each target the drill is held to: the policy's RTO/RPO of every service it stands
    for and the runbook budget of its level (binding), and the project's goal of a tenth of
    that budget (reported, not binding)."""
    rows: list[dict[str, Any]] = []
    for key in spec.services:
        service = policy.services.get(key)
        if service is None:
            rows.append(_row(f"{key}: not in the policy ({policy.source})", None, None, True))
            continue
        rows.append(_row(f"{service.name} RTO (policy)", service.rto, rto, True, "RTO"))
        rows.append(_row(f"{service.name} RPO (policy)", service.rpo, rpo, True, "RPO"))
    level = max(spec.levels)
    rows.append(_row(f"level {level} budget (runbook)", spec.budget, rto, True, "RTO"))
    goal = spec.budget * GOAL_FRACTION
    rows.append(_row(f"goal: 1/10 of the level {level} budget", goal, rto, False, "RTO"))
    return rows


def _row(
    what: str, target: float | None, measured: float | None, binding: bool, kind: str = ""
) -> dict[str, Any]:
    if target is None:
        status = "unknown"
    elif measured is None:
        status = "not measured"
    else:
        status = "met" if measured <= target else "exceeded"
    return {
        "objective": what,
        "kind": kind,
        "target_seconds": target,
        "measured_seconds": measured,
        "status": status,
        "binding": binding,
    }


def violations(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``Core API RTO (policy): measured 6m12s exceeds 5m`` for every binding target that
    was exceeded or could not be measured."""
    found = []
    for row in rows:
        if not row["binding"] or row["status"] == "met":
            continue
        target = row["target_seconds"]
        measured = row["measured_seconds"]
        if row["status"] == "exceeded":
            found.append(
                f"{row['objective']}: measured {_text(measured)} ({measured:.1f} s) "
                f"exceeds {_text(target)} ({target:.0f} s)"
            )
        else:
            found.append(f"{row['objective']}: {row['status']}")
    return found


def _seconds(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.1f} s"


def _text(seconds: float | None) -> str:
    return "unknown" if seconds is None else format_duration(round(seconds, 1))


def build_record(
    spec: DrillSpec, run_dir: Path, policy: Policy, leftovers: list[str] | None = None
) -> dict[str, Any]:
    """The drill record of a run folder: what ran, the timeline, RTO/RPO against the
    targets, and the result (passed only when every step is done, every check passed,
    every binding target is met and nothing was left behind)."""
    found = events(run_dir)
    info = meta(run_dir)
    rto = rto_phases(found)
    evidence = (_last(found, "rpo_evidence") or {}).get("data_loss") or {
        "seconds": None,
        "note": "no evidence: the recovered verify did not read the heartbeat",
    }
    rows = objectives(spec, rto["seconds"], evidence.get("seconds"), policy)
    problems = violations(rows)
    steps = _steps(found)
    failed_step = next((s["step"] for s in steps if s["status"] != "passed"), None)
    left = list(leftovers or [])
    passed = failed_step is None and not problems and not left
    started = found[0]["at"] if found else None
    ended = found[-1]["at"] if found else None
    return {
        "schema": SCHEMA,
        "kind": "sre.rollback drill",
        "run_id": info.get("run_id"),
        "scenario": spec.name,
        "title": spec.title,
        "fault": spec.fault,
        "levels": list(spec.levels),
        "schedule": spec.schedule,
        "services": list(spec.services),
        "instance": info.get("instance"),
        "policy": policy.source,
        "started": iso(_utc(started)) if started else None,
        "finished": iso(_utc(ended)) if ended else None,
        "duration_seconds": round(ended - started, 3) if started and ended else None,
        "result": "passed" if passed else "failed",
        "failed_step": failed_step,
        "steps": steps,
        "rto": rto,
        "rpo": evidence,
        "objectives": rows,
        "violations": problems,
        "leftovers": left,
        "rollback_runs": [
            {k: e.get(k) for k in ("level", "run_id", "record", "exit_code")}
            for e in found
            if e["event"] == "rollback_finished"
        ],
        "checks": [
            {**check, "step": e["event"]}
            for e in found
            if e["event"] in ("verified_fault", "verified_recovered")
            for check in e.get("checks") or []
        ],
        "timeline": [
            {**e, "at": iso(_utc(float(e["at"]))), "epoch": e["at"]}
            for e in found
            if e["event"] not in ("verified_fault", "verified_recovered")
        ]
        + [
            {k: v for k, v in e.items() if k != "checks"} | {"at": iso(_utc(float(e["at"])))}
            for e in found
            if e["event"] in ("verified_fault", "verified_recovered")
        ],
    }


def _steps(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps = []
    for step, event in STEPS:
        entry = _last(found, event)
        if entry is None:
            status, note = "not reached", ""
        elif entry.get("failed"):
            status, note = "failed", str(entry.get("failed"))
        elif event == "rollback_finished" and entry.get("exit_code") not in (0, None):
            status, note = "failed", f"rollbackctl exited {entry.get('exit_code')}"
        else:
            status, note = "passed", ""
        steps.append({"step": step, "status": status, "note": note})
    return steps


def write_record(artifacts: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """``<run id>.json`` and ``<run id>.xml`` (JUnit) in the records folder."""
    folder = private_dir(records_dir(artifacts))
    path = folder / f"{record['run_id']}.json"
    _write(path, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    xml = path.with_suffix(".xml")
    _write(xml, junit_xml(record))
    return path, xml


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def junit_xml(record: Mapping[str, Any]) -> str:
    """One test suite per drill: a case per step, per check of the two verifies, per
    objective (a non-binding goal is reported as skipped when missed) and one for what was
    left behind."""
    suite = ET.Element("testsuite", name=str(record["scenario"]))
    cases: list[tuple[str, str, float | None, str | None, bool]] = []
    for step in record["steps"]:
        fail = None if step["status"] == "passed" else f"{step['status']} {step['note']}".strip()
        cases.append(("steps", step["step"], None, fail, False))
    for check in record["checks"]:
        cases.append(
            (check["step"], check["name"], check.get("seconds"), check.get("failure"), False)
        )
    for row in record["objectives"]:
        missed = row["status"] != "met"
        text = violations([{**row, "binding": True}])[0] if missed else None
        cases.append(
            ("objectives", row["objective"], row["measured_seconds"], text, not row["binding"])
        )
    left = "; ".join(record["leftovers"]) or None
    cases.append(("destroy", "nothing left behind", None, left, False))
    failures = skipped = 0
    for classname, name, seconds, failure, optional in cases:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{record['scenario']}.{classname}",
            name=name,
            time=f"{seconds or 0:.3f}",
        )
        if failure and optional:
            ET.SubElement(case, "skipped", message=failure)
            skipped += 1
        elif failure:
            ET.SubElement(case, "failure", message=failure)
            failures += 1
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{record.get('duration_seconds') or 0:.3f}")
    suite.set("timestamp", str(record.get("started") or ""))
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def summary_lines(record: Mapping[str, Any]) -> list[str]:
    """What a drill prints at its end: the result, the numbers against the targets."""
    rto = record["rto"]["seconds"]
    lines = [
        f"drill {record['scenario']} ({record['run_id']}): {record['result'].upper()}"
        + (f" at {record['failed_step']}" if record.get("failed_step") else ""),
        f"  fault: {record['fault']}; levels run: {', '.join(map(str, record['levels']))}",
        f"  RTO {_seconds(rto)}: "
        + ", ".join(f"{p['phase']} {_seconds(p['seconds'])}" for p in record["rto"]["phases"]),
        f"  RPO {_text(record['rpo'].get('seconds'))}: {record['rpo'].get('note', '')}",
    ]
    for row in record["objectives"]:
        measured = row["measured_seconds"]
        lines.append(
            f"  {row['status']:>12}  {row['objective']}: target {_text(row['target_seconds'])}, "
            f"measured {_text(measured)}" + ("" if row["binding"] else " (goal, not binding)")
        )
    lines += [f"  NOT MET: {text}" for text in record["violations"]]
    lines += [f"  LEFT BEHIND: {text}" for text in record["leftovers"]]
    return lines


# --------------------------------------------------------------------------------------------
# Schedule and report over the records


def load_records(artifacts: Path) -> list[dict[str, Any]]:
    """Every drill record, oldest first."""
    folder = records_dir(artifacts)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("kind") == "sre.rollback drill":
            found.append(data)
    return sorted(found, key=lambda r: str(r.get("started") or ""))


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, the month's last day when it has no such day."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def schedule(
    specs: Iterable[DrillSpec], records: Iterable[Mapping[str, Any]], today: date
) -> list[dict[str, Any]]:
    """Per drill: its schedule, the last run and its result, the next due date (a month or
    a quarter after the last passed run; today when it never passed) and whether it is
    overdue."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_name.setdefault(str(record.get("scenario")), []).append(record)
    rows = []
    for spec in specs:
        runs = by_name.get(spec.name, [])
        last = runs[-1] if runs else None
        passed = [r for r in runs if r.get("result") == "passed"]
        last_pass = _day(passed[-1]) if passed else None
        due = add_months(last_pass, SCHEDULE_MONTHS[spec.schedule]) if last_pass else today
        rows.append(
            {
                "drill": spec.name,
                "title": spec.title,
                "schedule": spec.schedule,
                "levels": list(spec.levels),
                "last_run": last.get("started") if last else None,
                "last_result": last.get("result") if last else "never run",
                "last_passed": last_pass.isoformat() if last_pass else None,
                "next_due": due.isoformat(),
                "overdue": due < today or last_pass is None,
                "runs": len(runs),
            }
        )
    return rows


def _day(record: Mapping[str, Any]) -> date:
    return datetime.strptime(str(record["started"]), "%Y-%m-%dT%H:%M:%SZ").date()


def compliance(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per drill and objective over every run: runs, met, worst and latest measured value,
    and the trend of the last two runs (``better``, ``worse``, ``same``)."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        for row in record.get("objectives") or []:
            key = (str(record["scenario"]), str(row["objective"]))
            entry = table.setdefault(
                key,
                {
                    "drill": key[0],
                    "objective": key[1],
                    "target_seconds": row["target_seconds"],
                    "binding": row["binding"],
                    "runs": 0,
                    "met": 0,
                    "measured": [],
                },
            )
            entry["runs"] += 1
            entry["met"] += row["status"] == "met"
            entry["target_seconds"] = row["target_seconds"]
            if row["measured_seconds"] is not None:
                entry["measured"].append(row["measured_seconds"])
    rows = []
    for entry in table.values():
        measured = entry.pop("measured")
        entry["latest_seconds"] = measured[-1] if measured else None
        entry["worst_seconds"] = max(measured) if measured else None
        entry["trend"] = _trend(measured)
        entry["compliant"] = entry["met"] == entry["runs"]
        rows.append(entry)
    return rows


def _trend(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    before, now = values[-2], values[-1]
    if abs(now - before) <= max(0.05 * before, 0.5):
        return "same"
    return "better" if now < before else "worse"


def report(specs: list[DrillSpec], records: list[dict[str, Any]], today: date) -> dict[str, Any]:
    return {
        "generated": today.isoformat(),
        "schedule": schedule(specs, records, today),
        "compliance": compliance(records),
        "runs": [
            {
                "run_id": r.get("run_id"),
                "drill": r.get("scenario"),
                "started": r.get("started"),
                "result": r.get("result"),
                "rto_seconds": (r.get("rto") or {}).get("seconds"),
                "rpo_seconds": (r.get("rpo") or {}).get("seconds"),
                "duration_seconds": r.get("duration_seconds"),
                "violations": r.get("violations") or [],
            }
            for r in records
        ],
    }


def report_markdown(data: Mapping[str, Any]) -> str:
    def cell(seconds: float | None) -> str:
        return "-" if seconds is None else f"{_text(seconds)} ({seconds:.1f} s)"

    lines = [f"# Rollback drills: compliance report ({data['generated']})", "", "## Schedule", ""]
    lines += [
        "| Drill | Schedule | Last run | Result | Next due | Overdue |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["schedule"]:
        overdue = "**OVERDUE**" if row["overdue"] else "no"
        lines.append(
            f"| {row['drill']} | {row['schedule']} | {row['last_run'] or 'never'} | "
            f"{row['last_result']} | {row['next_due']} | {overdue} |"
        )
    lines += ["", "## RTO / RPO against the policy and the runbook", ""]
    lines += [
        "| Drill | Objective | Target | Latest | Worst | Met / runs | Trend |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["compliance"]:
        flag = "" if row["compliant"] or not row["binding"] else " **VIOLATED**"
        goal = " (goal)" if not row["binding"] else ""
        lines.append(
            f"| {row['drill']} | {row['objective']}{goal} | {cell(row['target_seconds'])} | "
            f"{cell(row['latest_seconds'])} | {cell(row['worst_seconds'])} | "
            f"{row['met']} / {row['runs']}{flag} | {row['trend']} |"
        )
    lines += ["", "## Runs", "", "| Run | Result | RTO | RPO | Duration |", "|---|---|---|---|---|"]
    for run in data["runs"]:
        lines.append(
            f"| {run['run_id']} | {run['result']} | {cell(run['rto_seconds'])} | "
            f"{cell(run['rpo_seconds'])} | {cell(run['duration_seconds'])} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# What a drill must not leave behind


def leftovers(instance: int, pidfiles: Iterable[Path] = ()) -> list[str]:
    """What is still there of rig ``instance`` (network namespaces, mounts, processes of its
    hosts) and of the drill (processes whose pid files it wrote)."""
    tag = "" if instance == 0 else str(instance)
    found = []
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [
            f"network namespace {p.name}" for p in netns.iterdir() if p.name.startswith(f"tr{tag}h")
        ]
    state = "/run/sre-rollback-testhosts" + (f"-{instance}" if instance else "")
    mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    found += [f"mount {line.split()[1]}" for line in mounts if line.split()[1].startswith(state)]
    marker = f"SRE_TESTHOSTS{tag}_HOST=".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes():
                found.append(f"process {proc.name} of a rig host")
        except OSError:
            continue
    for pidfile in pidfiles:
        pid = alive_pid(pidfile)
        if pid:
            found.append(f"process {pid} ({pidfile.name})")
    return found


def alive_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    stat = Path(f"/proc/{pid}/stat")
    try:
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        return None
    return pid


def stop_process(pidfile: Path, wait: float = 5.0) -> None:
    """Stop the process of ``pidfile`` (the drill's heartbeat): SIGTERM, then SIGKILL after
    ``wait`` seconds."""
    pid = alive_pid(pidfile)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while alive_pid(pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive_pid(pidfile):
        os.kill(pid, signal.SIGKILL)
