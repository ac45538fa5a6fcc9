# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Full backup sets (level 5): what a set is made of, which sets retention keeps, and
which set and recovery target a restore point names.

A set is one run of ``playbooks/backup-full.yml``: per application host a restic snapshot
of each file part (tagged ``set=<id>``, ``part=<name>``), the release the host runs, and
one pgBackRest backup of the database with a named restore point taken while writes were
held, so the row counts in the manifest are exactly what a restore to the set gives.

Used by the ``file_tree`` and ``db_restore_point`` modules (on hosts: Python 3.11, stdlib
only) and by the ``full_backup`` filters (controller).
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.hostio import sha256_file

SET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESTORE_POINT_PREFIX = "sre-set-"
ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)


class SetError(ValueError):
    """A restore point or a set that cannot be used, said so that the user knows what to do."""


# ------------------------------------------------------------------------------ files
def tree_digest(root: str) -> dict[str, Any]:
    """Files, bytes and one sha256 over every entry below ``root`` (relative path, kind,
    mode, and the content's sha256 or the link's target), in path order: two trees with
    the same digest hold the same files with the same content and modes."""
    if not os.path.isdir(root):
        return {"exists": False, "files": 0, "bytes": 0, "sha256": None}
    outer = hashlib.sha256()
    files = size = 0
    entries: list[str] = []
    for top, dirs, names in os.walk(root):
        dirs.sort()
        for name in [*dirs, *names]:
            entries.append(os.path.relpath(os.path.join(top, name), root))
    for rel in sorted(entries):
        path = os.path.join(root, rel)
        info = os.lstat(path)
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            line = f"l {rel} {os.readlink(path)}"
        elif stat.S_ISDIR(info.st_mode):
            line = f"d {rel} {mode:o}"
        else:
            files += 1
            size += info.st_size
            line = f"f {rel} {mode:o} {sha256_file(path)}"
        outer.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return {"exists": True, "files": files, "bytes": size, "sha256": outer.hexdigest()}


def host_parts(
    files: Mapping[str, list[str]],
    snapshots: Iterable[Mapping[str, Any]],
    digests: Iterable[Mapping[str, Any]],
    verified: bool,
) -> dict[str, Any]:
    """Each part of a host: its restic snapshot (summary of ``restic backup --json``) and a
    digest per directory (a missing directory is recorded as missing, not backed up)."""
    summaries: dict[str, dict[str, Any]] = {}
    for result in snapshots:
        part = str(result["item"]["key"])
        lines = [line for line in result.get("stdout_lines") or [] if line.strip()]
        if lines and not result.get("skipped"):
            summaries[part] = json.loads(lines[-1])
    parts: dict[str, Any] = {}
    for part, paths in files.items():
        summary = summaries.get(part, {})
        trees = {
            str(d["item"][1]): {k: d.get(k) for k in ("exists", "files", "bytes", "sha256")}
            for d in digests
            if d["item"][0]["key"] == part
        }
        parts[part] = {
            "snapshot": summary.get("snapshot_id"),
            "paths": list(paths),
            "trees": trees,
            "files_new": summary.get("files_new"),
            "bytes_added": summary.get("data_added"),
            "bytes": summary.get("total_bytes_processed"),
            "seconds": summary.get("total_duration"),
            "verified": bool(verified and summary),
        }
    return parts


# ------------------------------------------------------------------------------ times
def parse_time(text: str) -> float:
    """Epoch seconds of an ISO 8601 time (UTC when it has no offset)."""
    m = ISO.match(text.strip())
    if not m:
        raise SetError(
            f"{text!r} is not an ISO 8601 time: give e.g. 2024-01-15T12:30:00Z "
            "(UTC when no offset is given)"
        )
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    fraction = float(f"0.{m.group(7)}") if m.group(7) else 0.0
    try:
        datetime.datetime(year, month, day, hour, minute, second)  # range checks
    except (ValueError, OverflowError):
        raise SetError(f"{text!r} is not a valid time") from None
    epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    offset = m.group(8)
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch + fraction


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def pg_time(epoch: float) -> str:
    """A recovery_target_time PostgreSQL reads the same whatever its time zone."""
    whole = int(epoch)
    micros = round((epoch - whole) * 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)) + f".{micros:06d}+00"


# ------------------------------------------------------------------------------ sets
def usable(sets: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Verified sets, oldest first."""
    return sorted((s for s in sets if s.get("verified")), key=lambda s: float(s["finished_epoch"]))


def resolve_restore_point(
    point: str, sets: Iterable[Mapping[str, Any]], now: float | None = None
) -> dict[str, Any]:
    """The set and the database recovery a restore point names.

    ``latest``: the newest verified set's files, the database to the end of the archived
    WAL. An ISO time: the newest verified set finished at or before it, the database to
    that time (PITR). A set id: that set, the database to the set's own restore point."""
    sets = list(sets)
    good = usable(sets)
    point = (point or "latest").strip()
    now = time.time() if now is None else now
    if point == "latest":
        if not good:
            raise SetError(_no_sets(sets))
        chosen = good[-1]
        return _plan(chosen, "default", None, "the newest verified set; WAL to its end")
    by_id = {str(s["id"]): s for s in sets}
    if point in by_id:
        chosen = by_id[point]
        if not chosen.get("verified"):
            raise SetError(
                f"backup set {point} was never verified ({chosen.get('problem') or 'no reason'}):"
                " choose another set (latest, or one of "
                f"{', '.join(str(s['id']) for s in good) or 'none'})"
            )
        name = RESTORE_POINT_PREFIX + point
        return _plan(chosen, "name", name, f"backup set {point} exactly (restore point {name})")
    if not ISO.match(point):
        raise SetError(
            f"dr_restore_point {point!r} is neither latest, an ISO 8601 time, nor a backup set"
            f" id (sets: {', '.join(by_id) or 'none'})"
        )
    target = parse_time(point)
    if target > now:
        raise SetError(f"dr_restore_point {point} is in the future: give a past time or latest")
    before = [s for s in good if float(s["finished_epoch"]) <= target]
    if not before:
        oldest = iso(float(good[0]["finished_epoch"])) if good else "none"
        raise SetError(
            f"no verified backup set finished at or before {point} (oldest: {oldest}): "
            "give a later time, or a set id"
        )
    chosen = before[-1]
    plan = _plan(chosen, "time", pg_time(target), f"the set before {point}; WAL replayed to it")
    plan["target_epoch"] = target
    return plan


def _plan(chosen: Mapping[str, Any], kind: str, target: str | None, why: str) -> dict[str, Any]:
    return {"set": dict(chosen), "db_type": kind, "db_target": target, "why": why}


def _no_sets(sets: list[Mapping[str, Any]]) -> str:
    if not sets:
        return "there is no full backup set: run playbooks/backup-full.yml first"
    return (
        "no full backup set was verified (newest: "
        f"{sets[-1].get('id')}, {sets[-1].get('problem') or 'not verified'}): "
        "fix the backup and run playbooks/backup-full.yml again"
    )


# ------------------------------------------------------------------------------ retention
def retention(
    sets: Iterable[Mapping[str, Any]],
    keep_last: int,
    keep_days: float,
    now: float | None = None,
    protect: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Which sets to keep and delete: the newest ``keep_last`` verified sets, every set
    younger than ``keep_days``, the sets in ``protect``, and always the newest verified set.
    Unverified sets older than the newest verified one go; newer ones stay (still in use)."""
    now = time.time() if now is None else now
    ordered = sorted(sets, key=lambda s: float(s["finished_epoch"]))
    good = [s for s in ordered if s.get("verified")]
    keep = {str(s["id"]) for s in good[-max(keep_last, 1) :]}
    keep |= {str(s["id"]) for s in ordered if now - float(s["finished_epoch"]) < keep_days * 86400}
    keep |= {str(p) for p in protect}
    if good:
        newest_good = float(good[-1]["finished_epoch"])
        keep |= {str(s["id"]) for s in ordered if float(s["finished_epoch"]) > newest_good}
    ids = [str(s["id"]) for s in ordered]
    return {"keep": [i for i in ids if i in keep], "delete": [i for i in ids if i not in keep]}


def pg_labels_to_expire(
    delete: Iterable[Mapping[str, Any]], keep: Iterable[Mapping[str, Any]], info: Any
) -> list[str]:
    """pgBackRest backups of deleted sets that no kept set still needs (a kept incremental's
    references name every backup it is built on)."""
    backups = _pg_backups(info)
    needed: set[str] = set()
    for kept in keep:
        label = str((kept.get("database") or {}).get("label") or "")
        needed.add(label)
        needed |= set(backups.get(label, {}).get("reference") or [])
    labels = [str((s.get("database") or {}).get("label") or "") for s in delete]
    return [label for label in labels if label and label in backups and label not in needed]


def _pg_backups(info: Any) -> dict[str, dict[str, Any]]:
    stanzas = info if isinstance(info, list) else []
    return {str(b["label"]): b for stanza in stanzas for b in stanza.get("backup") or []}


def pg_backup(info: Any, label: str) -> dict[str, Any] | None:
    """The backup ``label`` of pgBackRest's ``info --output=json``, or None."""
    return _pg_backups(info).get(label)


def pg_stanza_problem(info: Any, stanza: str) -> str | None:
    """Why pgBackRest's info says the stanza cannot be restored from, or None."""
    found = [s for s in (info if isinstance(info, list) else []) if s.get("name") == stanza]
    if not found:
        return f"pgBackRest has no stanza {stanza} in its repository"
    status = found[0].get("status") or {}
    if status.get("code", 0) != 0:
        return f"pgBackRest stanza {stanza}: {status.get('message') or 'error'}"
    return None


# ------------------------------------------------------------------------------ preflight
COMPLETED = "level"  # the journal entry a completed level 5 run ends with


def unfinished(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The journal entries a re-run may skip: those after the last completed run. A level 5
    that completed closes the journal, so a later level 5 (a new disaster, the same set and
    target) recovers again instead of trusting a recovery whose data may be damaged since."""
    entries = list(entries)
    closed = [n for n, entry in enumerate(entries) if entry.get("part") == COMPLETED]
    return entries[closed[-1] + 1 :] if closed else entries


def needed_bytes(the_set: Mapping[str, Any], host: str) -> int:
    """Bytes a restore puts on ``host``: its parts' trees, and the cluster on the db host."""
    total = 0
    for part in ((the_set.get("hosts") or {}).get(host) or {}).get("parts", {}).values():
        total += sum(int(t.get("bytes") or 0) for t in (part.get("trees") or {}).values())
    database = the_set.get("database") or {}
    if database.get("host") == host:
        total += int(database.get("size") or 0)
    return total


def preflight_problems(
    plan: Mapping[str, Any],
    app_hosts: Iterable[str],
    db_host: str,
    snapshots: Iterable[Mapping[str, Any]],
    checks: Mapping[str, Any],
    free: Mapping[str, int],
    locks: Mapping[str, str],
    factor: float = 1.2,
) -> list[str]:
    """Everything that stops level 5 before it changes anything, each said with what to do.

    ``checks``: ``restic`` and ``verify`` ({rc, err}), ``pg_info`` (pgBackRest's JSON),
    ``stanza``, ``pg_backup_present`` (the set's backup's manifest is in the repository),
    ``wal_newest`` (epoch of the newest archived WAL file, or None)."""
    the_set = plan["set"]
    problems: list[str] = []
    restic = checks.get("restic") or {}
    if restic.get("rc"):
        problems.append(
            f"restic check failed ({str(restic.get('err') or '').strip()[-300:]}): the file "
            "repository is damaged; repair it (restic rebuild-index / restic repair) or restore "
            "from another copy"
        )
    known = {str(s.get("short_id")) for s in snapshots} | {str(s.get("id")) for s in snapshots}
    hosts = the_set.get("hosts") or {}
    for host in app_hosts:
        if host not in hosts:
            problems.append(
                f"{host} is not in backup set {the_set['id']} (hosts: {', '.join(hosts)}): "
                "restore it from a set that has it, or leave it out with --limit"
            )
            continue
        for part, info in (hosts[host].get("parts") or {}).items():
            snap = info.get("snapshot")
            if snap and snap not in known:
                problems.append(
                    f"{host} {part}: restic snapshot {snap} of set {the_set['id']} is missing "
                    "from the repository: choose another set (dr_restore_point=<set id>)"
                )
    database = the_set.get("database") or {}
    if db_host and database:
        label = str(database.get("label") or "")
        problem = pg_stanza_problem(checks.get("pg_info"), str(checks.get("stanza")))
        if problem is None and pg_backup(checks.get("pg_info"), label) is None:
            problem = (
                f"pgBackRest backup {label} of set {the_set['id']} is not in the repository "
                "(expired or deleted): choose another set"
            )
        if problem is None and checks.get("pg_backup_present") is False:
            problem = (
                f"pgBackRest backup {label} of set {the_set['id']} is listed but its files are "
                "missing from the repository (no backup.manifest): choose another set, or put "
                "the backup's directory back"
            )
        if problem:
            problems.append(problem)
        verify = checks.get("verify") or {}
        if verify.get("rc"):
            problems.append(
                f"pgbackrest verify failed ({str(verify.get('err') or '').strip()[-300:]}): "
                "the database repository is damaged; choose another set or repair it"
            )
        if plan.get("db_type") == "time":
            target = float(plan["target_epoch"])
            newest = checks.get("wal_newest")
            if newest is None or float(newest) < target:
                when = iso(float(newest)) if newest is not None else "none"
                problems.append(
                    f"the restore point {iso(target)} is not covered by the archived WAL "
                    f"(newest archived WAL file: {when}): give an earlier time, or latest"
                )
    for host, avail in free.items():
        need = needed_bytes(the_set, host) * factor
        if avail < need:
            problems.append(
                f"{host}: {avail} bytes free on /, the restore needs {int(need)}: free space first"
            )
    for host, holder in locks.items():
        if holder:
            problems.append(
                f"{host} is locked by another run ({holder}): wait for it "
                "(rollbackctl status shows the holder)"
            )
    return problems
