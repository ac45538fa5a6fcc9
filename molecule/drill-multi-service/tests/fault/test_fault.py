"""drill-multi-service, the fault is visible in both services: checkouts fail above the
policy's error-rate trigger (the app), and the integrity check fails on the rounded
prices (the database)."""

from __future__ import annotations

from conftest import CONFIG_DIR, DEMO_APP, check_error_ratio, check_serving


def test_bad_release_is_live(drill):
    check_serving(drill, version="1.3.0")


def test_error_ratio_above_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=True)


def test_data_damaged(drill):
    result = drill.host(drill.app[0]).run(f"{DEMO_APP} db validate --config-dir {CONFIG_DIR}")
    assert result.rc == 1, result.stdout
