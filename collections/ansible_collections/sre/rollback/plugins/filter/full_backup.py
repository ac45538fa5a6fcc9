# GPL-3.0-or-later
"""Filters over full backup sets (level 5): which set and recovery a restore point names,
which sets retention removes, which pgBackRest backups may be expired with them.
The logic is module_utils ``full_backups`` (unit-tested there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.rollback.plugins.module_utils import full_backups as fb


def dr_restore_plan(sets: list[Mapping[str, Any]], point: str) -> dict[str, Any]:
    """``{set, db_type, db_target, why}`` for ``dr_restore_point``; a clear error otherwise."""
    try:
        return fb.resolve_restore_point(point, sets)
    except fb.SetError as error:
        raise AnsibleFilterError(str(error)) from None


def full_backup_retention(
    sets: list[Mapping[str, Any]], keep_last: int, keep_days: float, protect: Any = ()
) -> dict[str, list[str]]:
    return fb.retention(sets, int(keep_last), float(keep_days), protect=list(protect or ()))


def full_backup_pg_expire(sets: list[Mapping[str, Any]], delete: list[str], info: Any) -> list[str]:
    gone = [s for s in sets if str(s["id"]) in set(delete)]
    kept = [s for s in sets if str(s["id"]) not in set(delete)]
    return fb.pg_labels_to_expire(gone, kept, info)


def full_backup_pg_problem(info: Any, stanza: str, label: str = "") -> str:
    """Why the repository cannot restore ``label`` of ``stanza`` (empty string: it can)."""
    problem = fb.pg_stanza_problem(info, stanza)
    if problem:
        return problem
    if label and fb.pg_backup(info, label) is None:
        return f"pgBackRest backup {label} is not in the repository (expired or deleted)"
    return ""


def full_backup_parts(
    files: Mapping[str, list[str]],
    snapshots: list[Mapping[str, Any]],
    digests: list[Mapping[str, Any]],
    verified: bool,
) -> dict[str, Any]:
    """A host's parts for the manifest, from the role's registered restic backups (one per
    part, ``--json`` summary on the last line) and file_tree digests (one per directory)."""
    return fb.host_parts(files, snapshots, digests, verified)


def dr_preflight_problems(
    plan: Mapping[str, Any],
    app_hosts: list[str],
    db_host: str,
    snapshots: list[Mapping[str, Any]],
    checks: Mapping[str, Any],
    free: Mapping[str, Any],
    locks: Mapping[str, Any],
    factor: float = 1.2,
) -> list[str]:
    return fb.preflight_problems(
        plan,
        app_hosts,
        db_host,
        snapshots,
        checks,
        {h: int(v) for h, v in free.items()},
        {h: str(v or "") for h, v in locks.items()},
        float(factor),
    )


def dr_foreign_lock(lock: Any, run_id: str) -> str:
    """Who holds the application lock when it is another run ("" when free or ours)."""
    if not isinstance(lock, Mapping) or not lock or lock.get("run_id") == run_id:
        return ""
    holder = ", ".join(f"{k} {lock[k]}" for k in ("run_id", "user", "pid", "since") if lock.get(k))
    return holder or "unknown holder"


def full_backup_epoch(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (UTC without an offset)."""
    try:
        return fb.parse_time(str(text))
    except fb.SetError as error:
        raise AnsibleFilterError(str(error)) from None


def dr_host_result(files: Any, summary: Mapping[str, Any]) -> dict[str, Any]:
    """A host's level 5 result for the run record: the level's summary (set, RTO, RPO) and
    what ``dr_restore_files`` did with each of its parts."""
    parts = {}
    for result in (files or {}).get("results") or [] if isinstance(files, Mapping) else []:
        part = str((result.get("item") or {}).get("key"))
        parts[part] = {
            "done": "already there" if result.get("already") else "restored",
            "restored": result.get("restored") or [],
            "set_aside": result.get("set_aside") or {},
            "timings": result.get("timings") or {},
        }
    return {**summary, "parts": parts}


def dr_unfinished(entries: Any) -> list[Mapping[str, Any]]:
    """The journal entries of an unfinished level 5 run (fb.unfinished)."""
    return fb.unfinished(entries or [])


def iso_time(epoch: float) -> str:
    return fb.iso(float(epoch))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "dr_restore_plan": dr_restore_plan,
            "full_backup_retention": full_backup_retention,
            "full_backup_pg_expire": full_backup_pg_expire,
            "full_backup_pg_problem": full_backup_pg_problem,
            "full_backup_iso_time": iso_time,
            "full_backup_epoch": full_backup_epoch,
            "full_backup_parts": full_backup_parts,
            "dr_preflight_problems": dr_preflight_problems,
            "dr_foreign_lock": dr_foreign_lock,
            "dr_unfinished": dr_unfinished,
            "dr_host_result": dr_host_result,
        }
