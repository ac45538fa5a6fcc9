"""`rollbackctl` on real hosts: `run --level 3` end to end, `emergency` escalating when
level 3 cannot verify, SIGTERM canceling a run and leaving no lock behind, `status`.

The tests run in order on one rig and leave it as the next expects (like test_level3).
Messages go to a webhook receiver on 127.0.0.1 and, for the policy's file channel, to a
temporary working directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from rollbackctl.cli import main
from tests.conftest import REPO, VENV_BIN
from tests.integration.rig import APP_ROOT, current, health, on, playbook, wrapper_args
from tests.unit.test_messages import Hook
from tests.unit.test_progress_lines import assert_log_closes_with_next_step

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, BAD = "v1.2.3-stable", "v1.3.0"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    # The session's hosts carry the release history of earlier modules (releases marked bad
    # by their failure tests): start this module from a clean history and no stale lock.
    for host in testhosts.hosts:
        testhosts.exec(
            host, "rm", "-f", "/opt/demo-app/releases.log", "/opt/demo-app/.rollback.lock"
        )
    prepared = playbook(testhosts.inventory, "demo-app.yml")
    assert prepared.rc == 0, prepared.out[-4000:]
    return testhosts


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The policy's file channel is relative to where the run starts: keep it in tmp."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"] or list(rig.hosts)


def deploy(rig: Any, tag: str) -> None:
    run = playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={tag}")
    assert run.rc == 0, run.out[-4000:]


def lock_state(rig: Any, host: str) -> str:
    return on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free")


@contextmanager
def unhealthy(rig: Any, host: str) -> Iterator[None]:
    """Break one host's health gate only: its health URL points at a closed port."""
    host_vars = rig.dir / "host_vars"
    host_vars.mkdir(exist_ok=True)
    override = host_vars / f"{host}.yml"
    override.write_text("release_health_url: http://127.0.0.1:9/health\n")
    try:
        yield
    finally:
        override.unlink()


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def records_of(artifacts: Path) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text())
        for path in sorted((artifacts / "runs").glob("*.json"))
        if not path.is_symlink()
    ]


def test_run_level_3_end_to_end(rig: Any, workdir: Path, hook: Hook) -> None:
    deploy(rig, STABLE)
    deploy(rig, BAD)
    artifacts = workdir / "artifacts"
    result = invoke(
        "run",
        "--level",
        "3",
        "-i",
        str(rig.inventory),
        "--project-dir",
        str(REPO),
        "--artifacts",
        str(artifacts),
        "--reason",
        "v1.3.0 breaks checkout",
        "--incident",
        "INC-2001",
        "--detected-at",
        "4m ago",
        "--incident-started",
        "9m ago",
        "--users-affected",
        "250",
        "--json",
        env={"ROLLBACK_WEBHOOK_URL": hook.url},
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and record["level"] == 3
    # The log a CI job keeps (stderr with --json): complete lines, the state and next step last.
    state, step, lines = assert_log_closes_with_next_step(result.stderr)
    hosts = ", ".join(app_hosts(rig))
    assert state == f"State: level 3 (code) rollback done: {hosts} on {STABLE}."
    assert step.startswith("Next: verify the whole system with `rollbackctl validate -i ")
    assert {(m[1], m[2], m[3]) for m in lines} >= {(h, "health", "ok") for h in app_hosts(rig)}
    assert (record["state"], record["next_step"]) == (state[7:], step[6:]), "--json: the same"
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
        assert health(rig, host)[0] == 200
        assert lock_state(rig, host) == "free"
        data = record["hosts"][host]
        assert data["result"]["after"]["tag"] == STABLE
        assert {"plan", "switch", "restart", "health", "unlock", "record"} <= set(data["phases"])
    checklist = {e["item"]: e for stage in record["checklist"].values() for e in stage}
    assert checklist["Document current state"]["state"] == "done"
    assert BAD in checklist["Document current state"]["note"]
    assert checklist["Verify each step"]["state"] == "done"
    metrics = record["metrics"]
    assert 4.5 <= metrics["time_to_detection"]["minutes"] <= 5.5
    assert metrics["revenue_impact"]["amount"] > 0  # the rig's policy: 100 USD/min
    assert hook.bodies[0]["text"].startswith("ROLLBACK INITIATED")
    assert "ROLLBACK COMPLETED" in hook.bodies[-2]["text"]
    assert (workdir / ".artifacts" / "notifications.log").is_file()
    report = invoke("report", record["run_id"], "--records", str(artifacts / "runs"))
    assert "- Users affected: 250" in report.stdout
    assert f"| {app_hosts(rig)[0]} | ok | {BAD} | {STABLE} |" in report.stdout


def test_emergency_escalates_when_level_3_cannot_verify(
    rig: Any, workdir: Path, hook: Hook
) -> None:
    deploy(rig, BAD)
    canary = app_hosts(rig)[0]
    policy = workdir / "policy.yml"
    policy.write_text(
        yaml.safe_dump(
            {
                "matrix": [
                    {"severity": "critical", "levels": "3-4"},
                    {"severity": "high", "levels": "2-3"},
                    {"severity": "medium", "levels": "1-2"},
                    {"severity": "low", "action": "fix_forward"},
                ],
                "communication": {"channels": {"webhook_url_env": "ROLLBACK_WEBHOOK_URL"}},
            }
        )
    )
    with unhealthy(rig, canary):
        result = invoke(
            "emergency",
            "-s",
            "critical",
            "--impact",
            "all",
            "-t",
            "2h",
            "-i",
            str(rig.inventory),
            "--project-dir",
            str(REPO),
            "--policy",
            str(policy),
            "--artifacts",
            str(workdir / "artifacts"),
            "--reason",
            "checkout down",
            "-e",
            "release_health_deadline=6",
            env={"ROLLBACK_WEBHOOK_URL": hook.url},
        )
    texts = [body["text"] for body in hook.bodies]
    assert texts[0].startswith("ROLLBACK INITIATED")
    # A failed gate in a log: the canary's health line whole, with its verdict; the state and
    # the next step last.
    _state, step, lines = assert_log_closes_with_next_step(result.output)
    failed = [m for m in lines if (m[1], m[2], m[3]) == (canary, "health", "failed")]
    assert failed and "switched back" in failed[-1][4].lower(), result.output
    assert step.startswith("Next: "), step
    level3 = next(r for r in records_of(workdir / "artifacts") if r["level"] == 3)
    assert level3["status"] == "failed"
    assert BAD in current(rig, canary), "the canary was switched back, the rest untouched"
    assert all(lock_state(rig, host) == "free" for host in app_hosts(rig))
    if (REPO / "playbooks" / "rollback-l4.yml").exists():
        escalation = next(text for text in texts if text.startswith("ROLLBACK ESCALATED"))
        assert "From: 3 (code)\nTo: 4 (database)" in escalation
        assert any(r["level"] == 4 for r in records_of(workdir / "artifacts"))
    else:
        assert result.exit_code == 1, result.output
        assert "level 4 playbook not implemented yet: skipped" in result.output
        assert [step["outcome"] for step in level3["escalation"]] == ["not verified", "skipped"]
        assert texts[-1].startswith("ROLLBACK FAILED")
    assert "## Incident:" in result.stdout


def test_sigterm_cancels_and_leaves_no_lock(rig: Any, workdir: Path) -> None:
    deploy(rig, BAD)
    canary = app_hosts(rig)[0]
    artifacts = workdir / "artifacts"
    command = [
        str(VENV_BIN / "rollbackctl"),
        *("run", "--level", "3"),
        *wrapper_args(rig, artifacts),
        *("-e", "release_health_deadline=120"),
    ]
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    with unhealthy(rig, canary):
        out, returncode = _run_then_terminate(rig, canary, command, env)
    assert returncode == 3, out
    assert lock_state(rig, canary) == "free", out
    state, step, _lines = assert_log_closes_with_next_step(out)
    assert state.startswith(f"State: level 3 (code) rollback canceled ({canary} switched back")
    assert step.startswith("Next: see what every host runs with `rollbackctl status -i ")
    (record,) = records_of(artifacts)
    assert record["status"] == "canceled"
    # The canary's call saw its controller go and switched back on its own; its lock was
    # dropped by that call, not under it (tests/integration/test_faults_cancel.py).
    assert any(f"{canary}: switched back" in note for note in record["notes"]), record["notes"]
    assert record["hosts"][canary]["end"]["lock"] == "free"
    again = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert again.rc == 0, again.out[-4000:]


def _run_then_terminate(
    rig: Any, canary: str, command: list[str], env: dict[str, str]
) -> tuple[str, int]:
    """Start rollbackctl, wait until it holds the canary's lock and sits in the health gate
    that cannot pass, send SIGTERM; its output and exit code."""
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 120
        while lock_state(rig, canary) != "held":
            assert time.monotonic() < deadline, "the run never took the canary's lock"
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.5)
        time.sleep(5)  # into the health gate, which cannot pass
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out, proc.returncode


def test_status_shows_release_lock_and_last_rollback(rig: Any) -> None:
    result = invoke("status", "-i", str(rig.inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    rows = {row["host"]: row for row in json.loads(result.stdout)["hosts"]}
    for host in app_hosts(rig):
        row = rows[host]
        assert row["reachable"] and row["tag"] == STABLE
        assert row["lock"] is None
        assert row["last_rollback"]["event"] == "rollback"
        assert BAD in row["bad_releases"]
        assert "new_checkout" in row["flags"]
        assert row["config"]["sha256"]
        assert row["db_revision"], row
