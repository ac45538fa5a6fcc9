"""The shipped rulebook starts the real level 3 on the rig: the bad release deployed, the
recorded error-rate alert (a real Alertmanager's payload) POSTed to ansible-rulebook over
loopback, and every app host is back on the stable release, with the alert's reason,
incident, detection time and service in the run record. Started the way the README says:
from the project, ANSIBLE_CONFIG set, a directory inventory, an absolute record directory.

About 2 minutes (the demo app, two deploys, the JVM, level 3): not part of `make test`
(test_eda_ansible_rulebook.py covers the routing there); run it with `make eda-rig`."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.integration.rig import current, playbook, release_log
from tests.support.rulebook import first_alert, running_rulebook

OPT_IN = "SRE_ROLLBACK_EDA_RIG"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get(OPT_IN), reason=f"about 2 minutes: `make eda-rig` ({OPT_IN}=1)"
    ),
]

STABLE, BAD = "v1.2.3-stable", "v1.3.0"
ALERT = "error_rate_core_api_firing"
RECORD_TIMEOUT = 240


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    for name, *args in (
        ("demo-app.yml",),
        ("deploy.yml", "-e", f"release_tag={STABLE}"),
        ("deploy.yml", "-e", f"release_tag={BAD}"),
    ):
        run = playbook(testhosts.inventory, name, *args)
        assert run.rc == 0, run.out[-4000:]
    return testhosts


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def directory_inventory(rig: Any, where: Path) -> Path:
    """The rig's inventory as a directory: ansible-rulebook copies a file inventory alone,
    without the group_vars beside it, and the rig's group_vars read ../policy.yml."""
    group_vars = (Path(rig.inventory).parent / "group_vars").resolve()
    where.mkdir()
    shutil.copy(rig.inventory, where / "hosts.ini")
    shutil.copytree(group_vars, where / "group_vars")
    shutil.copy(group_vars.parent / "policy.yml", where / "policy.yml")
    return where


def finished_record(records: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RECORD_TIMEOUT
    while time.monotonic() < deadline:
        for path in records.glob("2*.json"):
            record: dict[str, Any] = json.loads(path.read_text())
            if record.get("status") not in (None, "running"):
                return record
        time.sleep(1)
    pytest.fail(f"no finished run record in {records} after {RECORD_TIMEOUT}s")
    raise AssertionError("unreachable")


def test_firing_error_rate_alert_rolls_the_service_back_to_stable(rig: Any, tmp_path: Path) -> None:
    assert all(BAD in current(rig, host) for host in app_hosts(rig))
    records = tmp_path / "records"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "SRE_ROLLBACK_RECORD_DIR": str(records),
        "ANSIBLE_NOCOLOR": "1",
    }
    inventory = directory_inventory(rig, tmp_path / "inventory")
    with running_rulebook(tmp_path, inventory, {}, env, cwd=REPO) as running:
        running.send(ALERT)
        record = finished_record(records)
        log = running.output()

    fired = first_alert(ALERT)
    assert record["status"] == "ok", log[-6000:]
    assert record["level"] == 3
    assert record["reason"].startswith("Alertmanager: error_rate: error ratio > 10%")
    assert record["incident"] == f"RollbackErrorRate/core_api@{fired['startsAt']}"
    assert record["given"]["detected"] == fired["startsAt"][:19] + "Z"
    assert record["given"]["services"] == ["core_api"]
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
        last = release_log(rig, host)[-1]
        assert str(last.get("reason", "")).startswith("Alertmanager: error_rate"), last
