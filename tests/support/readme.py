"""The README's incident walk-through (the fenced block marked ```bash walkthrough```), as
commands a test can check and run exactly as written.

A line is one command (a trailing backslash continues it); a comment line is a comment;
``# exits N`` at the end of a command says the exit code it is expected to end with
(0 otherwise)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

README = REPO / "README.md"
BLOCK = re.compile(r"^```bash walkthrough\n(.*?)^```", re.S | re.M)
EXITS = re.compile(r"#\s*exits (\d+)\b")


@dataclass(frozen=True)
class Step:
    line: int  # in the README
    command: str
    exit_code: int

    def words(self) -> list[str]:
        """The command's words, comments left out (variables as written: "$INV")."""
        return shlex.split(self.command, comments=True)


def walkthrough(readme: Path = README) -> list[Step]:
    text = readme.read_text(encoding="utf-8")
    found = BLOCK.search(text)
    if found is None:
        raise AssertionError(f"{readme}: no ```bash walkthrough block")
    first = text[: found.start(1)].count("\n") + 1
    steps: list[Step] = []
    pending, start = "", 0
    for offset, raw in enumerate(found.group(1).splitlines()):
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not pending:
            start = first + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        command = pending + raw
        pending = ""
        expected = EXITS.search(command)
        steps.append(Step(start, command.strip(), int(expected.group(1)) if expected else 0))
    return steps


def script(steps: list[Step]) -> str:
    """One bash script that runs the steps in order in one shell (variables carry over),
    says which README line each is, and stops at the first that ends otherwise than
    expected."""
    lines = ["set -u", f"cd {shlex.quote(str(REPO))}"]
    for step in steps:
        lines += [
            f"echo {shlex.quote(f'+ README:{step.line}: {step.command}')}",
            step.command,
            "rc=$?",
            f'if [ "$rc" -ne {step.exit_code} ]; then '
            f'echo "README:{step.line}: exit $rc, expected {step.exit_code}" >&2; exit 1; fi',
        ]
    return "\n".join(lines) + "\n"
