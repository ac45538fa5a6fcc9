"""``rollbackctl watch`` against a real Prometheus (Debian's binary on a loopback port)
scraping a stand-in exporter every second, with the policy's windows in seconds; and
``rollbackctl alerts serve`` fed Alertmanager v4 payloads over HTTP. Levels run through the
fake project of test_run_cli (real ansible-runner runs)."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from rollbackctl.alerts import Receiver, read_payload, serve
from rollbackctl.cli import main
from rollbackctl.project import find_project
from rollbackctl.rollback import RunOptions, load_run_policy
from rollbackctl.trigger_action import ActionSettings, StateFile, TriggerActions
from rollbackctl.watch import Watcher
from tests.conftest import REPO
from tests.support.ports import free_port
from tests.support.prometheus import Exporter, Prometheus, long_scenario, prometheus
from tests.unit.test_run_cli import Fake, all_records, fake  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

TRIGGERS = {
    "evaluation_interval": "1s",
    "error_rate": {"for": "4s"},
    "response_time_p95": {"enabled": False},
    "health_check_failures": {"consecutive_above": 2},
    "memory": {"above": "95%"},
    "db_pool": {"in_use_at_least": "100%"},
}


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    server = Exporter(2)
    yield server
    server.close()


@pytest.fixture
def prom(exporter: Exporter) -> Iterator[Prometheus]:
    with prometheus(exporter.addresses, interval=1) as server:
        server.wait_for('up{job="demo-app"} == 1')
        yield server


def policy_file(fake: Fake, **triggers: Any) -> Path:  # noqa: F811
    data = yaml.safe_load(fake.policy.read_text())
    data["triggers"] = {**TRIGGERS, **triggers}
    fake.policy.write_text(yaml.safe_dump(data))
    return fake.policy


def actions_for(
    fake: Fake,  # noqa: F811
    state: Path,
    dry_run: bool = True,
    max_level: int = 3,
) -> tuple[TriggerActions, io.StringIO]:
    base = RunOptions(
        level=0,
        inventory=str(fake.inventory),
        project=find_project(fake.root),
        artifacts=state.parent / "artifacts",
        policy_file=fake.policy,
        notify=not dry_run,
    )
    policy, _ = load_run_policy(str(fake.inventory), fake.policy)
    out = io.StringIO()
    settings = ActionSettings(base, max_level=max_level, cooldown=600, dry_run=dry_run)
    return (
        TriggerActions(settings, policy, StateFile.read(state), Console(file=out, width=240), out),
        out,
    )


def evaluate_for(watcher: Watcher, seconds: float, until_verdict: bool = False) -> list[Any]:
    """Evaluate every second for ``seconds`` (or until the first verdict)."""
    verdicts: list[Any] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until_verdict and verdicts):
        verdicts += watcher.evaluate(time.time())
        time.sleep(1)
    return verdicts


def test_watch_dry_run_shows_the_window_and_runs_nothing(
    fake: Fake,  # noqa: F811
    exporter: Exporter,
    prom: Prometheus,
    tmp_path: Path,
) -> None:
    policy_file(fake)
    actions, out = actions_for(fake, tmp_path / "state.json")
    watcher = Watcher(actions.policy, prom.url, actions, actions.console)
    evaluate_for(watcher, 2)
    assert "error_rate" in out.getvalue() and " ok" in out.getvalue()
    exporter.set(error_share=0.5)
    verdicts = evaluate_for(watcher, 15, until_verdict=True)
    lines = out.getvalue().splitlines()
    pending = [line for line in lines if "error_rate" in line and line.endswith("pending")]
    assert pending and "window" in pending[0] and "/4s" in pending[0], lines[-20:]
    assert any("%" in line for line in pending), pending
    assert [v.outcome for v in verdicts] == ["dry run"], out.getvalue()[-3000:]
    assert "would run level 3" in verdicts[0].message
    assert not (tmp_path / "artifacts" / "runs").exists(), "a dry run runs nothing"
    history = json.loads((tmp_path / "state.json").read_text())["history"]
    assert history[-1]["rule"] == "error_rate" and history[-1]["outcome"] == "dry run"


@long_scenario
def test_a_restart_mid_window_keeps_the_window(
    fake: Fake,  # noqa: F811
    exporter: Exporter,
    prom: Prometheus,
    tmp_path: Path,
) -> None:
    policy_file(fake, error_rate={"for": "8s"})
    state = tmp_path / "state.json"
    exporter.set(error_share=0.5)
    actions, out = actions_for(fake, state)
    first = Watcher(actions.policy, prom.url, actions, actions.console)
    deadline = time.monotonic() + 20
    while not first.evaluators["error_rate"].alerts and time.monotonic() < deadline:
        first.evaluate(time.time())
        time.sleep(1)
    evaluate_for(first, 3)
    (alert,) = first.evaluators["error_rate"].alerts.values()
    assert alert.state == "pending", out.getvalue()[-2000:]
    started = alert.active_at
    actions.state.release()
    time.sleep(2)  # watch is down for two evaluations
    again, out = actions_for(fake, state)
    second = Watcher(again.policy, prom.url, again, again.console)
    verdicts = evaluate_for(second, 10, until_verdict=True)
    assert "catching up" in out.getvalue(), out.getvalue()[-2000:]
    assert [v.outcome for v in verdicts] == ["dry run"], out.getvalue()[-3000:]
    firing = verdicts[0].firing
    assert firing.condition_since == started, "the window started before the restart"
    assert 8 <= firing.fired_at - started <= 9


@long_scenario
def test_prometheus_gone_says_so_and_runs_nothing(
    fake: Fake,  # noqa: F811
    exporter: Exporter,
    prom: Prometheus,
    tmp_path: Path,
) -> None:
    policy_file(fake)
    actions, out = actions_for(fake, tmp_path / "state.json", dry_run=False)
    watcher = Watcher(actions.policy, prom.url, actions, actions.console)
    evaluate_for(watcher, 2)
    prom.stop()
    exporter.set(error_share=0.9, healthy=False, pool_in_use=5)
    verdicts = evaluate_for(watcher, 6)
    assert verdicts == []
    gone = [line for line in out.getvalue().splitlines() if "did not answer" in line]
    assert len(gone) >= 5 and "nothing is evaluated and nothing runs" in gone[0]
    assert not (tmp_path / "artifacts" / "runs").exists()


@long_scenario
def test_watch_runs_the_level_and_starts_the_windows_again(
    fake: Fake,  # noqa: F811
    exporter: Exporter,
    prom: Prometheus,
    tmp_path: Path,
) -> None:
    policy_file(fake)
    actions, out = actions_for(fake, tmp_path / "state.json", dry_run=False)
    watcher = Watcher(actions.policy, prom.url, actions, actions.console)
    exporter.set(pool_in_use=5)
    verdicts = evaluate_for(watcher, 6, until_verdict=True)
    # Both targets' pools fired at once: one rollback, which answered the other firing too.
    assert [v.outcome for v in verdicts] == ["ran", "handled"], out.getvalue()[-3000:]
    assert "after the rollback the pending windows of core_api start again" in out.getvalue()
    record = all_records(tmp_path / "artifacts")[3]  # db_pool: 2-3; the fake has no level 2
    assert record["trigger"]["rule"] == "db_pool"
    assert record["metrics"]["time_to_detection"]["seconds"] == 0  # instant rule
    assert record["metrics"]["time_to_decision"]["seconds"] is not None


@long_scenario
def test_the_cli_prints_complete_lines_without_a_terminal(
    fake: Fake,  # noqa: F811
    prom: Prometheus,
    tmp_path: Path,
) -> None:
    policy_file(fake)
    result = CliRunner().invoke(
        main,
        ["watch", "-i", str(fake.inventory), "--policy", str(fake.policy), "--prometheus",
         prom.url, "--dry-run", "--iterations", "2", "--project-dir", str(fake.root),
         "--state", str(tmp_path / "state.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "window" in line]
    assert {row.split()[1] for row in rows} == {"error_rate", "health_check_failures",
                                                 "memory", "db_pool"}  # fmt: skip
    assert all(row.endswith((" ok", " pending", " firing", " no data")) for row in rows), rows
    assert "(dry run: nothing runs)" in result.output


# --- alerts serve ---------------------------------------------------------------------------


def post(url: str, payload: Any) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def alert(status: str, starts: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "RollbackErrorRate",
            "source": "sre.rollback",
            "rule": "error_rate",
            "service": "core_api",
            "severity": "critical",
            "rollback_level": "3",
            "job": "demo-app",
            **labels,
        },
        "annotations": {"summary": "error_rate"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}/{source="sre.rollback"}:{rule="error_rate", service="core_api"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"],
        "receiver": "sre-rollback",
        "groupLabels": {"rule": "error_rate", "service": "core_api"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def test_alerts_serve_acts_once_per_alert_and_never_on_resolved(
    fake: Fake,  # noqa: F811
    tmp_path: Path,
) -> None:
    policy_file(fake)
    actions, out = actions_for(fake, tmp_path / "state.json", dry_run=False)
    receiver = Receiver(f"127.0.0.1:{free_port()}", actions.rules)
    receiver.start()
    starts = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(time.time() - 5))
    earlier = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    try:
        assert post(receiver.address, payload(alert("resolved", earlier, "f0")))[0] == 200
        no_data = alert("firing", earlier, "f9", alertname="X", severity="info")
        assert post(receiver.address, payload(no_data))[0] == 200
        assert post(receiver.address, payload(alert("firing", starts, "f1")))[0] == 200
        assert post(receiver.address, payload(alert("firing", starts, "f1")))[0] == 200
        code, body = post(receiver.address, {"version": "3", "alerts": []})
        assert code == 400 and "version" in body
        assert post(receiver.address.replace("/alerts", "/x"), payload(no_data))[0] == 404
        stop = threading.Event()
        stop.set()  # act on what arrived, then stop
        verdicts = serve(actions, receiver, actions.console, stop)
    finally:
        receiver.stop()
    assert [v.outcome for v in verdicts] == ["ran", "duplicate"], out.getvalue()[-3000:]
    text = out.getvalue()
    assert "resolved: a resolved alert never runs" in text
    assert "X: not a trigger of sre.rollback: ignored" in text
    record = all_records(tmp_path / "artifacts")[3]
    assert record["trigger"]["source"] == "alertmanager"
    assert record["metrics"]["time_to_detection"]["seconds"] == 4.0  # the rule's for: 4s
    assert len(all_records(tmp_path / "artifacts")) == 1


@long_scenario
def test_approve_lists_and_lets_a_request_run(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    policy_file(fake)
    actions, _ = actions_for(fake, tmp_path / "state.json", dry_run=False, max_level=2)
    receiver = Receiver(f"127.0.0.1:{free_port()}", actions.rules)
    receiver.start()
    try:
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
        post(receiver.address, payload(alert("firing", starts, "f2")))
        stop = threading.Event()
        stop.set()
        (verdict,) = serve(actions, receiver, actions.console, stop)
        assert verdict.outcome == "awaiting approval"
        state = str(actions.state.path)
        listed = CliRunner().invoke(main, ["approve", "--state", state])
        assert f"{verdict.approval}  error_rate (core_api): levels 3-5" in listed.output
        approved = CliRunner().invoke(main, ["approve", str(verdict.approval), "--state", state])
        assert approved.exit_code == 0 and "run at the watcher's next evaluation" in approved.output
        assert CliRunner().invoke(main, ["approve", "nope", "--state", state]).exit_code == 2
        ran = serve(actions, receiver, actions.console, stop)
    finally:
        receiver.stop()
    assert [v.outcome for v in ran] == ["ran"]
    assert all_records(tmp_path / "artifacts")[3]["trigger"]["approval"]["by"]


def test_no_prometheus_says_so_and_the_live_table_renders(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    policy_file(fake)
    actions, out = actions_for(fake, tmp_path / "state.json", dry_run=False)
    watcher = Watcher(actions.policy, f"http://127.0.0.1:{free_port()}", actions, actions.console)
    assert watcher.evaluate(time.time()) == []
    assert "did not answer" in out.getvalue() and "nothing runs" in out.getvalue()
    terminal = Console(file=io.StringIO(), width=160, force_terminal=True, record=True)
    terminal.print(watcher.table())
    table = terminal.export_text()
    for column in ("rule", "group", "value", "window", "state", "error_rate", "db_pool"):
        assert column in table, table


def test_payloads_recorded_from_a_real_alertmanager(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    """The EDA test's payloads, as Alertmanager 0.25 posted them (tests/eda/payloads), in
    dry run: what each becomes."""
    policy_file(fake)
    actions, _ = actions_for(fake, tmp_path / "state.json")
    outcomes = []
    for name in ("nodata_user_auth_info", "error_rate_user_auth_resolved",
                 "error_rate_user_auth_firing", "health_core_api_h2_firing",
                 "health_core_api_h2_h3_firing", "error_rate_core_api_firing"):  # fmt: skip
        body = (REPO / "tests" / "eda" / "payloads" / f"{name}.json").read_bytes()
        for item in read_payload(body, actions.rules):
            if item.firing is None:
                outcomes.append((name, item.note.split(": ", 1)[1]))
            else:
                outcomes.append((name, actions.handle(item.firing).outcome))
    assert outcomes == [
        ("nodata_user_auth_info", "not a trigger of sre.rollback: ignored"),
        ("error_rate_user_auth_resolved", "resolved: a resolved alert never runs"),
        ("error_rate_user_auth_firing", "ignored"),  # another service than the policy's
        ("health_core_api_h2_firing", "dry run"),
        ("health_core_api_h2_h3_firing", "duplicate"),  # h2 again: same fingerprint+startsAt
        ("health_core_api_h2_h3_firing", "cooldown"),  # h3: the rule just acted
        ("error_rate_core_api_firing", "dry run"),
    ]
