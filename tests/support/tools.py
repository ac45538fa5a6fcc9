"""Debian tools the tests need (scripts/debian-packages.txt): found, or a clear failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def require_tool(name: str, package: str) -> str:
    """The path of ``name``. Missing as root: the test fails and says to run
    ``make system-deps`` (never a silent skip); missing without root: a visible skip."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found (Debian package {package})"
    if os.geteuid() == 0:
        pytest.fail(f"{message}: run `make system-deps` (scripts/install-system-deps)")
    pytest.skip(f"{message}; not root, so `make system-deps` cannot install it")
    raise AssertionError("unreachable")


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` as a test author; its stdout, stripped (fails the test on error)."""
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
