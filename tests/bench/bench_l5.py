#!/usr/bin/env python3
"""Time level 5 (full disaster recovery) per part against the raw tools (restic restore +
pgbackrest restore) on the same data, on the rig. Prints JSON.

    sudo TESTHOSTS_INSTANCE=N .venv/bin/python -m tests.bench.bench_l5 [--db-gib 1] [--uploads N]
    sudo TESTHOSTS_INSTANCE=N .venv/bin/python -m tests.bench.bench_l5 --demo   # the demo's data

Not part of the test run (~15 min with 1 GiB on this machine). Its own rig (systemd runtime):
h1 (db), h2 (app), h3 (backup). Steps:

  1. the demo app on v1.2.3-stable; the shop database grown to --db-gib with orders in the
     app's own schema (generate_series on the server, before archiving is on), --uploads
     files of 2-300 KB (log-uniform, random bytes like images) in h2's uploads tree;
  2. backup-full.yml (timed), then more writes (orders, uploads) that the set lacks;
  3. wipe h1 and h2 (replaced servers), level 5 to `latest` (rollback-l5.yml), timed per
     part from its run record: preflight (restic check --read-data, pgbackrest verify...),
     provision (the replaced hosts' setup, keys), files, database, code, health/validate;
  4. wipe h1 and h2 again; the expert by hand: the same provisioning (tests/bench/
     l5_raw_prepare.yml, timed apart), then over SSH, on both hosts at once, `restic
     restore` of the set's snapshots to `/` (no --verify) and `pgbackrest restore` of the
     set's backup + start PostgreSQL + wait until the recovery ends (promoted);
  5. both results checked equal (uploads digest, orders count).

Ratios: `restore` is level 5's restore (files and database, their verification included) over
the raw restores; `same_work` adds the preflight and the provisioning on level 5's side and
the same provisioning on the raw side; level 5's total also rebuilds the code, starts,
health-gates and validates, which the raw tools do not. The load average is recorded with
every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.integration.conftest import TestHosts, rig_env
from tests.integration.rig import Run, on, playbook

STABLE = "v1.2.3-stable"
UPLOADS = "/opt/demo-app/shared/uploads"
DB, APP, BACKUP = "h1", "h2", "h3"
PG = "runuser -u postgres -- psql -XAtq -d demo_app -c"
BACKUP_ROOT = "/srv/sre-backup"
RESTIC_ENV = "/etc/sre-rollback/backup"

# Orders in the app's own schema (items from its seed migration), totals consistent with the
# prices so that `demo-app db validate` passes on the restored data.
ORDERS_SQL = """
WITH it AS (SELECT id, price_cents, row_number() OVER (ORDER BY id) - 1 AS k,
                   count(*) OVER () AS n FROM items)
INSERT INTO orders (item_id, quantity, total_cents, created_at)
SELECT it.id, 1 + g % 5, (1 + g % 5) * it.price_cents,
       timestamp '2024-02-01' + g * interval '1 second'
FROM generate_series(1, {rows}) g JOIN it ON it.k = g % it.n
"""

# Upload files written on the app host by its own Python: random bytes (incompressible,
# like images and PDFs), sizes log-uniform between 2 KB and 300 KB, 100 per directory.
UPLOADS_PY = """
import os, random, sys
root, count, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(start)
total = 0
for i in range(start, start + count):
    d = os.path.join(root, "%04d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    size = int(2048 * (150 ** rnd.random()))
    with open(os.path.join(d, "upload-%06d.bin" % i), "wb") as fh:
        fh.write(os.urandom(size))
    total += size
print(total)
"""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def free_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def log(msg: str) -> None:
    print(
        f"[{time.strftime('%H:%M:%S')}] {msg} (load {load()[0]}, free {free_gib()} GiB)",
        file=sys.stderr,
        flush=True,
    )


def sql(rig: TestHosts, query: str) -> str:
    return on(rig, DB, f"{PG} {shlex.quote(query)}")


def ok(run: Run, what: str) -> Run:
    if run.rc != 0:
        raise SystemExit(f"{what} failed ({run.rc}):\n{run.out[-6000:]}")
    return run


def uploads_digest(rig: TestHosts) -> str:
    return on(
        rig,
        APP,
        f"cd {UPLOADS} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum",
    ).split()[0]


def grow_database(rig: TestHosts, gib: float) -> dict[str, Any]:
    started = time.monotonic()
    want = int(gib * 2**30)
    size = int(sql(rig, "SELECT pg_database_size('demo_app')"))
    while size < want:
        # ~68 bytes per order with its primary key: the rest in at most 4M rows a statement
        rows = max(10_000, min(4_000_000, (want - size) // 68 + 1))
        sql(rig, ORDERS_SQL.format(rows=rows))
        size = int(sql(rig, "SELECT pg_database_size('demo_app')"))
    sql(rig, "VACUUM ANALYZE orders")
    return {
        "database_bytes": int(sql(rig, "SELECT pg_database_size('demo_app')")),
        "orders": int(sql(rig, "SELECT count(*) FROM orders")),
        "seconds": round(time.monotonic() - started, 1),
    }


def add_uploads(rig: TestHosts, count: int, start: int) -> int:
    out = on(
        rig,
        APP,
        f"python3 -c {shlex.quote(UPLOADS_PY)} {UPLOADS} {count} {start} && "
        f"chown -R --reference={UPLOADS} {UPLOADS}",
    )
    return int(out.splitlines()[0])


def parse_at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def level5_parts(record: dict[str, Any]) -> dict[str, float]:
    """Wall seconds of each part of a level 5 run, from its run record's tasks (a task's `at`
    is when it ended; the linear strategy runs the parts one after the other): preflight
    from Ansible's start to the preflight's end mark, provision (stop, replaced hosts' setup,
    keys) up to the first restore task, files (app hosts) and database (db host) restore
    tasks, code (release.yml) up to the application's start, then health and validation."""
    tasks = [t for t in record["tasks"] if t.get("duration") is not None and t.get("at")]

    def span(chosen: list[dict[str, Any]]) -> tuple[float, float]:
        ends = [parse_at(t["at"]) for t in chosen]
        return min(e - float(t["duration"]) for e, t in zip(ends, chosen, strict=True)), max(ends)

    def named(prefix: str) -> list[dict[str, Any]]:
        return [t for t in tasks if t["task"].split(" : ")[-1].startswith(prefix)]

    started, finished = parse_at(record["started"]), parse_at(record["finished"])
    preflight_end = span(named("Note when the preflight ended"))[1]
    files = span([t for t in tasks if t["phase"] == "restore" and t["host"] == APP])
    database = span([t for t in tasks if t["phase"] == "restore" and t["host"] == DB])
    restore_start, restore_end = min(files[0], database[0]), max(files[1], database[1])
    app_start = span(named("Start the application"))[0]
    return {
        "preflight": round(preflight_end - started, 1),
        "provision": round(restore_start - preflight_end, 1),
        "files": round(files[1] - files[0], 1),
        "database": round(database[1] - database[0], 1),
        "restore": round(restore_end - restore_start, 1),
        "code": round(app_start - restore_end, 1),
        "health_validate": round(finished - app_start, 1),
        "total": round(finished - started, 1),
    }


def level5(rig: TestHosts, disaster: float) -> dict[str, Any]:
    load_before = load()
    run = ok(
        playbook(
            rig.inventory,
            "rollback-l5.yml",
            "-e",
            "rollback_incident_started_at="
            + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(disaster)),
            timeout=3600,
        ),
        "level 5",
    )
    result = run.record["hosts"][DB]["result"]
    files = run.record["hosts"][APP]["result"].get("files", {})
    return {
        "seconds": round(run.seconds, 1),
        "parts": level5_parts(run.record),
        "rto": result.get("rto"),
        "rpo": result.get("rpo"),
        "files": files,
        "load_before": load_before,
        "load_after": load(),
        "run_id": run.record["run_id"],
    }


def the_set(rig: TestHosts) -> dict[str, Any]:
    names = sorted(on(rig, BACKUP, f"ls {BACKUP_ROOT}/sets").split())
    chosen: dict[str, Any] = json.loads(on(rig, BACKUP, f"cat {BACKUP_ROOT}/sets/{names[-1]}"))
    return chosen


def ssh_timed(rig: TestHosts, host: str, script: str, out: dict[str, Any]) -> None:
    started = time.monotonic()
    res = rig.ssh(host, "bash", "-ec", shlex.quote(script), timeout=3600)
    out[host] = {
        "seconds": round(time.monotonic() - started, 1),
        "rc": res.returncode,
        "err": res.stderr[-2000:],
    }


def raw_tools(rig: TestHosts, chosen: dict[str, Any]) -> dict[str, Any]:
    """What an expert does by hand once the hosts can reach the backup host: restic restore
    of the set's snapshots to where they came from, pgbackrest restore of the set's backup,
    start PostgreSQL, wait for the end of the recovery. Both hosts at once (two terminals)."""
    load_before = load()
    backup_addr = rig.addr(BACKUP)
    sftp = (
        f"sftp.command=ssh -F /dev/null -i /root/.ssh/sre_backup_ed25519 -o BatchMode=yes"
        f" -o UserKnownHostsFile={RESTIC_ENV}/known_hosts sre-backup@{backup_addr} -s sftp"
    )
    snapshots = [p["snapshot"] for p in chosen["hosts"][APP]["parts"].values() if p["snapshot"]]
    files = (
        f"export RESTIC_REPOSITORY=sftp:sre-backup@{backup_addr}:{BACKUP_ROOT}/restic"
        f" RESTIC_PASSWORD_FILE={RESTIC_ENV}/restic.pass\n"
        + "".join(f"restic -o {shlex.quote(sftp)} restore {s} --target /\n" for s in snapshots)
    )
    db = chosen["database"]
    database = (
        f"pg_ctlcluster {db['pg_version']} main stop || true\n"
        f"runuser -u postgres -- pgbackrest --stanza={db['stanza']} --delta --set={db['label']}"
        " --type=default restore\n"
        f"pg_ctlcluster {db['pg_version']} main start\n"
        "until [ \"$(runuser -u postgres -- psql -XAtq -c 'SELECT pg_is_in_recovery()')\" = f ];"
        " do sleep 0.2; done\n"
    )
    out: dict[str, Any] = {}
    started = time.monotonic()
    workers = [
        threading.Thread(target=ssh_timed, args=(rig, APP, files, out)),
        threading.Thread(target=ssh_timed, args=(rig, DB, database, out)),
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = round(time.monotonic() - started, 1)
    for host, what in out.items():
        if what["rc"]:
            raise SystemExit(f"raw restore on {host} failed: {what['err']}")
    return {
        "files": out[APP]["seconds"],
        "database": out[DB]["seconds"],
        "restore_wall": wall,
        "load_before": load_before,
        "load_after": load(),
    }


def versions(rig: TestHosts) -> dict[str, str]:
    def first_line(host: str, cmd: str) -> str:
        return on(rig, host, cmd, check=False).splitlines()[0] if cmd else ""

    ansible = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    return {
        "restic": first_line(APP, "restic version"),
        "pgbackrest": first_line(DB, "pgbackrest version"),
        "postgresql": first_line(DB, "runuser -u postgres -- psql -XAtq -c 'SHOW server_version'"),
        "ansible": ansible[0] if ansible else "",
        "cpus": str(os.cpu_count()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-gib", type=float, default=1.0, help="grow the database to this")
    parser.add_argument("--uploads", type=int, default=10_000, help="upload files on h2")
    parser.add_argument("--demo", action="store_true", help="the demo's own data, no bulk")
    parser.add_argument("--no-raw", action="store_true", help="level 5 only")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")
    rig = TestHosts(runtime="systemd", dir=Path(), hosts=[], env=rig_env())
    instance = rig.env.get("TESTHOSTS_INSTANCE", "0") or "0"
    rig.dir = Path(rig.env.get("TESTHOSTS_DIR") or REPO / f".testhosts-bench-l5-{instance}")
    rig.env["TESTHOSTS_DIR"] = str(rig.dir)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="bench-l5-") as tmp:
        password = Path(tmp) / "restic.pass"
        password.write_text(f"bench-{secrets.token_hex(12)}")
        password.chmod(0o600)
        os.environ["SRE_BACKUP_RESTIC_PASSWORD_FILE"] = str(password)
        rig.script("down", check=False)
        try:
            rig.up(2, backup=True)
            log("rig up")
            for name, *more in (("demo-app.yml",), ("deploy.yml", "-e", f"release_tag={STABLE}")):
                ok(playbook(rig.inventory, name, *more), name)
            report["versions"] = versions(rig)
            if args.demo:
                uploads, sizes = 60, add_uploads(rig, 60, 0)
                report["database_build"] = {
                    "database_bytes": int(sql(rig, "SELECT pg_database_size('demo_app')"))
                }
            else:
                report["database_build"] = grow_database(rig, args.db_gib)
                log(f"database {report['database_build']}")
                uploads, sizes = args.uploads, add_uploads(rig, args.uploads, 0)
            report["uploads"] = {"files": uploads, "bytes": sizes}
            log(f"uploads {report['uploads']}")
            load_before = load()
            backup = ok(playbook(rig.inventory, "backup-full.yml", timeout=3600), "backup-full")
            report["backup_full"] = {
                "seconds": round(backup.seconds, 1),
                "load_before": load_before,
                "load_after": load(),
            }
            log(f"backup-full {report['backup_full']}")
            chosen = the_set(rig)
            report["set"] = {
                "id": chosen["id"],
                "database": {
                    k: chosen["database"].get(k) for k in ("label", "size", "repo_size", "rows")
                },
            }
            digest = uploads_digest(rig)
            orders = sql(rig, "SELECT count(*) FROM orders")
            # more writes the set lacks: archived WAL (10 s on the rig), files not in the set
            sql(rig, ORDERS_SQL.format(rows=1000))
            add_uploads(rig, 50, 10**6)
            time.sleep(13)
            disaster = time.time()
            for host in (DB, APP):
                rig.wipe(host)
            log("level 5")
            report["level5"] = level5(rig, disaster)
            log(f"level 5 {report['level5']['parts']}")
            after_l5 = {
                "uploads": uploads_digest(rig),
                "orders": sql(rig, "SELECT count(*) FROM orders"),
            }
            if after_l5["uploads"] != digest:
                raise SystemExit("level 5 restored different uploads than the set's")
            if not args.no_raw:
                for host in (DB, APP):
                    rig.wipe(host)
                load_before = load()
                prepare = ok(
                    playbook(rig.inventory, "../tests/bench/l5_raw_prepare.yml", timeout=1800),
                    "raw prepare",
                )
                raw: dict[str, Any] = {
                    "prepare": round(prepare.seconds, 1),
                    "prepare_load_before": load_before,
                }
                log(f"raw prepare {raw}")
                raw.update(raw_tools(rig, chosen))
                log(f"raw {raw}")
                raw_result = {
                    "uploads": uploads_digest(rig),
                    "orders": sql(rig, "SELECT count(*) FROM orders"),
                }
                if raw_result != after_l5:
                    raise SystemExit(f"raw tools restored {raw_result}, level 5 {after_l5}")
                report["raw"] = raw
                p = report["level5"]["parts"]
                l5_restore = p["restore"]
                raw_restore = raw["restore_wall"]
                report["ratio"] = {
                    "restore": round(l5_restore / raw_restore, 2),
                    "files": round(p["files"] / raw["files"], 2),
                    "database": round(p["database"] / raw["database"], 2),
                    "same_work": round(
                        (p["preflight"] + p["provision"] + l5_restore)
                        / (raw["prepare"] + raw_restore),
                        2,
                    ),
                    "total_vs_raw": round(p["total"] / (raw["prepare"] + raw_restore), 2),
                }
            report["orders_set"] = int(orders)
            report["orders_restored"] = int(after_l5["orders"])
            report["machine_free_gib_end"] = free_gib()
        finally:
            rig.script("down", check=False, timeout=300)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
