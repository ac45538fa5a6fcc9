"""The shipped rulebook through the real ansible-rulebook (Drools on Java 17): recorded
Alertmanager v4 payloads POSTed over loopback to the collection's source plugin, and which
level playbooks run. The rulebook is the collection's own (found as
``sre.rollback.alertmanager_rollback``, conditions and throttle unchanged); only
``rollback_playbook_dir`` points its run_playbook at tiny stand-ins named rollback-l1..3.yml
that write the extra vars they got to a file. One ansible-rulebook run receives every
payload (the JVM takes ~6 s to start)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.support.ports import free_port
from tests.support.tools import require_tool
from tests.unit.test_eda_rulebook import PAYLOADS

pytestmark = pytest.mark.slow

# Posted in this order; the comment says what the rulebook must do.
SEQUENCE = (
    "error_rate_user_auth_resolved",  # resolved: never a rollback
    "nodata_user_auth_info",  # the info no-data notice: never a rollback
    "error_rate_core_api_firing",  # level 3 for core_api
    "health_core_api_h2_firing",  # core_api, level 3 again within 15 minutes: throttled
    "health_core_api_h2_h3_firing",  # the group re-sent (h2 again) and h3: throttled
    "error_rate_core_api_firing",  # Alertmanager's repeat: throttled
    "db_pool_user_auth_firing",  # level 2 for user_auth
    "error_rate_analytics_level4_firing",  # level 4: not unattended, says so, runs nothing
    "error_rate_user_auth_firing",  # level 3 for the second service; the last run
)
EXPECTED_RUNS = [
    ("rollback-l3.yml", "core_api", "RollbackErrorRate"),
    ("rollback-l2.yml", "user_auth", "RollbackDbPoolExhausted"),
    ("rollback-l3.yml", "user_auth", "RollbackErrorRate"),
]
STANDIN = """\
- name: Stand-in for level {level}, records what it was given
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write the extra vars
      ansible.builtin.copy:
        dest: "{out}/{{{{ meta.received_at }}}}-{{{{ meta.uuid }}}}.json"
        content: "{{{{ given | to_json }}}}"
        mode: "0600"
      vars:
        meta: "{{{{ ansible_eda.event.meta }}}}"
        given:
          playbook: rollback-l{level}.yml
          rule: "{{{{ ansible_eda.rule }}}}"
          alert: "{{{{ ansible_eda.event.alert }}}}"
          rollback_level: "{{{{ rollback_level }}}}"
          rollback_reason: "{{{{ rollback_reason }}}}"
          rollback_incident: "{{{{ rollback_incident }}}}"
          rollback_detected_at: "{{{{ rollback_detected_at }}}}"
          rollback_severity: "{{{{ rollback_severity }}}}"
          rollback_services: "{{{{ rollback_services }}}}"
"""
READY_TIMEOUT = 60
RUNS_TIMEOUT = 60


def post(url: str, body: bytes) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Rulebook:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = work / "runs"
        self.log = work / "ansible-rulebook.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        playbooks = self.work / "playbooks"
        playbooks.mkdir()
        self.out.mkdir()
        for level in (1, 2, 3):
            text = STANDIN.format(level=level, out=self.out)
            (playbooks / f"rollback-l{level}.yml").write_text(text)
        inventory = self.work / "inventory.ini"
        inventory.write_text(f"localhost ansible_python_interpreter={VENV_BIN / 'python'}\n")
        variables = self.work / "vars.yml"
        variables.write_text(
            json.dumps({"alertmanager_port": self.port, "rollback_playbook_dir": str(playbooks)})
        )
        config = self.work / "ansible.cfg"  # the collection, and no run record callback
        config.write_text(f"[defaults]\ncollections_path = {REPO / 'collections'}\n")
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(config),
        }
        command = [
            str(VENV_BIN / "ansible-rulebook"),
            "--rulebook",
            "sre.rollback.alertmanager_rollback",
            "--inventory",
            str(inventory),
            "--vars",
            str(variables),
            "-v",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.work,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"ansible-rulebook exited {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the source did not listen in {READY_TIMEOUT}s:\n{self.output()}")
            time.sleep(0.2)

    def runs(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted(self.out.glob("*.json"))]

    def wait_for_runs(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + RUNS_TIMEOUT
        while len(self.runs()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.runs()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def rulebook(tmp_path: Path) -> Iterator[Rulebook]:
    require_tool("java", "openjdk-17-jdk-headless")
    if not (VENV_BIN / "ansible-rulebook").exists():
        pytest.fail("ansible-rulebook is not in the venv: run `make venv` (the test extra has it)")
    running = Rulebook(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_shipped_rulebook_runs_the_levels_of_firing_alerts_once_per_service(
    rulebook: Rulebook,
) -> None:
    rulebook.wait_ready()
    for name in SEQUENCE:
        body = (PAYLOADS / f"{name}.json").read_bytes()
        status, text = post(rulebook.url + "/alerts", body)
        assert (status, text) == (202, f"queued {len(json.loads(body)['alerts'])} alert(s)"), name
    assert post(rulebook.url + "/alerts", b'{"version": "3", "alerts": []}')[0] == 400

    # Actions run one at a time in the order of the events, so once the last event's run
    # has written its file, every event before it has been matched (or not) and acted on.
    runs = rulebook.wait_for_runs(len(EXPECTED_RUNS))
    log = rulebook.output()
    got = [
        (run["playbook"], run["alert"]["labels"]["service"], run["alert"]["labels"]["alertname"])
        for run in runs
    ]
    assert got == EXPECTED_RUNS, f"runs {got}; ansible-rulebook said:\n{log}"

    first = runs[0]
    fired = json.loads((PAYLOADS / "error_rate_core_api_firing.json").read_text())["alerts"][0]
    assert first["rule"] == "Run the level the policy maps the trigger to"
    assert first["rollback_level"] == 3
    assert first["rollback_services"] == ["core_api"]
    assert first["rollback_severity"] == "critical"
    assert first["rollback_detected_at"] == fired["startsAt"]
    assert first["rollback_incident"] == f"RollbackErrorRate/core_api@{fired['startsAt']}"
    assert first["rollback_reason"] == (
        "Alertmanager: error_rate: error ratio > 10%, sustained for 5m "
        f"(service core_api, firing since {fired['startsAt']})"
    )
    assert runs[1]["rollback_level"] == 2
    assert "RollbackErrorRate (analytics): the policy says rollback 4-5" in log
    assert "Nothing was run" in log
