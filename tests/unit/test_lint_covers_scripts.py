"""The Python programs without a .py suffix (the test-host rig, the demo) are linted like
the rest: ruff finds them on its own, and `make lint` runs mypy on each."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO, VENV_BIN

PROGRAMS = ("tests/hosts/testhosts", "scripts/demo")


def test_ruff_reads_the_programs_without_a_py_suffix() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "--show-files", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    files = {line.strip() for line in proc.stdout.splitlines()}
    for program in PROGRAMS:
        assert str(REPO / program) in files, program


def test_make_lint_runs_mypy_on_them() -> None:
    lint = (REPO / "Makefile").read_text(encoding="utf-8").split("\nlint:", 1)[1].split("\n\n")[0]
    for program in PROGRAMS:
        assert f"mypy {program}" in lint, program
