"""drill-code, everything is back after level 3 (rollbackctl run --level 3): every app host
runs v1.2.3-stable and answers /health, v1.3.0 is marked bad, config and flags are as they
were, the schema is where the fault left it (level 3 never migrates: that is level 4's,
drill-database), no order was lost, and the error ratio is under the trigger."""

from __future__ import annotations

from conftest import (
    APP_ROOT,
    CONFIG_DIR,
    DEMO_APP,
    check_error_ratio,
    check_serving,
    check_writes,
    run_json,
)


def test_release_is_stable_and_healthy(drill):
    check_serving(drill, version="1.2.3", release="v1.2.3-stable")
    for name in drill.app:
        assert drill.host(name).service("demo-app").is_running, name


def test_bad_release_is_marked_bad(drill):
    for name in drill.app:
        log = drill.host(name).file(f"{APP_ROOT}/releases.log").content_string
        assert any('"bad"' in line and "v1.3.0" in line for line in log.splitlines()), (
            f"{name}: {log[-500:]}"
        )


def test_config_and_flags_as_they_were(drill):
    config, flags = drill.baseline("config_sha256"), drill.baseline("flags")
    for name in drill.app:
        host = drill.host(name)
        assert host.file(f"{CONFIG_DIR}/app.ini").sha256sum == config[name], name
        assert host.file(f"{CONFIG_DIR}/flags.json").content_string == flags[name], name
        assert host.run(f"{DEMO_APP} check-config --config-dir {CONFIG_DIR}").rc == 0, name


def test_schema_and_rows(drill):
    info = run_json(drill.host(drill.app[0]), f"{DEMO_APP} db info --config-dir {CONFIG_DIR}")
    assert info["current"] == drill.baseline("schema")
    assert info["counts"]["orders"] >= drill.baseline("orders")


def test_error_ratio_under_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=False)


def test_no_acknowledged_write_lost(drill, note):
    check_writes(drill, note, restored=False)
