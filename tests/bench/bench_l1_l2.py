#!/usr/bin/env python3
"""Time level 1 (feature flag) and level 2 (configuration) on N hosts of the `ns` runtime.
Prints JSON.

    sudo .venv/bin/python -m tests.bench.bench_l1_l2 10

Not part of the test run (it takes minutes). Each size: up N app hosts (+1 db host),
prepare the demo app (SQLite, `command` service manager), deploy v1.3.0, turn
`new_checkout` on with level 1 itself (state=enabled), then time:

* `rollback-l1.yml` (flag off everywhere: plan, set-and-verify, cache clear, evaluation probe),
* the same again (nothing to change),
* `rollback-l1.yml -e feature_flag_plan=false` (one module call per host, no plan pass),
  each three times (the flag back on in between), medians,
* `config.yml` applying the pool-exhausting app.ini (no health gate, as a bad change goes in),
* `rollback-l2.yml` from the revision store (canary, then the rest: validate, restore,
  restart, health gate),

and tear down. With TESTHOSTS_INSTANCE set, the rig is that instance's; without it, the
bench refuses to start while another rig's namespaces exist.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.common import BIN, REPO, ansible, rig

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))  # level 1 timings per variant; medians


def bad_config(inventory: Path, workdir: Path) -> Path:
    """Extra vars with the pool-exhausting app.ini, read from the first app host."""
    fetched = workdir / "app.ini"
    subprocess.run(
        [
            str(BIN / "ansible"),
            "app[0]",
            "-i",
            str(inventory),
            "-m",
            "ansible.builtin.fetch",
            "-a",
            f"src=/etc/demo-app/app.ini dest={fetched} flat=true",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    content = fetched.read_text()
    path = workdir / "bad-config.json"
    path.write_text(
        json.dumps(
            {
                "config_apply_files": {
                    "app.ini": content.replace("hold_connections = 0", "hold_connections = 5")
                }
            }
        )
    )
    return path


def refuse_shared_machine() -> None:
    if os.environ.get("TESTHOSTS_INSTANCE"):
        return
    busy = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if busy.stdout.strip():
        raise SystemExit(
            "network namespaces exist (another rig is up): set TESTHOSTS_INSTANCE=N and "
            "TESTHOSTS_DIR for a rig of your own, or wait"
        )


def bench(hosts: int) -> dict[str, object]:
    flag = ["-e", "feature_flag_names=new_checkout"]
    with rig(hosts, "l1-l2") as (inventory, up_seconds), tempfile.TemporaryDirectory() as workdir:
        common = ["-e", "demo_app_db_backend=sqlite", "-f", str(max(hosts, 5))]
        ansible(inventory, "playbooks/demo-app.yml", *common)
        ansible(inventory, "playbooks/deploy.yml", "-e", "release_tag=v1.3.0", *common)
        enable = ["-e", "feature_flag_state=enabled"]
        no_plan = ["-e", "feature_flag_plan=false"]
        l1_runs, l1_again_runs, l1_no_plan_runs = [], [], []
        for _ in range(ROUNDS):
            ansible(inventory, "playbooks/rollback-l1.yml", *flag, *enable, *common)
            l1_runs.append(ansible(inventory, "playbooks/rollback-l1.yml", *flag, *common))
            l1_again_runs.append(ansible(inventory, "playbooks/rollback-l1.yml", *flag, *common))
            ansible(inventory, "playbooks/rollback-l1.yml", *flag, *enable, *common)
            l1_no_plan_runs.append(
                ansible(inventory, "playbooks/rollback-l1.yml", *flag, *no_plan, *common)
            )
        ansible(inventory, "playbooks/config.yml", "-e", "config_action=snapshot", *common)
        apply = ansible(
            inventory,
            "playbooks/config.yml",
            "-e",
            f"@{bad_config(inventory, Path(workdir))}",
            "-e",
            "config_health_check=false",
            *common,
        )
        l2 = ansible(inventory, "playbooks/rollback-l2.yml", *common)
    return {
        "app_hosts": hosts,
        "testhosts_up_s": up_seconds,
        "rollback_l1_s": statistics.median(l1_runs),
        "rollback_l1_runs_s": l1_runs,
        "rollback_l1_unchanged_s": statistics.median(l1_again_runs),
        "rollback_l1_unchanged_runs_s": l1_again_runs,
        "rollback_l1_without_plan_s": statistics.median(l1_no_plan_runs),
        "rollback_l1_without_plan_runs_s": l1_no_plan_runs,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "config_apply_s": apply,
        "rollback_l2_s": l2,
    }


def main() -> None:
    # SIGTERM becomes SystemExit, so that `finally` takes the rig down.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    refuse_shared_machine()
    sizes = [int(a) for a in sys.argv[1:]] or [10]
    print(json.dumps([bench(n) for n in sizes], indent=1))


if __name__ == "__main__":
    main()
