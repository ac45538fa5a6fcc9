"""One module per subcommand; each exports one click command, listed here."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
