# GPL-3.0-or-later
"""A host-side call that notices its controller is gone, who holds a lock, and how each
call ended (the host's own journal).

What an operator can rely on after a cancel, a killed ``ansible-playbook`` or a partition:

* A one-call rollout (``release state=rolled_out``, ``config_revision`` with a service)
  watches its controller. Its JSON result goes to stdout, which over SSH is a pipe (or a
  socket) to sshd; when the controller's ssh goes away (Ansible stopped, its ssh client
  killed, sshd's ClientAlive probes unanswered), sshd closes the other end and
  ``poll(POLLOUT)`` on fd 1 reports POLLERR/POLLHUP. The call looks between its steps
  and during the health gate's polling:

  - gone before the switch: it changes nothing (``stopped before switch``);
  - gone after the switch, before the health gate passed: it puts back what the host had
    and restarts it (``switched back``), as it does for a failed gate, without marking
    the target bad (it was not proven bad);
  - once the gate has passed, the step stands (``completed``), controller or not.

  Either way it then drops the lock it holds. A restart in progress is finished first: a
  step is never cut in half.
* The lock records the host-side process that holds it (``holder``: pid, its start time
  and the boot id). Anyone but that process may drop or break the lock only once the
  holder is proven dead on the host (:func:`alive`): no lock is released under running
  work.
* Every rolled-out call appends how it ended to ``<app_root>/.rollback.calls.jsonl``
  before it drops the lock, so whoever finds the lock free can read what happened: the
  wrapper after a cancel or a killed ``ansible-playbook``, the next run, ``status``.

Stdlib only.
"""

from __future__ import annotations

import json
import os
import select
import stat
import time
from collections.abc import Mapping
from typing import Any

JOURNAL_NAME = ".rollback.calls.jsonl"
JOURNAL_MAX_BYTES = 256 * 1024  # then the older half is dropped
POLL_SLICE = 0.1
GONE_EVENTS = select.POLLERR | select.POLLHUP | select.POLLNVAL

STOPPED, SWITCHED_BACK, COMPLETED, UNCHANGED, FAILED = (
    "stopped before switch",
    "switched back",
    "completed",
    "unchanged",
    "failed",
)


class ControllerLost(Exception):
    """The controller went away; ``step`` is the step the call was about to do or in."""

    def __init__(self, step: str) -> None:
        super().__init__(f"the controller went away ({step})")
        self.step = step


def _is_channel(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class ControllerWatch:
    """Whether whoever reads this process's stdout is still there. Only a pipe or a socket
    is watched (a terminal, a file or /dev/null never says "gone")."""

    def __init__(self, fd: int | None = 1) -> None:
        self.fd = fd if fd is not None and _is_channel(fd) else None
        self.lost: str | None = None

    @property
    def watching(self) -> bool:
        return self.fd is not None

    def gone(self) -> bool:
        if self.lost is not None:
            return True
        if self.fd is None:
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        return any(events & GONE_EVENTS for _fd, events in poller.poll(0))

    def check(self, step: str) -> None:
        """Raise ControllerLost before ``step`` when the controller is gone."""
        if self.lost is None and self.gone():
            self.lost = step
        if self.lost is not None:
            raise ControllerLost(self.lost)

    def sleep(self, seconds: float, step: str = "health") -> None:
        """time.sleep that looks every POLL_SLICE (the health gate's pauses)."""
        end = time.monotonic() + seconds
        while True:
            self.check(step)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(POLL_SLICE, left))


NO_WATCH = ControllerWatch(None)


# --------------------------------------------------------------------------------------------
# Who holds a lock


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def this_process() -> dict[str, Any]:
    """The holder record of the calling process."""
    pid = os.getpid()
    return {"pid": pid, "start": _start_ticks(pid), "boot_id": _boot_id()}


def alive(holder: Mapping[str, Any] | None) -> bool:
    """Whether the holder process may still run: False only when it is proven dead (the
    host rebooted, no such pid, or the pid now belongs to a process started later)."""
    if not holder or not isinstance(holder.get("pid"), int):
        return False
    booted = _boot_id()
    if holder.get("boot_id") and booted and holder["boot_id"] != booted:
        return False
    if not os.path.exists("/proc/self/stat"):  # no /proc: the pid alone
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    start = _start_ticks(holder["pid"])
    if start is None:
        return False
    return holder.get("start") in (None, start)


def held_by_other_live_call(owner: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The holder of a lock when it is a live process other than this one, else None."""
    holder = (owner or {}).get("holder")
    if not isinstance(holder, Mapping) or holder.get("pid") == os.getpid():
        return None
    return dict(holder) if alive(holder) else None


def wait_for_holder(
    owner: Mapping[str, Any] | None, seconds: float, sleep: Any = time.sleep
) -> bool:
    """Wait up to ``seconds`` for a live holder to end; whether it is gone now."""
    end = time.monotonic() + seconds
    while held_by_other_live_call(owner) is not None:
        if time.monotonic() >= end:
            return False
        sleep(0.1)
    return True


# --------------------------------------------------------------------------------------------
# The host's journal of calls


def journal_path(root: str) -> str:
    return os.path.join(root, JOURNAL_NAME)


def journal(root: str, entry: Mapping[str, Any]) -> None:
    """Append one call's end (with time and pid) and sync it."""
    line = dict(entry)
    line.setdefault("time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    line.setdefault("pid", os.getpid())
    data = (json.dumps(line, sort_keys=True, default=str) + "\n").encode()
    path = journal_path(root)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > JOURNAL_MAX_BYTES:
        _trim(path)


def _trim(path: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.readlines()
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(lines[len(lines) // 2 :])
    os.replace(tmp, path)


def calls(root: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """The journal's entries (of one run when run_id is given), oldest first."""
    try:
        with open(journal_path(root), encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return []
    found = []
    for text in lines:
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict) and (run_id is None or entry.get("run_id") == run_id):
            found.append(entry)
    return found


def outcome_of(result: Mapping[str, Any]) -> str:
    """How a one-call rollout ended, from its result (``outcome`` when the call set it)."""
    if result.get("outcome"):
        return str(result["outcome"])
    if result.get("reverted"):
        return SWITCHED_BACK
    if result.get("cause"):
        return FAILED
    return COMPLETED if result.get("changed") else UNCHANGED


def journal_call(root: str, run_id: str, result: Mapping[str, Any], watch: ControllerWatch) -> None:
    """Journal how a one-call rollout ended; a journal that cannot be written is said in
    the result, never a reason to keep the lock."""
    msg = ". ".join(str(result[k]) for k in ("cause", "revert_msg") if result.get(k))
    entry = {
        "run_id": run_id,
        "outcome": outcome_of(result),
        "controller_lost": watch.lost,
        # Never switched: what it had is what it has.
        "before": (result.get("before") or result.get("current") or {}).get("release"),
        "target": result.get("release"),
        "current": (result.get("current") or {}).get("release"),
        "msg": msg[:500],
    }
    try:
        journal(root, entry)
    except OSError as error:
        if isinstance(result, dict):
            result["journal_error"] = str(error)
