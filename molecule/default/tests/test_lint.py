"""The default scenario's lint: yamllint and ansible-lint (production profile) over the
drills, as `make lint` runs them on the whole project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def lint(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    env.pop("ANSIBLE_CONFIG", None)  # Molecule's own; the linters read the project's
    return subprocess.run(
        argv, cwd=PROJECT, env=env, capture_output=True, text=True, check=False, timeout=600
    )


def test_yamllint_molecule():
    done = lint(str(BIN / "yamllint"), "-s", "molecule")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ansible_lint_molecule():
    done = lint(str(BIN / "ansible-lint"), "-q", "molecule")
    assert done.returncode == 0, done.stdout + done.stderr
