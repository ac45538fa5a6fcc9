# GPL-3.0-or-later
"""Who and what a run is, on the controller: its run id, the real user, the controller
process. One definition for the run record callback, the roles (through the
``sre.rollback.run_identity`` lookup) and the ``rollbackctl`` wrapper.

A run id is unique per run from every entry point: a UTC time for people to read and 48
random bits, so two runs started in the same second never share one (they did when the id
was the time and a random number seeded by the host list). The callback makes it once per
``ansible-playbook`` run and hands it to every play as ``sre_rollback_run_id``; the lookup
falls back to a new id when the callback is not enabled.
"""

from __future__ import annotations

import getpass
import multiprocessing
import os
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any

# The play variable the run record callback sets to the run's id (extra vars win over it).
PLAY_VAR = "sre_rollback_run_id"
# Without the callback: the id made in this process (a task's worker), so that the facts one
# run_once set_fact templates (run id, user, controller) name the same run. Keyed by pid: a
# forked worker must not inherit its parent's.
_MADE: dict[int, str] = {}


def new_run_id(label: str = "") -> str:
    """A new run id: ``20261206T021142Z[-label]-<12 hex>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return "-".join(part for part in (stamp, label, secrets.token_hex(6)) if part)


def real_user(
    variables: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The person behind the run: the operator's ``rollback_user``, then AWX's user, then the
    user who ran sudo, then the login user (``$USER`` can be unset or stale under sudo, cron
    and AWX)."""
    variables = variables or {}
    env = os.environ if env is None else env
    for name in ("rollback_user", "awx_user_name", "tower_user_name"):
        value = str(variables.get(name) or "").strip()
        if value:
            return value
    sudo_user = str(env.get("SUDO_USER") or "").strip()
    if sudo_user and sudo_user != "root":
        return sudo_user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def controller_process() -> str:
    """``host:pid`` of the ansible-playbook process that runs the plays (a task's worker is
    its forked child), the lock's proof of which process holds it."""
    pid = os.getppid() if multiprocessing.parent_process() is not None else os.getpid()
    return f"{socket.gethostname()}:{pid}"


def run_identity(variables: Mapping[str, Any], run_id: str = "") -> dict[str, Any]:
    """The run's identity for a role: the role's own run id if given, else the operator's
    ``rollback_run_id``, else the callback's, else a new one."""
    chosen = next(
        (
            str(value).strip()
            for value in (run_id, variables.get("rollback_run_id"), variables.get(PLAY_VAR))
            if str(value or "").strip()
        ),
        "",
    )
    return {
        "run_id": chosen or _MADE.setdefault(os.getpid(), new_run_id()),
        "user": real_user(variables),
        "controller": controller_process(),
        "started": time.time(),
    }
