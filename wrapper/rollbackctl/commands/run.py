"""``rollbackctl run``: run one rollback level's playbook with live progress."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from rollbackctl import next_step
from rollbackctl.commands.options import (
    BadInputError,
    build_run_options,
    run_options,
    target_options,
)
from rollbackctl.progress import output_console
from rollbackctl.rollback import (
    EXIT_CODES_HELP,
    BadInput,
    run_level,
    show_outcome,
)


@click.command(name="run", epilog=EXIT_CODES_HELP)
@click.option(
    "--level",
    required=True,
    type=click.IntRange(1, 5),
    help="1 feature flag, 2 configuration, 3 code, 4 database, 5 full system.",
)
@target_options
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON on stdout.")
def run_command(level: int, as_json: bool, **params: Any) -> None:
    """Run playbooks/rollback-l<LEVEL>.yml through ansible-runner, with progress per host
    and per phase, and leave a run record (metrics, checklist, RTO/RPO) behind.

    The start (ROLLBACK INITIATED, customer) and closing messages go where the policy's
    communication channels say. Ctrl-C or SIGTERM cancels cleanly: Ansible is stopped,
    this run's locks are released, the record is marked canceled.
    """
    options = build_run_options(level, params)
    stream = sys.stderr if as_json else sys.stdout
    console = output_console(stream)
    try:
        outcome = run_level(options, console, stream)
    except BadInput as error:
        raise BadInputError(str(error)) from None
    show_outcome(outcome, console)
    closing = next_step.for_run(outcome.record, outcome.exit_code, options.inventory)
    for line in closing.lines():
        console.print(line, highlight=False, markup=False)
    if as_json:
        record = {**outcome.record, **closing.fields()}
        click.echo(json.dumps(record, indent=2, sort_keys=True, default=str))
    sys.exit(outcome.exit_code)
