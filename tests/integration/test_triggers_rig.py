"""The automatic triggers end to end on the rig (``make test-triggers``): a real Prometheus
(Debian's binary, on loopback, its own data directory) scrapes the demo app's /metrics on
the app hosts every 5 s; ``rollbackctl watch`` (a process, as an operator starts it) reads
the rig's policy (windows of 20 s instead of the runbook's 5 minutes, evaluated every 5 s)
and acts when a rule fires:

- a release whose health check starts failing -> health_check_failures -> level 3;
- a configuration that exhausts the database pool -> db_pool -> level 2 (bad config);
- the bad release v1.3.0 under load -> error_rate -> level 3 (the rule resolves); its
  migration damaged the data, so validation fails and level 4 is above the unattended
  maximum: it waits for ``rollbackctl approve``, then restores the backup.

Each asserts what every host runs afterwards, the trigger and the times (detection,
decision, rollback) in the run record."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.integration.rig import (
    APP_ROOT,
    current,
    health,
    playbook,
    release_log,
    tag_patched_release,
)
from tests.integration.test_level2 import apply, holding, ini, wait_health
from tests.integration.test_level3 import set_flag
from tests.support.prometheus import Prometheus, long_scenario, prometheus

pytestmark = [
    pytest.mark.integration,
    long_scenario,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, BAD, DEGRADES = "v1.2.3-stable", "v1.3.0", "v1.3.2-degrades"
BACKUP = "testhosts-before-triggers-test"
INTERVAL = 5  # the rig policy's triggers.evaluation_interval
WINDOW = 20  # the rig policy's error_rate for


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def deploy(rig: Any, tag: str) -> None:
    run = playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={tag}")
    assert run.rc == 0, run.out[-4000:]


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Iterator[Any]:
    """Every app host on STABLE, clean release history; the database backed up first and
    restored after, every host back on STABLE, so later tests find the rig as it was."""
    for host in testhosts.hosts:
        testhosts.exec(host, "rm", "-f", f"{APP_ROOT}/releases.log", f"{APP_ROOT}/.rollback.lock")
    prepared = playbook(testhosts.inventory, "demo-app.yml")
    assert prepared.rc == 0, prepared.out[-4000:]
    deploy(testhosts, STABLE)
    backup = playbook(testhosts.inventory, "backup.yml", "-e", f"backup_name={BACKUP}")
    assert backup.rc == 0, backup.out[-4000:]
    yield testhosts
    restored = playbook(
        testhosts.inventory, "rollback-l4.yml", "-e", f"database_restore_backup={BACKUP}"
    )
    assert restored.rc == 0, restored.out[-4000:]
    back = playbook(testhosts.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert back.rc == 0, back.out[-4000:]


@pytest.fixture(scope="module")
def prom(rig: Any) -> Iterator[Prometheus]:
    targets = [f"{rig.addr(host)}:8080" for host in app_hosts(rig)]
    with prometheus(targets, interval=INTERVAL) as server:
        server.wait_for('up{job="demo-app"} == 1')
        yield server


class Watch:
    """``rollbackctl watch`` as a process; its output in a file."""

    def __init__(self, rig: Any, prom: Prometheus, work: Path, *args: str) -> None:
        self.work = work
        self.state = work / "state.json"
        self.artifacts = work / "artifacts"
        self.log = work / "watch.log"
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}", PYTHONUNBUFFERED="1")
        env.pop("ROLLBACK_WEBHOOK_URL", None)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "rollbackctl"), "watch", "-i", str(rig.inventory),
                 "--prometheus", prom.url, "--project-dir", str(REPO),
                 "--artifacts", str(self.artifacts), "--state", str(self.state), *args],
                cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text()[after:], re.MULTILINE)
            if found:
                return found
            assert self.process.poll() is None, f"watch exited:\n{self.text()[-5000:]}"
            time.sleep(1)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.text()[-6000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def records(self) -> list[dict[str, Any]]:
        runs = self.artifacts / "runs"
        found = [json.loads(p.read_text()) for p in runs.glob("*.json") if not p.is_symlink()]
        return sorted((r for r in found if r.get("level")), key=lambda r: str(r.get("started")))


@pytest.fixture
def watch_factory(rig: Any, prom: Prometheus, tmp_path: Path) -> Iterator[Any]:
    started: list[Watch] = []

    def start(*args: str) -> Watch:
        watch = Watch(rig, prom, tmp_path, *args)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.stop()


class Load:
    """Users: GET /checkout on every app host from 4 threads until stopped."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(4)]

    def run(self) -> None:
        while not self.stop.is_set():
            for url in self.urls:
                try:
                    with urllib.request.urlopen(f"{url}/checkout", timeout=5):  # noqa: S310
                        pass
                except OSError:
                    pass

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def make_degrading_release(rig: Any, host: str, after: int) -> None:
    """Tag DEGRADES in the host's mirror: the stable release whose health check (GET
    /health and demo_health_ok) fails once it has run ``after`` seconds, as a leak would.
    Its deploy passes the gate. The same commit id on every host."""
    fresh = f"time.time() - self.started < {after}"
    patch = (
        "text = open(path).read()\n"
        "assert text.count('database.ok') >= 3 and 'return self.db.health().ok' in text\n"
        f"text = text.replace('database.ok', '(database.ok and {fresh})')\n"
        "text = text.replace('return self.db.health().ok', "
        f"'return self.db.health().ok and {fresh}')\n"
        "open(path, 'w').write(text)"
    )
    message = f"health fails after {after} s"
    tag_patched_release(rig, host, DEGRADES, STABLE, patch, message, "2024-03-02T10:00:00+00:00")


def the_run(watch: Watch, rule: str) -> dict[str, Any]:
    runs = [r for r in watch.records() if (r.get("trigger") or {}).get("rule") == rule]
    assert runs, f"no run record of {rule}:\n{watch.text()[-5000:]}"
    return runs[-1]


def test_health_failures_run_level_3(rig: Any, watch_factory: Any) -> None:
    for host in app_hosts(rig):
        make_degrading_release(rig, host, after=25)
    deploy(rig, DEGRADES)
    watch = watch_factory("--no-notify")
    ran = watch.wait_for(r"health_check_failures \(.*\): ran: (.*)$", timeout=180)
    assert "level 3 verified" in ran.group(1), watch.text()[-5000:]
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
        assert health(rig, host)[0] == 200
        states = {e["tag"]: e["state"] for e in release_log(rig, host)}
        assert states[DEGRADES] == "bad"
    watch.wait_for(r"health_check_failures .*ok$", timeout=60, after=ran.end())
    record = the_run(watch, "health_check_failures")
    assert record["level"] == 3 and record["status"] == "ok"
    metrics = record["metrics"]
    # Fires at the 4th failing evaluation in a row: 3 intervals after the first one.
    assert 3 * INTERVAL <= metrics["time_to_detection"]["seconds"] <= 3 * INTERVAL + 1
    assert metrics["time_to_decision"]["seconds"] < 2 * INTERVAL
    assert metrics["time_to_rollback"]["seconds"] > 0


def test_pool_exhaustion_runs_level_2(rig: Any, watch_factory: Any, tmp_path: Path) -> None:
    snapshot = playbook(rig.inventory, "config.yml", "-e", "config_action=snapshot")
    assert snapshot.rc == 0, snapshot.out[-4000:]
    good = ini(rig, app_hosts(rig)[0])
    assert "hold_connections = 0" in good
    watch = watch_factory("--no-notify")
    watch.wait_for(r"db_pool .* ok$", timeout=60)
    bad = apply(rig, tmp_path, holding(good, "5"), "-e", "config_health_check=false")
    assert bad.rc == 0, bad.out[-4000:]
    ran = watch.wait_for(r"db_pool \(.*\): ran: (.*)$", timeout=120)
    assert "level 2 verified" in ran.group(1), watch.text()[-5000:]
    for host in app_hosts(rig):
        assert "hold_connections = 0" in ini(rig, host)
        assert wait_health(rig, host, 200) == 200
    watch.wait_for(r"db_pool .* ok$", timeout=60, after=ran.end())
    record = the_run(watch, "db_pool")
    assert record["level"] == 2 and record["status"] == "ok"
    assert record["metrics"]["time_to_detection"]["seconds"] == 0  # an instant rule
    assert record["metrics"]["time_to_rollback"]["seconds"] > 0


def test_bad_release_error_rate_runs_level_3_then_level_4_waits_for_approve(
    rig: Any, watch_factory: Any
) -> None:
    deploy(rig, BAD)
    for host in app_hosts(rig):
        set_flag(rig, host, "ENABLED")
    urls = [f"http://{rig.addr(h)}:8080" for h in app_hosts(rig)]
    watch = watch_factory("-e", f"database_restore_backup={BACKUP}")
    with Load(urls):
        ran = watch.wait_for(r"error_rate \(.*\): ran: (.*)$", timeout=180)
        # v1.3.0's migration damaged the data: validation fails after level 3, and level 4
        # is above what runs without a person.
        assert "level 3 not verified, level 4 held" in ran.group(1), watch.text()[-5000:]
        request = re.search(r"rollbackctl approve (\S+) --state", ran.group(1))
        assert request, ran.group(1)
        for host in app_hosts(rig):
            assert STABLE in current(rig, host)
        watch.wait_for(r"error_rate .*job=demo-app .* ok$", timeout=90, after=ran.end())
        assert "ROLLBACK NEEDS APPROVAL" in watch.text()
        assert len(watch.records()) == 1, "nothing above level 3 ran without a person"
        approve = subprocess.run(
            [str(VENV_BIN / "rollbackctl"), "approve", request.group(1), "--state",
             str(watch.state)], capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert approve.returncode == 0, approve.stdout + approve.stderr
        approved = watch.wait_for(r"error_rate \(.*\): ran: (.*)$", timeout=240, after=ran.end())
    assert "level 4 verified" in approved.group(1), watch.text()[-5000:]
    level3, level4 = watch.records()
    assert level3["trigger"]["rule"] == level4["trigger"]["rule"] == "error_rate"
    assert level4["trigger"]["approval"]["id"] == request.group(1)
    metrics = level3["metrics"]
    assert WINDOW <= metrics["time_to_detection"]["seconds"] <= WINDOW + 2 * INTERVAL
    assert metrics["time_to_rollback"]["seconds"] > 0
    notifications = (watch.work / ".artifacts" / "notifications.log").read_text()
    assert "ROLLBACK INITIATED" in notifications and "ROLLBACK NEEDS APPROVAL" in notifications
