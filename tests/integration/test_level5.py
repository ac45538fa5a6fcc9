"""Level 5 on the rig: full backup set, then hosts wiped (replaced servers), then a rebuild
from the backups alone; point-in-time recovery; a damaged repository refused in preflight.

About 10 minutes (three level 5 runs on systemd hosts): `make test-dr`
(SRE_ROLLBACK_DR_SCENARIOS=1). Its own rig: h1 (db), h2 (app), h3 (backup).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rollbackctl.cli import main
from tests.conftest import REPO
from tests.integration.conftest import make_rig
from tests.integration.rig import current, on, playbook, wrapper_args

OPT_IN = "SRE_ROLLBACK_DR_SCENARIOS"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get(OPT_IN), reason=f"about 10 minutes: `make test-dr` ({OPT_IN}=1)"
    ),
]

STABLE = "v1.2.3-stable"
UPLOADS = "/opt/demo-app/shared/uploads"
PSQL = "runuser -u postgres -- psql -XAtq -d demo_app -c"
HEARTBEAT_TABLE = (
    "CREATE TABLE IF NOT EXISTS dr_heartbeat"
    "(id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
)
# The rig archives a WAL file at least every 10 s (full_backup_archive_timeout).
ARCHIVED = 13


def sql(rig: Any, query: str) -> str:
    return on(rig, "h1", f'{PSQL} "{query}"')


def start_heartbeat(rig: Any) -> None:
    """One row a second, as the application's heartbeat would write it (the measured RPO)."""
    sql(rig, HEARTBEAT_TABLE)
    on(
        rig,
        "h1",
        "pkill -f [d]r-heartbeat-loop; nohup sh -c 'while :; do : dr-heartbeat-loop; "
        f'{PSQL} "INSERT INTO dr_heartbeat DEFAULT VALUES"; sleep 1; done\' '
        ">/dev/null 2>&1 &",
        check=False,
    )


def stop_heartbeat(rig: Any) -> None:
    on(rig, "h1", "pkill -f [d]r-heartbeat-loop; sleep 1.2", check=False)


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1e6):06d}Z"


def heartbeats(rig: Any, when: str = "", epoch: float = 0.0) -> int:
    """Heartbeat rows (all, or those before/after `epoch`: when is '<=' or '>')."""
    where = f" WHERE at {when} to_timestamp({epoch:.6f})" if when in ("<=", ">") else ""
    return int(sql(rig, "SELECT count(*) FROM dr_heartbeat" + where))  # noqa: S608 (a float)


def uploads_sums(rig: Any) -> str:
    return on(rig, "h2", f"cd {UPLOADS} && find . -type f -print0 | sort -z | xargs -0 sha256sum")


def health(rig: Any) -> str:
    return on(rig, "h2", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health")


@pytest.fixture(scope="module")
def dr_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    rig = make_rig("systemd")
    secret = f"dr-restic-{secrets.token_hex(12)}"
    password = tmp_path_factory.mktemp("dr") / "restic.pass"
    password.write_text(secret)
    password.chmod(0o600)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRE_BACKUP_RESTIC_PASSWORD_FILE", str(password))
        try:
            rig.up(2, backup=True)
            for name, *args in (("demo-app.yml",), ("deploy.yml", "-e", f"release_tag={STABLE}")):
                run = playbook(rig.inventory, name, *args)
                assert run.rc == 0, run.out[-4000:]
            on(
                rig,
                "h2",
                f"for i in $(seq 1 60); do head -c $((i * 97)) /dev/urandom > {UPLOADS}/f$i.bin;"
                f" done; mkdir -p {UPLOADS}/sub && echo nested > {UPLOADS}/sub/n.txt",
            )
            start_heartbeat(rig)
            time.sleep(2)
            backup = playbook(rig.inventory, "backup-full.yml")
            assert backup.rc == 0, backup.out[-4000:]
            yield rig, secret
        finally:
            rig.down()


@pytest.fixture
def dr(dr_rig: tuple[Any, str]) -> Any:
    return dr_rig[0]


def sets(rig: Any) -> list[dict[str, Any]]:
    names = on(rig, "h3", "ls /srv/sre-backup/sets").split()
    return [json.loads(on(rig, "h3", f"cat /srv/sre-backup/sets/{n}")) for n in names]


def test_backup_set_has_every_part_and_a_private_manifest(dr: Any) -> None:
    (the_set,) = sets(dr)
    assert the_set["verified"], the_set["problem"]
    assert on(dr, "h3", "stat -c %a /srv/sre-backup/sets/*.json") == "600"
    parts = the_set["hosts"]["h2"]["parts"]
    assert parts["uploads"]["trees"][UPLOADS]["files"] == 61
    assert the_set["hosts"]["h2"]["release"]["tag"] == STABLE
    database = the_set["database"]
    assert database["revision"] and database["tables"]["public.orders"] > 0
    assert database["restore_point"] == f"sre-set-{the_set['id']}"


def test_wiped_hosts_are_rebuilt_from_the_backups_alone(dr_rig: tuple[Any, str]) -> None:
    dr, secret = dr_rig
    sums, revision = uploads_sums(dr), sql(dr, "SELECT version_num FROM alembic_version")
    time.sleep(ARCHIVED)  # heartbeats after the backup reach the WAL archive
    disaster = time.time()
    dr.wipe("h1")  # the database host and the app host are lost and replaced
    dr.wipe("h2")
    assert on(dr, "h2", f"test -e {UPLOADS} && echo yes || echo no") == "no"
    run = playbook(
        dr.inventory,
        "rollback-l5.yml",
        "-e",
        "rollback_incident_started_at="
        + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(disaster)),
        timeout=1200,
    )
    assert run.rc == 0, run.out[-6000:]
    assert STABLE in current(dr, "h2") and health(dr) == "200"
    assert uploads_sums(dr) == sums
    assert sql(dr, "SELECT version_num FROM alembic_version") == revision
    newest = float(sql(dr, "SELECT extract(epoch FROM max(at)) FROM dr_heartbeat"))
    loss = disaster - newest
    assert 0 <= loss < ARCHIVED + 12, loss  # the rows up to the last archived WAL file
    result = run.record["hosts"]["h1"]["result"]
    assert result["rpo"]["database_status"] == "met", result["rpo"]
    assert float(result["rto"]["total_seconds"]) > 0 and result["rto"]["phases"]["restore"] > 0
    print(f"\nlevel 5 after wipe: {run.seconds:.1f} s, RPO {loss:.1f} s, dr_results {result}")
    # secrets: not in the output, the record, the artifacts, the manifests
    assert secret not in run.out
    for path in [
        *(REPO / ".artifacts").rglob("*"),
        *Path("/tmp/sre-rollback-test-records").rglob("*"),
    ]:
        if path.is_file() and path.stat().st_size < 20_000_000:
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in on(
        dr, "h3", "cat /srv/sre-backup/sets/*.json /srv/sre-backup/log/* || true"
    )


def test_pitr_restores_exactly_the_rows_up_to_the_time(dr: Any, tmp_path: Path) -> None:
    start_heartbeat(dr)
    time.sleep(6)
    target = time.time()
    time.sleep(6)  # rows after the target, then damage
    stop_heartbeat(dr)
    want = heartbeats(dr, "<=", target)
    assert heartbeats(dr, ">", target) >= 4
    sql(dr, "SELECT pg_switch_wal()")
    time.sleep(2)
    result = CliRunner().invoke(
        main,
        ["run", "--level", "5", "--target", iso(target), *wrapper_args(dr, tmp_path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output[-4000:]
    assert heartbeats(dr) == want
    assert heartbeats(dr, ">", target) == 0
    assert health(dr) == "200"


def test_damaged_pack_is_refused_before_anything_changes(dr: Any) -> None:
    before = (current(dr, "h2"), uploads_sums(dr), str(heartbeats(dr)))
    pack = on(dr, "h3", "find /srv/sre-backup/restic/data -type f | sort | head -1")
    on(
        dr,
        "h3",
        f"cp -p {pack} /root/pack.bak && printf 'XXXX' | dd of={pack} bs=1 seek=40 conv=notrunc",
    )
    try:
        run = playbook(dr.inventory, "rollback-l5.yml", timeout=900)
        assert run.rc != 0
        assert "Level 5 refused before changing anything" in run.out
        assert "restic check failed" in run.out
    finally:
        on(dr, "h3", f"cp -p /root/pack.bak {pack}")
    after = (current(dr, "h2"), uploads_sums(dr), str(heartbeats(dr)))
    assert after == before and health(dr) == "200"
    check = playbook(dr.inventory, "rollback-l5.yml", "--check", timeout=900)
    assert check.rc == 0, check.out[-4000:]
    assert "Check mode: nothing was changed." in check.out
    assert (current(dr, "h2"), uploads_sums(dr)) == before[:2]
