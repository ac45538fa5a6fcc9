# GPL-3.0-or-later
"""Small host-side helpers every module_utils file uses the same way: a file's sha256, and a
command run with a time limit. Standard library only (it runs on the hosts, and ships
with the direct path's module_utils files)."""

from __future__ import annotations

import hashlib
import subprocess
from typing import NamedTuple


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Ran(NamedTuple):
    """How a command ended: its exit status (None: it took longer than its time limit and
    was killed), its stdout and its stderr."""

    rc: int | None
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def run_command(
    cmd: list[str] | str,
    timeout: float,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    shell: bool = False,
) -> Ran:
    """Run ``cmd`` (its output captured as text) for at most ``timeout`` seconds; the caller
    says what a failure or a timeout means."""
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            shell=shell,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Ran(None, "", "")
    return Ran(proc.returncode, proc.stdout, proc.stderr)
