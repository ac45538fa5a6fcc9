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
            "full_backup_parts": full_backup_parts,
        }
