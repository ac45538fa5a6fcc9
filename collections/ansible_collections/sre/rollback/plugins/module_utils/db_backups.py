# GPL-3.0-or-later
"""Named database backups on disk: layout, manifests, checksums, retention, comparison.

A backup NAME is two files in the backup directory, both mode 0600:
``NAME.dump`` (PostgreSQL, ``pg_dump -Fc``) or ``NAME.sqlite3`` (SQLite online backup),
and ``NAME.manifest.json``, written last: a backup exists when its manifest does. The
manifest records what a restore is verified against (checksum and size of the data file,
tables with their row counts taken in the dump's own snapshot, migration revision,
sequences) and where the backup came from (server version, app release, environment).

Stdlib only: used by the modules on the hosts and by tests on the controller.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.hostio import sha256_file

SCHEMA = "sre.rollback/db-backup/1"
MANIFEST_SUFFIX = ".manifest.json"
DATA_SUFFIX = {"postgresql": ".dump", "sqlite": ".sqlite3"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KINDS = ("manual", "scheduled", "pre-rollback")


class BackupError(Exception):
    """A backup cannot be used or made; the message says why and what to do."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name or "") or name.endswith(MANIFEST_SUFFIX):
        raise BackupError(
            f"backup name {name!r} is not valid: use letters, digits, '.', '_' and '-' "
            "(up to 128 characters, starting with a letter or digit)"
        )
    return name


def manifest_path(backup_dir: str, name: str) -> str:
    return os.path.join(backup_dir, check_name(name) + MANIFEST_SUFFIX)


def data_path(backup_dir: str, name: str, engine: str) -> str:
    return os.path.join(backup_dir, check_name(name) + DATA_SUFFIX[engine])


def utc_stamp(epoch: float | None = None, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return time.strftime(fmt, time.gmtime(time.time() if epoch is None else epoch))


def write_private_json(path: str, data: Any, owner: tuple[int, int] | None = None) -> None:
    """Write JSON with mode 0600, fsynced, replacing `path` in one rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        if owner is not None:
            os.chown(tmp, *owner)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_manifest(backup_dir: str, name: str) -> dict[str, Any]:
    path = manifest_path(backup_dir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        known = [b["name"] for b in list_backups(backup_dir)]
        raise BackupError(
            f"backup {name!r} does not exist in {backup_dir} (no {os.path.basename(path)}); "
            f"known backups: {', '.join(known[-10:]) or 'none'}"
        ) from None
    except (OSError, ValueError) as error:
        raise BackupError(f"manifest {path} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise BackupError(f"{path} is not a backup manifest of sre.rollback ({SCHEMA})")
    return manifest


def list_backups(backup_dir: str) -> list[dict[str, Any]]:
    """Every complete backup (manifest and data file), oldest first, with its manifest
    summary. A data file without a manifest is an unfinished backup and is not listed."""
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return []
    found: list[dict[str, Any]] = []
    for entry in names:
        if not entry.endswith(MANIFEST_SUFFIX):
            continue
        name = entry[: -len(MANIFEST_SUFFIX)]
        try:
            manifest = read_manifest(backup_dir, name)
        except BackupError:
            continue
        data = os.path.join(backup_dir, str(manifest.get("file", "")))
        found.append(
            {
                "name": name,
                "created_at": manifest.get("created_at"),
                "epoch": manifest.get("epoch", 0),
                "kind": manifest.get("kind"),
                "revision": manifest.get("revision"),
                "environment": manifest.get("environment"),
                "release": manifest.get("release"),
                "size": manifest.get("size"),
                "engine": manifest.get("engine"),
                "database": manifest.get("database"),
                "present": os.path.isfile(data),
            }
        )
    found.sort(key=lambda b: (b["epoch"] or 0, b["name"]))
    return found


def verify_backup(backup_dir: str, name: str) -> dict[str, Any]:
    """The manifest of a backup whose data file is there, has the recorded size and checksum;
    BackupError (before anything is changed) otherwise."""
    manifest = read_manifest(backup_dir, name)
    data = os.path.join(backup_dir, str(manifest.get("file", "")))
    if not manifest.get("file") or not os.path.isfile(data):
        raise BackupError(f"backup {name!r}: its data file {data} is missing")
    size = os.path.getsize(data)
    if size != manifest.get("size"):
        raise BackupError(
            f"backup {name!r} is damaged: {data} has {size} bytes, the manifest says "
            f"{manifest.get('size')}"
        )
    actual = sha256_file(data)
    if actual != manifest.get("sha256"):
        raise BackupError(
            f"backup {name!r} is damaged: sha256 of {data} is {actual}, the manifest says "
            f"{manifest.get('sha256')}"
        )
    return manifest


def default_name(environment: str, taken: set[str], epoch: float | None = None) -> str:
    """`<env>-<YYYY-MM-DD>` (the runbook's `prod-2024-01-15`); the time is appended when a
    backup of that day exists already, so a second backup never replaces the first."""
    env = re.sub(r"[^A-Za-z0-9._-]", "_", environment or "db") or "db"
    day = f"{env}-{utc_stamp(epoch, '%Y-%m-%d')}"
    if day not in taken:
        return day
    return f"{env}-{utc_stamp(epoch, '%Y-%m-%d-%H%M%S')}"


def prune(backup_dir: str, keep: int, protect: set[str], kind: str | None = None) -> list[str]:
    """Delete the oldest backups beyond `keep` (never a protected one); their names. With
    `kind`, only backups of that kind count and go: rollbacks' pre-rollback backups never
    push the daily backups out."""
    backups = [b for b in list_backups(backup_dir) if kind is None or b["kind"] == kind]
    excess = len(backups) - keep
    removed: list[str] = []
    for backup in backups:
        if excess <= 0:
            break
        if backup["name"] in protect:
            continue
        manifest = read_manifest(backup_dir, backup["name"])
        # The manifest goes first: a backup without its manifest no longer exists.
        os.unlink(manifest_path(backup_dir, backup["name"]))
        data = os.path.join(backup_dir, str(manifest.get("file", "")))
        if manifest.get("file") and os.path.isfile(data):
            os.unlink(data)
        removed.append(backup["name"])
        excess -= 1
    return removed


def sequences_behind(sequences: dict[str, dict[str, Any]]) -> list[str]:
    """Sequences whose next value would collide with an existing row (last value < max)."""
    behind = []
    for name, seq in sorted(sequences.items()):
        top = seq.get("max")
        if top is None:
            continue
        last = seq.get("last_value")
        if last is None or int(last) < int(top):
            behind.append(
                f"sequence {name} is at {last} but {seq.get('table')}.{seq.get('column')} "
                f"has {top}: the next insert would collide"
            )
    return behind


def compare(facts: dict[str, Any], manifest: dict[str, Any], exact: bool) -> dict[str, Any]:
    """Compare a database's facts with a manifest.

    exact=True (a database just restored from that backup): same tables, same row counts,
    same revision. exact=False (a live database some time after the backup): tables of the
    manifest must still be there; counts are reported as deltas. Sequences must be at or
    above max(id) in both modes. Returns {ok, problems, deltas}.
    """
    problems: list[str] = []
    want: dict[str, int] = {k: int(v) for k, v in (manifest.get("tables") or {}).items()}
    have: dict[str, int] = {k: int(v) for k, v in (facts.get("tables") or {}).items()}
    missing = sorted(set(want) - set(have))
    if missing:
        problems.append(f"tables of the backup missing: {', '.join(missing)}")
    extra = sorted(set(have) - set(want))
    if exact and extra:
        problems.append(f"tables not in the backup: {', '.join(extra)}")
    deltas = {t: have[t] - want[t] for t in sorted(set(want) & set(have)) if have[t] != want[t]}
    if exact and deltas:
        problems.append(
            "row counts differ from the manifest: "
            + ", ".join(f"{t} {want[t]} -> {have[t]}" for t in deltas)
        )
    if exact and facts.get("revision") != manifest.get("revision"):
        problems.append(
            f"revision is {facts.get('revision')}, the manifest says {manifest.get('revision')}"
        )
    problems.extend(sequences_behind(facts.get("sequences") or {}))
    return {"ok": not problems, "problems": problems, "deltas": deltas}
