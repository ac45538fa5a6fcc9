"""One module per subcommand; each exports one click command, listed here."""

from __future__ import annotations

import click

from rollbackctl.commands.awx import awx_group
from rollbackctl.commands.decide import decide_command
from rollbackctl.commands.drill import drill_group
from rollbackctl.commands.emergency import emergency_command
from rollbackctl.commands.releases import releases_group
from rollbackctl.commands.report import report_command
from rollbackctl.commands.run import run_command
from rollbackctl.commands.status import status_command
from rollbackctl.commands.triggers import replay_command, triggers_group
from rollbackctl.commands.validate import validate_command
from rollbackctl.commands.watch import alerts_group, approve_command, watch_command

COMMANDS: list[click.Command] = [
    decide_command,
    run_command,
    emergency_command,
    status_command,
    releases_group,
    validate_command,
    report_command,
    triggers_group,
    replay_command,
    watch_command,
    alerts_group,
    approve_command,
    awx_group,
    drill_group,
]
