"""The wrapper's command group, through click's CliRunner."""

from __future__ import annotations

from click.testing import CliRunner

from rollbackctl import __version__
from rollbackctl.cli import main


def test_help_lists_the_group_and_exit_codes() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: rollbackctl" in result.output
    assert "five-level rollback runbook" in result.output
    assert "Exit codes" in result.output


def test_version_matches_the_package() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rollbackctl, version {__version__}"


def test_unknown_command_is_bad_input() -> None:
    result = CliRunner().invoke(main, ["explode"])
    assert result.exit_code == 2
    assert "No such command" in result.output
