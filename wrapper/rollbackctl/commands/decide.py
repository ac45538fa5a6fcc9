"""``rollbackctl decide``: which rollback levels the runbook's matrix gives for an incident."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    LEVEL_NAMES,
    Decision,
    decide,
    format_duration,
    format_percent,
)
from rollbackctl import next_step
from rollbackctl.commands.options import incident_options
from rollbackctl.exits import exit_codes_help
from rollbackctl.policy import PolicyFileError, load_policy

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "decided: a level range to roll back, or fix forward",
        2: (
            "bad input: a bad option, or a policy file that does not validate (the message names "
            "the file, the key and what to fix); nothing was changed"
        ),
    }
)


class BadInput(click.ClickException):
    exit_code = 2


@click.command(name="decide", epilog=EXIT_CODES_HELP)
@incident_options
@click.option(
    "-i",
    "--inventory",
    metavar="INVENTORY",
    help="Inventory directory (inventories/prod), a file in it, or an environment name: "
    "its policy.yml is used.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A policy file to use instead of an inventory's.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON, nothing else.")
def decide_command(
    severity: str,
    impact: float,
    time_to_fix: int,
    inventory: str | None,
    policy_file: Path | None,
    as_json: bool,
) -> None:
    """Show the rollback levels the decision matrix gives for an incident: the level range,
    the level to start with, how far escalation may go, and which matrix row decided, why.

    The policy is the inventory's policy.yml (-i), a given file (--policy), or the runbook's
    defaults. Nothing is run and nothing changes.
    """
    if inventory is not None and policy_file is not None:
        raise click.UsageError("give -i/--inventory or --policy, not both")
    try:
        policy = load_policy(inventory, policy_file)
    except PolicyFileError as error:
        raise BadInput(str(error)) from None
    decision = decide(policy, severity, impact, time_to_fix)
    given = shlex.join(
        ["-s", severity, "--impact", format_percent(impact), "-t", format_duration(time_to_fix)]
    )
    closing = next_step.for_decide(decision, given, inventory)
    if as_json:
        click.echo(json.dumps({**decision.as_dict(), **closing.fields()}, indent=2))
    else:
        show(decision)
        next_step.echo(closing)


def show(decision: Decision) -> None:
    console = Console(highlight=False)
    console.print(summary(decision))
    console.print()
    console.print(conditions_table(decision))
    console.print()
    console.print(Text("Why: ", style="bold") + Text(decision.reason))


def summary(decision: Decision) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    if decision.start_level is None or decision.max_level is None:
        grid.add_row("Decision", Text("FIX FORWARD (no rollback)", style="bold green"))
    else:
        grid.add_row("Decision", Text(f"ROLL BACK, levels {decision.row.level_text}", "bold red"))
        grid.add_row("Start at", level_text(decision.start_level))
        escalation = level_text(decision.max_level)
        if decision.max_level == decision.start_level:
            escalation = Text("no escalation")
        grid.add_row("Escalate up to", escalation)
    row = decision.row
    grid.add_row("Matrix row", Text(row.describe()))
    if decision.escalated_from:
        grid.add_row("Escalated from", Text(f"declared severity {decision.escalated_from}"))
    grid.add_row("Policy", Text(decision.policy_source))
    return grid


def level_text(level: int) -> Text:
    return Text(f"level {level} ({LEVEL_NAMES[level]})")


def conditions_table(decision: Decision) -> Table:
    table = Table(title="Conditions", title_justify="left", show_edge=False)
    for column in ("row", "severity", "condition", "rule", "input", "held"):
        table.add_column(column)
    for verdict in decision.considered:
        for check in verdict.checks:
            held = Text("yes", "green") if check.held else Text(f"no ({check.position})", "red")
            table.add_row(
                f"matrix[{check.row}]",
                check.severity,
                check.field,
                check.rule,
                check.value,
                held,
            )
    return table
