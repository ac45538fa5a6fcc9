"""``rollbackctl validate``: run the read-only ``playbooks/validate.yml`` (the runbook's
system:validate) and show, per host, the release and whether it matches the others, the
health check, the configuration check and the database validation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from rollbackctl.project import Project
from rollbackctl.rollback import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, run_check
from rollbackctl.runner import PlaybookResult

VALIDATE_PLAYBOOK = "validate.yml"

APP_PHASES = frozenset({"releases", "health", "config"})
STYLES = {
    "ok": "green",
    "failed": "red",
    "unreachable": "red",
    "skipped": "dim",
    "not run": "yellow",
}


@dataclass
class HostValidation:
    host: str
    reachable: bool
    release: str | None = None
    release_ok: bool | None = None
    health: str = "not run"
    config: str = "not run"
    database: str = "skipped"
    problems: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return (
            self.reachable
            and not self.problems
            and self.release_ok is not False
            and self.health == "ok"
            and self.config in ("ok", "skipped")
            and self.database in ("ok", "skipped")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "reachable": self.reachable,
            "valid": self.valid,
            "release": self.release,
            "release_consistent": self.release_ok,
            "health": self.health,
            "config": self.config,
            "database": self.database,
            "problems": self.problems,
            "details": self.data,
        }


@dataclass
class ValidateOutcome:
    exit_code: int
    hosts: list[HostValidation]
    release: str | None = None
    database: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.exit_code == EXIT_OK,
            "release": self.release,
            "database": self.database,
            "hosts": [row.as_dict() for row in self.hosts],
            "note": self.note,
        }


def run_validate(
    project: Project, inventory: str, limit: str | None = None, hosts: str | None = None
) -> ValidateOutcome:
    result = run_check(project, VALIDATE_PLAYBOOK, inventory, limit, hosts)
    return validate_outcome(result)


def _database(stats: Mapping[str, Any], enabled: bool, db_failed: list[str]) -> dict[str, Any]:
    """The database validation: skipped, or ok/failed from validate-db's own report."""
    if not enabled:
        return {"status": "skipped"}
    reports = stats.get("database_validate_results")
    if not isinstance(reports, Mapping) or not reports:
        return {"status": "failed" if db_failed else "not run", "hosts": db_failed}
    failed = sorted(
        host
        for host, report in reports.items()
        if not (isinstance(report, Mapping) and report.get("validation", {}).get("ok"))
    )
    checks = {
        host: [
            failed_check(check)
            for check in report.get("validation", {}).get("checks", [])
            if isinstance(check, Mapping) and not _true(check.get("ok"))
        ]
        for host, report in reports.items()
        if isinstance(report, Mapping)
    }
    return {
        "status": "failed" if failed or db_failed else "ok",
        "hosts": sorted(set(failed) | set(db_failed)),
        "failed_checks": {host: names for host, names in checks.items() if names},
    }


def _true(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def failed_check(check: Mapping[str, Any]) -> dict[str, Any]:
    """A failed database check with its values: what was expected, what was found, and the
    check's own words."""
    return {
        "name": str(check.get("name")),
        "expected": check.get("expected"),
        "found": check.get("found"),
        "detail": str(check.get("detail") or "").strip(),
    }


def check_text(check: Mapping[str, Any]) -> str:
    """``revision: expected ..., found ... (detail)``, or the detail alone."""
    text = f"{check.get('name')}: "
    if check.get("expected") is not None and check.get("found") is not None:
        text += f"expected {check['expected']}, found {check['found']}"
        detail = check.get("detail")
        return text + (f" ({detail})" if detail and detail != check["found"] else "")
    return text + str(check.get("detail") or "failed")


def validate_outcome(result: PlaybookResult) -> ValidateOutcome:
    published = result.state.stats.get("validation_results") or {}
    summaries: Mapping[str, Any] = published if isinstance(published, Mapping) else {}
    database_stats = result.state.stats.get("validation_database")
    enabled = isinstance(database_stats, Mapping) and str(
        database_stats.get("enabled")
    ).lower() in ("true", "1", "yes")
    rows: list[HostValidation] = []
    db_failed: list[str] = []
    for host, phases in result.state.hosts.items():
        bad = [(name, s) for name, s in phases.items() if s.status in ("failed", "unreachable")]
        data = summaries.get(host)
        if not isinstance(data, Mapping) and not APP_PHASES & set(phases):
            if bad:
                db_failed.append(host)  # a database host that is not an app host
            continue
        row = HostValidation(
            host,
            reachable=not any(s.status == "unreachable" for _, s in bad),
            data=dict(data or {}),
        )
        # With a summary, the wrapper judges the releases itself (the run_once check fails
        # on whichever host ran it, not on the host that differs).
        row.problems = [
            s.msg or f"{name} failed" for name, s in bad if not (data and name == "releases")
        ]
        if data:
            row.release = str(data.get("tag") or data.get("release") or "none")
            row.health = str(data.get("health") or "not run")
            row.config = str(data.get("config") or "not run")
        elif not row.reachable:
            row.health = row.config = "unreachable"
        rows.append(row)
    if result.no_hosts or not rows:
        return ValidateOutcome(
            EXIT_BAD_INPUT, rows, note="no host matched (the `app` group, or --hosts)"
        )
    known = [row.release for row in rows if row.release is not None]
    common = Counter(known).most_common(1)[0][0] if known else None
    for row in rows:
        if row.release is not None:
            row.release_ok = row.release == common
    database = _database(result.state.stats, enabled, db_failed)
    for row in rows:
        row.database = str(database["status"])
    differ = [row.host for row in rows if row.release_ok is False]
    note = f"releases differ: {', '.join(differ)} not on {common}" if differ else ""
    valid = all(row.valid for row in rows) and result.rc == 0
    return ValidateOutcome(EXIT_OK if valid else EXIT_FAILED, rows, common, database, note)


def _status(value: str) -> Text:
    return Text(value, STYLES.get(value, ""))


def validate_table(outcome: ValidateOutcome) -> Table:
    table = Table(title="System validation", title_justify="left", show_edge=False)
    for column in ("host", "release", "health", "config", "database", "result"):
        table.add_column(column)
    for row in outcome.hosts:
        if not row.reachable:
            release = Text("unreachable", "red")
        elif row.release is None:
            release = Text("-")
        else:
            release = Text(row.release, "" if row.release_ok else "red")
            if row.release_ok is False:
                release.append(" (differs)", "red")
        table.add_row(
            row.host,
            release,
            _status(row.health),
            _status(row.config),
            _status(row.database),
            Text("valid", "green") if row.valid else Text("INVALID", "bold red"),
        )
    return table


def problems(outcome: ValidateOutcome) -> list[str]:
    lines = [f"{row.host}: {problem}" for row in outcome.hosts for problem in row.problems]
    failed_checks = outcome.database.get("failed_checks") or {}
    lines += [
        f"database on {host}: {check_text(check)}"
        for host, checks in failed_checks.items()
        for check in checks
    ]
    return lines
