"""drill-full-dr, everything is back after level 5 (rollbackctl run --level 5): the app
host runs the stable release and answers /health, its configuration passes the check,
every upload is back byte for byte, the database is at the schema of the set and valid,
the error ratio is under the trigger; the writes lost since the last archived WAL are
the RPO."""

from __future__ import annotations

from conftest import (
    CONFIG_DIR,
    DEMO_APP,
    check_error_ratio,
    check_serving,
    check_writes,
    run_json,
)


def test_serving_the_stable_release(drill):
    check_serving(drill, version="1.2.3", release="v1.2.3-stable")


def test_config_valid(drill):
    for name in drill.app:
        assert drill.host(name).run(f"{DEMO_APP} check-config --config-dir {CONFIG_DIR}").rc == 0


def test_uploads_back_byte_for_byte(drill):
    want = (drill.run_dir / "uploads.sha256").read_text().strip()
    got = drill.host(drill.app[0]).run(
        "cd /opt/demo-app/shared/uploads && find . -type f -print0 | sort -z | xargs -0 sha256sum"
    )
    assert got.stdout.strip() == want


def test_database_valid(drill):
    checks = run_json(drill.host(drill.app[0]), f"{DEMO_APP} db validate --config-dir {CONFIG_DIR}")
    assert checks["ok"], checks


def test_error_ratio_under_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=False)


def test_data_lost_is_measured(drill, note):
    check_writes(drill, note, restored=True)
