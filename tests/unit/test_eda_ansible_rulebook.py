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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.support.rulebook import Rulebook, first_alert, post, running_rulebook

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
RUNS_TIMEOUT = 60


def runs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(out.glob("*.json"))]


def wait_for_runs(out: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + RUNS_TIMEOUT
    while len(runs(out)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return runs(out)


@pytest.fixture
def rulebook(tmp_path: Path) -> Iterator[tuple[Rulebook, Path]]:
    """The shipped rulebook, with rollback_playbook_dir pointing at the stand-ins."""
    out, playbooks = tmp_path / "runs", tmp_path / "playbooks"
    out.mkdir()
    playbooks.mkdir()
    for level in (1, 2, 3):
        text = STANDIN.format(level=level, out=out)
        (playbooks / f"rollback-l{level}.yml").write_text(text)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_python_interpreter={VENV_BIN / 'python'}\n")
    config = tmp_path / "ansible.cfg"  # the collection, and no run record callback
    config.write_text(f"[defaults]\ncollections_path = {REPO / 'collections'}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(config)}
    variables = {"rollback_playbook_dir": str(playbooks)}
    with running_rulebook(tmp_path, inventory, variables, env, cwd=tmp_path) as running:
        yield running, out


def test_shipped_rulebook_runs_the_levels_of_firing_alerts_once_per_service(
    rulebook: tuple[Rulebook, Path],
) -> None:
    running, out = rulebook
    for name in SEQUENCE:
        running.send(name)
    assert post(running.url + "/alerts", b'{"version": "3", "alerts": []}')[0] == 400

    # Actions run one at a time in the order of the events, so once the last event's run
    # has written its file, every event before it has been matched (or not) and acted on.
    done = wait_for_runs(out, len(EXPECTED_RUNS))
    log = running.output()
    got = [
        (run["playbook"], run["alert"]["labels"]["service"], run["alert"]["labels"]["alertname"])
        for run in done
    ]
    assert got == EXPECTED_RUNS, f"runs {got}; ansible-rulebook said:\n{log}"

    first = done[0]
    fired = first_alert("error_rate_core_api_firing")
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
    assert done[1]["rollback_level"] == 2
    assert "RollbackErrorRate (analytics): the policy says rollback 4-5" in log
    assert "Nothing was run" in log
