"""Level 4 (database rollback) and backups on real hosts: PostgreSQL on h1 (the `db` group),
the demo app on h2 and h3; then the same flows on each app host's embedded SQLite file.

The tests run in order on one rig; each leaves the state the next expects. The story:
back up before the bad deploy, deploy v1.3.0 (its migration rounds every price), roll the
database back, check that nothing was lost, and that bad requests are refused with nothing
changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.rig import APP_ROOT, Run, health, on, playbook

pytestmark = pytest.mark.integration

STABLE, BAD = "v1.2.3-stable", "v1.3.0"
BEFORE_BAD, AFTER_BAD = "20240115093000", "20240201100000"
IRREVERSIBLE_TARGET = "20240115090000"
ENV = "testhosts"
BACKUPS = "/var/backups/sre-rollback/demo-app"
PRICES = [1999, 2450, 495, 8999, 4275]  # the seed's prices, with their cents
SQLITE = ["-e", "demo_app_db_backend=sqlite", "-e", "rollback_db_hosts=app"]


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def ok(run: Run) -> Run:
    assert run.rc == 0, run.out[-5000:]
    return run


def flat(text: str) -> str:
    """Output as one line: Ansible wraps long messages and doubles quotes in YAML."""
    return " ".join(text.replace("''", "'").split())


def said(run: Run, *phrases: str) -> Run:
    for phrase in phrases:
        assert flat(phrase) in flat(run.out), f"{phrase!r} not in:\n{run.out[-5000:]}"
    return run


def refused(run: Run, *phrases: str) -> Run:
    assert run.rc != 0, run.out[-3000:]
    return said(run, *phrases)


def psql(rig: Any, sql: str, database: str = "demo_app") -> str:
    return on(rig, "h1", f'runuser -u postgres -- psql -XAt -d {database} -c "{sql}"')


def databases(rig: Any) -> list[str]:
    return psql(rig, "SELECT datname FROM pg_database ORDER BY 1", "postgres").split()


def backups(rig: Any, host: str = "h1") -> list[str]:
    return on(rig, host, f"ls {BACKUPS} 2>/dev/null || true").split()


def manifest(rig: Any, name: str, host: str = "h1") -> dict[str, Any]:
    return dict(json.loads(on(rig, host, f"cat {BACKUPS}/{name}.manifest.json")))


def order(rig: Any, host: str) -> int:
    """Place an order through the app (data written after a backup); its id."""
    out = on(rig, host, "curl -sf -X POST 'http://127.0.0.1:8080/checkout?item=1&qty=2'")
    return int(json.loads(out)["order_id"])


def app_running_and_healthy(rig: Any) -> None:
    for host in app_hosts(rig):
        assert on(rig, host, "systemctl is-active demo-app") == "active"
        assert health(rig, host)[0] == 200, health(rig, host)


def lock_free(rig: Any) -> None:
    for host in app_hosts(rig):
        held = on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free")
        assert held == "free", host


def deploy(rig: Any, tag: str, *extra: str) -> Run:
    return ok(playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={tag}", *extra))


def l4(rig: Any, *args: str) -> Run:
    return playbook(rig.inventory, "rollback-l4.yml", *args)


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    """The demo app on PostgreSQL, from an empty database, with v1.2.3-stable deployed."""
    ok(playbook(testhosts.inventory, "demo-app.yml"))
    for host in app_hosts(testhosts):
        on(testhosts, host, f"rm -f {APP_ROOT}/.rollback.lock")
    on(testhosts, "h1", f"rm -rf {BACKUPS}")
    for name in databases(testhosts):
        if name.startswith("demo_app"):
            psql(testhosts, f'DROP DATABASE "{name}" WITH (FORCE)', "postgres")
    psql(testhosts, "CREATE DATABASE demo_app OWNER demo_app", "postgres")
    deploy(testhosts, STABLE)
    return testhosts


# --- PostgreSQL ----------------------------------------------------------------------------


def test_backup_is_named_private_and_counts_rows_in_its_snapshot(rig: Any) -> None:
    run = ok(playbook(rig.inventory, "backup.yml", "-e", f"backup_name={ENV}-before-{BAD}"))
    saved = manifest(rig, f"{ENV}-before-{BAD}")
    assert saved["revision"] == BEFORE_BAD and saved["environment"] == ENV
    assert saved["release"].startswith(STABLE)
    tables = dict(saved["tables"])
    assert tables.pop("public.heartbeat") > 0  # the running app's heartbeat, a row a second
    assert tables == {
        "public.alembic_version": 1,
        "public.app_meta": 1,
        "public.items": 5,
        "public.orders": 8,
    }
    assert saved["server_version"].startswith("15")
    modes = on(rig, "h1", f"stat -c '%a %U' {BACKUPS} {BACKUPS}/*").splitlines()
    assert modes == ["700 postgres", "600 postgres", "600 postgres"]
    assert run.host_results()["h1"]["backup"]["verified"] is True


def test_bad_release_damages_the_data(rig: Any) -> None:
    deploy(rig, BAD)
    assert psql(rig, "SELECT version_num FROM alembic_version") == AFTER_BAD
    assert psql(rig, "SELECT price_cents FROM items ORDER BY id").split() != [
        str(p) for p in PRICES
    ]
    order(rig, app_hosts(rig)[0])  # written after the backup: must survive the rollback
    assert psql(rig, "SELECT count(*) FROM orders") == "9"


def test_older_code_cannot_migrate_a_database_it_does_not_know(rig: Any) -> None:
    host = app_hosts(rig)[0]
    older = on(rig, host, f"ls -d {APP_ROOT}/releases/{STABLE}-g*")
    newer = on(rig, host, f"ls -d {APP_ROOT}/releases/{BAD}-g*")
    refused(
        l4(rig, "-e", f"database_target_revision={BEFORE_BAD}",
           "-e", f"database_migration_code_dir={older}"),
        f"The database is at revision {AFTER_BAD}, which the code in {older} does not know",
        f"Releases on this host that know it: {newer}",
        "Nothing was changed",
    )  # fmt: skip
    assert psql(rig, "SELECT version_num FROM alembic_version") == AFTER_BAD
    lock_free(rig)


def test_check_mode_prints_the_plan_and_changes_nothing(rig: Any) -> None:
    before = (databases(rig), backups(rig))
    said(
        ok(l4(rig, "-e", f"database_target_revision={BEFORE_BAD}", "--check")),
        f"Migrate down {AFTER_BAD} -> {BEFORE_BAD} with h2:{APP_ROOT}/current",
        "ALTER TABLE items DROP COLUMN currency",  # the SQL preview
        f"Back up the database as {ENV}-pre-rollback-",
    )
    said(
        ok(l4(rig, "-e", f"database_restore_backup={ENV}-before-{BAD}", "--check")),
        "then rename demo_app -> demo_app_pre_rollback_",
    )
    assert (databases(rig), backups(rig)) == before
    assert psql(rig, "SELECT version_num FROM alembic_version") == AFTER_BAD
    app_running_and_healthy(rig)


def test_migrating_down_brings_the_schema_back_and_flags_the_damage(rig: Any) -> None:
    run = refused(
        l4(rig, "-e", f"database_target_revision={BEFORE_BAD}"),
        "the application is healthy, but the application's data check fails",
        f"backups at revision {BEFORE_BAD}: {ENV}-before-{BAD}",
    )
    assert psql(rig, "SELECT version_num FROM alembic_version") == BEFORE_BAD
    columns = psql(
        rig, "SELECT column_name FROM information_schema.columns WHERE table_name='items'"
    )
    assert "currency" not in columns.split()
    assert any(b.startswith(f"{ENV}-pre-rollback-") for b in backups(rig))
    assert run.host_results()["h1"]["migrated"] == [AFTER_BAD]
    app_running_and_healthy(rig)
    lock_free(rig)


def test_level4_to_the_previous_revision_brings_schema_and_data_back(rig: Any) -> None:
    run = ok(
        l4(
            rig,
            "-e",
            f"database_target_revision={BEFORE_BAD}",
            "-e",
            f"database_restore_backup={ENV}-before-{BAD}",
        )
    )
    assert psql(rig, "SELECT price_cents FROM items ORDER BY id").split() == [
        str(p) for p in PRICES
    ]
    assert psql(rig, "SELECT version_num FROM alembic_version") == BEFORE_BAD
    saved = manifest(rig, f"{ENV}-before-{BAD}")
    assert psql(rig, "SELECT count(*) FROM orders") == str(saved["tables"]["public.orders"])
    result = run.host_results()["h1"]
    assert result["status"] == "ok" and result["validated"] is True
    # Nothing lost: the database set aside holds the order written after the backup.
    aside = result["aside"]
    assert aside.startswith("demo_app_pre_rollback_") and aside in databases(rig)
    assert psql(rig, "SELECT count(*) FROM orders", aside) == "9"
    app_running_and_healthy(rig)
    lock_free(rig)


def test_restore_a_named_backup_and_validate(rig: Any) -> None:
    named = ok(playbook(rig.inventory, "backup.yml")).host_results()["h1"]["backup"]["name"]
    assert named.startswith(f"{ENV}-20"), "default name <env>-<date>"
    new_order = order(rig, app_hosts(rig)[-1])
    run = ok(l4(rig, "-e", f"database_restore_backup={named}"))
    saved = manifest(rig, named)
    for table, rows in saved["tables"].items():
        count = int(psql(rig, f"SELECT count(*) FROM {table}"))  # noqa: S608
        # the restarted app goes on writing its heartbeat: those rows only grow
        assert count >= rows if table == "public.heartbeat" else count == rows, table
    aside = run.host_results()["h1"]["aside"]
    written_later = f"SELECT count(*) FROM orders WHERE id = {new_order}"  # noqa: S608
    assert psql(rig, written_later, aside) == "1"
    assert psql(rig, written_later) == "0"
    said(
        ok(playbook(rig.inventory, "validate-db.yml")),
        "ok app_data_check all checks pass",
        "ok sequences every sequence is at or above max(id)",
        "ok health h2 healthy, h3 healthy",
    )


def test_a_second_run_changes_nothing(rig: Any) -> None:
    before = backups(rig)
    run = said(
        ok(l4(rig, "-e", f"database_target_revision={BEFORE_BAD}")), "level 4 changed nothing"
    )
    assert "changed=0" in run.out
    assert backups(rig) == before


def test_corrupted_or_missing_backup_is_refused_with_nothing_changed(rig: Any) -> None:
    ok(playbook(rig.inventory, "backup.yml", "-e", "backup_name=damaged"))
    on(
        rig,
        "h1",
        f"printf '\\001' | dd of={BACKUPS}/damaged.dump bs=1 seek=200 conv=notrunc 2>/dev/null",
    )
    before = (databases(rig), backups(rig), psql(rig, "SELECT count(*) FROM orders"))
    refused(
        l4(rig, "-e", "database_restore_backup=damaged"),
        "backup 'damaged' is damaged: sha256",
        "The live database was not changed",
    )
    refused(
        l4(rig, "-e", "database_restore_backup=prod-2024-01-15"),
        "backup 'prod-2024-01-15' does not exist",
        f"known backups: {ENV}-before-{BAD}",
    )
    assert (databases(rig), backups(rig), psql(rig, "SELECT count(*) FROM orders")) == before
    app_running_and_healthy(rig)
    lock_free(rig)


def test_irreversible_migration_is_refused_unless_allowed(rig: Any) -> None:
    before = (databases(rig), backups(rig))
    refused(
        l4(rig, "-e", f"database_target_revision={IRREVERSIBLE_TARGET}"),
        "Irreversible migration 20240115093000 (drop the legacy coupons table)",
        "Nothing was changed",
    )
    assert (databases(rig), backups(rig)) == before
    # Allowed: the gate opens after a verified pre-rollback backup; the demo's own tool then
    # refuses this downgrade (its migration raises), so the database stays as it was and
    # the app is started again.
    allowed = refused(
        l4(rig, "-e", f"database_target_revision={IRREVERSIBLE_TARGET}",
           "-e", "database_allow_irreversible=true"),
        "the migration tool failed",
        "The database was not changed",
        "The application was started again",
    )  # fmt: skip
    assert f"{allowed.host_results()['h1']['pre_rollback_backup']}.dump" in backups(rig)
    assert psql(rig, "SELECT version_num FROM alembic_version") == BEFORE_BAD
    app_running_and_healthy(rig)
    lock_free(rig)


def test_a_locked_application_is_refused_before_anything(rig: Any) -> None:
    host = app_hosts(rig)[0]
    owner = {"run_id": "deploy-42", "user": "bob", "host": "ci", "pid": "7", "action": "deploy"}
    on(rig, host, f"echo '{json.dumps(owner)}' > {APP_ROOT}/.rollback.lock")
    try:
        refused(
            l4(rig, "-e", f"database_restore_backup={ENV}-before-{BAD}"),
            "is locked by run deploy-42 (bob@ci, pid 7, deploy",
        )
    finally:
        on(rig, host, f"rm -f {APP_ROOT}/.rollback.lock")
    app_running_and_healthy(rig)


def test_production_guard(rig: Any) -> None:
    restore = ["-e", f"database_restore_backup={ENV}-before-{BAD}"]
    refused(
        l4(rig, *restore, "-e", "database_environment=staging"),
        "records the environment testhosts, but this inventory is staging",
    )
    production = ["-e", '{"database_production_environments": ["testhosts"]}']
    refused(
        l4(rig, *restore, *production),
        "testhosts is a production environment",
        "-e rollback_confirm=testhosts",
    )
    ok(l4(rig, *restore, *production, "--check"))  # the plan needs no confirmation
    app_running_and_healthy(rig)


# --- SQLite (each app host's own file) -------------------------------------------------------


def migrate(rig: Any, host: str, revision: str) -> None:
    """Migrate a host's database with the code it runs (test setup, not the level)."""
    on(
        rig,
        host,
        f"runuser -u demo-app -- {APP_ROOT}/current/bin/demo-app migrate upgrade {revision} "
        "--config-dir /etc/demo-app",
    )


def wait_healthy(rig: Any, host: str) -> None:
    on(
        rig,
        host,
        "for i in $(seq 60); do curl -sf http://127.0.0.1:8080/health && exit 0; sleep 0.25; "
        "done; exit 1",
    )


@pytest.fixture(scope="module")
def sqlite_rig(rig: Any) -> Iterator[Any]:
    """Each app host on its own SQLite file, running v1.3.0 (deployed above): a backup taken
    at the previous revision, then the damaging migration, then an order."""
    config_only = ["--tags", "demo_app_layout,demo_app_config"]
    ok(playbook(rig.inventory, "demo-app.yml", *SQLITE, *config_only))
    for host in app_hosts(rig):
        on(rig, host, f"rm -rf {BACKUPS} /var/lib/demo-app/app*.db")
        migrate(rig, host, BEFORE_BAD)
    ok(playbook(rig.inventory, "backup.yml", *SQLITE, "-e", "backup_name=sqlite-before"))
    for host in app_hosts(rig):
        migrate(rig, host, "head")
        on(rig, host, "systemctl restart demo-app")
        wait_healthy(rig, host)
        order(rig, host)
    yield rig
    # Back to the rig's default (PostgreSQL) configuration for the tests after these.
    ok(playbook(rig.inventory, "demo-app.yml", *config_only))
    for host in app_hosts(rig):
        on(rig, host, "systemctl restart demo-app")


def sqlite(rig: Any, host: str, sql: str, path: str = "/var/lib/demo-app/app.db") -> str:
    return on(rig, host, f'sqlite3 {path} "{sql}"')


def test_sqlite_level4_brings_the_data_back_and_keeps_the_newer_file(sqlite_rig: Any) -> None:
    rig = sqlite_rig
    for host in app_hosts(rig):
        assert sqlite(rig, host, "SELECT version_num FROM alembic_version") == AFTER_BAD
    run = ok(
        l4(rig, *SQLITE, "-e", f"database_target_revision={BEFORE_BAD}",
           "-e", "database_restore_backup=sqlite-before")
    )  # fmt: skip
    for host in app_hosts(rig):
        assert sqlite(rig, host, "SELECT price_cents FROM items ORDER BY id").split() == [
            str(p) for p in PRICES
        ]
        assert sqlite(rig, host, "SELECT count(*) FROM orders") == "8"
        aside = run.host_results()[host]["aside"]
        assert aside.startswith("/var/lib/demo-app/app_pre_rollback_")
        assert sqlite(rig, host, "SELECT count(*) FROM orders", aside) == "9", "nothing lost"
        assert on(rig, host, "stat -c %U /var/lib/demo-app/app.db") == "demo-app"
    app_running_and_healthy(rig)


def sqlite_state(rig: Any, host: str) -> str:
    """The SQLite database's files and a digest of its content but the heartbeat rows (the
    running app writes one a second)."""
    dump = (
        "import hashlib, sqlite3; c = sqlite3.connect('/var/lib/demo-app/app.db'); "
        "print(hashlib.md5(''.join(l for l in c.iterdump() if 'heartbeat' not in l).encode())"
        ".hexdigest())"
    )
    return on(rig, host, f'ls /var/lib/demo-app; python3 -c "{dump}"')


def test_sqlite_refusals_change_nothing(sqlite_rig: Any) -> None:
    rig = sqlite_rig
    for host in app_hosts(rig):
        on(
            rig,
            host,
            f"printf '\\001' | dd of={BACKUPS}/sqlite-before.sqlite3 bs=1 seek=300 conv=notrunc",
        )
    files = {h: sqlite_state(rig, h) for h in app_hosts(rig)}
    refused(
        l4(rig, *SQLITE, "-e", "database_restore_backup=sqlite-before"),
        "backup 'sqlite-before' is damaged",
    )
    refused(
        l4(rig, *SQLITE, "-e", f"database_target_revision={IRREVERSIBLE_TARGET}"),
        "Irreversible migration 20240115093000",
    )
    assert {h: sqlite_state(rig, h) for h in app_hosts(rig)} == files
    app_running_and_healthy(rig)
    lock_free(rig)
