"""Run records on disk: find and load them; add to them through their owner.

The records have one writer, the collection's plugin_utils ``run_records`` (the
``sre.rollback.run_record`` callback writes what Ansible saw); the wrapper adds what only
it knows (messages sent, validation, escalation, hosts settled after a cancel, trigger
timings) with ``add`` (that module's ``add``), the one API for it. Their schema:
plugin_utils/run_record.schema.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils import run_records
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import Redactor
from rollbackctl.progress import RunState

LATEST = "latest.json"

add = run_records.add
"""The one API to add to a record (and write it): ``add(path, record, redactor, *,
notes=(), **sections)`` (plugin_utils run_records.add)."""


class RecordNotFound(Exception):
    """No such run record; the message says where it looked."""


def record_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        path
        for path in directory.glob("*.json")
        if path.name != LATEST and not path.is_symlink() and path.is_file()
    ]


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RecordNotFound(f"{path}: not a readable run record ({error})") from None
    if not isinstance(data, dict):
        raise RecordNotFound(f"{path}: not a run record")
    return data


def save(path: Path, record: dict[str, Any], redactor: Redactor | None = None) -> None:
    """Write the record as it is (derived sections recomputed, secrets masked): ``add``
    with no section."""
    add(path, record, redactor)


def find(directory: Path, run_id: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The record of ``run_id`` (a unique prefix will do), else the latest rollback run."""
    files = record_files(directory)
    if not files:
        raise RecordNotFound(f"no run records in {directory}")
    if run_id:
        return _by_id(directory, files, run_id)
    records = [(path, _quiet_load(path)) for path in files]
    rollbacks = [(p, r) for p, r in records if r and r.get("level") is not None]
    candidates = rollbacks or [(p, r) for p, r in records if r]
    if not candidates:
        raise RecordNotFound(f"no readable run record in {directory}")
    path, record = max(
        candidates, key=lambda item: (str(item[1].get("started") or ""), item[0].stat().st_mtime)
    )
    return path, record


def _by_id(directory: Path, files: list[Path], run_id: str) -> tuple[Path, dict[str, Any]]:
    exact = directory / f"{run_id}.json"
    if exact in files:
        return exact, load(exact)
    matches = [path for path in files if path.stem.startswith(run_id)]
    if len(matches) == 1:
        return matches[0], load(matches[0])
    if matches:
        names = ", ".join(sorted(path.stem for path in matches)[:10])
        raise RecordNotFound(f"run id {run_id!r} is ambiguous in {directory}: {names}")
    raise RecordNotFound(f"no run record {run_id!r} in {directory}")


def _quiet_load(path: Path) -> dict[str, Any] | None:
    try:
        return load(path)
    except RecordNotFound:
        return None


def fallback(
    run_id: str, playbook: Path, level: int | None, state: RunState, status: str, note: str
) -> dict[str, Any]:
    """The record of a run the callback left none of (ansible-playbook did not start, or
    was killed before its first write): the callback's first lines (run_records.new_record),
    with the hosts and phases the live view saw, its status and why."""
    record = run_records.new_record(playbook.name, level, run_id)
    record.update(finished=record["started"], status=status, notes=[note])
    record["hosts"] = {
        host: {
            "status": "failed"
            if any(p.status in ("failed", "unreachable") for p in phases.values())
            else "ok",
            "phases": {
                name: {
                    "status": phase.status,
                    "duration": round(phase.seconds, 3),
                    "tasks": phase.tasks,
                }
                for name, phase in phases.items()
            },
        }
        for host, phases in state.hosts.items()
    }
    return record


# After a kill, how a host's call ended by its journal, as a host status of the record.
KILLED_HOST_STATUS = {
    "completed": "ok",
    "unchanged": "ok",
    "not started": "ok",
    "switched back": "failed",
    "failed": "failed",
    "stopped before switch": "canceled",
}


def settled(
    record: dict[str, Any],
    ends: Mapping[str, Mapping[str, Any]],
    in_flight: Mapping[str, str],
    killed: bool,
) -> dict[str, Any]:
    """Add what each host said after a cancel or a kill (``hosts.<host>.end``: outcome,
    current release, lock, detail). After a kill the callback never saw the results of the
    hosts in flight: their status is what their journal says, else ``unknown``, and never
    what the record last claimed."""
    hosts: dict[str, Any] = record.setdefault("hosts", {})
    for host, end in ends.items():
        hosts.setdefault(host, {"status": "ok", "phases": {}})["end"] = dict(end)
    if not killed:
        return hosts
    for host, phase in in_flight.items():
        host_rec = hosts.setdefault(host, {"status": "ok", "phases": {}})
        outcome = str((ends.get(host) or {}).get("outcome") or "unknown")
        status = KILLED_HOST_STATUS.get(outcome, "unknown")
        said = f"its journal says: {outcome}" if status != "unknown" else "its outcome is unknown"
        msg = f"ansible-playbook was killed during {phase}: no result came back; {said}"
        host_rec.update(status=status, failed_phase=phase, msg=msg)
        host_rec.setdefault("phases", {}).setdefault(phase, {"tasks": 0}).update(
            status="unknown", msg=msg
        )
    return hosts
