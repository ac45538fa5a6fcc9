"""Level 5 on the rig: a full backup set, then what #17 says level 5 must show: a damaged
restic pack and a missing pgBackRest backup refused in preflight with nothing changed,
`--check`'s plan, the database host and an app host wiped (replaced servers) and rebuilt from
the backups alone with the RPO measured from the demo app's own heartbeat, point-in-time
recovery to exactly the rows up to a time, a host cut in the middle of the restore and the
re-run that resumes, and the planted secrets (restic and database passwords) nowhere.

About 15 minutes (five level 5 runs on systemd hosts): `make test-dr`
(SRE_ROLLBACK_DR_SCENARIOS=1). Its own rig: h1 (db), h2 (app), h3 (backup). The tests run in
file order on one rig; each leaves the application serving.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from rollbackctl.cli import main
from tests.conftest import REPO
from tests.integration.conftest import make_rig
from tests.integration.rig import Run, current, on, playbook, wrapper_args

OPT_IN = "SRE_ROLLBACK_DR_SCENARIOS"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get(OPT_IN), reason=f"about 15 minutes: `make test-dr` ({OPT_IN}=1)"
    ),
]

STABLE = "v1.2.3-stable"
UPLOADS = "/opt/demo-app/shared/uploads"
CONFIG = "/etc/demo-app"
PG = "/var/lib/postgresql/15"
STAGING_PID = f"{PG}/main.dr-staging/postmaster.pid"
DR_STATE = "/var/lib/sre-rollback/dr"
PSQL = "runuser -u postgres -- psql -XAtq -d demo_app -c"
RECORDS = Path(os.environ.get("TMPDIR", "/tmp")) / "sre-rollback-test-records"
# The rig archives a WAL file at least every 10 s (full_backup_archive_timeout).
ARCHIVED = 13
# What the cut test saw before its disaster (the orders), for the check after it.
BEFORE_CUT: dict[str, Any] = {}


class Secrets:
    """The passwords planted for this rig, hunted for in everything a run leaves."""

    restic = f"dr-restic-{secrets.token_hex(12)}"
    database = f"dr-db-{secrets.token_hex(12)}"
    outputs: ClassVar[list[str]] = []  # every playbook's and rollbackctl's output


def l5(rig: Any, *args: str, timeout: int = 1200) -> Run:
    return run_playbook(rig, "rollback-l5.yml", *args, timeout=timeout)


def run_playbook(rig: Any, name: str, *args: str, timeout: int = 1200) -> Run:
    """A playbook with the rig's planted database password (as an operator's -e would)."""
    run = playbook(
        rig.inventory, name, "-e", f"demo_app_db_password={Secrets.database}", *args,
        timeout=timeout,
    )  # fmt: skip
    Secrets.outputs.append(run.out)
    return run


def sql(rig: Any, query: str) -> str:
    return on(rig, "h1", f'{PSQL} "{query}"')


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def heartbeat_times(rig: Any) -> list[float]:
    """Every heartbeat the app wrote that the database holds, as epoch seconds, oldest first."""
    text = sql(rig, "SELECT extract(epoch FROM at) FROM heartbeat ORDER BY at")
    return [float(line) for line in text.split()]


def order_ids(rig: Any) -> list[int]:
    return [int(i) for i in sql(rig, "SELECT id FROM orders ORDER BY id").split()]


def place_orders(rig: Any, count: int) -> None:
    on(
        rig,
        "h2",
        f"for i in $(seq {count}); do curl -fsS -o /dev/null -X POST "
        "'http://127.0.0.1:8080/checkout?item=2&qty=1'; done",
    )


def uploads_sums(rig: Any) -> str:
    return on(rig, "h2", f"cd {UPLOADS} && find . -type f -print0 | sort -z | xargs -0 sha256sum")


def health(rig: Any) -> str:
    return on(rig, "h2", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health")


def journal(rig: Any, host: str) -> list[dict[str, Any]]:
    text = on(rig, host, f"cat {DR_STATE}/journal.jsonl 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def host_state(rig: Any) -> dict[str, str]:
    """What a level 5 that changed nothing leaves as it was, on every host (the heartbeat
    table grows by itself: its rows are not part of it)."""
    return {
        "h2 release": current(rig, "h2"),
        "h2 uploads": uploads_sums(rig),
        "h2 config": on(rig, "h2", f"cd {CONFIG} && find . -type f | sort | xargs sha256sum"),
        "h2 kept aside": on(rig, "h2", f"ls -d {UPLOADS}.* {CONFIG}.* 2>/dev/null || true"),
        "h2 app": on(rig, "h2", "systemctl is-active demo-app", check=False),
        "h2 dr state": on(rig, "h2", f"ls -A {DR_STATE} 2>/dev/null || true"),
        "h1 clusters": on(rig, "h1", f"ls -A {PG}"),
        "h1 postgres": on(rig, "h1", "pg_lsclusters -h | cut -d' ' -f1-4"),
        "h1 dr state": on(rig, "h1", f"ls -A {DR_STATE} 2>/dev/null || true"),
        "h1 orders": ",".join(map(str, order_ids(rig))),
        "h1 revision": sql(rig, "SELECT version_num FROM alembic_version"),
        "h3 sets": on(rig, "h3", "ls /srv/sre-backup/sets"),
        "h3 snapshots": on(rig, "h3", "ls /srv/sre-backup/restic/snapshots"),
        "h3 pg backups": on(rig, "h3", "ls /srv/sre-backup/pgbackrest/backup/demo"),
    }


def assert_nothing_changed(rig: Any, before: dict[str, str], newest_before: float) -> None:
    after = host_state(rig)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert health(rig) == "200"
    # the app was never stopped: it went on writing its heartbeat
    assert max(heartbeat_times(rig)) > newest_before


@pytest.fixture(scope="module")
def dr_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    rig = make_rig("systemd")
    password = tmp_path_factory.mktemp("dr") / "restic.pass"
    password.write_text(Secrets.restic)
    password.chmod(0o600)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRE_BACKUP_RESTIC_PASSWORD_FILE", str(password))
        try:
            rig.up(2, backup=True)
            for name, *args in (("demo-app.yml",), ("deploy.yml", "-e", f"release_tag={STABLE}")):
                run = run_playbook(rig, name, *args)
                assert run.rc == 0, run.out[-4000:]
            on(
                rig,
                "h2",
                f"for i in $(seq 1 60); do head -c $((i * 97)) /dev/urandom > {UPLOADS}/f$i.bin;"
                f" done; mkdir -p {UPLOADS}/sub && echo nested > {UPLOADS}/sub/n.txt",
            )
            place_orders(rig, 5)
            time.sleep(2)
            assert len(heartbeat_times(rig)) >= 2, "the demo app writes no heartbeat"
            backup = run_playbook(rig, "backup-full.yml")
            assert backup.rc == 0, backup.out[-4000:]
            yield rig
        finally:
            rig.down()


def the_set(rig: Any) -> dict[str, Any]:
    (name,) = on(rig, "h3", "ls /srv/sre-backup/sets").split()
    return dict(json.loads(on(rig, "h3", f"cat /srv/sre-backup/sets/{name}")))


def test_backup_set_has_every_part_and_a_private_manifest(dr_rig: Any) -> None:
    backup = the_set(dr_rig)
    assert backup["verified"], backup["problem"]
    assert on(dr_rig, "h3", "stat -c %a /srv/sre-backup/sets/*.json") == "600"
    parts = backup["hosts"]["h2"]["parts"]
    assert parts["uploads"]["trees"][UPLOADS]["files"] == 61
    assert backup["hosts"]["h2"]["release"]["tag"] == STABLE
    database = backup["database"]
    assert database["revision"] and database["tables"]["public.orders"] >= 13
    assert database["tables"]["public.heartbeat"] > 0
    assert database["restore_point"] == f"sre-set-{backup['id']}"


def test_check_prints_the_plan_per_host_and_part_and_changes_nothing(dr_rig: Any) -> None:
    backup, before = the_set(dr_rig), host_state(dr_rig)
    newest = max(heartbeat_times(dr_rig))
    check = l5(dr_rig, "--check")
    assert check.rc == 0, check.out[-4000:]
    parts = backup["hosts"]["h2"]["parts"]
    for line in (
        f"h2: release {STABLE} ({backup['hosts']['h2']['release']['commit']})",
        f"config from restic snapshot {parts['config']['snapshot']} -> {CONFIG}",
        f"uploads from restic snapshot {parts['uploads']['snapshot']} -> {UPLOADS} (61 files",
        f"h1: PostgreSQL {PG}/main from pgBackRest backup {backup['database']['label']}",
        "recovered to the end of the archived WAL",
        f"Set {backup['id']}",
        "Check mode: nothing was changed.",
    ):
        assert line in " ".join(check.out.split()), line
    assert_nothing_changed(dr_rig, before, newest)


def refused(run: Run) -> str:
    """The preflight's refusal (the level's failure message), on one line."""
    assert run.rc != 0, run.out[-4000:]
    flat = " ".join(run.out.split())
    assert "Level 5 refused before changing anything" in flat, run.out[-4000:]
    return flat[flat.index("Level 5 refused before changing anything") :][:1500]


def test_a_damaged_restic_pack_is_refused_before_anything_changes(dr_rig: Any) -> None:
    before, newest = host_state(dr_rig), max(heartbeat_times(dr_rig))
    pack = on(dr_rig, "h3", "find /srv/sre-backup/restic/data -type f | sort | head -1")
    on(dr_rig, "h3", f"cp -p {pack} /root/pack.bak")
    on(dr_rig, "h3", f"printf 'XXXX' | dd of={pack} bs=1 seek=40 conv=notrunc status=none")
    try:
        message = refused(l5(dr_rig))
    finally:
        on(dr_rig, "h3", f"cp -p /root/pack.bak {pack}")
    assert "restic check failed" in message and "the file repository is damaged" in message
    assert_nothing_changed(dr_rig, before, newest)


def test_a_missing_pgbackrest_backup_is_refused_before_anything_changes(dr_rig: Any) -> None:
    before, newest = host_state(dr_rig), max(heartbeat_times(dr_rig))
    label = the_set(dr_rig)["database"]["label"]
    backups = "/srv/sre-backup/pgbackrest/backup/demo"
    on(dr_rig, "h3", f"mv {backups}/{label} /root/{label}")
    try:
        message = refused(l5(dr_rig))
    finally:
        on(dr_rig, "h3", f"mv /root/{label} {backups}/{label}")
    assert f"pgBackRest backup {label} of set" in message and "missing" in message, message
    assert_nothing_changed(dr_rig, before, newest)


def test_wiped_hosts_are_rebuilt_from_the_backups_alone(dr_rig: Any, tmp_path: Path) -> None:
    dr = dr_rig
    sums, revision = uploads_sums(dr), sql(dr, "SELECT version_num FROM alembic_version")
    orders = order_ids(dr)
    kept = heartbeat_times(dr)  # written at least ARCHIVED s before the disaster: in the WAL
    time.sleep(ARCHIVED)
    disaster = time.time()
    dr.wipe("h1")  # the database host and the app host are lost and replaced
    dr.wipe("h2")
    assert on(dr, "h2", f"test -e {UPLOADS} && echo yes || echo no") == "no"
    run = l5(dr, "-e", "rollback_incident_started_at=" + iso(disaster))
    assert run.rc == 0, run.out[-6000:]
    assert STABLE in current(dr, "h2") and health(dr) == "200"
    assert uploads_sums(dr) == sums
    assert sql(dr, "SELECT version_num FROM alembic_version") == revision
    assert order_ids(dr) == orders
    restored = heartbeat_times(dr)
    assert restored[: len(kept)] == kept  # every row up to the RPO is there
    newest = max(t for t in restored if t <= disaster)
    loss = disaster - newest
    assert 0 <= loss < ARCHIVED + 12, loss  # the rows up to the last archived WAL file
    result = run.record["hosts"]["h1"]["result"]
    assert float(result["data_loss_seconds"]) == pytest.approx(loss, abs=1), result["rpo"]
    assert result["rpo"]["database_status"] == "met", result["rpo"]
    assert result["rto"]["phases"]["restore"] > 0 and float(result["rto"]["total_seconds"]) > 0
    assert run.record["hosts"]["h2"]["result"]["parts"]["uploads"]["done"] == "restored"
    # the report holds the measured RTO (downtime from the disaster) and RPO against the policy
    objectives = {row["name"]: row for row in run.record["recovery_objectives"]}
    assert objectives["Database"]["data_loss"] == pytest.approx(loss, abs=1)
    assert objectives["Database"]["rpo_status"] == "met"
    assert objectives["Database"]["rto_status"] in ("met", "violated")
    report = CliRunner().invoke(
        main, ["report", run.record["run_id"], "--records", str(RECORDS)], catch_exceptions=False
    )
    assert report.exit_code == 0, report.output
    assert "| Database |" in report.output and "Recovery objectives" in report.output
    print(
        f"\nlevel 5 after wipe: {run.seconds:.1f} s, RTO {result['rto']}, RPO {loss:.1f} s"
        f" (record: {result['data_loss_seconds']} s)"
    )


def test_archiving_holds_from_every_start_of_postgresql(dr_rig: Any) -> None:
    """A start by anyone (systemd's here, as after a reboot) archives every archive_timeout
    from its first minute: PostgreSQL 15's checkpointer otherwise waits a checkpoint_timeout
    (5 min) first. The rebuilt database host got the unit's drop-in from level 5."""
    dr = dr_rig
    on(dr, "h1", "systemctl restart postgresql@15-main")
    writing = sql(dr, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    time.sleep(ARCHIVED)
    assert sql(dr, "SELECT last_archived_wal FROM pg_stat_archiver") >= writing
    assert health(dr) == "200"


def test_pitr_restores_exactly_the_rows_up_to_the_time(dr_rig: Any, tmp_path: Path) -> None:
    dr = dr_rig
    place_orders(dr, 3)
    before_t, quiet_from = order_ids(dr), time.time()
    time.sleep(3)
    quiet_to = time.time()
    place_orders(dr, 4)
    time.sleep(1)
    after_t = [i for i in order_ids(dr) if i not in before_t]
    # T: in the quiet seconds between the orders, halfway between two heartbeats, so that no
    # row commits within ~0.5 s of it
    beats = heartbeat_times(dr)
    middle = (quiet_from + quiet_to) / 2
    around = [max(t for t in beats if t <= middle), min(t for t in beats if t > middle)]
    target = sum(around) / 2
    assert quiet_from < target < quiet_to, (quiet_from, around, quiet_to)
    kept = [t for t in beats if t <= target]
    sql(dr, "DELETE FROM orders")  # the damage: an operator's bad statement
    damage = time.time()
    sql(dr, "SELECT pg_switch_wal()")
    time.sleep(ARCHIVED)
    result = CliRunner().invoke(
        main,
        [
            "run", "--level", "5", "--target", iso(target),
            "-e", f"demo_app_db_password={Secrets.database}",
            *wrapper_args(dr, tmp_path),
        ],
        catch_exceptions=False,
    )  # fmt: skip
    Secrets.outputs.append(result.output)
    staging = on(dr, "h1", f"tail -20 {PG}/main.dr-staging.log 2>/dev/null; true")
    assert result.exit_code == 0, result.output[-4000:] + staging
    assert order_ids(dr) == before_t  # exactly the orders up to T, none after
    restored = heartbeat_times(dr)
    assert [t for t in restored if t <= target] == kept
    assert not [t for t in restored if target < t <= damage]  # nothing after T came back
    assert health(dr) == "200"
    assert all(i not in order_ids(dr) for i in after_t)
    # The recovered cluster archives every archive_timeout from its start (PostgreSQL 15's
    # checkpointer otherwise waits a whole checkpoint_timeout, 5 min, after a start).
    writing = sql(dr, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    time.sleep(ARCHIVED)
    assert sql(dr, "SELECT last_archived_wal FROM pg_stat_archiver") >= writing


def test_a_host_cut_mid_restore_fails_clearly_and_a_rerun_resumes(dr_rig: Any) -> None:
    dr = dr_rig
    sums, orders, started = uploads_sums(dr), order_ids(dr), time.time()
    time.sleep(ARCHIVED)  # the orders reach the WAL archive (on the timeline of the PITR)
    on(dr, "h2", f"rm -rf {UPLOADS}/sub {UPLOADS}/f1*.bin")  # uploads lost on the app host
    dr.wipe("h1")  # and the database host replaced
    outcome: dict[str, Run] = {}
    worker = threading.Thread(target=lambda: outcome.update(first=l5(dr)), daemon=True)
    worker.start()
    deadline = time.monotonic() + 900
    while worker.is_alive() and time.monotonic() < deadline:
        if on(dr, "h1", f"test -e {STAGING_PID} && echo up || echo no", check=False) == "up":
            dr.cut("h1")  # the database host drops off while its staging server recovers
            break
        time.sleep(0.3)
    else:
        pytest.fail(
            "the database recovery never started: "
            + outcome.get("first", Run(0, "", 0, {})).out[-3000:]
        )
    try:
        worker.join(timeout=900)
    finally:
        dr.heal("h1")
    first = outcome["first"]
    assert first.rc != 0, first.out[-4000:]
    assert "h1" in first.out and "UNREACHABLE" in first.out, first.out[-4000:]
    assert first.record["hosts"]["h1"]["status"] in ("unreachable", "failed"), first.record[
        "hosts"
    ]["h1"]
    assert not [e for e in journal(dr, "h1") if e["part"] == "database"]
    restored_first = {e["part"] for e in journal(dr, "h2") if e["at"] > started}
    assert "uploads" in restored_first  # the app host's uploads were done before the cut
    second = l5(dr)
    assert second.rc == 0, second.out[-6000:]
    # only what was unfinished ran: the uploads were already there, the database recovered
    parts = second.record["hosts"]["h2"]["result"]["parts"]
    assert {p: v["done"] for p, v in parts.items()} == {
        "config": "already there",
        "uploads": "already there",
    }
    database = [e for e in journal(dr, "h1") if e["part"] == "database"]
    assert [e["run"] for e in database] == [second.record["run_id"]], database
    assert uploads_sums(dr) == sums
    BEFORE_CUT.update(orders=orders)
    assert health(dr) == "200"


def test_latest_after_a_pitr_brings_back_every_order(dr_rig: Any) -> None:
    dr = dr_rig
    timelines = " ".join(
        [
            on(dr, "h3", "ls /srv/sre-backup/pgbackrest/archive/demo/*/"),
            on(dr, "h1", f"grep -ih 'timeline' {PG}/main.dr-staging.log | tail -5; true"),
        ]
    )
    assert BEFORE_CUT and order_ids(dr) == BEFORE_CUT["orders"], timelines


def test_planted_secrets_are_in_no_log_artifact_or_record(dr_rig: Any) -> None:
    planted = (Secrets.restic, Secrets.database)
    assert Secrets.outputs
    for out in Secrets.outputs:
        for secret in planted:
            assert secret not in out
    files = [*(REPO / ".artifacts").rglob("*"), *RECORDS.rglob("*")]
    for path in files:
        if path.is_file() and path.stat().st_size < 20_000_000:
            data = path.read_bytes()
            for secret in planted:
                assert secret.encode() not in data, path
    leftovers = " ".join(
        [
            on(
                dr_rig,
                "h3",
                "cat /srv/sre-backup/sets/*.json; cat /srv/sre-backup/log/* 2>/dev/null || true",
            ),
            on(dr_rig, "h3", "cat /srv/sre-backup/pgbackrest/log/* 2>/dev/null || true"),
            on(
                dr_rig,
                "h1",
                f"cat {DR_STATE}/journal.jsonl {PG}/*.log /var/log/postgresql/* 2>/dev/null; true",
            ),
            on(
                dr_rig,
                "h2",
                f"cat {DR_STATE}/journal.jsonl; journalctl -q --no-pager -u demo-app; true",
            ),
        ]
    )
    for secret in planted:
        assert secret not in leftovers
