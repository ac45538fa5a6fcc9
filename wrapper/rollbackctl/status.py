"""``rollbackctl status``: run the read-only ``playbooks/status.yml`` and show, per host, the
current release, the lock holder, the last rollback, and flags, configuration and
database revision where the inventory says where they are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from rollbackctl.project import Project
from rollbackctl.rollback import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, run_check
from rollbackctl.runner import PlaybookResult

STATUS_PLAYBOOK = "status.yml"


@dataclass
class HostStatus:
    host: str
    reachable: bool
    data: dict[str, Any] = field(default_factory=dict)
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "reachable": self.reachable,
            "problem": self.problem,
            **self.data,
        }


@dataclass
class StatusOutcome:
    exit_code: int
    hosts: list[HostStatus]
    note: str = ""


def run_status(
    project: Project, inventory: str, limit: str | None = None, hosts: str | None = None
) -> StatusOutcome:
    result = run_check(project, STATUS_PLAYBOOK, inventory, limit, hosts)
    return outcome_of(result)


def outcome_of(result: PlaybookResult) -> StatusOutcome:
    published = result.state.stats.get("rollback_status") or {}
    rows = []
    for host, phases in result.state.hosts.items():
        problems = [state for state in phases.values() if state.status in ("failed", "unreachable")]
        reachable = not any(state.status == "unreachable" for state in problems)
        data = published.get(host) if isinstance(published.get(host), Mapping) else {}
        problem = problems[0].msg if problems else ""
        rows.append(HostStatus(host, reachable, dict(data or {}), problem))
    if result.no_hosts or not rows:
        return StatusOutcome(EXIT_BAD_INPUT, rows, "no host matched (the `app` group, or --hosts)")
    bad = any(not row.reachable or row.problem or app_down(row) for row in rows)
    return StatusOutcome(EXIT_FAILED if bad else EXIT_OK, rows)


def app_down(row: HostStatus) -> bool:
    """The host answered, its application did not (release_health_url)."""
    return row.data.get("health") == "down"


def _health_text(data: Mapping[str, Any]) -> Text:
    health = data.get("health")
    if health is None:
        return Text("-")
    return Text(str(health), "green" if health == "ok" else "bold red")


def _lock_text(lock: Any) -> Text:
    if not isinstance(lock, Mapping):
        return Text("free", "green")
    return Text(f"{lock.get('run_id', '?')} ({lock.get('user', '?')})", "yellow")


def _rollback_text(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return "none"
    return f"{entry.get('time', '?')} {entry.get('tag', '?')}"


def _flags_text(flags: Any) -> str:
    if not isinstance(flags, Mapping):
        return "-"
    return ", ".join(f"{name}={state}" for name, state in sorted(flags.items())) or "none"


def _config_text(config: Any) -> str:
    if not isinstance(config, Mapping) or not config.get("sha256"):
        return "-"
    return f"sha256:{str(config['sha256'])[:8]}"


def _db_text(data: Mapping[str, Any]) -> str:
    if data.get("db_error"):
        return f"error: {data['db_error']}"
    return str(data.get("db_revision") or "-")


def status_table(outcome: StatusOutcome) -> Table:
    table = Table(title="Rollback status", title_justify="left", show_edge=False)
    columns = (
        "host",
        "release",
        "health",
        "lock",
        "last rollback",
        "flags",
        "config",
        "db revision",
    )
    for column in columns:
        table.add_column(column)
    for row in outcome.hosts:
        if not row.reachable or (row.problem and not row.data):
            table.add_row(row.host, Text("unreachable" if not row.reachable else "failed", "red"))
            continue
        data = row.data
        table.add_row(
            row.host,
            str(data.get("tag") or data.get("release") or "none"),
            _health_text(data),
            _lock_text(data.get("lock")),
            _rollback_text(data.get("last_rollback")),
            _flags_text(data.get("flags")),
            _config_text(data.get("config")),
            _db_text(data),
        )
    return table


def problems(outcome: StatusOutcome) -> list[str]:
    lines = [f"{row.host}: {row.problem}" for row in outcome.hosts if row.problem]
    return lines + [
        f"{row.host}: the application is down at {row.data.get('health_url')}: "
        f"{row.data.get('health_msg') or 'no answer'}"
        for row in outcome.hosts
        if app_down(row) and not row.problem
    ]
