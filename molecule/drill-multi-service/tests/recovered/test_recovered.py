"""drill-multi-service, both services are back after one emergency run (level 3, then
level 4 once validation found the damaged data): every app host on v1.2.3-stable and
healthy, the schema and prices of the backup, the error ratio under the trigger; the
writes acknowledged since the backup are the data lost (the RPO)."""

from __future__ import annotations

from conftest import CONFIG_DIR, DEMO_APP, check_error_ratio, check_serving, check_writes, run_json


def test_app_on_stable_release_and_healthy(drill):
    check_serving(drill, version="1.2.3", release="v1.2.3-stable")


def test_database_restored_and_valid(drill):
    checks = run_json(drill.host(drill.app[0]), f"{DEMO_APP} db validate --config-dir {CONFIG_DIR}")
    assert checks["ok"], checks
    assert checks["revision"] == "20240115093000"


def test_both_levels_ran(drill):
    runs = [e for e in drill.events() if e["event"] == "rollback_finished"]
    assert runs and runs[-1].get("levels_run") == [3, 4], runs


def test_error_ratio_under_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=False)


def test_data_lost_is_measured(drill, note):
    check_writes(drill, note, restored=True)
