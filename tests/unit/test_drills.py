"""Drills (rollbackctl.drills, rollbackctl drill): the drill record from a timeline, RTO/RPO
against the policy and the runbook, JUnit, the schedule, the compliance report; and every
drill playbook passes `molecule syntax` (the default scenario imports them all)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import default_policy
from rollbackctl import drills
from rollbackctl.cli import main
from tests.conftest import REPO, VENV_BIN

CODE = drills.DrillSpec(
    name="drill-code",
    title="Code rollback",
    fault="bad release",
    levels=(3,),
    schedule="monthly",
    services=("core_api",),
)


def timeline(run_dir: Path, t0: float, rto: float, lost: int = 0, exit_code: int = 0) -> None:
    """A drill's events as its steps write them: fault at t0, verified healthy at t0+rto."""
    drills.mark(run_dir, "rig_up", t0 - 60)
    drills.mark(run_dir, "prepared", t0 - 20)
    drills.mark(run_dir, "fault_injected", t0)
    drills.mark(run_dir, "verified_fault", t0 + 10, checks=[{"name": "test_x", "seconds": 1}])
    drills.mark(run_dir, "rollback_started", t0 + 12, level=3)
    drills.mark(
        run_dir,
        "rollback_finished",
        t0 + 20,
        level=3,
        exit_code=exit_code,
        phases={"health": 2.4, "restart": 0.2},
    )
    acks = [{"at": t0 - 10 + i, "order_id": i} for i in range(1, 21)]
    present = [i for i in range(1, 21) if i <= 20 - lost]
    drills.mark(run_dir, "rpo_evidence", t0 + rto - 1, data_loss=drills.data_loss(acks, present))
    drills.mark(run_dir, "verified_recovered", t0 + rto, checks=[{"name": "test_y", "seconds": 2}])
    drills.mark(run_dir, "destroyed", t0 + rto + 5)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


def test_data_loss_from_heartbeat_evidence() -> None:
    acks = [{"at": 100.0 + i, "order_id": i} for i in range(10)] + [{"at": 99.5, "status": 500}]
    assert drills.data_loss(acks, range(10))["seconds"] == 0.0
    lost = drills.data_loss(acks, range(6))  # a restore to the point after order 5
    assert lost["lost"] == 4 and lost["acknowledged"] == 10
    assert lost["seconds"] == 4.0  # from the last write kept (105) to the newest lost (109)
    assert lost["lost_ids"] == [6, 7, 8, 9]
    assert drills.data_loss([], [1])["seconds"] is None  # no heartbeat: no evidence, not zero


def test_record_of_a_passed_drill(artifacts: Path) -> None:
    run_dir = drills.begin(artifacts, "drill-code", 5)
    timeline(run_dir, 1_000_000.0, rto=29.3)
    record = drills.build_record(CODE, run_dir, default_policy())
    assert record["result"] == "passed", record["steps"]
    assert record["rto"]["seconds"] == 29.3
    phases = {p["phase"]: p["seconds"] for p in record["rto"]["phases"]}
    assert phases == {
        "detection": 10.0,
        "hand-over": 2.0,
        "rollback level 3": 8.0,
        "verification": 9.3,
    }
    assert record["rpo"]["seconds"] == 0.0
    rows = {r["objective"]: r for r in record["objectives"]}
    assert rows["Core API RTO (policy)"]["target_seconds"] == 300
    assert rows["level 3 budget (runbook)"]["target_seconds"] == 900
    assert rows["goal: 1/10 of the level 3 budget"]["binding"] is False
    assert all(r["status"] == "met" for r in rows.values())
    assert [c["name"] for c in record["checks"]] == ["test_x", "test_y"]


def test_a_slow_drill_fails_naming_the_numbers(artifacts: Path) -> None:
    run_dir = drills.begin(artifacts, "drill-code", 5)
    timeline(run_dir, 1_000_000.0, rto=312.0)
    record = drills.build_record(CODE, run_dir, default_policy())
    assert record["result"] == "failed" and record["failed_step"] is None
    assert record["violations"] == [
        "Core API RTO (policy): measured 5m12s (312.0 s) exceeds 5m (300 s)"
    ]
    goal = next(r for r in record["objectives"] if not r["binding"])
    assert goal["status"] == "exceeded"  # reported, but not one of the violations


def test_data_lost_beyond_the_rpo_fails(artifacts: Path) -> None:
    spec = drills.DrillSpec(
        "drill-database", "db", "bad migration", (4,), "quarterly", ("core_api",)
    )
    run_dir = drills.begin(artifacts, spec.name, 5)
    acks = [{"at": 1000.0 + 10 * i, "order_id": i} for i in range(1, 21)]
    timeline(run_dir, 2000.0, rto=60)
    drills.mark(run_dir, "rpo_evidence", 2059, data_loss=drills.data_loss(acks, range(1, 11)))
    record = drills.build_record(spec, run_dir, default_policy())
    assert record["rpo"]["seconds"] == 100.0
    assert (
        "Core API RPO (policy): measured 1m40s (100.0 s) exceeds 1m (60 s)" in record["violations"]
    )


def test_skipped_rollback_fails_at_the_recovered_verify(artifacts: Path) -> None:
    run_dir = drills.begin(artifacts, "drill-code", 5)
    t0 = 1_000_000.0
    for event, at in (
        ("rig_up", -5),
        ("prepared", -1),
        ("fault_injected", 0),
        ("verified_fault", 9),
    ):
        drills.mark(run_dir, event, t0 + at)
    drills.mark(run_dir, "rollback_started", t0 + 10, level=3)
    drills.mark(run_dir, "rollback_finished", t0 + 11, level=3, exit_code=0)
    drills.mark(run_dir, "verified_recovered", t0 + 20, failed="test_release_is_stable")
    drills.mark(run_dir, "destroyed", t0 + 25)
    record = drills.build_record(CODE, run_dir, default_policy(), leftovers=["mount /run/x"])
    assert record["result"] == "failed"
    assert record["failed_step"] == "verify recovered"
    assert record["rto"]["seconds"] is None  # never verified healthy: no RTO to claim
    assert "Core API RTO (policy): not measured" in record["violations"]
    assert record["leftovers"] == ["mount /run/x"]


def test_junit_has_a_case_per_step_check_and_objective(artifacts: Path) -> None:
    run_dir = drills.begin(artifacts, "drill-code", 5)
    timeline(run_dir, 1_000_000.0, rto=312.0)
    record = drills.build_record(CODE, run_dir, default_policy())
    json_path, xml_path = drills.write_record(artifacts, record)
    assert json.loads(json_path.read_text())["run_id"] == record["run_id"]
    assert oct(json_path.stat().st_mode & 0o777) == "0o600"
    suite = ET.fromstring(xml_path.read_text())  # noqa: S314 - our own output
    assert suite.get("tests") == str(7 + 2 + 4 + 1)
    assert suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = suite.find(".//testcase[@name='Core API RTO (policy)']/failure")
    assert failure is not None and "312.0 s" in str(failure.get("message"))


def test_schedule_next_due_and_overdue() -> None:
    assert drills.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert drills.add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    flag = drills.DrillSpec("drill-flag", "t", "f", (1,), "monthly", ("core_api",))
    db = drills.DrillSpec("drill-database", "t", "f", (4,), "quarterly", ("database",))
    multi = drills.DrillSpec("drill-multi-service", "t", "f", (3,), "quarterly", ("core_api",))
    records = [
        {"scenario": "drill-flag", "started": "2026-10-01T10:00:00Z", "result": "passed"},
        {"scenario": "drill-flag", "started": "2026-11-20T10:00:00Z", "result": "failed"},
        {"scenario": "drill-database", "started": "2026-11-01T10:00:00Z", "result": "passed"},
    ]
    rows = {r["drill"]: r for r in drills.schedule([flag, db, multi], records, date(2026, 12, 6))}
    # due a month after the last PASSED run; the failed one does not count
    assert rows["drill-flag"]["next_due"] == "2026-11-01" and rows["drill-flag"]["overdue"]
    assert rows["drill-flag"]["last_result"] == "failed"
    assert rows["drill-database"]["next_due"] == "2027-02-01"
    assert not rows["drill-database"]["overdue"]
    assert rows["drill-multi-service"]["last_result"] == "never run"
    assert rows["drill-multi-service"]["overdue"]


def test_compliance_trend_and_markdown(artifacts: Path) -> None:
    records = []
    for rto in (40.0, 29.3):
        run_dir = drills.begin(artifacts, "drill-code", 5)
        timeline(run_dir, 1_000_000.0 + rto, rto=rto)
        records.append(drills.build_record(CODE, run_dir, default_policy()))
    data = drills.report([CODE], records, date(2026, 12, 6))
    row = next(r for r in data["compliance"] if r["objective"] == "Core API RTO (policy)")
    assert (row["runs"], row["met"], row["worst_seconds"], row["latest_seconds"]) == (
        2,
        2,
        40.0,
        29.3,
    )
    assert row["trend"] == "better" and row["compliant"]
    text = drills.report_markdown(data)
    assert "| drill-code | Core API RTO (policy) | 5m (300.0 s) | 29.3s (29.3 s) |" in text
    assert "VIOLATED" not in text


def test_catalogue_is_the_scenarios_drill_files() -> None:
    specs = {spec.name: spec for spec in drills.catalogue(REPO)}
    assert specs["drill-code"].levels == (3,) and specs["drill-code"].schedule == "monthly"
    for name in specs:
        assert (REPO / "molecule" / name / "molecule.yml").is_file(), name
        assert (REPO / "molecule" / name / "side_effect.yml").is_file(), name  # see molecule.yml


def test_bad_drill_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "molecule" / "drill-x" / "drill.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("drill: {levels: [7], schedule: weekly, title: t, fault: f}\n")
    with pytest.raises(drills.DrillError, match="levels: a list of levels 1-5; schedule"):
        drills.load_spec(bad)


def test_cli_list_and_report(artifacts: Path) -> None:
    run_dir = drills.begin(artifacts, "drill-code", 5)
    timeline(run_dir, 1_000_000.0, rto=29.3)
    drills.write_record(artifacts, drills.build_record(CODE, run_dir, default_policy()))
    runner = CliRunner()
    base = ["--project-dir", str(REPO), "--artifacts", str(artifacts)]
    listed = runner.invoke(main, ["drill", "list", "--json", *base])
    assert listed.exit_code == 0, listed.output
    rows = {r["drill"]: r for r in json.loads(listed.output)}
    assert rows["drill-code"]["last_result"] == "passed" and rows["drill-code"]["runs"] == 1
    report = runner.invoke(main, ["drill", "report", "-f", "json", *base])
    assert report.exit_code == 0, report.output
    assert json.loads(report.output)["runs"][0]["rto_seconds"] == 29.3
    unknown = runner.invoke(main, ["drill", "run", "drill-nope", *base])
    assert unknown.exit_code == 2 and "no drill 'drill-nope'" in unknown.output


@pytest.mark.slow
def test_every_drill_playbook_passes_molecule_syntax() -> None:
    molecule = VENV_BIN / "molecule"
    if not molecule.exists() and shutil.which("molecule") is None:
        pytest.skip("molecule is not installed (make venv)")
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    done = subprocess.run(
        [str(molecule), "syntax", "-s", "default"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    imported = (REPO / "molecule" / "default" / "converge.yml").read_text()
    for spec in drills.catalogue(REPO):
        assert f"../{spec.name}/converge.yml" in imported, f"default does not check {spec.name}"
