"""``rollbackctl emergency``: decide, message, roll back, verify, escalate, report."""

from __future__ import annotations

import sys
from typing import Any

import click

from rollbackctl import next_step
from rollbackctl.commands.options import (
    BadInputError,
    build_run_options,
    incident_options,
    run_options,
    target_options,
)
from rollbackctl.emergency import run_emergency
from rollbackctl.exits import exit_codes_help
from rollbackctl.progress import output_console
from rollbackctl.rollback import BadInput

EXIT_CODES_HELP = exit_codes_help(
    {
        0: (
            "a level of the decided range was verified (or the decision is fix forward: nothing "
            "ran)"
        ),
        1: "every level that exists in the range ran and none was verified",
        2: "bad input, or no level of the range has a playbook yet; nothing was changed",
        3: "canceled (Ctrl-C / SIGTERM): no further level runs",
    }
)


@click.command(name="emergency", epilog=EXIT_CODES_HELP)
@incident_options
@target_options
@run_options
def emergency_command(severity: str, impact: float, time_to_fix: int, **params: Any) -> None:
    """Decide the level range with the decision matrix, send the internal and customer
    messages, run the lowest level, verify it (its health gates, then playbooks/validate.yml
    when it exists), escalate to the next level of the range when verification fails (with
    an escalation message), and finish with the closing messages and the report (Markdown).

    Levels whose playbook does not exist yet are skipped with a note.
    """
    options = build_run_options(0, params)
    console = output_console()
    try:
        result = run_emergency(options, severity, impact, time_to_fix, console, sys.stdout)
    except BadInput as error:
        raise BadInputError(str(error)) from None
    for step in result.steps:
        console.print(
            f"level {step.level}: {step.outcome}" + (f" ({step.note})" if step.note else ""),
            highlight=False,
        )
    if result.report:
        click.echo()
        click.echo(result.report, nl=False)
    steps = [step.as_dict() for step in result.steps]
    summary = result.decision.summary
    next_step.echo(next_step.for_emergency(steps, result.exit_code, summary, options.inventory))
    sys.exit(result.exit_code)
