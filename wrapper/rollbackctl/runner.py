"""Run a playbook of the project through ansible-runner: live progress, clean cancel, and
artifacts with no secrets in them.

How a run is laid out:

* ansible-runner's private data dir is a fresh temporary directory (0700). It runs
  ``ansible-playbook`` with cwd = the project root and ``ANSIBLE_CONFIG`` set to the
  project's ``ansible.cfg`` explicitly, the wrapper's interpreter directory first on
  ``PATH`` (the ansible-playbook of the same installation), and
  ``SRE_ROLLBACK_RECORD_DIR`` pointing at the run-record directory.
* ``suppress_env_files`` keeps ansible-runner from writing ``env/envvars``,
  ``env/extravars``... The wrapper's own extra vars (run id, reason...) hold no secret
  and go on the command line; extra vars given with ``-e`` go through a 0600 file in the
  private directory, which is deleted with it.
* Afterwards, the artifacts worth keeping (``job_events/``, ``stdout``, ``stderr``,
  ``status``, ``rc``, ``command``) are copied to ``<artifacts>/rollbackctl/<run id>/``
  (0700/0600) with secrets masked: the environment in ``command`` is reduced to variable
  names, ``ansible_env`` facts are dropped, values under secret-looking keys are masked,
  and the values of secret-looking environment variables and extra vars are masked
  wherever they appear. The fact cache and the rest are not kept.

Cancel: ansible-playbook stops at once on SIGINT or SIGTERM, without running ``always``
blocks. So on the first Ctrl-C/SIGTERM the wrapper sends SIGINT to ansible-playbook (the
run-record callback then writes the record as canceled; Ansible's workers kill their ssh
clients, so every host-side call sees its controller go away and stops or undoes its step,
module_utils controller_watch), and waits for it to exit. A second signal kills
ansible-playbook at once.

Then, and also when ansible-playbook died without finishing its record (killed), the
wrapper settles the hosts (:func:`settle`): on each host the run reached, one
``sre.rollback.release state=unlocked wait=N`` waits (bounded) for a call of this run that
still holds the lock to end, releases the lock only when no live process holds it, and
says what the host's journal has for this run and which release is current. Those per-host
ends go into the record; a host that does not answer is ``unknown``, never assumed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import ansible_runner
import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.levels import (
    LEVELS,
    level_of_playbook,
    settle_args,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import (
    Redactor,
    secret_values,
)
from rollbackctl.progress import PhaseChange, Progress, QuietProgress, RunState
from rollbackctl.project import Project, private_dir

GRACE_SECONDS = 60.0
"""How long ansible-playbook may take to stop after SIGINT before it is killed."""

SETTLE_SECONDS = 60
"""How long, on each host, the settle step waits for a call of the run that still holds
the lock (undoing its switch, or finishing a gate nobody canceled) before it reports it as
still running."""

KEPT_ARTIFACTS = ("stdout", "stderr", "status", "rc")
DROPPED_KEYS = frozenset({"ansible_env"})

ANSIBLE_BAD_OPTIONS = 5
"""ansible-playbook's exit code for bad command-line options."""

ANSIBLE_WARNING_FILTER = "ignore:DSA is deprecated:UserWarning:ansible._internal._ssh._ssh_agent"
"""ansible-core imports DSA from cryptography, which warns (CryptographyDeprecationWarning)
on every Ansible command: not ours to fix, and nothing a user can act on. Only that warning
is filtered (message, category and the module it is raised in); the Makefile exports the
same filter for plain ansible-playbook."""


# --------------------------------------------------------------------------------------------
# Cancel


class CancelSwitch:
    """Set by SIGINT/SIGTERM (or a test); the run loop acts on it."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hard = threading.Event()
        self.signal_name = ""

    def request(self, signal_name: str = "cancel") -> None:
        if self.requested.is_set():
            self.hard.set()
        self.signal_name = self.signal_name or signal_name
        self.requested.set()

    @contextmanager
    def forwarding(self) -> Iterator[CancelSwitch]:
        """Catch SIGINT and SIGTERM while the block runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request(signal.Signals(signum).name)

        for sig in previous:
            signal.signal(sig, handler)
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


# --------------------------------------------------------------------------------------------
# A run


@dataclass
class PlaybookRequest:
    project: Project
    playbook: Path
    inventory: str
    run_id: str
    record_dir: Path
    artifacts_dir: Path | None
    extravars: dict[str, Any] = field(default_factory=dict)
    user_extravars: dict[str, Any] = field(default_factory=dict)
    limit: str | None = None
    check: bool = False
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class PlaybookResult:
    rc: int
    runner_status: str
    canceled: bool
    state: RunState
    record_path: Path
    artifacts: Path | None
    cleanup: list[str] = field(default_factory=list)
    error: str = ""
    killed: bool = False
    """ansible-playbook ended without finishing the run record (SIGKILL, a crash)."""
    in_flight: dict[str, str] = field(default_factory=dict)
    """Host -> the phase it was in when the run stopped (its result never came back)."""
    ends: dict[str, HostEnd] = field(default_factory=dict)
    """What each host the run reached says after a cancel or a kill (:func:`settle`)."""

    @property
    def no_hosts(self) -> bool:
        return self.state.no_hosts and not self.state.hosts

    @property
    def bad_options(self) -> bool:
        return self.rc == ANSIBLE_BAD_OPTIONS


def redactor_for(user_extravars: Mapping[str, Any], *more: str) -> Redactor:
    """Masks the values of secret-looking environment variables and extra vars."""
    redactor = Redactor(secret_values(os.environ))
    redactor.add(secret_values(user_extravars))
    redactor.add(value for value in more if value)
    return redactor


def inventory_args(inventory: str) -> list[str]:
    """``-i`` for ansible-playbook: a path made absolute (the run's cwd is the project),
    or a host list (``127.0.0.2,``) as it is."""
    path = Path(inventory).expanduser()
    return ["-i", str(path.resolve()) if path.exists() else inventory]


def runner_env(request: PlaybookRequest) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {
        "ANSIBLE_CONFIG": str(request.project.ansible_cfg),
        "SRE_ROLLBACK_RECORD_DIR": str(request.record_dir),
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONWARNINGS": python_warnings(os.environ.get("PYTHONWARNINGS", "")),
        **request.env,
    }


def python_warnings(given: str) -> str:
    """``PYTHONWARNINGS`` for Ansible: the user's filters, which win, after ours."""
    return ",".join(part for part in (ANSIBLE_WARNING_FILTER, given) if part)


def command_line(request: PlaybookRequest, private: Path) -> str:
    args = inventory_args(request.inventory)
    if request.limit:
        args += ["--limit", request.limit]
    if request.check:
        args.append("--check")
    if request.user_extravars:
        user_file = private / "user-extravars.yml"
        fd = os.open(user_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(request.user_extravars, handle)
        args += ["-e", f"@{user_file}"]
    return shlex.join(args)


def run_playbook(
    request: PlaybookRequest,
    progress: Progress | None = None,
    cancel: CancelSwitch | None = None,
    redactor: Redactor | None = None,
    state: RunState | None = None,
) -> PlaybookResult:
    """Run the playbook; returns when ansible-playbook has exited (and, after a cancel, the
    run's locks are released). ``state`` is the one ``progress`` shows, if it has one."""
    progress = progress or QuietProgress()
    cancel = cancel or CancelSwitch()
    redactor = redactor or redactor_for(request.user_extravars)
    state = state or RunState()
    private_dir(request.record_dir)
    private = Path(tempfile.mkdtemp(prefix="rollbackctl-"))
    progress.start()
    try:
        result = _run(request, private, state, progress, cancel)
        if (result.canceled or result.killed) and not request.check:
            result.ends = settle(request, state, private)
            result.cleanup = [end.line() for end in result.ends.values()] or [
                "no host was reached: nothing to settle"
            ]
    finally:
        progress.stop()
        kept = keep_artifacts(private, request, redactor)
        shutil.rmtree(private, ignore_errors=True)
    result.artifacts = kept
    return result


def _run(
    request: PlaybookRequest,
    private: Path,
    state: RunState,
    progress: Progress,
    cancel: CancelSwitch,
) -> PlaybookResult:
    def on_event(event: dict[str, Any]) -> bool:
        changes: list[PhaseChange] = state.handle(event)
        if changes:
            progress.update(changes)
        return True

    thread, runner = ansible_runner.run_async(
        private_data_dir=str(private),
        project_dir=str(request.project.root),
        playbook=str(request.playbook),
        cmdline=command_line(request, private),
        extravars=request.extravars,
        envvars=runner_env(request),
        ident=request.run_id,
        quiet=True,
        suppress_env_files=True,
        settings={"pexpect_timeout": 0.2, "suppress_ansible_output": True},
        event_handler=on_event,
        cancel_callback=cancel.hard.is_set,
    )
    interrupted_at = _wait(thread, state, cancel)
    canceled = cancel.requested.is_set()
    record_path = request.record_dir / f"{request.run_id}.json"
    killed = state.pid is not None and _unfinished(record_path)
    in_flight = state.in_flight()
    if canceled or killed:
        progress.update(state.close_all("canceled" if canceled else "unknown"))
    rc = runner.rc if isinstance(runner.rc, int) else 1
    error = ""
    if rc == 127:
        error = "ansible-playbook was not found next to this Python or on PATH"
    if interrupted_at and cancel.hard.is_set():
        error = "ansible-playbook did not stop after SIGINT: killed"
    return PlaybookResult(
        rc=rc,
        runner_status=str(runner.status),
        canceled=canceled,
        state=state,
        record_path=record_path,
        artifacts=None,
        error=error,
        killed=killed,
        in_flight=in_flight,
    )


def _unfinished(record_path: Path) -> bool:
    """The callback never wrote the end of the run (no record, or still ``running``)."""
    try:
        data = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(data, dict) or data.get("status") == "running"


def _wait(thread: threading.Thread, state: RunState, cancel: CancelSwitch) -> float | None:
    """Wait for the run; on cancel, SIGINT ansible-playbook once, then kill it when it does
    not stop within the grace period. The time SIGINT was sent, if it was."""
    interrupted_at: float | None = None
    while thread.is_alive():
        thread.join(0.1)
        if not cancel.requested.is_set() or cancel.hard.is_set():
            continue
        if interrupted_at is None:
            interrupted_at = time.monotonic()
            if not _interrupt(state.pid):
                cancel.hard.set()  # not started yet: nothing to stop gently
        elif time.monotonic() - interrupted_at > GRACE_SECONDS:
            cancel.hard.set()
    return interrupted_at


def _interrupt(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# After a cancel or a kill: what each host really did


UNKNOWN = "unknown"


@dataclass
class HostEnd:
    """How a host ended after a cancel or a kill, as the host says it."""

    host: str
    outcome: str  # completed | switched back | stopped before switch | unchanged | failed |
    # not started | still running | unknown
    current: str | None = None
    lock: str = UNKNOWN  # free | released (no live holder) | held by ... | unknown
    detail: str = ""
    controller_lost: str | None = None
    before: str | None = None  # the release its last call of the run started from

    def line(self) -> str:
        text = f"{self.host}: {self.outcome}"
        if self.current:
            text += f", current {self.current}"
        text += f", lock {self.lock}"
        return f"{text} ({self.detail})" if self.detail else text

    def data(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "current": self.current,
            "lock": self.lock,
            "detail": self.detail,
            "controller_lost": self.controller_lost,
            "before": self.before,
        }


def settle(request: PlaybookRequest, state: RunState, private: Path) -> dict[str, HostEnd]:
    """Ask every host the run reached how it ended: wait (bounded, on the host) for a call of
    this run that still holds the lock, release the lock only when no live process holds
    it, read the host's journal for this run. Only a lock held by this run id is touched."""
    hosts = sorted(state.hosts)
    if not hosts:
        return {}
    ends: dict[str, HostEnd] = {}
    level = level_of_playbook(request.playbook.name) or 3
    undo = LEVELS[level].cancel

    def on_event(event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        host = data.get("host")
        if host and event.get("event") in DONE_RESULTS:
            ends[str(host)] = host_end(str(host), event["event"], data.get("res") or {})
        return True

    adhoc = private_dir(private / "settle")
    ansible_runner.run(
        private_data_dir=str(adhoc),
        module=undo.module,
        module_args=settle_args(level, request.run_id, SETTLE_SECONDS),
        host_pattern=",".join(hosts),
        cmdline=shlex.join(inventory_args(request.inventory)),
        envvars={**runner_env(request), "SRE_ROLLBACK_RECORD_DIR": str(adhoc / "records")},
        quiet=True,
        suppress_env_files=True,
        event_handler=on_event,
    )
    return {
        host: ends.get(host) or HostEnd(host, UNKNOWN, detail="no answer from the host")
        for host in hosts
    }


DONE_RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable")


def host_end(host: str, event: str, res: Mapping[str, Any]) -> HostEnd:
    """A host's end from its answer to the settle call (pure: unit-tested)."""
    if event == "runner_on_unreachable":
        return HostEnd(
            host,
            UNKNOWN,
            detail="unreachable: its call finishes or undoes its step on its own and writes "
            "it to its journal; `rollbackctl status` or the next run reads it",
        )
    if event == "runner_on_failed":
        return HostEnd(host, UNKNOWN, detail=f"could not ask: {str(res.get('msg', ''))[:200]}")
    calls = [c for c in res.get("calls") or [] if isinstance(c, Mapping)]
    last = calls[-1] if calls else {}
    busy = res.get("busy")
    outcome = str(last.get("outcome") or "not started")
    if busy:
        outcome = "still running"
        lock = f"held by its call, still running (pid {busy.get('pid', '?')})"
    elif res.get("released"):
        lock = "released (held by this run, no live process held it)"
    elif res.get("lock"):
        held = res["lock"]
        lock = f"held by run {held.get('run_id', '?')} (left alone)"
    else:
        lock = "free"
    return HostEnd(
        host,
        outcome,
        current=res.get("current"),
        lock=lock,
        detail=str(last.get("msg") or "")[:300],
        controller_lost=last.get("controller_lost"),
        before=last.get("before"),
    )


# --------------------------------------------------------------------------------------------
# Artifacts


def keep_artifacts(private: Path, request: PlaybookRequest, redactor: Redactor) -> Path | None:
    """Copy ansible-runner's artifacts out of the private directory, secrets masked."""
    if request.artifacts_dir is None:
        return None
    source = private / "artifacts" / request.run_id
    if not source.is_dir():
        return None
    target = private_dir(request.artifacts_dir / request.run_id)
    for name in KEPT_ARTIFACTS:
        if (source / name).is_file():
            _write(target / name, redactor.text(_read(source / name)))
    if (source / "command").is_file():
        _write(target / "command", _command_artifact(source / "command", redactor))
    events = source / "job_events"
    if events.is_dir():
        event_dir = private_dir(target / "job_events")
        for path in sorted(events.glob("*.json")):
            _write(event_dir / path.name, _event_artifact(path, redactor))
    return target


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _command_artifact(path: Path, redactor: Redactor) -> str:
    try:
        data = json.loads(_read(path))
    except ValueError:
        return ""
    kept = {
        "command": redactor.data(data.get("command"), by_name=False),
        "cwd": data.get("cwd"),
        "env_names": sorted((data.get("env") or {}).keys()),
        "note": "environment values are not kept (rollbackctl)",
    }
    return json.dumps(kept, indent=1)


def _event_artifact(path: Path, redactor: Redactor) -> str:
    try:
        event = json.loads(_read(path))
    except ValueError:
        return ""
    return json.dumps(redactor.data(_drop(event, DROPPED_KEYS)))


def _drop(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _drop(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_drop(item, keys) for item in value]
    return value


def stats_data(result: PlaybookResult, name: str) -> Any:
    """A value the playbook published with set_stats (aggregate, not per host)."""
    return result.state.stats.get(name)
