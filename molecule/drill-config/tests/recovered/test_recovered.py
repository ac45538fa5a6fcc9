"""drill-config, everything is back after level 2 (rollbackctl run --level 2): app.ini is
the one before the fault on every app host and passes the release's check, /health answers
ok, the release is untouched, no order was lost, the error ratio is under the trigger."""

from __future__ import annotations

from conftest import CONFIG_DIR, DEMO_APP, check_error_ratio, check_serving, check_writes


def test_config_is_the_one_before_the_fault(drill):
    good = (drill.run_dir / "good-app.ini").read_text()
    for name in drill.app:
        host = drill.host(name)
        assert host.file(f"{CONFIG_DIR}/app.ini").content_string.strip() == good.strip(), name
        assert host.run(f"{DEMO_APP} check-config --config-dir {CONFIG_DIR}").rc == 0, name


def test_healthy_on_the_same_release(drill):
    check_serving(drill, version="1.2.3", release="v1.2.3-stable")


def test_error_ratio_under_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=False)


def test_no_acknowledged_write_lost(drill, note):
    check_writes(drill, note, restored=False)
