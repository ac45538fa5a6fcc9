"""One module per subcommand; each exports one click command, listed here."""

from __future__ import annotations

import click

from rollbackctl.commands.decide import decide_command

COMMANDS: list[click.Command] = [decide_command]
