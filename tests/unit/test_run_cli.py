"""`rollbackctl run`, `emergency` and `status` through real ansible-runner and
ansible-playbook runs on this machine (localhost, connection local), no test hosts needed.

Most tests use a small fake project (its own ansible.cfg and level playbooks tagged like
the real roles, the real collection and callback) so that success, failure, escalation,
validation and cancel can be made to happen on purpose. The unreachable-host and status
tests use the real project's playbooks.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from rollbackctl.cli import main
from tests.conftest import REPO, VENV_BIN
from tests.unit.test_messages import Hook

pytestmark = [
    pytest.mark.slow,
    # ansible-runner forks ansible-playbook (pexpect) from its run thread: harmless, it execs.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

SECRET = "s3cr3t-planted"  # noqa: S105 - planted on purpose, then hunted for

LEVEL_PLAYBOOK = """\
- name: Fake rollback level
  hosts: "{{ rollback_hosts | default('app') }}"
  gather_facts: false
  tasks:
    - name: Plan
      tags: [phase_plan]
      ansible.builtin.debug:
        msg: "plan level {{ rollback_level }}"
    - name: Roll out
      block:
        - name: Take the lock as the release module does
          tags: [phase_switch]
          ansible.builtin.copy:
            dest: "{{ release_app_root }}/.rollback.lock"
            content: '{"run_id": "{{ rollback_run_id }}", "user": "test"}'
            mode: "0600"
        - name: Say what the run was given
          tags: [phase_switch]
          ansible.builtin.debug:
            msg: >-
              token {{ webhook_token | default('none') }}
              env {{ lookup('ansible.builtin.env', 'DB_PASSWORD') }}
        - name: Switch
          tags: [phase_switch]
          ansible.builtin.command: "sleep {{ fake_sleep | default(0) }}"
          changed_when: true
        - name: Health
          tags: [phase_health]
          ansible.builtin.assert:
            that: (rollback_level | int) not in (fail_levels | default([]) | map('int') | list)
            fail_msg: "level {{ rollback_level }} is not healthy"
      always:
        - name: Unlock
          tags: [phase_unlock]
          ansible.builtin.file:
            path: "{{ release_app_root }}/.rollback.lock"
            state: absent
        - name: Publish
          tags: [phase_record]
          ansible.builtin.set_stats:
            per_host: false
            aggregate: true
            data:
              release_results: >-
                {{ {inventory_hostname: {'status': 'ok', 'before': {'tag': 'v1.3.0'},
                    'after': {'tag': 'v1.2.3-stable'}, 'path': 'fast'}} }}
"""

VALIDATE_PLAYBOOK = """\
- name: Fake validation
  hosts: app
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.assert:
        that: not (validate_fail | default(false) | bool)
        fail_msg: functionality not restored
"""


@dataclass
class Fake:
    root: Path
    inventory: Path
    policy: Path
    app: Path
    notifications: Path

    def lock(self) -> Path:
        return self.app / ".rollback.lock"


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    (root / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {REPO / 'collections'}\n"
        "callbacks_enabled = sre.rollback.run_record\n"
        "retry_files_enabled = false\n"
    )
    for level in (3, 4):
        (root / "playbooks" / f"rollback-l{level}.yml").write_text(LEVEL_PLAYBOOK)
    (root / "playbooks" / "validate.yml").write_text(VALIDATE_PLAYBOOK)
    app = tmp_path / "app"
    app.mkdir()
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[app]\nlocalhost ansible_connection=local "
        "ansible_python_interpreter='{{ ansible_playbook_python }}' "
        f"release_app_root={app}\n"
    )
    notifications = tmp_path / "notifications.log"
    policy = tmp_path / "policy.yml"
    policy.write_text(
        yaml.safe_dump(
            {
                "communication": {
                    "lead": "test lead",
                    "channels": {
                        "stdout": True,
                        "file": str(notifications),
                        "webhook_url_env": "FAKE_HOOK_URL",
                    },
                },
                "revenue": {"per_minute": 100, "currency": "USD"},
            }
        )
    )
    return Fake(root, inventory, policy, app, notifications)


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def fake_args(fake: Fake, artifacts: Path, *more: str) -> list[str]:
    return [
        "-i",
        str(fake.inventory),
        "--project-dir",
        str(fake.root),
        "--policy",
        str(fake.policy),
        "--artifacts",
        str(artifacts),
        *more,
    ]


def only_record(artifacts: Path) -> dict[str, Any]:
    files = sorted(p for p in (artifacts / "runs").glob("*.json") if not p.is_symlink())
    assert len(files) == 1, files
    return dict(json.loads(files[0].read_text()))


def all_records(artifacts: Path) -> dict[int, dict[str, Any]]:
    found = {}
    for path in (artifacts / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if not path.is_symlink() and record.get("level"):
            found[record["level"]] = record
    return found


# --- help and bad input -----------------------------------------------------------------------


def test_help_documents_the_exit_codes() -> None:
    text = invoke("run", "--help").output
    for line in (
        "0  the rollback ran",
        "1  the rollback ran and failed",
        "2  bad input",
        "3  canceled",
    ):
        assert line in text
    for option in (
        "--level",
        "--limit",
        "--check",
        "--target",
        "--reason",
        "--incident",
        "--detected-at",
        "--json",
    ):
        assert option in text
    assert "3  canceled" in invoke("emergency", "--help").output
    assert "1  a host was unreachable" in invoke("status", "--help").output
    group = invoke("--help").output
    for command in ("run", "emergency", "status", "report", "decide"):
        assert command in group


def test_a_missing_level_playbook_is_bad_input(fake: Fake, tmp_path: Path) -> None:
    result = invoke("run", "--level", "1", *fake_args(fake, tmp_path / "a"))
    assert result.exit_code == 2
    assert "level 1 playbook not implemented yet" in result.output
    assert "Levels that exist: 3, 4." in result.output
    assert not (tmp_path / "a").exists(), "nothing ran, nothing was written"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detected-at", "yesterdayish"], "--detected-at: 'yesterdayish' is not a time"),
        (["--incident-started", "2099-01-01T00:00:00Z"], "is in the future"),
        (["--users-affected", "-3"], "--users-affected must be 0 or more"),
        (["-e", "novalue"], "write KEY=VALUE"),
        (["--level", "6"], "6 is not in the range 1<=x<=5"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(
    fake: Fake, tmp_path: Path, args: list[str], message: str
) -> None:
    level = [] if "--level" in args else ["--level", "3"]
    result = invoke("run", *level, *fake_args(fake, tmp_path / "a"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not fake.notifications.exists(), "no message was sent"


def test_an_inventory_that_does_not_exist(fake: Fake, tmp_path: Path) -> None:
    args = fake_args(fake, tmp_path / "a")
    args[1] = str(tmp_path / "nope")
    result = invoke("run", "--level", "3", *args)
    assert result.exit_code == 2 and "inventory" in result.output and "not found" in result.output


# --- a run ------------------------------------------------------------------------------------


def test_a_run_records_everything_and_sends_the_messages(
    fake: Fake, tmp_path: Path, hook: Hook
) -> None:
    artifacts = tmp_path / "artifacts"
    result = invoke(
        "run",
        "--level",
        "3",
        *fake_args(fake, artifacts),
        "--reason",
        "v1.3.0 breaks checkout",
        "--incident",
        "INC-7",
        "--detected-at",
        "10m ago",
        "--incident-started",
        "25m ago",
        "--users-affected",
        "1200",
        "--target",
        "v1.2.3-stable",
        "--json",
        env={"FAKE_HOOK_URL": hook.url},
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    closing = {"state": record.pop("state"), "next_step": record.pop("next_step")}
    assert record == only_record(artifacts), "--json: the record, and the closing lines"
    assert closing["state"].startswith("level 3 (code) rollback done")
    assert closing["next_step"].startswith("verify the whole system with `rollbackctl validate")
    assert (record["status"], record["level"], record["level_name"]) == ("ok", 3, "code")
    assert (record["reason"], record["incident"]) == ("v1.3.0 breaks checkout", "INC-7")
    assert record["inventory"] == [str(fake.inventory)]
    assert record["target"] == {
        "release_target": "v1.2.3-stable",
        "rollback_target": "v1.2.3-stable",
    }
    assert record["who"]
    phases = record["hosts"]["localhost"]["phases"]
    assert set(phases) == {"plan", "switch", "health", "unlock", "record"}
    assert phases["switch"]["status"] == "ok" and phases["switch"]["changed"] is True
    assert record["hosts"]["localhost"]["result"]["after"] == {"tag": "v1.2.3-stable"}
    metrics = record["metrics"]
    assert 14.5 <= metrics["time_to_detection"]["minutes"] <= 15.5
    assert metrics["total_downtime"]["origin"] == "incident_started"
    assert metrics["users_affected"]["value"] == 1200
    assert metrics["revenue_impact"]["amount"] > 2400  # 100 USD/min x ~25 min
    checklist = {e["item"]: e for stage in record["checklist"].values() for e in stage}
    assert checklist["Notify team members"]["state"] == "done"
    assert checklist["Execute rollback procedure"]["state"] == "done"
    assert checklist["Verify each step"]["state"] == "done"
    assert checklist["Send notifications"]["state"] == "done"
    assert [m["kind"] for m in record["messages"]] == [
        "internal",
        "customer",
        "closing",
        "customer_closing",
    ]
    assert [body["text"].splitlines()[0] for body in hook.bodies] == [
        "ROLLBACK INITIATED",
        "We are currently experiencing technical difficulties with our service.",
        "ROLLBACK COMPLETED",
        "Normal service has been restored.",
    ]
    assert "Lead: test lead" in hook.bodies[0]["text"]
    assert "ROLLBACK COMPLETED" in fake.notifications.read_text()
    runs = artifacts / "runs"
    assert stat.S_IMODE(runs.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in runs.glob("2*.json")} == {0o600}
    kept = artifacts / "rollbackctl" / record["run_id"]
    assert (kept / "job_events").is_dir() and (kept / "stdout").is_file()
    assert not (kept / "fact_cache").exists() and not (kept / "env").exists()
    assert not fake.lock().exists()


def test_progress_is_per_host_and_phase_not_ansible_output(fake: Fake, tmp_path: Path) -> None:
    result = invoke("run", "--level", "3", *fake_args(fake, tmp_path / "a"), "--no-notify")
    assert result.exit_code == 0, result.output
    assert "  localhost        plan       ok" in result.output
    assert "  localhost        switch     changed" in result.output
    assert "TASK [" not in result.output and "PLAY RECAP" not in result.output
    assert "Rollback ok in" in result.output and "Messages: not sent" in result.output


def test_secrets_stay_out_of_records_and_artifacts(fake: Fake, tmp_path: Path, hook: Hook) -> None:
    artifacts = tmp_path / "artifacts"
    env = {
        "FAKE_HOOK_URL": f"{hook.url}?{SECRET}-url",
        "DB_PASSWORD": f"{SECRET}-env",
        "PLAIN_SETTING": "nothing-secret-here",
    }
    result = invoke(
        "run",
        "--level",
        "3",
        *fake_args(fake, artifacts),
        "-e",
        f"webhook_token={SECRET}",
        "-e",
        '{"db": {"password": "' + SECRET + '-nested"}}',
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    stdout = next((artifacts / "rollbackctl").glob("*/stdout")).read_text()
    assert "token ******** env ********" in stdout, "the playbook printed both, masked"
    command = json.loads(next((artifacts / "rollbackctl").glob("*/command")).read_text())
    assert "DB_PASSWORD" in command["env_names"] and "env" not in command
    leaks = [
        str(path)
        for path in [*artifacts.rglob("*"), fake.notifications]
        if path.is_file() and SECRET in path.read_text(errors="replace")
    ]
    assert leaks == []
    assert len(hook.bodies) == 4


def test_check_mode_sends_nothing(fake: Fake, tmp_path: Path, hook: Hook) -> None:
    artifacts = tmp_path / "a"
    result = invoke(
        "run",
        "--level",
        "3",
        *fake_args(fake, artifacts),
        "--check",
        env={"FAKE_HOOK_URL": hook.url},
    )
    assert result.exit_code == 0, result.output
    record = only_record(artifacts)
    assert record["check_mode"] is True
    assert record["checklist"]["during"][0]["state"] == "skipped"
    assert hook.bodies == [] and not fake.notifications.exists()


def test_a_failed_health_gate_exits_1(fake: Fake, tmp_path: Path) -> None:
    artifacts = tmp_path / "a"
    result = invoke(
        "run",
        "--level",
        "3",
        *fake_args(fake, artifacts),
        "--no-notify",
        "-e",
        '{"fail_levels": [3]}',
    )
    assert result.exit_code == 1, result.output
    assert "Rollback FAILED" in result.output and "level 3 is not healthy" in result.output
    record = only_record(artifacts)
    assert record["status"] == "failed"
    assert record["hosts"]["localhost"]["failed_phase"] == "health"
    assert not fake.lock().exists(), "the always block released the lock"


def test_an_unreachable_host_fails_the_real_level_3(tmp_path: Path) -> None:
    artifacts = tmp_path / "a"
    result = invoke(
        "run",
        "--level",
        "3",
        "-i",
        "127.0.0.2,",
        "--hosts",
        "all",
        "--project-dir",
        str(REPO),
        "--artifacts",
        str(artifacts),
        "--no-notify",
        "-e",
        "ansible_port=1",
        "-e",
        "release_app_root=/opt/nothing",
        "-e",
        "release_repo=/srv/nothing.git",
        "-e",
        "release_health_url=http://127.0.0.1:1/",
        "-e",
        "release_service_name=demo-app",
    )
    assert result.exit_code == 1, result.output
    record = only_record(artifacts)
    assert record["status"] == "failed" and record["level"] == 3
    host = record["hosts"]["127.0.0.2"]
    assert host["status"] == "unreachable" and host["failed_phase"] == "plan"
    assert record["checklist"]["during"][0]["state"] == "failed"
    report = invoke("report", "--records", str(artifacts / "runs"), "-f", "junit")
    assert 'type="unreachable"' in report.stdout


def test_no_host_matched_is_bad_input(tmp_path: Path) -> None:
    result = invoke(
        "run",
        "--level",
        "3",
        "-i",
        "127.0.0.2,",
        "--project-dir",
        str(REPO),
        "--artifacts",
        str(tmp_path / "a"),
        "--no-notify",
    )
    assert result.exit_code == 2, result.output
    assert "No host of the inventory matched" in result.output


# --- cancel -----------------------------------------------------------------------------------


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_sigterm_cancels_cleanly(fake: Fake, tmp_path: Path) -> None:
    artifacts = tmp_path / "a"
    command = [
        str(VENV_BIN / "rollbackctl"),
        "run",
        "--level",
        "3",
        *fake_args(fake, artifacts),
        "--no-notify",
        "-e",
        "fake_sleep=120",
    ]
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        wait_for(fake.lock().exists, 60, "the run to take its lock")
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, out
    assert time.monotonic() - started < 60
    assert not fake.lock().exists(), "the run's lock was released"
    # The fake's lock names no live holder process: the settle step may release it.
    assert "localhost: not started, lock released" in out
    record = only_record(artifacts)
    assert record["status"] == "canceled"
    assert record["hosts"]["localhost"]["phases"]["switch"]["status"] == "canceled"
    assert record["hosts"]["localhost"]["end"]["lock"].startswith("released")
    assert any("lock released" in note for note in record["notes"])


# --- emergency --------------------------------------------------------------------------------


def test_emergency_escalates_until_a_level_is_verified(
    fake: Fake, tmp_path: Path, hook: Hook
) -> None:
    artifacts = tmp_path / "a"
    result = invoke(
        "emergency",
        "-s",
        "critical",
        "--impact",
        "all",
        "-t",
        "2h",
        *fake_args(fake, artifacts),
        "--reason",
        "checkout down",
        "-e",
        '{"fail_levels": [3]}',
        env={"FAKE_HOOK_URL": hook.url},
    )
    assert result.exit_code == 0, result.output
    kinds = [body["text"].splitlines()[0] for body in hook.bodies]
    assert kinds == [
        "ROLLBACK INITIATED",
        "We are currently experiencing technical difficulties with our service.",
        "ROLLBACK ESCALATED",
        "ROLLBACK COMPLETED",
        "Normal service has been restored.",
    ]
    escalation = hook.bodies[2]["text"]
    assert "From: 3 (code)\nTo: 4 (database)" in escalation
    assert "level 3 is not healthy" in escalation
    runs = all_records(artifacts)
    assert runs[3]["status"] == "failed" and runs[4]["status"] == "ok"
    assert runs[4]["decision"]["severity"] == "critical"
    assert [step["outcome"] for step in runs[4]["escalation"]] == ["not verified", "verified"]
    assert runs[4]["validation"]["status"] == "ok"
    assert runs[4]["timeline"]["started"] == runs[3]["timeline"]["started"]
    assert "## Incident:" in result.stdout and "### Escalation" in result.stdout
    assert "- [x] Verify functionality restored" in result.stdout


def test_emergency_skips_missing_levels_and_fails_at_the_top(fake: Fake, tmp_path: Path) -> None:
    artifacts = tmp_path / "a"
    result = invoke(
        "emergency",
        "-s",
        "critical",
        "--impact",
        "all",
        "-t",
        "2h",
        *fake_args(fake, artifacts),
        "--no-notify",
        "-e",
        "validate_fail=true",
    )
    assert result.exit_code == 1, result.output
    assert "level 5 playbook not implemented yet: skipped" in result.output
    runs = all_records(artifacts)
    assert set(runs) == {3, 4}, "level 5 does not exist: nothing pretended"
    assert runs[3]["validation"]["status"] == "failed"
    assert [step["outcome"] for step in runs[4]["escalation"]] == [
        "not verified",
        "not verified",
        "skipped",
    ]


def test_emergency_fix_forward_runs_nothing(fake: Fake, tmp_path: Path) -> None:
    result = invoke(
        "emergency", "-s", "low", "--impact", "5", "-t", "10m", *fake_args(fake, tmp_path / "a")
    )
    assert result.exit_code == 0, result.output
    assert "fix forward" in result.output
    assert not (tmp_path / "a").exists() and not fake.notifications.exists()


def test_emergency_with_no_playbook_in_the_range_is_bad_input(fake: Fake, tmp_path: Path) -> None:
    result = invoke(
        "emergency", "-s", "medium", "--impact", "30", "-t", "20m", *fake_args(fake, tmp_path / "a")
    )
    assert result.exit_code == 2, result.output
    assert "none of the decided levels (1-2) has a playbook yet" in result.output
    assert not fake.notifications.exists()


# --- status -----------------------------------------------------------------------------------


def test_status_reads_release_lock_and_last_rollback(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "releases" / "v1.2.3-stable-gabc").mkdir(parents=True)
    (app / "current").symlink_to("releases/v1.2.3-stable-gabc")
    entries = [
        {
            "time": "2026-11-29T10:00:00Z",
            "release": "v1.3.0-gdef",
            "tag": "v1.3.0",
            "commit": "def",
            "state": "bad",
            "event": "rollback_from",
        },
        {
            "time": "2026-11-29T10:00:00Z",
            "release": "v1.2.3-stable-gabc",
            "tag": "v1.2.3-stable",
            "commit": "abc",
            "state": "current",
            "event": "rollback",
            "run_id": "r1",
        },
    ]
    (app / "releases.log").write_text("".join(json.dumps(e) + "\n" for e in entries))
    (app / ".rollback.lock").write_text('{"run_id": "r2", "user": "bob"}')
    flags = tmp_path / "flags.json"
    flags.write_text('{"flags": {"new_checkout": {"state": "DISABLED"}}}')
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[app]\nlocalhost ansible_connection=local "
        "ansible_python_interpreter='{{ ansible_playbook_python }}' "
        f"release_app_root={app} status_flags_file={flags}\n"
    )
    result = invoke("status", "-i", str(inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["hosts"]
    assert row["host"] == "localhost" and row["reachable"] is True
    assert row["tag"] == "v1.2.3-stable"
    assert row["lock"]["run_id"] == "r2"
    assert row["last_rollback"]["run_id"] == "r1"
    assert row["bad_releases"] == ["v1.3.0"]
    assert row["flags"] == {"new_checkout": "DISABLED"}
    assert row["config"] is None and row["db_revision"] is None, "no variables: skipped"
    table = invoke("status", "-i", str(inventory), "--project-dir", str(REPO))
    assert "v1.2.3-stable" in table.output and "r2 (bob)" in table.output


def test_status_of_an_unreachable_host(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[app]\nbogus ansible_host=127.0.0.2 ansible_port=1 release_app_root=/x\n")
    result = invoke("status", "-i", str(inventory), "--project-dir", str(REPO))
    assert result.exit_code == 1, result.output
    assert "unreachable" in result.output and "bogus:" in result.output


def _with_levels_1_and_2(fake: Fake) -> None:
    for level in (1, 2):
        (fake.root / "playbooks" / f"rollback-l{level}.yml").write_text(LEVEL_PLAYBOOK)


def test_emergency_skips_level_1_without_flags_to_turn_off(fake: Fake, tmp_path: Path) -> None:
    _with_levels_1_and_2(fake)
    artifacts = tmp_path / "a"
    result = invoke(
        "emergency",
        "-s",
        "low",
        "--impact",
        "10",
        "-t",
        "5m",
        *fake_args(fake, artifacts),
        "--no-notify",
    )
    assert result.exit_code == 0, result.output
    assert "level 1 needs the flags to turn off (-e feature_flag_names=" in result.output
    runs = all_records(artifacts)
    assert set(runs) == {2}, "level 1 had nothing to do: it did not run"
    assert [step["outcome"] for step in runs[2]["escalation"]] == ["skipped", "verified"]


@pytest.mark.parametrize("where", ["extra vars", "inventory"])
def test_emergency_runs_level_1_when_flags_are_named(
    fake: Fake, tmp_path: Path, where: str
) -> None:
    _with_levels_1_and_2(fake)
    more = ["-e", "feature_flag_names=new_checkout"] if where == "extra vars" else []
    if where == "inventory":
        fake.inventory.write_text(
            fake.inventory.read_text().rstrip("\n") + " feature_flag_names=new_checkout\n"
        )
    artifacts = tmp_path / "a"
    result = invoke(
        "emergency",
        "-s",
        "low",
        "--impact",
        "10",
        "-t",
        "5m",
        *fake_args(fake, artifacts),
        "--no-notify",
        *more,
    )
    assert result.exit_code == 0, result.output
    runs = all_records(artifacts)
    assert set(runs) == {1}, "level 1 was verified: level 2 did not run"
    assert "level 1 needs the flags" not in result.output


@pytest.mark.parametrize(
    ("level", "variable"),
    [(1, "feature_flag_names"), (2, "config_target"), (4, "database_target_revision")],
)
def test_run_target_names_the_levels_own_target(
    fake: Fake, tmp_path: Path, level: int, variable: str
) -> None:
    (fake.root / "playbooks" / f"rollback-l{level}.yml").write_text(LEVEL_PLAYBOOK)
    artifacts = tmp_path / "a"
    result = invoke(
        "run",
        "--level",
        str(level),
        *fake_args(fake, artifacts),
        "--no-notify",
        "--target",
        "named-target",
        "--json",
    )
    assert result.exit_code == 0, result.output
    target = only_record(artifacts)["target"]
    assert target == {variable: "named-target", "rollback_target": "named-target"}
