"""The README's incident walk-through, run as written on a rig of its own (`make
test-readme`, ~3 min; not part of `make test`, which checks the commands without running
them: tests/unit/test_readme_walkthrough.py).

The commands come from the README's ```bash walkthrough block, in one bash process
(variables carry over), each expected to end with its exit code (``# exits N``, else 0).
The rig instance is $TESTHOSTS_INSTANCE's; the hosts are taken down at the end, also when
a command fails."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from tests.conftest import REPO
from tests.integration.conftest import SCRIPT, platform_problem
from tests.support.readme import script, walkthrough

pytestmark = [pytest.mark.integration, pytest.mark.rig_lifecycle]


def test_the_readme_walkthrough_runs_as_written() -> None:
    problem = platform_problem("systemd")
    if problem:
        pytest.skip(problem)
    steps = walkthrough()
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)  # the walk-through sets what it needs itself
    started = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", "-c", script(steps)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    finally:
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=300)
    seconds = time.monotonic() - started
    print(f"\nwalk-through: {len(steps)} commands in {seconds:.0f} s")
    out = proc.stdout + proc.stderr
    log = REPO / ".artifacts" / "walkthrough.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(out)
    print(f"walk-through output: {log}")
    assert proc.returncode == 0, out[-8000:]
    assert "Traceback" not in out, out[-8000:]
    said = [line for line in out.splitlines() if not line.startswith("+ README:")]
    warnings = [line for line in said if re.search(r"\[WARNING\]|Warning: ", line)]
    assert not warnings, f"no warning a user cannot act on: {warnings}"
    assert out.count("\nState: ") >= 8 and out.count("\nNext: ") >= 8, "every command ends so"
    assert "INVALID" in out and "\nvalid\n" in out, "invalid with the damaged data, valid after"
