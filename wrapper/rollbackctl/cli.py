"""The `rollbackctl` command group. Each subcommand lives in its own module under
`rollbackctl.commands` and is a thin function over library code."""

from __future__ import annotations

import click

from rollbackctl import __version__
from rollbackctl.exits import exit_codes_help

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "success",
        1: "the rollback (or the command) ran and failed",
        2: "bad input: nothing was changed",
        3: "canceled (Ctrl-C / SIGTERM): run and emergency stopped cleanly",
    }
)


@click.group(
    name="rollbackctl",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="rollbackctl")
def main() -> None:
    """Carry out the five-level rollback runbook (sre.rollback) on an Ansible inventory.

    Levels: 1 feature flag, 2 configuration, 3 code, 4 database, 5 full system.
    """


def register_commands() -> None:
    """Attach every subcommand module's command to the group."""
    from rollbackctl.commands import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


register_commands()
