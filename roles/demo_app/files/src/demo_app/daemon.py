"""Running without systemd: a daemon with a pidfile, and stop/status commands for it.

These back the `command` service manager on hosts without systemd:
    start:  bin/demo-app serve --daemon --pidfile /run/demo-app.pid --log-file F --config-dir D
    stop:   bin/demo-app stop --pidfile /run/demo-app.pid
    status: bin/demo-app status --pidfile /run/demo-app.pid  (0 running, 1 stale, 3 stopped)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

RUNNING, STALE, STOPPED = 0, 1, 3


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def is_running(pid: int) -> bool:
    """True when pid is a live (not zombie) demo-app process."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text(encoding="ascii", errors="replace")
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in {"Z", "X"} and b"demo-app" in cmdline


def write_pidfile(pidfile: Path, pid: int) -> None:
    temporary = pidfile.with_name(pidfile.name + ".tmp")
    temporary.write_text(f"{pid}\n", encoding="ascii")
    temporary.replace(pidfile)


def remove_pidfile(pidfile: Path, pid: int) -> None:
    if read_pid(pidfile) == pid:
        pidfile.unlink(missing_ok=True)


def daemonize(pidfile: Path, log_file: Path) -> bool:
    """Fork into the background; True in the daemon, False in the caller once the pidfile exists."""
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        _, wait_status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0:
            raise OSError("the daemon could not be started")
        return False
    os.setsid()
    grandchild = os.fork()
    if grandchild:
        write_pidfile(pidfile, grandchild)
        os._exit(0)
    os.chdir("/")
    with Path(os.devnull).open("rb") as null:
        os.dup2(null.fileno(), 0)
    with log_file.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    return True


def status(pidfile: Path) -> tuple[int, str]:
    pid = read_pid(pidfile)
    if pid is None:
        return STOPPED, "demo-app is not running"
    if is_running(pid):
        return RUNNING, f"demo-app is running (pid {pid})"
    return STALE, f"demo-app is not running, but {pidfile} names pid {pid}"


def stop(pidfile: Path, timeout: float) -> tuple[int, str]:
    """SIGTERM, wait up to timeout, then SIGKILL; stopping a stopped app is not an error."""
    pid = read_pid(pidfile)
    if pid is None or not is_running(pid):
        pidfile.unlink(missing_ok=True)
        return 0, "demo-app was not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = is_running(pid)
    if killed:
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return 0, f"demo-app stopped (pid {pid}{', killed after timeout' if killed else ''})"
