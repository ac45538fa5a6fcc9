"""Live progress of a playbook run, per host and per phase, from ansible-runner's events.

A task's phase is decided once, by the run-record callback (plugin_utils ``phases``), and
carried in the task's events: the live view reads that decision, so it and the record
agree. An event without one (no callback) stays in its host's phase.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ansible_collections.sre.rollback.plugins.plugin_utils.phases import (
    PHASE_ORDER,
    event_phase,
    is_loader,
    refused_inputs,
    short_action,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import mask_urls
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import message_line

DONE_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
STYLES = {
    "running": "yellow",
    "ok": "green",
    "changed": "green",
    "skipped": "dim",
    "failed": "bold red",
    "unreachable": "bold red",
    "canceled": "magenta",
    "unknown": "bold magenta",
}
BAD = ("failed", "unreachable", "canceled", "unknown")
MESSAGE_LIMIT = 2000
"""A host's message is kept up to this many characters, as the run record keeps it: a
verdict and its next step fit, in the live lines as in the record."""


# --------------------------------------------------------------------------------------------
# State of a run


@dataclass
class PhaseState:
    status: str = "running"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    tasks: int = 0
    msg: str = ""
    reopened_from: tuple[str, float] | None = None
    """(status, finished) of a phase a later task of the host opened again."""

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


@dataclass
class PhaseChange:
    """A host's phase that just finished (or failed), for line-by-line progress."""

    host: str
    phase: str
    state: PhaseState


class RunState:
    """What the events said so far: per host, per phase, the state; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.hosts: dict[str, dict[str, PhaseState]] = {}
        self.current: dict[str, str] = {}
        self.phases: list[str] = []
        self.task: str = ""
        self.pid: int | None = None
        self.no_hosts = False
        self.stats: dict[str, Any] = {}
        self.started = time.monotonic()

    def ordered_phases(self) -> list[str]:
        known = [phase for phase in PHASE_ORDER if phase in self.phases]
        return known + [phase for phase in self.phases if phase not in PHASE_ORDER]

    def handle(self, event: Mapping[str, Any]) -> list[PhaseChange]:
        """Take one event in; the phases it finished."""
        with self.lock:
            if self.pid is None and isinstance(event.get("pid"), int):
                self.pid = event["pid"]
            name = str(event.get("event") or "")
            data = event.get("event_data") or {}
            if name == "playbook_on_task_start":
                self.task = str(data.get("task") or data.get("name") or "")
            elif name == "playbook_on_no_hosts_matched":
                self.no_hosts = True
            elif name == "playbook_on_stats":
                self.stats = dict(data.get("artifact_data") or {})
                return self.close_all()
            elif name == "runner_on_start":
                return self._start(data)
            elif name in DONE_EVENTS:
                return self._done(data, DONE_EVENTS[name])
            return []

    def _phase(self, data: Mapping[str, Any]) -> str:
        host = str(data.get("host"))
        found = event_phase(data)
        return found or self.current.get(host) or str(data.get("role") or "play")

    def _start(self, data: Mapping[str, Any]) -> list[PhaseChange]:
        if is_loader(data.get("task_action")):
            return []
        host = str(data.get("host"))
        phase = self._phase(data)
        changes = []
        previous = self.current.get(host)
        if previous and previous != phase:
            changes += self._close(host, previous)
        phases = self.hosts.setdefault(host, {})
        state = phases.get(phase)
        if state is None or (state.finished is not None and state.status not in BAD):
            if state is None:
                phases[phase] = PhaseState()
            else:
                if state.finished is not None:
                    state.reopened_from = (state.status, state.finished)
                state.finished = None
                state.status = "running"
        if phase not in self.phases:
            self.phases.append(phase)
        self.current[host] = phase
        return changes

    def _done(self, data: Mapping[str, Any], status: str) -> list[PhaseChange]:
        if is_loader(data.get("task_action")) and status not in BAD:
            return []
        host = str(data.get("host"))
        steps = _steps(data)
        if steps and status != "skipped":
            return self._steps_done(host, steps, status, data)
        if status in BAD and refused_inputs(data.get("task_action"), data.get("res") or {}, True):
            self._move_to_preflight(host)
        phase = self.current.get(host) or self._phase(data)
        state = self.hosts.setdefault(host, {}).setdefault(phase, PhaseState())
        if phase not in self.phases:
            self.phases.append(phase)
        if status == "skipped":
            return []
        published: list[PhaseChange] = []
        if status == "ok":
            # A run_once task that published a batch's results (set_stats of
            # release_results) did that phase for every host it names.
            for other in sorted(_published_hosts(data, self.hosts) - {host}):
                now = time.monotonic()
                self.hosts[other][phase] = PhaseState("ok", now, now, 1)
                published.append(PhaseChange(other, phase, self.hosts[other][phase]))
        if status in BAD and short_action(data.get("task_action")) == "fail":
            # The verdict after an earlier failure of the host (a rescue's "stop the rollout
            # here"): its message goes to the phase that failed, which stays the failed one.
            earlier = [
                (name, s)
                for name, s in self.hosts[host].items()
                if name != phase and s.status in BAD
            ]
            if earlier:
                failed_phase, failed = earlier[0]
                failed.msg = _message(data)
                if state.reopened_from is not None:  # the verdict did none of this phase
                    state.status, state.finished = state.reopened_from
                # Shown again: the verdict, with what to run next, is the line to read.
                return [PhaseChange(host, failed_phase, failed)]
        state.tasks += 1
        if status == "ok" and (data.get("res") or {}).get("changed"):
            status = "changed"
        if status in ("failed", "unreachable") and not data.get("ignore_errors"):
            state.status = status
            state.msg = _message(data)
            state.finished = time.monotonic()
            return [PhaseChange(host, phase, state)]
        if state.status not in BAD:
            state.status = "changed" if "changed" in (status, state.status) else "running"
        return published

    def _move_to_preflight(self, host: str) -> None:
        """A refusal on the inputs: the phase the task was tagged with (that of the action
        ``then`` would have run) never started; the host failed its preflight, as the run
        record says."""
        phases = self.hosts.setdefault(host, {})
        opened = self.current.get(host)
        if opened and opened != "preflight" and opened in phases and phases[opened].tasks == 0:
            del phases[opened]
            if opened in self.phases and not any(opened in o for o in self.hosts.values()):
                self.phases.remove(opened)
        phases.setdefault("preflight", PhaseState())
        if "preflight" not in self.phases:
            self.phases.append("preflight")
        self.current[host] = "preflight"

    def _steps_done(
        self,
        host: str,
        steps: list[tuple[str, str, float, str]],
        status: str,
        data: Mapping[str, Any],
    ) -> list[PhaseChange]:
        """A task that did several phases in one module call (the release module's
        ``state=rolled_out`` reports them as ``phases``): one finished phase each."""
        phases = self.hosts.setdefault(host, {})
        opened = self.current.get(host)
        if opened and not any(name == opened for name, _s, _t, _m in steps):
            phases.pop(opened, None)  # the task's own phase: its steps replace it
        at = time.monotonic() - sum(seconds for _n, _s, seconds, _m in steps)
        changes = []
        for name, step_status, seconds, msg in steps:
            if step_status == "failed" and status not in ("failed", "unreachable"):
                step_status = "ok"
            state = PhaseState(step_status, at, at + seconds, 1, msg[:MESSAGE_LIMIT])
            if phases.get(name) is not None and phases[name].status in BAD:
                state = phases[name]
            phases[name] = state
            if name not in self.phases:
                self.phases.append(name)
            changes.append(PhaseChange(host, name, state))
            at += seconds
        if status in BAD and not any(change.state.status in BAD for change in changes):
            changes[-1].state.status, changes[-1].state.msg = status, _message(data)
        self.current[host] = steps[-1][0]
        return changes

    def _close(self, host: str, phase: str) -> list[PhaseChange]:
        state = self.hosts.get(host, {}).get(phase)
        if state is None or state.finished is not None:
            return []
        state.finished = time.monotonic()
        if state.status == "running":
            state.status = "ok" if state.tasks else "skipped"
        return [PhaseChange(host, phase, state)]

    def in_flight(self) -> dict[str, str]:
        """Host -> the phase still open (a task whose result has not come back)."""
        with self.lock:
            return {
                host: phase
                for host, phase in self.current.items()
                if self.hosts[host][phase].finished is None
            }

    def close_all(self, status: str | None = None) -> list[PhaseChange]:
        """Every phase still open is over: finished normally, or ``status`` (canceled)."""
        with self.lock:
            changes = []
            for host, phase in list(self.current.items()):
                state = self.hosts[host][phase]
                if status and state.finished is None:
                    state.status = status
                changes += self._close(host, phase)
            self.current.clear()
            return changes

    def failed_hosts(self) -> list[str]:
        with self.lock:
            return [
                h
                for h, phases in self.hosts.items()
                if any(state.status in BAD for state in phases.values())
            ]


def _published_hosts(data: Mapping[str, Any], known: Mapping[str, Any]) -> set[str]:
    """Known hosts whose results a ``set_stats`` task published as ``{name: {host: ...}}``
    (as the run record's callback reads them: published_hosts there)."""
    stats = (data.get("res") or {}).get("ansible_stats") or {}
    values = (stats.get("data") or {}).values()
    return {
        host for value in values if isinstance(value, Mapping) for host in value if host in known
    }


def _steps(data: Mapping[str, Any]) -> list[tuple[str, str, float, str]]:
    """(phase, status, seconds, msg) of each phase a module call reported, else []."""
    reported = (data.get("res") or {}).get("phases")
    if not isinstance(reported, list):
        return []
    return [
        (
            str(step["phase"]),
            str(step.get("status") or "ok"),
            float(step.get("seconds") or 0.0),
            mask_urls(str(step.get("msg") or "")),
        )
        for step in reported
        if isinstance(step, Mapping) and step.get("phase")
    ]


def _message(data: Mapping[str, Any]) -> str:
    result = data.get("res") or {}
    # A message can quote a URL with credentials (a repository, a health URL): masked.
    return mask_urls(str(result.get("msg") or result.get("stderr") or ""))[:MESSAGE_LIMIT]


# --------------------------------------------------------------------------------------------
# Showing it


def output_console(file: TextIO | None = None) -> Console:
    """The console of a command's human output. Without a terminal (CI logs, AWX, ``| tee``)
    a printed line is never wrapped: a log line is one whole line, however long."""
    console = Console(file=file, highlight=False)
    console.soft_wrap = not console.is_terminal
    return console


def phase_line(change: PhaseChange) -> Text:
    """One complete line for a host's phase: host, phase, status, seconds, message (its
    lines joined: one change, one line)."""
    state = change.state
    line = Text(f"  {change.host:<16} {change.phase:<10} ")
    line.append(state.status, STYLES.get(state.status, ""))
    line.append(f" {state.seconds:.1f}s")
    msg = message_line(state.msg)
    if msg:
        line.append(f"  {msg}", "red" if state.status in BAD else "")
    return line


class Progress(Protocol):
    def start(self) -> None: ...

    def update(self, changes: list[PhaseChange]) -> None: ...

    def stop(self) -> None: ...


def phase_table(state: RunState, title: str = "") -> Table:
    """Hosts down, phases across; each cell the phase's state and duration."""
    with state.lock:
        table = Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("host", style="bold")
        phases = state.ordered_phases()
        for phase in phases:
            table.add_column(phase)
        for host, host_phases in state.hosts.items():
            table.add_row(host, *(_cell(host_phases.get(phase)) for phase in phases))
        return table


def _cell(phase: PhaseState | None) -> Text:
    if phase is None:
        return Text("")
    if phase.status == "running":
        return Text(f"... {phase.seconds:.0f}s", STYLES["running"])
    return Text(f"{phase.status} {phase.seconds:.1f}s", STYLES.get(phase.status, ""))


class LiveProgress:
    """A table redrawn in place, for terminals."""

    def __init__(self, console: Console, state: RunState, title: str) -> None:
        self.state = state
        self.title = title
        self.live = Live(
            console=console, refresh_per_second=4, transient=True, get_renderable=self.render
        )

    def render(self) -> RenderableType:
        table = phase_table(self.state, self.title)
        task = Text(f"task: {self.state.task}", "dim") if self.state.task else Text("")
        grid = Table.grid()
        grid.add_row(table)
        grid.add_row(task)
        return grid

    def start(self) -> None:
        self.live.start()

    def update(self, changes: list[PhaseChange]) -> None:
        """The table is redrawn from the state on its own."""

    def stop(self) -> None:
        self.live.stop()


class LineProgress:
    """One complete line per finished phase of a host, for logs and CI (no terminal: a
    table redrawn in place would be cut to the log's width)."""

    def __init__(self, console: Console, state: RunState) -> None:
        self.console = console
        self.state = state
        self.lock = threading.Lock()

    def start(self) -> None:
        """Nothing to set up."""

    def update(self, changes: list[PhaseChange]) -> None:
        with self.lock:
            for change in changes:
                self.console.print(phase_line(change), highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Nothing to tear down."""


class QuietProgress:
    def start(self) -> None:
        """Nothing shown."""

    def update(self, changes: list[PhaseChange]) -> None:
        """Nothing shown."""

    def stop(self) -> None:
        """Nothing shown."""


def make_progress(console: Console, state: RunState, title: str, quiet: bool = False) -> Progress:
    if quiet:
        return QuietProgress()
    if console.is_terminal:
        return LiveProgress(console, state, title)
    return LineProgress(console, state)
