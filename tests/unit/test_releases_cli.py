"""`rollbackctl releases` and `releases mark` on localhost (real ansible-playbook runs of
playbooks/status.yml and playbooks/mark-release.yml): the marks an operator sets and clears,
with who, why and the run id, in each host's release log (#21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_run_cli import invoke

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

GOOD, BAD = "v1.2.3-stable-gabc", "v1.3.0-gdef"


def app_with_a_bad_release(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    for release in (GOOD, BAD):
        (app / "releases" / release).mkdir(parents=True)
    (app / "current").symlink_to(f"releases/{GOOD}")
    entries = [
        {"time": "2026-11-29T09:00:00Z", "release": BAD, "tag": "v1.3.0", "commit": "def",
         "state": "bad", "event": "rollback_from", "reason": "gate crashed", "run_id": "r1"},
        {"time": "2026-11-29T10:00:00Z", "release": GOOD, "tag": "v1.2.3-stable",
         "commit": "abc", "state": "current", "event": "rollback", "run_id": "r1"},
    ]  # fmt: skip
    (app / "releases.log").write_text("".join(json.dumps(e) + "\n" for e in entries))
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[app]\nlocalhost ansible_connection=local "
        "ansible_python_interpreter='{{ ansible_playbook_python }}' "
        f"release_app_root={app}\n"
    )
    return inventory


def listed(inventory: Path) -> dict[str, dict[str, object]]:
    result = invoke("releases", "-i", str(inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    return {row["release"]: row for row in json.loads(result.stdout)["releases"]}


def test_releases_lists_states_with_reason_and_run(tmp_path: Path) -> None:
    inventory = app_with_a_bad_release(tmp_path)
    rows = listed(inventory)
    assert rows[GOOD]["current"] is True and rows[GOOD]["state"] == "current"
    bad = rows[BAD]
    assert (bad["state"], bad["reason"], bad["run_id"], bad["host"]) == (
        "bad",
        "gate crashed",
        "r1",
        "localhost",
    )
    table = invoke("releases", "-i", str(inventory), "--project-dir", str(REPO))
    assert table.exit_code == 0
    assert table.output.splitlines() == [
        "localhost v1.2.3-stable (current) current  since 2026-11-29T10:00:00Z  run r1",
        "localhost v1.3.0 bad  since 2026-11-29T09:00:00Z  run r1  reason gate crashed",
        "State: marked bad (never a default target of level 3): v1.3.0 on localhost.",
        "Next: clear a wrong mark with `rollbackctl releases mark --good v1.3.0 --reason WHY "
        f"-i {inventory} --hosts localhost`, or name a target: `rollbackctl run --level 3 "
        f"-i {inventory} --target TAG`.",
    ], "no terminal: one complete line per host and release, then the state and next step"


def test_mark_good_by_tag_clears_a_bad_mark_and_is_recorded(tmp_path: Path) -> None:
    inventory = app_with_a_bad_release(tmp_path)
    artifacts = tmp_path / "artifacts"
    args = ["-i", str(inventory), "--project-dir", str(REPO), "--artifacts", str(artifacts)]
    why = "the gate failed on a database outage"
    result = invoke("releases", "mark", "--good", "v1.3.0", "--reason", why, *args)
    assert result.exit_code == 0, result.output
    assert f"localhost: {BAD} bad -> good" in result.output
    assert "v1.3.0 is marked good on 1 host(s)" in result.output
    assert result.output.splitlines()[-2:] == [
        "State: v1.3.0 is now marked good on localhost: level 3 may pick it again.",
        f"Next: see level 3's target with `rollbackctl run --level 3 -i {inventory} --check`.",
    ]
    row = listed(inventory)[BAD]
    assert (row["state"], row["reason"]) == ("good", why)
    (record_file,) = [p for p in (artifacts / "runs").glob("2*-mark-*.json")]
    record = json.loads(record_file.read_text())
    assert record["status"] == "ok" and row["run_id"] == record["run_id"]
    assert record["hosts"]["localhost"]["result"]["after"] == "good"
    again = invoke("releases", "mark", "--good", BAD, "--reason", why, *args)
    assert again.exit_code == 0 and "(already)" in again.output


def test_marking_an_unknown_release_fails_naming_the_known_ones(tmp_path: Path) -> None:
    inventory = app_with_a_bad_release(tmp_path)
    args = ["-i", str(inventory), "--project-dir", str(REPO), "--artifacts", str(tmp_path / "a")]
    result = invoke("releases", "mark", "--bad", "v9.9.9", "--reason", "x", *args)
    assert result.exit_code == 1, result.output
    assert "is not in" in result.output and GOOD in result.output
    missing = invoke("releases", "mark", "v1.3.0", "--reason", "x", *args)
    assert missing.exit_code == 2 and "--good or --bad" in missing.output
