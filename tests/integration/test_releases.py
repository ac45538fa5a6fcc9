"""On the rig: `rollbackctl releases` lists what each host's release log says, `releases
mark` sets and clears a mark on the hosts it names (who, why, run id in each host's log),
and `status` says when a host's application is down (#21)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.integration.rig import APP_ROOT, on, playbook, release_log
from tests.integration.test_wrapper import app_hosts, deploy, invoke

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, BAD = "v1.2.3-stable", "v1.3.0"


BACKUP = "testhosts-before-releases-test"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Iterator[Any]:
    """Every app host on BAD after STABLE, from a clean release history, no stale lock.
    BAD's migration damages the data: the database is backed up first and restored after
    (level 4), and every host goes back to STABLE, so later tests find the rig as it was."""
    for host in testhosts.hosts:
        testhosts.exec(host, "rm", "-f", f"{APP_ROOT}/releases.log", f"{APP_ROOT}/.rollback.lock")
    prepared = playbook(testhosts.inventory, "demo-app.yml")
    assert prepared.rc == 0, prepared.out[-4000:]
    deploy(testhosts, STABLE)
    backup = playbook(testhosts.inventory, "backup.yml", "-e", f"backup_name={BACKUP}")
    assert backup.rc == 0, backup.out[-4000:]
    deploy(testhosts, BAD)
    yield testhosts
    restored = playbook(
        testhosts.inventory, "rollback-l4.yml", "-e", f"database_restore_backup={BACKUP}"
    )
    assert restored.rc == 0, restored.out[-4000:]
    back = playbook(testhosts.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert back.rc == 0, back.out[-4000:]


def releases(rig: Any) -> dict[tuple[str, str], dict[str, Any]]:
    result = invoke("releases", "-i", str(rig.inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    return {(row["host"], row["tag"]): row for row in json.loads(result.stdout)["releases"]}


def test_releases_mark_round_trip(rig: Any, tmp_path: Path) -> None:
    hosts = app_hosts(rig)
    canary, others = hosts[0], hosts[1:]
    listed = releases(rig)
    for host in hosts:
        assert listed[(host, BAD)]["current"] and not listed[(host, STABLE)]["current"]
        assert listed[(host, STABLE)]["state"] != "bad"
    args = ["--project-dir", str(REPO), "--artifacts", str(tmp_path / "a")]
    why = "drill: crashed on the canary"
    marked = invoke(
        "releases", "mark", "--bad", STABLE, "--hosts", canary, "--reason", why,
        "-i", str(rig.inventory), *args,
    )  # fmt: skip
    assert marked.exit_code == 0, marked.output
    assert f"{STABLE} is marked bad on 1 host(s)" in marked.output
    listed = releases(rig)
    row = listed[(canary, STABLE)]
    assert (row["state"], row["reason"]) == ("bad", why)
    assert "-mark-" in row["run_id"] and row["user"]
    for host in others:
        assert listed[(host, STABLE)]["state"] != "bad", "only the hosts named"
    # Level 3's default target is never a release marked bad on any host.
    check = invoke("run", "--level", "3", "-i", str(rig.inventory), "--check", *args)
    assert check.exit_code == 0 and "Target: v1.2.2-stable (" in check.output, check.output
    cleared = invoke(
        "releases", "mark", "--good", STABLE, "--reason", "drill over",
        "-i", str(rig.inventory), *args,
    )  # fmt: skip
    assert cleared.exit_code == 0, cleared.output
    assert f"{canary}: " in cleared.output and " bad -> good" in cleared.output
    listed = releases(rig)
    for host in hosts:
        assert listed[(host, STABLE)]["state"] == "good"
    last = release_log(rig, canary)[-1]
    assert (last["event"], last["state"], last["reason"]) == ("marked", "good", "drill over")
    check = invoke("run", "--level", "3", "-i", str(rig.inventory), "--check", *args)
    assert check.exit_code == 0 and f"Target: {STABLE} (" in check.output, check.output


def test_validate_shows_the_values_that_failed(rig: Any) -> None:
    """BAD's migration damaged the data: the app's own data check fails, and validate says
    what it expected and what it found (--json; the same values make the text lines:
    tests/unit/test_validate_cli.py)."""
    args = ["-i", str(rig.inventory), "--project-dir", str(REPO)]
    result = invoke("validate", *args, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (check,) = [
        c for c in report["database"]["failed_checks"]["h1"] if c["name"] == "app_data_check"
    ]
    assert check["expected"].endswith("exits 0") and check["found"].startswith("exit 1: "), check
    assert report["state"].startswith("INVALID: the database on h1 failed "), report
    assert "app_data_check" in report["state"], report
    assert "database_restore_backup" in report["next_step"]


def test_status_exits_1_when_an_application_is_down(rig: Any) -> None:
    hosts = app_hosts(rig)
    args = ["-i", str(rig.inventory), "--project-dir", str(REPO)]
    ok = invoke("status", *args, "--json")
    assert ok.exit_code == 0, ok.output
    assert {row["host"]: row["health"] for row in json.loads(ok.stdout)["hosts"]} == dict.fromkeys(
        hosts, "ok"
    )
    stopped = hosts[-1]
    on(rig, stopped, "systemctl stop demo-app")
    try:
        down = invoke("status", *args)
        assert down.exit_code == 1, down.output
        assert f"{stopped}: the application is down at http://127.0.0.1:8080/health" in down.output
    finally:
        on(rig, stopped, "systemctl start demo-app")
