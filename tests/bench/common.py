"""Shared by the benchmarks: run a playbook and time it, bring a rig up for the duration."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TESTHOSTS = REPO / "tests" / "hosts" / "testhosts"


def ansible(inventory: Path, *args: str) -> float:
    """Seconds an ansible-playbook run takes; exits with its output when it fails."""
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}:{os.environ['PATH']}",
        SRE_ROLLBACK_RECORD_DIR=str(REPO / ".artifacts" / "bench-runs"),
    )
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
        raise SystemExit(f"ansible-playbook {' '.join(args)} failed")
    return round(seconds, 2)


@contextmanager
def rig(hosts: int, name: str) -> Iterator[tuple[Path, float]]:
    """`hosts` app hosts plus the db host h1 on the ns runtime; always torn down.
    Yields the inventory and the seconds `up` took. TESTHOSTS_INSTANCE=N (testhosts reads
    it) keeps the state of each instance's rig apart."""
    instance = os.environ.get("TESTHOSTS_INSTANCE", "0") or "0"
    suffix = "" if instance == "0" else f"-i{instance}"
    state = REPO / ".artifacts" / f"bench-{name}-{hosts}{suffix}"
    env = dict(os.environ, TESTHOSTS_DIR=str(state))
    subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, capture_output=True)
    started = time.monotonic()
    subprocess.run(
        [str(TESTHOSTS), "up", str(hosts + 1), "--runtime", "ns"],
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        yield state / "inventory.ini", round(time.monotonic() - started, 2)
    finally:
        subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, capture_output=True)
