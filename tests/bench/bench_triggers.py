#!/usr/bin/env python3
"""Benchmarks of the automatic triggers (``rollbackctl watch``). Prints JSON.

    .venv/bin/python -m tests.bench.bench_triggers cpu [TARGETS]         # no root, ~2 min
    sudo TESTHOSTS_INSTANCE=N .venv/bin/python -m tests.bench.bench_triggers latency [ROUNDS]

``cpu``: a real Prometheus scrapes TARGETS (default 50) stand-in exporters serving
demo-app-shaped metrics every second; the watcher's CPU time (its own process: queries,
JSON, the evaluator) and wall time per evaluation, over 30 evaluations, for TARGETS and for
2 targets.

``latency`` (the rig, ``ns`` runtime, 2 app hosts + the db host, SQLite): a real Prometheus
scrapes the demo app every 5 s (the rig policy's interval, windows of 20 s). Time from the
condition starting to the rollback starting, minus the rule's window (goal: under one
evaluation interval + 2 s):

* ``error_rate`` (window 20 s), ROUNDS times (default 3): v1.3.0 under load, its
  ``new_checkout`` flag turned on; the condition starts at the first 500 a user gets (25 %
  of checkouts fail from then on); the watcher in dry-run decides where a rollback would
  start; the flag goes off and the rule resolves before the next round. Also: when the
  evaluator first saw the ratio above 10 % (Prometheus' rate window mixes the seconds
  before), and the ratio at each evaluation of the first round;
* ``db_pool`` (instant): the pool-exhausting app.ini applied (config.yml); the condition
  starts when the new process starts (its ``process_start_time_seconds``); the watcher runs
  level 2 for real, and the rollback starts at the run record's ``timeline.started``.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from rollbackctl.project import find_project
from rollbackctl.rollback import RunOptions, load_run_policy
from rollbackctl.trigger_action import ActionSettings, StateFile, TriggerActions
from rollbackctl.watch import Watcher
from tests.bench.bench_l1_l2 import bad_config, refuse_shared_machine
from tests.bench.common import BIN, REPO, TESTHOSTS, ansible, rig
from tests.support.prometheus import Exporter, prometheus

RIG_POLICY = REPO / "inventories" / "testhosts" / "policy.yml"


def watcher_for(
    inventory: Path,
    url: str,
    work: Path,
    dry_run: bool,
    policy: Path,
    extra_vars: dict[str, Any] | None = None,
) -> Watcher:
    base = RunOptions(
        extra_vars=extra_vars or {},
        level=0,
        inventory=str(inventory),
        project=find_project(REPO),
        artifacts=work / "artifacts",
        policy_file=policy,
        notify=False,
    )
    loaded, _ = load_run_policy(str(inventory), policy)
    console = Console(file=io.StringIO(), width=200)
    settings = ActionSettings(base, max_level=3, cooldown=0, dry_run=dry_run)
    state = StateFile.read(work / f"state-{time.time_ns()}.json")
    actions = TriggerActions(settings, loaded, state, console, io.StringIO())
    return Watcher(loaded, url, actions, console)


# --------------------------------------------------------------------------------------------
# CPU per evaluation


def cpu(targets: int, evaluations: int = 30) -> dict[str, Any]:
    exporter = Exporter(targets)
    try:
        with (
            prometheus(exporter.addresses, interval=1) as server,
            tempfile.TemporaryDirectory() as work,
        ):
            server.wait_for(f'count(up{{job="demo-app"}} == 1) == {targets}', timeout=120)
            policy = Path(work) / "policy.yml"
            policy.write_text(
                json.dumps({"triggers": {"evaluation_interval": "1s", "error_rate": {"for": "5s"}}})
            )
            watcher = watcher_for(REPO / "inventories" / "testhosts", server.url, Path(work),
                                  True, policy)  # fmt: skip
            time.sleep(5)  # rates need samples
            cpu_times, wall_times = [], []
            for _ in range(evaluations):
                wall, used = time.perf_counter(), time.process_time()
                watcher.evaluate(time.time())
                cpu_times.append(time.process_time() - used)
                wall_times.append(time.perf_counter() - wall)
                time.sleep(max(0.0, 1 - wall_times[-1]))
            groups = sum(len(v) for v in watcher.values.values())
    finally:
        exporter.close()
    return {
        "targets": targets,
        "groups_evaluated": groups,
        "evaluations": evaluations,
        "cpu_ms_per_evaluation_median": round(statistics.median(cpu_times) * 1000, 1),
        "cpu_ms_per_evaluation_max": round(max(cpu_times) * 1000, 1),
        "wall_ms_per_evaluation_median": round(statistics.median(wall_times) * 1000, 1),
    }


# --------------------------------------------------------------------------------------------
# Condition start -> rollback start, on the rig


def on_host(inventory: Path, pattern: str, command: str) -> str:
    proc = subprocess.run(
        [str(BIN / "ansible"), pattern, "-i", str(inventory), "-m", "ansible.builtin.shell",
         "-a", command, "-o"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return proc.stdout


def flag(inventory: Path, state: str) -> None:
    """Turn new_checkout on or off on every app host at once: written in each host's own
    mount namespace (``testhosts exec``, ~50 ms), so the moment is known."""
    env = dict(os.environ, TESTHOSTS_DIR=str(inventory.parent))
    code = (
        "import json;p='/etc/demo-app/flags.json';d=json.load(open(p));"
        f"d['flags']['new_checkout']['state']='{state}';json.dump(d,open(p,'w'))"
    )
    for host in app_hosts(inventory):
        subprocess.run(
            [str(TESTHOSTS), "exec", host, "--", "python3", "-c", code],
            env=env, check=True, capture_output=True,
        )  # fmt: skip


def app_hosts(inventory: Path) -> list[str]:
    text = inventory.read_text()
    return [line.split()[0] for line in text.split("[app]")[1].split("[")[0].splitlines() if line]


def app_urls(inventory: Path) -> list[str]:
    text = inventory.read_text()
    hosts = app_hosts(inventory)
    addresses = {
        line.split()[0]: line.split("ansible_host=")[1].split()[0]
        for line in text.splitlines()
        if "ansible_host=" in line
    }
    return [f"{addresses[host]}:8080" for host in hosts]


def load(urls: list[str], stop: threading.Event, failures: list[float]) -> None:
    """Users: GET /checkout until stopped; ``failures`` gets the time of every 5xx."""
    while not stop.is_set():
        for url in urls:
            try:
                with urllib.request.urlopen(f"http://{url}/checkout", timeout=5):
                    pass
            except urllib.error.HTTPError as error:
                if error.code >= 500:
                    failures.append(time.time())
            except OSError:
                pass


def until(watcher: Watcher, done: Any, timeout: float, trace: list[Any] | None = None) -> list[Any]:
    """Evaluate every interval (stamped with its schedule, as ``watch`` does) until
    ``done(verdicts)``; ``trace`` gets the error ratio and its state at each evaluation."""
    verdicts: list[Any] = []
    deadline = time.monotonic() + timeout
    next_at = time.time()
    while time.monotonic() < deadline:
        verdicts += watcher.evaluate(next_at)
        if trace is not None:
            evaluator = watcher.evaluators["error_rate"]
            for group, value in watcher.values.get("error_rate", {}).items():
                trace.append((next_at, f"{value:.3f}", evaluator.state_of(group)))
        if done(verdicts):
            return verdicts
        next_at += watcher.interval
        time.sleep(max(0.0, next_at - time.time()))
    raise SystemExit(f"timed out after {timeout}s")


def latency(rounds: int) -> dict[str, Any]:
    common = ["-e", "demo_app_db_backend=sqlite"]
    errors: list[float] = []
    app_delay: list[float] = []  # flag on -> the app's first 500 (it re-reads its flags)
    seen: list[float] = []  # flag on -> the first evaluation where the ratio is above 10 %
    overhead: list[float] = []  # that evaluation + the window -> the decision
    first_trace: list[tuple[float, str, str]] = []
    trace: list[tuple[float, str, str]] | None = first_trace
    first_started = 0.0
    with rig(2, "triggers") as (inventory, _), tempfile.TemporaryDirectory() as work:
        ansible(inventory, "playbooks/demo-app.yml", *common)
        ansible(inventory, "playbooks/deploy.yml", "-e", "release_tag=v1.3.0", *common)
        flag(inventory, "DISABLED")
        urls = app_urls(inventory)
        stop = threading.Event()
        failures: list[float] = []
        threads = [
            threading.Thread(target=load, args=(urls, stop, failures), daemon=True)
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        try:
            with prometheus(urls, interval=5) as server:
                server.wait_for('up{job="demo-app"} == 1')
                watcher = watcher_for(inventory, server.url, Path(work), True, RIG_POLICY)
                rule = watcher.evaluators["error_rate"].rule
                until(watcher, lambda _: bool(watcher.values.get("error_rate")), 60)
                for _ in range(rounds):
                    started = time.time()
                    first_started = first_started or started
                    flag(inventory, "ENABLED")
                    verdicts = until(watcher, lambda v: bool(v), 120, trace)
                    decided, since = verdicts[0].at, verdicts[0].firing.condition_since
                    failing = min(t for t in failures if t >= started)
                    errors.append(round(decided - failing - rule.for_seconds, 2))
                    app_delay.append(round(failing - started, 2))
                    seen.append(round(since - started, 2))
                    overhead.append(round(decided - since - rule.for_seconds, 2))
                    flag(inventory, "DISABLED")
                    until(watcher, lambda _: not watcher.evaluators["error_rate"].alerts, 120)
                    trace = None  # the first round's values only
                pool = pool_round(inventory, server.url, Path(work), common)
        finally:
            stop.set()
    interval = rule.interval
    return {
        "evaluation_interval_s": interval,
        "goal_s": interval + 2,
        "error_rate_window_s": rule.for_seconds,
        "error_rate_flag_on_to_first_500_s": app_delay,
        "error_rate_decision_minus_first_500_minus_window_s": errors,
        "error_rate_median_s": statistics.median(errors),
        "error_rate_condition_seen_after_s": seen,
        "error_rate_decision_minus_condition_seen_minus_window_s": overhead,
        "error_rate_first_round_trace": [
            f"+{at - first_started:.1f}s {value} {state}" for at, value, state in first_trace
        ],
        "db_pool": pool,
    }


def pool_round(inventory: Path, url: str, work: Path, common: list[str]) -> dict[str, Any]:
    """One real level 2 run started by the db_pool rule."""
    ansible(inventory, "playbooks/config.yml", "-e", "config_action=snapshot", *common)
    sqlite = {"demo_app_db_backend": "sqlite"}
    watcher = watcher_for(inventory, url, work, False, RIG_POLICY, sqlite)
    until(watcher, lambda _: bool(watcher.values.get("db_pool")), 60)
    bad = bad_config(inventory, work)
    ansible(inventory, "playbooks/config.yml", "-e", f"@{bad}", "-e", "config_health_check=false",
            *common)  # fmt: skip
    # The condition starts with the process that holds the pool: the earliest new process.
    start = min(process_start(address) for address in app_urls(inventory))
    verdicts = until(watcher, lambda v: any(x.outcome == "ran" for x in v), 180)
    ran = next(v for v in verdicts if v.outcome == "ran")
    records = sorted((work / "artifacts" / "runs").glob("*-l2-*.json"))
    record = json.loads(records[-1].read_text())
    rollback_start = record["timeline"]["started"]
    started = datetime.fromisoformat(rollback_start.replace("Z", "+00:00")).timestamp()
    return {
        "condition_start": start,
        "rollback_start_minus_condition_start_s": round(started - start, 2),
        "verdict": ran.message,
        "record": record["run_id"],
        "time_to_detection_s": record["metrics"]["time_to_detection"]["seconds"],
        "time_to_rollback_s": record["metrics"]["time_to_rollback"]["seconds"],
    }


def process_start(address: str) -> float:
    """The app's process_start_time_seconds, read from its own /metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("process_start_time_seconds "):
                return float(line.split()[1])
    return math.inf


def main() -> None:
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    what = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    if what == "cpu":
        targets = int(sys.argv[2]) if len(sys.argv) > 2 else 50
        print(json.dumps([cpu(2), cpu(targets)], indent=1))
    elif what == "latency":
        refuse_shared_machine()
        print(json.dumps(latency(int(sys.argv[2]) if len(sys.argv) > 2 else 3), indent=1))
    else:
        raise SystemExit("usage: bench_triggers cpu [TARGETS] | latency [ROUNDS]")


if __name__ == "__main__":
    main()
