"""``rollbackctl emergency``: decide, tell people, roll back, verify, escalate, report.

1. The decision matrix gives a level range (or "fix forward": nothing runs).
2. The internal (ROLLBACK INITIATED) and customer messages go out.
3. The lowest level of the range runs; it is verified by its own health gates (the run's
   status) and by ``playbooks/validate.yml`` when that exists.
4. When verification fails, an escalation message goes out and the next level runs, up
   to the top of the range (the policy's escalation settings already cap the range).
   A level whose playbook does not exist yet is skipped with a note, never faked.
5. The closing messages go out and the last run's report (Markdown) is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from ansible_collections.sre.rollback.plugins.plugin_utils import levels
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    LEVEL_NAMES,
    Decision,
    Policy,
    decide,
    format_percent,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import Redactor
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    LEVEL_BUDGETS,
    iso,
    level_label,
    utcnow,
)
from rollbackctl import records
from rollbackctl.messages import (
    MessageContext,
    Notifier,
    message_context,
    notifier_for,
    record_messages,
    send_closing,
    send_escalation,
    send_start,
)
from rollbackctl.progress import LineProgress, RunState
from rollbackctl.project import records_dir
from rollbackctl.report import render_report
from rollbackctl.rollback import (
    EXIT_BAD_INPUT,
    EXIT_CANCELED,
    EXIT_FAILED,
    EXIT_OK,
    BadInput,
    Outcome,
    RunOptions,
    check_limit,
    check_targets,
    environment_name,
    execute,
    load_run_policy,
    new_run_id,
    prepare,
    warn_failed_deliveries,
)
from rollbackctl.runner import (
    CancelSwitch,
    PlaybookRequest,
    inventory_args,
    redactor_for,
    run_playbook,
)

VALIDATE_PLAYBOOK = "validate.yml"


@dataclass
class Step:
    """One level of the range: skipped (no playbook), or run and verified or not."""

    level: int
    outcome: str  # verified | not verified | skipped | canceled | held
    run_id: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "outcome": self.outcome,
            "run_id": self.run_id,
            "note": self.note,
        }


@dataclass
class EmergencyResult:
    exit_code: int
    decision: Decision
    steps: list[Step] = field(default_factory=list)
    last: Outcome | None = None
    report: str = ""


def decide_incident(
    base: RunOptions, severity: str, impact: float, time_to_fix: int
) -> tuple[Decision, Policy]:
    policy, _ = load_run_policy(base.inventory, base.policy_file)
    return decide(policy, severity, impact, time_to_fix), policy


def run_emergency(
    base: RunOptions,
    severity: str,
    impact: float,
    time_to_fix: int,
    console: Console,
    stream: TextIO,
    allowed: tuple[int, int] | None = None,
) -> EmergencyResult:
    """``allowed`` (first, last) narrows the decided range for a run without a person
    (rollbackctl.trigger_action): levels below ``first`` are left out, and an escalation
    past ``last`` stops with a ``held`` step instead of running the level."""
    # Before the decision and its messages: bad input changes nothing and tells no one.
    check_targets(base)
    check_limit(base)
    decision, policy = decide_incident(base, severity, impact, time_to_fix)
    console.print(f"[bold]Decision:[/] {decision.summary}.", highlight=False)
    console.print(decision.reason, highlight=False)
    if decision.start_level is None or decision.max_level is None:
        return EmergencyResult(EXIT_OK, decision)
    first, last = allowed or (decision.start_level, decision.max_level)
    levels = list(range(max(first, decision.start_level), decision.max_level + 1))
    unusable = {level: why for level in levels if (why := missing_inputs(base, level))}
    available = [
        level for level in levels if base.project.level_playbook(level) and level not in unusable
    ]
    if not available:
        raise BadInput(
            f"none of the decided levels ({decision.row.level_text}) has a playbook yet: "
            + base.project.missing_level_message(levels[0])
        )
    decided_at = iso(utcnow())
    options = replace(
        base,
        severity=decision.severity,
        impact=base.impact or f"{format_percent(impact)} of users",
        decision={**decision.as_dict(), "decided_at": decided_at},
        decided_at=decided_at,
        procedure_started_at=decided_at,
    )
    redactor = redactor_for(base.extra_vars)
    notifier = notifier_for(
        policy, stream=stream, dry_run=not base.notify or base.check, redactor=redactor
    )
    context = _context(policy, options, available[0], budget=_budget(available))
    send_start(notifier, policy, context)
    warn_failed_deliveries(notifier, console)
    result = EmergencyResult(EXIT_FAILED, decision)
    with CancelSwitch().forwarding() as cancel:
        _climb(
            options, levels, last, unusable, result, notifier, context, cancel, redactor, console
        )
    _finish(result, notifier, policy, context, redactor, console)
    return result


def missing_inputs(options: RunOptions, level: int) -> str | None:
    """Why ``level`` cannot run with these options (the level registry's ``required``
    input: the level is skipped and the range goes on, rather than run to fail and send an
    escalation for nothing), or None. A variable counts when given with ``-e`` or set for
    any host of the inventory."""
    required = levels.LEVELS[level].required if level in levels.LEVELS else None
    if required is None or options.project.level_playbook(level) is None:
        return None
    if options.extra_vars.get(required.var):
        return None
    return None if inventory_sets(options, required.var) else required.skip_note(level)


def inventory_sets(options: RunOptions, name: str) -> bool:
    """Whether the inventory (its group_vars and host_vars included) gives ``name`` a
    non-empty value for any host. An inventory that cannot be read counts as not setting
    it; the level's own preflight has the last word when it runs."""
    binary = Path(sys.executable).parent / "ansible-inventory"
    command = [str(binary) if binary.exists() else "ansible-inventory"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(options.project.ansible_cfg))
    try:
        proc = subprocess.run(
            [*command, *inventory_args(options.inventory), "--list"],
            cwd=options.project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        listing = json.loads(proc.stdout) if proc.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return False
    scopes = [(listing.get("all") or {}).get("vars") or {}]
    scopes += ((listing.get("_meta") or {}).get("hostvars") or {}).values()
    return any(bool(scope.get(name)) for scope in scopes if isinstance(scope, dict))


def _budget(levels: list[int]) -> float:
    """The ETA: every level of the range may run, so the sum of their budgets."""
    return float(sum(LEVEL_BUDGETS[level] for level in levels))


def _context(policy: Policy, options: RunOptions, level: int, budget: float) -> MessageContext:
    return message_context(
        policy,
        level=level,
        reason=options.reason,
        impact=options.impact,
        severity=options.severity,
        environment=environment_name(options.inventory),
        lead=options.lead,
        budget_seconds=budget,
    )


def _climb(
    options: RunOptions,
    levels: list[int],
    last: int,
    unusable: dict[int, str],
    result: EmergencyResult,
    notifier: Notifier,
    context: MessageContext,
    cancel: CancelSwitch,
    redactor: Redactor,
    console: Console,
) -> None:
    """Run the levels from the lowest until one is verified, escalating on failure."""
    failed: tuple[int, str] | None = None
    for level in levels:
        playbook = options.project.level_playbook(level)
        if playbook is None or level in unusable:
            note = unusable.get(level) or f"level {level} playbook not implemented yet: skipped"
            console.print(f"[yellow]{note}[/]", highlight=False)
            result.steps.append(Step(level, "skipped", note=note))
            continue
        if level > last:
            note = f"level {level} is above the levels allowed without a person (up to {last})"
            console.print(f"[yellow]{note}: held[/]", highlight=False)
            result.steps.append(Step(level, "held", note=note))
            return
        if failed is not None:
            escalated = _context_for_level(context, level)
            send_escalation(notifier, escalated, failed[0], failed[1])
            warn_failed_deliveries(notifier, console)
        outcome = _run_one(options, level, cancel, redactor, console)
        result.last = outcome
        if outcome.exit_code == EXIT_CANCELED:
            result.steps.append(Step(level, "canceled", outcome.record.get("run_id")))
            result.exit_code = EXIT_CANCELED
            return
        verified, why = _verify(options, outcome, cancel, redactor, console)
        result.steps.append(
            Step(
                level, "verified" if verified else "not verified", outcome.record.get("run_id"), why
            )
        )
        if verified:
            result.exit_code = EXIT_OK
            return
        if outcome.exit_code == EXIT_BAD_INPUT:
            result.exit_code = EXIT_BAD_INPUT
            return
        failed = (level, why)


def _context_for_level(context: MessageContext, level: int) -> MessageContext:
    name = LEVEL_NAMES[level]
    return replace(context, level=f"{level} ({name})", level_name=name, extra=dict(context.extra))


def _run_one(
    options: RunOptions, level: int, cancel: CancelSwitch, redactor: Redactor, console: Console
) -> Outcome:
    prepared = prepare(replace(options, level=level, run_id=new_run_id(level)))
    outcome = execute(prepared, console, cancel, redactor)
    console.print(outcome.summary, highlight=False)
    return outcome


def _verify(
    options: RunOptions,
    outcome: Outcome,
    cancel: CancelSwitch,
    redactor: Redactor,
    console: Console,
) -> tuple[bool, str]:
    """The level's own health gates (its status), then playbooks/validate.yml if it exists."""
    if outcome.exit_code != EXIT_OK:
        return False, f"{level_label(outcome.record.get('level'))} failed: {outcome.summary}"
    playbook = options.project.playbook(VALIDATE_PLAYBOOK)
    if playbook is None:
        return True, "health gates passed (no playbooks/validate.yml: the run's status counts)"
    run_id = f"{outcome.record.get('run_id')}-validate"
    request = PlaybookRequest(
        project=options.project,
        playbook=playbook,
        inventory=options.inventory,
        run_id=run_id,
        record_dir=records_dir(options.artifacts),
        artifacts_dir=options.artifacts / "rollbackctl",
        extravars={"rollback_run_id": run_id},
        user_extravars=options.extra_vars,
        limit=options.limit,
    )
    console.print(f"[bold]Validating[/] with {playbook.name}", highlight=False)
    state = RunState()
    validation = run_playbook(request, LineProgress(console, state), cancel, redactor, state)
    ok = validation.rc == 0 and not validation.canceled
    note = f"{playbook.name} {'passed' if ok else 'failed'} (run {run_id})"
    verdict = {
        "status": "ok" if ok else "failed",
        "at": iso(utcnow()),
        "playbook": playbook.name,
        "run_id": run_id,
        "note": note,
    }
    records.add(outcome.record_path, outcome.record, redactor, validation=verdict)
    return ok, note


def _finish(
    result: EmergencyResult,
    notifier: Notifier,
    policy: Policy,
    context: MessageContext,
    redactor: Redactor,
    console: Console,
) -> None:
    last = result.last
    if last is None:
        return
    record = last.record
    records.add(
        last.record_path,
        record,
        redactor,
        notes=[step.note for step in result.steps if step.outcome == "skipped"],
        escalation=[step.as_dict() for step in result.steps],
    )
    send_closing(notifier, policy, context, record)
    warn_failed_deliveries(notifier, console)
    record_messages(record, notifier.sent, notifier.notes())
    records.add(last.record_path, record, redactor)
    # Printed on the terminal or in a job log: no inline SVG (the report says how to draw it,
    # every level of the escalation included: rollbackctl report).
    result.report = render_report(record, "markdown", picture=False)
