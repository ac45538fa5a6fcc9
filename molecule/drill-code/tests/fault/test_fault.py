"""drill-code, the fault is visible: v1.3.0 is live on every app host and its checkouts fail
above the policy's error-rate trigger. Notes what the level must leave alone (config,
flags, schema, rows) for the recovered verify to compare."""

from __future__ import annotations

from conftest import CONFIG_DIR, DEMO_APP, check_error_ratio, check_serving, run_json


def test_bad_release_is_live(drill):
    check_serving(drill, version="1.3.0")


def test_error_ratio_above_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=True)


def test_note_what_level_3_must_not_touch(drill, note):
    first = drill.host(drill.app[0])
    note["config_sha256"] = {
        name: drill.host(name).file(f"{CONFIG_DIR}/app.ini").sha256sum for name in drill.app
    }
    note["flags"] = {
        name: drill.host(name).file(f"{CONFIG_DIR}/flags.json").content_string for name in drill.app
    }
    info = run_json(first, f"{DEMO_APP} db info --config-dir {CONFIG_DIR}")
    note["schema"] = info["current"]
    note["orders"] = info["counts"]["orders"]
    assert info["current"] == "20240201100000", f"v1.3.0's migration did not run: {info}"
