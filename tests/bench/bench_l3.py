#!/usr/bin/env python3
"""Time level 3 (fast path) on N hosts of the `ns` runtime, against a plain symlink-swap
playbook with restart and health-check tasks on the same hosts. Prints JSON.

    sudo .venv/bin/python -m tests.bench.bench_l3 10 50

Not part of the test run (it takes minutes). Each size: up N hosts, prepare the demo app
(SQLite, `command` service manager), deploy stable, then BENCH_ROUNDS times (default 3)
in turn: deploy the bad release and time the rollback (`rollback-l3.yml`, default health
gate: 3 successes in a row, 0.5 s apart); deploy it again and time the baseline
(`baseline_symlink_swap.yml`: one task per step, accepts the first 200); deploy it again
and time level 3 with the baseline's health criterion (`release_health_successes=1`), which
isolates the tool's own cost. Medians, each run, and the whole machine's CPU seconds per
run (/proc/stat: controller, sshd, the hosts' Python and the app together).
Run it on an otherwise idle machine: the hosts share its cores with everything else.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from tests.bench.common import ansible, rig

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (user, nice, system, irq, softirq)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = sum(int(fields[i]) for i in (0, 1, 2, 5, 6))
    return ticks / os.sysconf("SC_CLK_TCK")


def timed(inventory: Path, *args: str) -> tuple[float, float]:
    """(wall seconds, machine CPU seconds) of one playbook run."""
    before = busy_seconds()
    wall = ansible(inventory, *args)
    return wall, round(busy_seconds() - before, 1)


def summary(runs: list[tuple[float, float]]) -> dict[str, object]:
    return {
        "median_s": statistics.median(w for w, _ in runs),
        "runs_s": [w for w, _ in runs],
        "median_cpu_s": statistics.median(c for _, c in runs),
    }


def bench(hosts: int) -> dict[str, object]:
    with rig(hosts, "l3") as (inventory, up_seconds):
        common = ["-e", "demo_app_db_backend=sqlite", "-f", str(max(hosts, 5))]
        bad = ["playbooks/deploy.yml", "-e", "release_tag=v1.3.0", *common]
        ansible(inventory, "playbooks/demo-app.yml", *common)
        ansible(inventory, "playbooks/deploy.yml", "-e", "release_tag=v1.2.3-stable", *common)
        l3, baseline, l3_same_gate = [], [], []
        for _ in range(ROUNDS):
            ansible(inventory, *bad)
            l3.append(timed(inventory, "playbooks/rollback-l3.yml", *common))
            ansible(inventory, *bad)
            baseline.append(
                timed(
                    inventory,
                    "tests/bench/baseline_symlink_swap.yml",
                    "-e",
                    "target_tag=v1.2.3-stable",
                    *common,
                )
            )
            ansible(inventory, *bad)
            l3_same_gate.append(
                timed(
                    inventory,
                    "playbooks/rollback-l3.yml",
                    "-e",
                    "release_health_successes=1",
                    *common,
                )
            )
    result: dict[str, object] = {
        "app_hosts": hosts,
        "testhosts_up_s": up_seconds,
        "rollback_l3": summary(l3),
        "baseline_symlink_swap": summary(baseline),
        "rollback_l3_first_200": summary(l3_same_gate),
    }
    base = statistics.median(w for w, _ in baseline)
    result["ratio"] = round(statistics.median(w for w, _ in l3) / base, 2)
    result["ratio_first_200"] = round(statistics.median(w for w, _ in l3_same_gate) / base, 2)
    return result


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50]
    print(json.dumps([bench(n) for n in sizes], indent=1))


if __name__ == "__main__":
    main()
