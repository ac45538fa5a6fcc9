"""``rollbackctl status``: what is on the hosts now (read-only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from rollbackctl import next_step
from rollbackctl.commands.options import BadInputError, project_of, target_options
from rollbackctl.exits import exit_codes_help
from rollbackctl.rollback import BadInput
from rollbackctl.status import problems, run_status, status_table

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "every host answered and every application checked is healthy",
        1: "a host was unreachable, a probe failed, or a host's application is down",
        2: "bad input (inventory, no host matched); nothing was changed",
    }
)


@click.command(name="status", epilog=EXIT_CODES_HELP)
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(
    inventory: str,
    limit: str | None,
    hosts: str | None,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Run playbooks/status.yml (read-only): per host the current release, the
    application's health (release_health_url), the lock holder, the last rollback, and
    flags, configuration checksum and database revision where the inventory says where
    they are."""
    project = project_of(project_dir)
    try:
        outcome = run_status(project, inventory, limit, hosts)
    except BadInput as error:
        raise BadInputError(str(error)) from None
    closing = next_step.for_status(outcome.hosts, outcome.exit_code, problems(outcome), inventory)
    if as_json:
        rows = [row.as_dict() for row in outcome.hosts]
        click.echo(json.dumps({"hosts": rows, **closing.fields()}, indent=2, default=str))
    else:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=160)  # logs: no wrapping in cells
        console.print(status_table(outcome))
        for line in [*problems(outcome), outcome.note]:
            if line:
                console.print(line, soft_wrap=True)
        next_step.echo(closing)
    sys.exit(outcome.exit_code)
