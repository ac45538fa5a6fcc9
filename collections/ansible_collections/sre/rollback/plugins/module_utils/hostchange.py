# GPL-3.0-or-later
"""Small pieces every change on a host needs: the lock owner, atomic writes, JSON-line logs.

Used by the feature_flag, config_revision and release work (levels 1 to 3). The lock itself is
``applock`` (one per application, shared with deploy and every level).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils import applock


class ChangeError(Exception):
    """A failure with a message that tells the user what to do."""


class CheckMode:
    """Whether a call only plans (--check): what the steps of the release, config_revision
    and feature_flag work take from their caller (release_ops, config_ops, flag_ops)."""

    def __init__(self, check_mode: bool) -> None:
        self.check_mode = check_mode


# argument_spec options of the modules that take the application lock (documented by the
# sre.rollback.app_lock doc fragment).
LOCK_OPTIONS: dict[str, Any] = {
    "run_id": {"type": "str"},
    "user": {"type": "str"},
    "controller": {"type": "str"},
    "lock_root": {"type": "path"},
    "break_lock": {"type": "bool", "default": False},
}


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def refuse_if_locked(lock_root: str | None, run_id: str | None, break_stale: bool) -> None:
    """Fail before any change (check mode included) when another run holds the lock."""
    if not lock_root:
        return
    held = applock.read_owner(lock_root)
    if held and held.get("run_id") != run_id and not break_stale:
        raise ChangeError(
            f"{lock_root} is locked by {applock.describe(held)}. Wait for that run to finish; "
            "if it crashed, break its stale lock with rollback_break_lock=true. Nothing was "
            "changed."
        )


def take_lock(
    lock_root: str | None, run_id: str | None, owner: dict[str, Any], break_stale: bool
) -> bool:
    """Take the application lock when a lock root and a run id are given.

    Returns True when this call took it (the caller then drops it), False when there is no
    lock to take or this run already held it. Raises ChangeError naming the holder.
    """
    if not lock_root or not run_id:
        return False
    if not os.path.isdir(lock_root):
        raise ChangeError(
            f"lock root {lock_root} is not a directory on this host: set the application root "
            "(where deploys keep releases/ and .rollback.lock) or leave it empty for no lock"
        )
    outcome = applock.acquire(lock_root, owner, break_stale)
    if not outcome["acquired"]:
        raise ChangeError(outcome["msg"])
    return bool(outcome["changed"])


def write_atomic(
    path: str, data: bytes, mode: int, uid: int | None = None, gid: int | None = None
) -> None:
    """Write a file with one rename(2): readers see the old or the new content, never half."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if uid is not None or gid is not None:
            os.chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    sync_dir(directory)


def sync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: str, entries: Iterable[dict[str, Any]], mode: int = 0o640) -> None:
    """Append JSON lines under an exclusive flock, so concurrent writers never interleave."""
    lines = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    if not lines:
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o750, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, lines.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """The entries of a JSON-lines file; a damaged line is skipped, a missing file is empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
