# GPL-3.0-or-later
"""One lock per application on a host, shared by deploy and every rollback level.

The lock is a file created with O_EXCL that records its owner (user, controller host,
pid, run id, time). A second run fails fast naming the owner; a stale lock is broken only
when asked explicitly; the owner's own run may take it again: re-entrant for the same run id
from the same controller process only, so two runs that were given the same run id (an AWX
relaunch with the same extra vars, a copied command line) still exclude each other.
A lock taken by a call that drops it itself records that host-side process as its holder:
while the holder lives, nobody else drops or breaks it (module_utils controller_watch).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils import controller_watch

LOCK_NAME = ".rollback.lock"


def lock_path(app_root: str) -> str:
    return os.path.join(app_root, LOCK_NAME)


def read_owner(app_root: str) -> dict[str, Any] | None:
    try:
        with open(lock_path(app_root), encoding="utf-8") as handle:
            owner = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        return {"run_id": "?", "damaged": True}
    return owner if isinstance(owner, dict) else {"run_id": "?", "damaged": True}


def owner(run_id: str, user: str | None, controller: str | None, action: str) -> dict[str, Any]:
    """The owner record written into the lock; ``controller`` is ``host:pid`` of the
    ansible-playbook process that runs the level (plugin_utils/run_identity.py)."""
    host, _sep, pid = (controller or "?").partition(":")
    return {
        "run_id": run_id,
        "user": user or "?",
        "host": host,
        "pid": pid or "?",
        "action": action,
    }


def same_run(held: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether the lock is held by this very run: the same run id and, where both know it,
    the same controller process."""
    if held.get("run_id") != owner.get("run_id"):
        return False
    known = [o for o in (held, owner) if o.get("pid") not in (None, "", "?")]
    if len(known) < 2:
        return True
    return (held.get("host"), str(held.get("pid"))) == (owner.get("host"), str(owner.get("pid")))


def describe(owner: dict[str, Any]) -> str:
    age = ""
    if isinstance(owner.get("epoch"), (int, float)):
        age = f", {int(time.time() - owner['epoch'])} s ago"
    return (
        f"run {owner.get('run_id', '?')} by {owner.get('user', '?')}@{owner.get('host', '?')} "
        f"(pid {owner.get('pid', '?')}, {owner.get('action', '?')}) since "
        f"{owner.get('time', '?')}{age}"
    )


def _refused(owner: dict[str, Any] | None, msg: str, broken: Any = None) -> dict[str, Any]:
    """acquire()'s answer when the lock is not taken: who holds it and what to do."""
    return {"acquired": False, "changed": False, "owner": owner, "broken": broken, "msg": msg}


def acquire(
    app_root: str, owner: dict[str, Any], break_stale: bool = False, call_holds: bool = False
) -> dict[str, Any]:
    """Take the lock. Returns {acquired, changed, owner, broken, msg}. With call_holds, the
    calling process holds it until it drops it itself (a one-call rollout): it is recorded
    as the ``holder``, and nobody else drops or breaks the lock while it lives."""
    record = dict(owner)
    if call_holds:
        record["holder"] = controller_watch.this_process()
    record["epoch"] = time.time()
    record["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = lock_path(app_root)
    broken = None
    for _attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            held = read_owner(app_root) or {}
            if same_run(held, owner):
                return {"acquired": True, "changed": False, "owner": held, "broken": None}
            if held.get("run_id") == owner.get("run_id") and not break_stale:
                return _refused(
                    held,
                    f"{app_root} is locked by {describe(held)}: another process runs "
                    f"with the same run id ({owner.get('host', '?')}, pid "
                    f"{owner.get('pid', '?')} here). Every run needs a run id of its own: "
                    "leave rollback_run_id unset (one is made per run) or give a new one.",
                )
            if not break_stale:
                return _refused(
                    held,
                    f"{app_root} is locked by {describe(held)}. Wait for that run to "
                    "finish; if it crashed, run again with the lock-break flag "
                    "(rollback_break_lock=true) to break the stale lock.",
                )
            busy = controller_watch.held_by_other_live_call(held)
            if busy:
                return _refused(
                    held,
                    f"{app_root} is locked by {describe(held)}, and its call still runs "
                    f"on this host (pid {busy['pid']}): not broken. It drops the lock itself "
                    "when it ends.",
                )
            broken = held
            os.unlink(path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        return {"acquired": True, "changed": True, "owner": record, "broken": broken}
    return _refused(
        read_owner(app_root),
        f"{path} was re-created while breaking it: another run is starting now",
        broken=broken,
    )


def release(app_root: str, run_id: str) -> dict[str, Any]:
    """Drop the lock if this run holds it. Never drops another run's lock."""
    held = read_owner(app_root)
    if held is None:
        return {"released": False, "changed": False, "owner": None}
    if held.get("run_id") != run_id:
        return {
            "released": False,
            "changed": False,
            "owner": held,
            "msg": f"lock is held by {describe(held)}, not by run {run_id}: left in place",
        }
    busy = controller_watch.held_by_other_live_call(held)
    if busy:
        # Released under running work is what must never happen: the call that holds it
        # drops it itself when it has finished or undone its step.
        return {
            "released": False,
            "changed": False,
            "owner": held,
            "busy": busy,
            "msg": f"a call of run {run_id} still runs on this host (pid {busy['pid']}) and "
            "holds the lock: left in place",
        }
    os.unlink(lock_path(app_root))
    return {"released": True, "changed": True, "owner": held}
