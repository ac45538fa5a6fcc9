"""The README's incident walk-through, checked fast (part of `make test`): every command is
shell that parses, every rollbackctl command and option, playbook, testhosts subcommand and
make target it names exists, and nothing in it is written for one rig instance only.
`make test-readme` runs it on a rig (tests/integration/walkthrough_readme.py)."""

from __future__ import annotations

import re
import subprocess

import click
import pytest

from rollbackctl.cli import main
from tests.conftest import REPO
from tests.support.readme import Step, script, walkthrough

TESTHOSTS = REPO / "tests" / "hosts" / "testhosts"


@pytest.fixture(scope="module")
def steps() -> list[Step]:
    return walkthrough()


def test_the_walkthrough_is_complete(steps: list[Step]) -> None:
    commands = [" ".join(step.words()[:4]) for step in steps]
    for expected in (
        "tests/hosts/testhosts up 3",
        "rollbackctl run --level 1",
        "rollbackctl run --level 2",
        "rollbackctl run --level 3",
        "rollbackctl run --level 4",
        "rollbackctl report",
        "tests/hosts/testhosts down",
    ):
        assert expected in commands, f"the walk-through lacks {expected}"
    deploys = [s.command for s in steps if "playbooks/deploy.yml" in s.command]
    backup = next(i for i, s in enumerate(steps) if "playbooks/backup.yml" in s.command)
    bad = next(i for i, s in enumerate(steps) if "release_tag=v1.3.0" in s.command)
    assert "release_tag=v1.2.3-stable" in deploys[0] and backup < bad, "stable, backup, bad"


def test_the_commands_are_shell_that_parses(steps: list[Step]) -> None:
    checked = subprocess.run(
        ["bash", "-n"], input=script(steps), text=True, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


def test_nothing_is_written_for_one_rig_instance(steps: list[Step]) -> None:
    for step in steps:
        assert not re.search(r"172\.30\.\d+\.\d+|\.testhosts(-\d)?/", step.command), (
            f"README:{step.line}: take addresses and paths from `testhosts status`"
        )
    assert any(s.command.startswith("export PATH=") for s in steps), "the venv on PATH"


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    """The rollbackctl (sub)command the words name, and the words after it."""
    command: click.Command = main
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def test_every_rollbackctl_command_and_option_exists(steps: list[Step]) -> None:
    used = [step for step in steps if step.words()[0] == "rollbackctl"]
    assert len(used) >= 10
    for step in used:
        command, rest = _command(step.words())
        known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        for word in rest:
            if word.startswith("-"):
                assert word.split("=")[0] in known, f"README:{step.line}: {word} unknown"
        with command.make_context(command.name, list(rest), resilient_parsing=True):
            pass


def test_every_playbook_testhosts_command_and_make_target_exists(steps: list[Step]) -> None:
    helptext = subprocess.run(
        [str(TESTHOSTS), "--help"], capture_output=True, text=True, check=True
    ).stdout
    makefile = (REPO / "Makefile").read_text()
    for step in steps:
        for playbook in re.findall(r"playbooks/[\w.-]+\.yml", step.command):
            assert (REPO / playbook).is_file(), f"README:{step.line}: {playbook} missing"
        for path in re.findall(r"(?:roles|tests)/[\w./-]+\.py", step.command):
            assert (REPO / path).is_file(), f"README:{step.line}: {path} missing"
        for sub in re.findall(r"tests/hosts/testhosts (\w+)", step.command):
            assert re.search(rf"\b{sub}\b", helptext), f"README:{step.line}: testhosts {sub}"
        words = step.words()
        if words[0] == "make":
            for target in words[1:]:
                assert re.search(rf"^{target}:", makefile, re.M), f"make {target} missing"
    assert re.search(r"^test-readme:", makefile, re.M), "make test-readme runs the walk-through"
