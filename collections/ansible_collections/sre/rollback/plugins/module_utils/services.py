# GPL-3.0-or-later
"""Restart the application from inside a module, as the ``sre.rollback.service`` role does.

The ``release`` module's one-call rollout (``state=rolled_out``) restarts the service
between the switch and the health gate without a task round trip. The semantics are the
role's for ``service_state=restarted``:

- ``systemd``: ``systemctl restart <name>`` (systemd's own start and stop timeouts bound it).
- ``command``: when the status command exits 0 (the application runs), run the stop
  command; then run the start command. Each command runs through ``sh -c`` under a
  timeout; a stop or start that fails or times out fails the restart, naming the command.

Stdlib only. Output goes to a temporary file, not a pipe, so a start command whose
daemon keeps its inherited descriptors open cannot hang the module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from typing import Any

MANAGERS = ("systemd", "command")


class ServiceError(Exception):
    """The restart failed; the message says which command and what it printed."""


def problems(spec: Mapping[str, Any]) -> list[str]:
    """What is missing from a service spec (empty when it can be used)."""
    found = []
    if spec.get("manager") not in MANAGERS:
        found.append(f"service manager must be one of {', '.join(MANAGERS)}")
    if spec.get("manager") == "systemd" and not spec.get("name"):
        found.append("the systemd manager needs the service name")
    if spec.get("manager") == "command":
        missing = [
            key for key in ("start_command", "stop_command", "status_command") if not spec.get(key)
        ]
        if missing:
            service = spec.get("name") or "the service"
            found.append(f"the command manager needs {', '.join(missing)} for {service}")
    return found


def _run(command: list[str], timeout: float | None) -> tuple[int, str]:
    """Exit status and output of a command; 124 (as timeout(1)) when it took too long."""
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = 124
        output.seek(0)
        text = output.read(65536).decode("utf-8", "replace").strip()
    return code, text


def _shell(command: str, timeout: float) -> tuple[int, str]:
    return _run(["/bin/sh", "-c", command], timeout)


def _must(command: str, timeout: float) -> None:
    code, output = _shell(command, timeout)
    if code == 124:
        raise ServiceError(f"'{command}' took longer than {timeout:g} s: {output[-500:]}".strip())
    if code != 0:
        raise ServiceError(f"'{command}' failed (exit {code}): {output[-500:]}".strip())


def restart(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Restart the service; {changed, manager, stopped, started, seconds}. Raises
    ServiceError when it could not be restarted."""
    found = problems(spec)
    if found:
        raise ServiceError("; ".join(found))
    started = time.monotonic()
    stopped = False
    if spec["manager"] == "systemd":
        systemctl = shutil.which("systemctl") or "systemctl"
        code, output = _run([systemctl, "restart", str(spec["name"])], None)
        if code != 0:
            raise ServiceError(f"Unable to restart service {spec['name']}: {output[-1000:]}")
    else:
        timeout = float(spec.get("command_timeout") or 60)
        if _shell(spec["status_command"], timeout)[0] == 0:
            _must(spec["stop_command"], timeout)
            stopped = True
        _must(spec["start_command"], timeout)
    return {
        "changed": True,
        "manager": spec["manager"],
        "stopped": stopped,
        "started": True,
        "seconds": round(time.monotonic() - started, 3),
    }


# What the health gate watches of a systemd service to see it crash and come back: a
# crash-looping service answers /health between its deaths, so answers alone can pass it.
SYSTEMD_WATCH = ("ActiveState", "SubState", "MainPID", "NRestarts")


def systemd_state(name: str) -> dict[str, Any] | None:
    """The unit's state ({active, sub, main_pid, restarts}), or None when systemd cannot say
    (no systemctl, no such unit)."""
    systemctl = shutil.which("systemctl")
    if not systemctl or not name:
        return None
    try:
        proc = subprocess.run(
            [systemctl, "show", f"--property={','.join(SYSTEMD_WATCH)}", "--", name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    values = dict(line.partition("=")[::2] for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode != 0 or not values.get("ActiveState"):
        return None
    try:
        return {
            "active": values["ActiveState"],
            "sub": values.get("SubState", ""),
            "main_pid": int(values.get("MainPID") or 0),
            "restarts": int(values.get("NRestarts") or 0),
        }
    except ValueError:
        return None


def unit_to_watch(spec: Mapping[str, Any] | None) -> str | None:
    """The systemd unit whose restarts the health gate watches (None: not a systemd service)."""
    if spec and spec.get("manager") == "systemd" and spec.get("name"):
        return str(spec["name"])
    return None


def describe(spec: Mapping[str, Any]) -> str:
    """How the service is restarted, for plans and messages."""
    if spec.get("manager") == "systemd":
        return f"systemctl restart {spec.get('name')}"
    return f"{os.path.basename(str(spec.get('name') or 'service'))} through its stop/start commands"
