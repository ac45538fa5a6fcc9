"""``rollbackctl releases``: per host the current release and every release its release log
knows, with the state (good, bad, suspect) and who set it, why, in which run, read through
the read-only ``playbooks/status.yml`` (``sre.rollback.release state=inspect``).
``rollbackctl releases mark``: record a release good or bad on the hosts through
``playbooks/mark-release.yml`` (``sre.rollback.release state=marked``), with a run record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from ansible_collections.sre.rollback.plugins.plugin_utils import run_identity
from rollbackctl.project import Project, records_dir
from rollbackctl.rollback import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    BadInput,
    project_playbook,
)
from rollbackctl.runner import PlaybookRequest, run_playbook, stats_data
from rollbackctl.status import StatusOutcome

MARK_PLAYBOOK = "mark-release.yml"
MARKS = ("good", "bad")
STATE_STYLES = {"current": "bold green", "good": "green", "bad": "bold red", "suspect": "yellow"}


@dataclass
class ReleaseRow:
    """One release one host knows."""

    host: str
    release: str
    tag: str
    state: str
    current: bool
    time: str = ""
    reason: str = ""
    run_id: str = ""
    user: str = ""
    on_disk: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def release_rows(outcome: StatusOutcome) -> list[ReleaseRow]:
    """Every release of every host that answered, the current one first, then newest
    first by the time of its state."""
    rows: list[ReleaseRow] = []
    for host in outcome.hosts:
        known = host.data.get("releases")
        if not isinstance(known, Mapping):
            continue
        current = str(host.data.get("release") or "")
        mine = [_row(host.host, rid, entry, rid == current) for rid, entry in known.items()]
        mine.sort(key=lambda row: row.time, reverse=True)
        mine.sort(key=lambda row: not row.current)
        rows += mine
    return rows


def _row(host: str, release: str, entry: Any, current: bool) -> ReleaseRow:
    entry = entry if isinstance(entry, Mapping) else {}
    return ReleaseRow(
        host=host,
        release=release,
        tag=str(entry.get("tag") or ""),
        state=str(entry.get("state") or "?"),
        current=current,
        time=str(entry.get("time") or ""),
        reason=str(entry.get("reason") or ""),
        run_id=str(entry.get("run_id") or ""),
        user=str(entry.get("user") or ""),
        on_disk=bool(entry.get("on_disk", True)),
    )


def _name(row: ReleaseRow) -> Text:
    name = Text(row.tag or row.release)
    if row.current:
        name.append(" (current)", "bold")
    if not row.on_disk:
        name.append(" (not on disk)", "dim")
    return name


def release_line(row: ReleaseRow) -> str:
    """One complete line per host and release, for logs (no table cut to their width)."""
    said = [f"{row.host} {_name(row).plain} {row.state}"]
    said += [f"{what} {value}" for what, value in _marked(row) if value]
    return "  ".join(said)


def _marked(row: ReleaseRow) -> list[tuple[str, str]]:
    return [("since", row.time), ("by", row.user), ("run", row.run_id), ("reason", row.reason)]


def releases_table(rows: list[ReleaseRow]) -> Table:
    table = Table(title="Releases per host", title_justify="left", show_edge=False)
    for column in ("host", "release", "state", "since", "by", "run", "reason"):
        table.add_column(column)
    for row in rows:
        state = Text(row.state, STATE_STYLES.get(row.state, ""))
        table.add_row(row.host, _name(row), state, *(value for _what, value in _marked(row)))
    return table


# --------------------------------------------------------------------------------------------
# Marking


@dataclass
class MarkOutcome:
    exit_code: int
    run_id: str
    record_path: Path
    hosts: dict[str, dict[str, Any]]
    problems: list[str]

    def lines(self, release: str, mark: str) -> list[str]:
        """What each host recorded, then what went wrong, then the state in words."""
        lines = [
            f"{host}: {data.get('release')} {data.get('before')} -> {data.get('after')}"
            + ("" if data.get("changed") else " (already)")
            for host, data in sorted(self.hosts.items())
        ]
        lines += self.problems
        if self.exit_code == EXIT_OK:
            lines.append(
                f"{release} is marked {mark} on {len(self.hosts)} host(s) (run {self.run_id})."
            )
        return lines


def mark_release(
    project: Project,
    inventory: str,
    release: str,
    mark: str,
    reason: str,
    artifacts: Path,
    limit: str | None = None,
    hosts: str | None = None,
) -> MarkOutcome:
    """Record ``release`` (id or tag) as ``mark`` on the hosts, with who, why and the run
    id in each host's release log; the run leaves a run record like a level does."""
    if mark not in MARKS:
        raise BadInput(f"mark must be one of {', '.join(MARKS)}, not {mark!r}")
    if not release.strip() or not reason.strip():
        raise BadInput("give the release (id or tag) and --reason (why, for the release log)")
    playbook = project_playbook(project, MARK_PLAYBOOK, inventory)
    run_id = run_identity.new_run_id("mark")
    extravars = {
        "mark_release": release,
        "mark_state": mark,
        "mark_reason": reason,
        "rollback_run_id": run_id,
        "rollback_reason": reason,
        "rollback_user": run_identity.real_user(),
        **({"rollback_hosts": hosts} if hosts else {}),
    }
    request = PlaybookRequest(
        project=project,
        playbook=playbook,
        inventory=inventory,
        run_id=run_id,
        record_dir=records_dir(artifacts),
        artifacts_dir=artifacts / "rollbackctl",
        extravars=extravars,
        limit=limit,
    )
    result = run_playbook(request)
    marked = stats_data(result, "mark_results")
    recorded = dict(marked) if isinstance(marked, Mapping) else {}
    problems = [
        f"{host}: {state.status}: {state.msg}"
        for host, phases in sorted(result.state.hosts.items())
        for state in phases.values()
        if state.status in ("failed", "unreachable")
    ]
    if result.no_hosts:
        code = EXIT_BAD_INPUT
        problems.append("no host matched (the `app` group, or --hosts): nothing was marked")
    elif result.rc != 0 or problems:
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    return MarkOutcome(code, run_id, result.record_path, recorded, problems)
