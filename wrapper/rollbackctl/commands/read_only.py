"""What the read-only commands over the hosts (``status``, ``validate``) share: the target
options and ``--json``, the exit codes' help, bad input as exit 2, and how a result is shown
(a table and its lines, or JSON, then the next step)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from rollbackctl import next_step
from rollbackctl.commands.options import BadInputError, project_of, target_options
from rollbackctl.exits import exit_codes_help
from rollbackctl.project import Project
from rollbackctl.rollback import BadInput

BAD_INPUT = "bad input (inventory, no host matched); nothing was changed"


@dataclass(frozen=True)
class Shown:
    """What a read-only command found, ready to show: ``table`` and ``lines`` for people
    (empty lines are skipped), ``data`` for --json (the next step is added to it)."""

    table: Any
    lines: Iterable[str | None]
    data: dict[str, Any]
    closing: next_step.Closing
    exit_code: int


Look = Callable[[Project, str, str | None, str | None], Shown]


def read_only_command(
    name: str, what: str, meanings: dict[int, str]
) -> Callable[[Look], click.Command]:
    """A click command from ``look(project, inventory, limit, hosts) -> Shown``; its
    docstring is the command's help, ``meanings`` its exit codes 0 and 1 (2 is bad input)."""

    def make(look: Look) -> click.Command:
        @click.command(
            name=name, help=look.__doc__, epilog=exit_codes_help({**meanings, 2: BAD_INPUT})
        )
        @target_options
        @click.option("--json", "as_json", is_flag=True, help=f"Print the {what} as JSON.")
        def command(
            inventory: str,
            limit: str | None,
            hosts: str | None,
            project_dir: Path | None,
            as_json: bool,
        ) -> None:
            project = project_of(project_dir)
            try:
                shown = look(project, inventory, limit, hosts)
            except BadInput as error:
                raise BadInputError(str(error)) from None
            if as_json:
                data = {**shown.data, **shown.closing.fields()}
                click.echo(json.dumps(data, indent=2, default=str))
            else:
                show(shown)
            sys.exit(shown.exit_code)

        return command

    return make


def show(shown: Shown) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)  # logs: no wrapping in cells
    console.print(shown.table)
    for line in shown.lines:
        if line:
            console.print(line, soft_wrap=True)
    next_step.echo(shown.closing)
