"""drill-database, everything is back after level 4 (rollbackctl run --level 4 -e
database_restore_backup=drill-database-before): the integrity check passes, the schema is
the backup's, the damaged database is kept aside, /health answers ok, the error ratio is
under the trigger; the writes acknowledged since the backup are the data lost (the RPO)."""

from __future__ import annotations

from conftest import (
    CONFIG_DIR,
    DEMO_APP,
    check_error_ratio,
    check_serving,
    check_writes,
    run_json,
)


def test_data_valid_again(drill):
    host = drill.host(drill.app[0])
    checks = run_json(host, f"{DEMO_APP} db validate --config-dir {CONFIG_DIR}")
    assert checks["ok"], checks
    assert checks["revision"] == drill.baseline("schema")


def test_damaged_database_kept_aside(drill):
    result = drill.host(drill.db).run(
        "cd / && runuser -u postgres -- psql -Atc "
        "\"select datname from pg_database where datname like 'demo_app_pre_rollback_%'\""
    )
    assert result.rc == 0 and result.stdout.strip(), result.stderr


def test_healthy(drill):
    check_serving(drill, version="1.2.3", release="v1.2.3-stable")


def test_error_ratio_under_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=False)


def test_data_lost_is_measured(drill, note):
    check_writes(drill, note, restored=True)
