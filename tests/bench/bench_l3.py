#!/usr/bin/env python3
"""Time level 3 (fast path) on N hosts of the `ns` runtime, against a plain symlink-swap
playbook with restart and health-check tasks on the same hosts. Prints JSON.

    sudo .venv/bin/python -m tests.bench.bench_l3 10 50

Not part of the test run (it takes minutes). Each size: up N hosts, prepare the demo app
(SQLite, `command` service manager), deploy stable then bad, then time the rollback
(`rollback-l3.yml`) and the baseline (`baseline_symlink_swap.yml`), each from bad back to
stable, and tear down.
"""

from __future__ import annotations

import json
import sys

from tests.bench.common import ansible, rig


def bench(hosts: int) -> dict[str, object]:
    with rig(hosts, "l3") as (inventory, up_seconds):
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
