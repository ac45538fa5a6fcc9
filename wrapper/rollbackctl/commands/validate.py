"""``rollbackctl validate``: is the system as it should be (read-only)?"""

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
from rollbackctl.validate import problems, run_validate, validate_table

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "valid: same release everywhere, healthy, configuration and database valid",
        1: "invalid: a check failed or a host was unreachable",
        2: "bad input (inventory, no host matched); nothing was changed",
    }
)


@click.command(name="validate", epilog=EXIT_CODES_HELP)
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print the validation as JSON.")
def validate_command(
    inventory: str,
    limit: str | None,
    hosts: str | None,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Run playbooks/validate.yml (read-only, the runbook's system:validate): every app
    host runs the same release, answers its health check, passes the configuration check
    (validate_config_command), and the database passes validate-db.yml when the inventory
    has a `db` group."""
    project = project_of(project_dir)
    try:
        outcome = run_validate(project, inventory, limit, hosts)
    except BadInput as error:
        raise BadInputError(str(error)) from None
    closing = next_step.for_validate(outcome, inventory)
    if as_json:
        click.echo(json.dumps({**outcome.as_dict(), **closing.fields()}, indent=2, default=str))
    else:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=160)  # logs: no wrapping in cells
        console.print(validate_table(outcome))
        for line in [*problems(outcome), outcome.note]:
            if line:
                console.print(line, soft_wrap=True)
        console.print("valid" if outcome.exit_code == 0 else "INVALID", highlight=False)
        next_step.echo(closing)
    sys.exit(outcome.exit_code)
