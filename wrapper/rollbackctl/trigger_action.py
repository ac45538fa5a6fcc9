"""A rule fired -> act: the one path from a firing trigger to a rollback, shared by
``rollbackctl watch`` (our own evaluator) and ``rollbackctl alerts serve`` (Alertmanager).

For each firing (rule, service, when its condition started, when it fired):

1. Idempotent: a firing already seen (its key: the window's start for ``watch``,
   fingerprint + startsAt for Alertmanager) does nothing again, also after a restart.
2. A firing whose condition began before the last rollback of its service ended is that
   rollback's incident: nothing more runs (the rollback answered it).
3. Cooldown per rule and service: after a rule acted for a service, it does not act again
   for that service within the cooldown.
4. The level comes from the policy: ``triggers.<rule>.action`` through ``policy.decide``
   (the same decision as ``rollbackctl decide``/``emergency``).
5. Levels up to ``max_level`` (default 3) run without a person, through the same path as
   ``rollbackctl emergency`` (messages, verification, escalation within the allowed
   levels). A start level above it, or an escalation past it, pages (the ``approval``
   message) and waits for ``rollbackctl approve ID``.
6. The run record gets the times the runbook measures: the condition's start (incident
   start), the firing (detection), the decision and the rollback (through the run's own
   options, so the callback records them as ``given``), and a ``trigger`` section (added
   with ``records.add``, the records' one API).

Everything that must survive a restart (evaluator windows, seen keys, cooldowns, the last
rollback per service, pending approvals) lives in one state file (JSON, 0600), written
atomically after every change; one process at a time holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    Policy,
    format_duration,
    format_levels,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import iso
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    Rule,
    build_rules,
    decide_for,
    format_value,
)
from rollbackctl import records
from rollbackctl.emergency import run_emergency
from rollbackctl.messages import message_context, notifier_for, send_approval_request
from rollbackctl.project import private_dir
from rollbackctl.rollback import BadInput, RunOptions, environment_name
from rollbackctl.runner import redactor_for

STATE_VERSION = 1
DEFAULT_MAX_LEVEL = 3
DEFAULT_COOLDOWN = 900
SEEN_KEPT = 2000
HISTORY_KEPT = 200


class StateError(Exception):
    """The state file cannot be used (another process holds it, or it is not ours)."""


def default_state_path(artifacts: Path) -> Path:
    return artifacts / "triggers" / "state.json"


def approvals_dir(state_path: Path) -> Path:
    return state_path.parent / "approvals"


def moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def stamp(timestamp: float) -> str:
    return iso(moment(timestamp)) or ""


# --------------------------------------------------------------------------------------------
# The state file


class StateFile:
    """The JSON state of a watcher or receiver; ``hold`` locks it for this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = _fresh()
        self._lock: int | None = None

    @classmethod
    def read(cls, path: Path) -> StateFile:
        state = cls(path)
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise StateError(
                    f"{path}: not a readable trigger state file ({error}); move it aside to "
                    "start with no state"
                ) from None
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise StateError(
                    f"{path}: not a trigger state file of version {STATE_VERSION}; move it "
                    "aside to start with no state"
                )
            state.data = {**_fresh(), **data}
        return state

    def hold(self) -> None:
        """Take the state for this process; another watcher on the same file is refused."""
        private_dir(self.path.parent)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateError(
                f"{self.path} is in use by another watch or alerts serve (pid {holder}): stop "
                "it, or give this one its own --state FILE"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def save(self) -> None:
        seen = self.data["seen"]
        if len(seen) > SEEN_KEPT:
            for key in sorted(seen, key=seen.__getitem__)[: len(seen) - SEEN_KEPT]:
                del seen[key]
        self.data["history"] = self.data["history"][-HISTORY_KEPT:]
        private_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


def _fresh() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "evaluators": {},
        "seen": {},
        "cooldown": {},
        "services": {},
        "pending": {},
        "history": [],
    }


# --------------------------------------------------------------------------------------------
# Firings and what was done about them


@dataclass(frozen=True)
class Firing:
    rule: str
    service: str
    group: dict[str, str]
    condition_since: float  # when the condition started to hold (the window's start)
    fired_at: float  # when the rule fired (detection)
    value: float | None
    source: str  # watch | alertmanager
    key: str  # what makes it the same firing again (idempotence)


@dataclass
class Verdict:
    at: float
    firing: Firing
    outcome: str  # ran | dry run | awaiting approval | duplicate | handled | cooldown | ...
    message: str
    levels: str = ""
    run_id: str | None = None
    exit_code: int | None = None
    approval: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": stamp(self.at),
            "rule": self.firing.rule,
            "service": self.firing.service,
            "group": self.firing.group,
            "source": self.firing.source,
            "key": self.firing.key,
            "outcome": self.outcome,
            "message": self.message,
            "levels": self.levels,
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "approval": self.approval,
        }

    def line(self) -> str:
        group = ",".join(f"{k}={v}" for k, v in sorted(self.firing.group.items())) or "-"
        return f"{stamp(self.at)}  {self.firing.rule} ({group}): {self.outcome}: {self.message}"


@dataclass
class ActionSettings:
    """What every action of a watcher or receiver runs with."""

    base: RunOptions  # inventory, project, artifacts, notify, -e, policy file, lead
    max_level: int = DEFAULT_MAX_LEVEL
    cooldown: float = DEFAULT_COOLDOWN
    dry_run: bool = False


@dataclass
class TriggerActions:
    """Turns firings into verdicts, and approved requests into runs."""

    settings: ActionSettings
    policy: Policy
    state: StateFile
    console: Console
    stream: TextIO
    clock: Callable[[], float] = time.time
    rules: dict[str, Rule] = field(init=False)

    def __post_init__(self) -> None:
        self.rules = {rule.name: rule for rule in build_rules(self.policy)}

    # --- a firing

    def handle(self, firing: Firing) -> Verdict:
        rule = self.rules.get(firing.rule)
        if rule is None or firing.service != rule.service:
            what = "rule" if rule is None else f"service of {firing.rule}"
            return self._note(
                firing, "ignored", f"not an enabled {what} of the policy {self.policy.source}"
            )
        seen = self.state.data["seen"]
        if firing.key in seen:
            return Verdict(self.clock(), firing, "duplicate", "already acted on (same firing)")
        seen[firing.key] = self.clock()
        last = self.state.data["services"].get(firing.service) or {}
        if last.get("ended") and firing.condition_since < last["ended"]:
            return self._note(
                firing,
                "handled",
                f"its condition began before rollback {last.get('run_id')} of {firing.service} "
                "ended: that rollback answered it",
            )
        cooled = self.state.data["cooldown"].get(_cooldown_key(firing))
        if cooled and self.clock() - cooled["at"] < self.settings.cooldown:
            left = format_duration(self.settings.cooldown - (self.clock() - cooled["at"]))
            return self._note(
                firing,
                "cooldown",
                f"{firing.rule} acted for {firing.service} at {stamp(cooled['at'])} "
                f"({cooled.get('outcome')}); not again for {left}",
            )
        decision = decide_for(self.policy, rule)
        start, top = decision["start_level"], decision["max_level"]
        if start is None:
            return self._acted(firing, "fix forward", f"the matrix says: {decision['summary']}")
        if start > self.settings.max_level:
            message, levels, ident = self._request(firing, rule, start, top, decision)
            return self._acted(firing, "awaiting approval", message, levels, approval=ident)
        last_allowed = min(top, self.settings.max_level)
        if self.settings.dry_run:
            message = (
                f"would run {levels_text(start, last_allowed)} ({decision['summary']}); "
                "dry run: nothing runs, no message is sent"
            )
            return self._acted(firing, "dry run", message, span(start, top))
        return self._run(firing, rule, (start, last_allowed), decision)

    def _reason(self, firing: Firing, rule: Rule) -> str:
        return (
            f"automatic trigger {rule.name}: {rule.describe()} (value "
            f"{format_value(rule, firing.value)}, condition since {stamp(firing.condition_since)}"
            f", fired {stamp(firing.fired_at)}, via {firing.source})"
        )

    def _request(
        self, firing: Firing, rule: Rule, first: int, top: int, decision: dict[str, Any]
    ) -> tuple[str, str, str]:
        """Page and keep the request until ``rollbackctl approve``: the message, the levels,
        the request's id."""
        ident = f"{firing.rule}-{moment(self.clock()).strftime('%Y%m%dT%H%M%SZ')}-l{first}"
        levels = span(first, top)
        self.state.data["pending"][ident] = {
            "id": ident,
            "requested_at": self.clock(),
            "first": first,
            "last": top,
            "firing": firing.__dict__,
            "decision": decision,
        }
        approve = f"rollbackctl approve {ident} --state {self.state.path}"
        if self.settings.dry_run:
            return (
                f"dry run: would page for {levels_text(first, top)} and wait for approval",
                levels,
                ident,
            )
        context = message_context(
            self.policy,
            level=first,
            reason=self._reason(firing, rule),
            impact=f"{decision['severity']} (trigger {firing.rule})",
            severity=decision["severity"],
            environment=environment_name(self.settings.base.inventory),
            lead=self.settings.base.lead,
        )
        notifier = notifier_for(
            self.policy,
            stream=self.stream,
            dry_run=not self.settings.base.notify,
            redactor=redactor_for(self.settings.base.extra_vars),
        )
        send_approval_request(
            notifier, context, decision["summary"], self.settings.max_level, approve
        )
        message = (
            f"{levels_text(first, top)} is above what runs without a person (up to level "
            f"{self.settings.max_level}): paged; run `{approve}`"
        )
        return message, levels, ident

    # --- running a level

    def _run(
        self,
        firing: Firing,
        rule: Rule,
        allowed: tuple[int, int],
        decision: dict[str, Any],
        approval: dict[str, Any] | None = None,
    ) -> Verdict:
        base = self.settings.base
        options = replace(
            base,
            reason=self._reason(firing, rule),
            incident_started_at=stamp(firing.condition_since),
            detected_at=stamp(min(firing.fired_at, self.clock())),
            services=(firing.service,),
            run_id=None,
        )
        action = rule.action
        levels = span(*allowed)
        self.console.print(
            f"[bold]{firing.rule} fired[/]: running {levels_text(*allowed)} as `emergency` would",
            highlight=False,
        )
        try:
            result = run_emergency(
                options,
                action.severity,
                action.impact,
                action.time_to_fix,
                self.console,
                self.stream,
                allowed=allowed,
            )
        except BadInput as error:
            return self._acted(firing, "not started", str(error), levels)
        ended = self.clock()
        run_id = str(result.last.record.get("run_id")) if result.last else None
        self.state.data["services"][firing.service] = {"ended": ended, "run_id": run_id}
        steps = ", ".join(f"level {s.level} {s.outcome}" for s in result.steps) or "nothing ran"
        if result.last is not None:
            records.add(
                result.last.record_path,
                result.last.record,
                redactor_for(options.extra_vars),
                trigger=self._trigger_section(firing, decision, approval, allowed),
            )
        verdict = self._acted(firing, "ran", steps, levels, run_id, result.exit_code)
        held = next((s for s in result.steps if s.outcome == "held"), None)
        if held is not None:
            message, _, ident = self._request(
                firing, rule, held.level, decision["max_level"], decision
            )
            verdict.message += f"; {message}"
            verdict.approval = ident
        self.state.save()
        return verdict

    def _trigger_section(
        self,
        firing: Firing,
        decision: dict[str, Any],
        approval: dict[str, Any] | None,
        allowed: tuple[int, int],
    ) -> dict[str, Any]:
        """The run record's ``trigger`` section (run_record.schema.json)."""
        return {
            "rule": firing.rule,
            "service": firing.service,
            "group": firing.group,
            "source": firing.source,
            "value": firing.value,
            "condition_since": stamp(firing.condition_since),
            "fired_at": stamp(firing.fired_at),
            "detected_after_seconds": round(firing.fired_at - firing.condition_since, 3),
            "decision": decision,
            "allowed_levels": span(*allowed),
            "max_unattended_level": self.settings.max_level,
            "approval": approval,
        }

    # --- approvals

    def run_approved(self) -> list[Verdict]:
        """Run every pending request someone approved (``rollbackctl approve``)."""
        verdicts = []
        for ident, request in list(self.state.data["pending"].items()):
            approval_file = approvals_dir(self.state.path) / f"{ident}.json"
            if not approval_file.is_file():
                continue
            try:
                approval = json.loads(approval_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                approval = {"by": "?", "note": f"{approval_file} unreadable"}
            del self.state.data["pending"][ident]
            approval_file.unlink(missing_ok=True)
            self.state.save()
            firing = Firing(**request["firing"])
            rule = self.rules.get(firing.rule)
            if rule is None:
                verdicts.append(self._note(firing, "ignored", "the rule is no longer enabled"))
                continue
            approval = {**approval, "id": ident, "requested_at": stamp(request["requested_at"])}
            allowed = (int(request["first"]), int(request["last"]))
            if self.settings.dry_run:
                verdicts.append(
                    self._acted(firing, "dry run", f"approved by {approval.get('by')}: would run")
                )
                continue
            verdicts.append(self._run(firing, rule, allowed, request["decision"], approval))
        return verdicts

    # --- bookkeeping

    def _note(self, firing: Firing, outcome: str, message: str) -> Verdict:
        verdict = Verdict(self.clock(), firing, outcome, message)
        self.state.data["history"].append(verdict.as_dict())
        self.state.save()
        return verdict

    def _acted(
        self,
        firing: Firing,
        outcome: str,
        message: str,
        levels: str = "",
        run_id: str | None = None,
        exit_code: int | None = None,
        approval: str | None = None,
    ) -> Verdict:
        verdict = Verdict(
            self.clock(), firing, outcome, message, levels, run_id, exit_code, approval or None
        )
        self.state.data["cooldown"][_cooldown_key(firing)] = {
            "at": self.clock(),
            "outcome": outcome,
            "run_id": run_id,
        }
        self.state.data["history"].append(verdict.as_dict())
        self.state.save()
        return verdict


def span(first: int, last: int) -> str:
    return format_levels(tuple(range(first, last + 1)))


def levels_text(first: int, last: int) -> str:
    return f"level {first}" if first == last else f"levels {first}-{last}"


def _cooldown_key(firing: Firing) -> str:
    return f"{firing.rule}|{firing.service}"


def pending_requests(state_path: Path) -> list[dict[str, Any]]:
    return list(StateFile.read(state_path).data["pending"].values())


def approve(state_path: Path, ident: str, who: str, reason: str) -> dict[str, Any]:
    """Let a pending request run: the watcher or receiver holding the state runs it at its
    next evaluation. Raises StateError when there is no such request."""
    pending = StateFile.read(state_path).data["pending"]
    if ident not in pending:
        known = ", ".join(sorted(pending)) or "none"
        raise StateError(
            f"no pending request {ident!r} in {state_path} (pending: {known}); list them with "
            f"`rollbackctl approve --state {state_path}`"
        )
    directory = private_dir(approvals_dir(state_path))
    approval = {"by": who, "at": stamp(time.time()), "reason": reason}
    tmp = directory / f".{ident}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(approval, handle)
    os.replace(tmp, directory / f"{ident}.json")
    return dict(pending[ident])
