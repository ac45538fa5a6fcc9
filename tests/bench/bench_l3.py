#!/usr/bin/env python3
"""Time level 3 (fast path) on N hosts of the `ns` runtime, against a plain symlink-swap
playbook with restart and health-check tasks on the same hosts. Prints JSON.

    sudo .venv/bin/python tests/bench/bench_l3.py 10 50

Not part of the test run (it takes minutes). Each size: up N hosts, prepare the demo app
(SQLite, `command` service manager), deploy stable then bad, then time the rollback
(`rollback-l3.yml`) and the baseline (`baseline_symlink_swap.yml`), each from bad back to
stable, and tear down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TESTHOSTS = REPO / "tests" / "hosts" / "testhosts"


def ansible(inventory: Path, *args: str) -> float:
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


def bench(hosts: int) -> dict[str, object]:
    state = REPO / ".artifacts" / f"bench-{hosts}"
    env = dict(os.environ, TESTHOSTS_DIR=str(state))
    subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, capture_output=True)
    started = time.monotonic()
    subprocess.run(
        [str(TESTHOSTS), "up", str(hosts + 1), "--runtime", "ns"],
        env=env,
        check=True,
        capture_output=True,
    )
    up_seconds = round(time.monotonic() - started, 2)
    inventory = state / "inventory.ini"
    try:
        common = ["-e", "demo_app_db_backend=sqlite", "-f", str(max(hosts, 5))]
        ansible(inventory, "playbooks/demo-app.yml", *common)
        ansible(inventory, "playbooks/deploy.yml", "-e", "release_tag=v1.2.3-stable", *common)
        ansible(inventory, "playbooks/deploy.yml", "-e", "release_tag=v1.3.0", *common)
        l3 = ansible(inventory, "playbooks/rollback-l3.yml", *common)
        ansible(inventory, "playbooks/deploy.yml", "-e", "release_tag=v1.3.0", *common)
        baseline = ansible(
            inventory,
            "tests/bench/baseline_symlink_swap.yml",
            "-e",
            "target_tag=v1.2.3-stable",
            *common,
        )
    finally:
        subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, capture_output=True)
    return {
        "app_hosts": hosts,
        "testhosts_up_s": up_seconds,
        "rollback_l3_s": l3,
        "baseline_symlink_swap_s": baseline,
        "ratio": round(l3 / baseline, 2),
    }


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50]
    print(json.dumps([bench(n) for n in sizes], indent=1))


if __name__ == "__main__":
    main()
