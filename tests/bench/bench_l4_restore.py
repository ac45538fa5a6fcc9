#!/usr/bin/env python3
"""Time level 4's restore of a database of at least 1 GB against a bare `pg_restore -j` of
the same dump. Prints JSON.

    sudo .venv/bin/python tests/bench/bench_l4_restore.py [--orders 6500000] [--rounds 3]

Not part of the test run (it takes minutes). On a throw-away PostgreSQL cluster in a
temporary folder (unix socket only; stopped and removed at the end): builds a shop database
(items, orders with indexes and a foreign key, audit events) of at least 1 GB, backs it up
with sre.rollback.db_backup (pg_dump -Fc and the manifest), then alternates, `--rounds`
times:

  bare     createdb + pg_restore --exit-on-error -j JOBS into a new database
  level 4  sre.rollback.db_restore state=restored: sha256 of the dump checked against the
           manifest, new database + pg_restore --exit-on-error -j JOBS, every table's row
           count, the revision and every sequence verified against the manifest, then the
           two renames that swap it in (the old database set aside)

The ratio is level 4 / bare (goal: <= 1.2, verification included); the two alternate in
who goes first. The page cache is warm for both (the dump was just written); each database
is dropped after its round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    PgConn,
    Postgres,
)
from ansible_collections.sre.rollback.plugins.modules import db_backup, db_restore
from tests.support.databases import BINDIR, pg_params
from tests.support.databases import cluster as pg_cluster

SCHEMA = """
CREATE TABLE app_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
CREATE TABLE items (id serial PRIMARY KEY, sku text UNIQUE NOT NULL, name text NOT NULL,
                    price_cents int NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, item_id int NOT NULL REFERENCES items(id),
                     quantity int NOT NULL, total_cents bigint NOT NULL,
                     created_at timestamptz NOT NULL, note text);
CREATE TABLE audit_events (id bigserial PRIMARY KEY, happened_at timestamptz NOT NULL,
                           what text NOT NULL);
INSERT INTO app_meta VALUES ('environment', 'bench');
INSERT INTO alembic_version VALUES ('20240115093000');
INSERT INTO items (sku, name, price_cents)
  SELECT 'SKU-' || i, 'item number ' || i || ' ' || md5(i::text), 100 + i % 9000
  FROM generate_series(1, 200000) i;
INSERT INTO orders (item_id, quantity, total_cents, created_at, note)
  SELECT 1 + i % 200000, 1 + i % 5, (1 + i % 5) * (100 + (1 + i % 200000) % 9000),
         timestamptz '2024-01-01' + i * interval '1 second', 'order note ' || md5(i::text)
  FROM generate_series(1, :orders) i;
CREATE INDEX orders_item_id ON orders (item_id);
CREATE INDEX orders_created_at ON orders (created_at);
INSERT INTO audit_events (happened_at, what)
  SELECT timestamptz '2024-01-01' + i * interval '1 minute', 'event ' || md5(i::text)
  FROM generate_series(1, :orders / 10) i;
ANALYZE;
"""


@contextmanager
def cluster() -> Iterator[tuple[PgConn, Path]]:
    with pg_cluster(
        "/var/tmp", "sre-rollback-bench-", "-c max_wal_size=8GB", "fast", "backups"
    ) as made:
        yield made


def params(conn: PgConn, backup_dir: str, **over: Any) -> dict[str, Any]:
    given: dict[str, Any] = dict(
        name="bench",
        environment="bench",
        release="bench",
        expected_environment="bench",
    )
    return pg_params(conn, backup_dir, **{**given, **over})


def bare_restore(conn: PgConn, dump: str, jobs: int) -> float:
    started = time.monotonic()
    conn.psql("postgres", "CREATE DATABASE shop_bare TEMPLATE template0")
    conn.run(
        "pg_restore",
        "--exit-on-error",
        f"--jobs={jobs}",
        *conn.conn_args(),
        "-d",
        "shop_bare",
        dump,
    )
    seconds = time.monotonic() - started
    conn.psql("postgres", "DROP DATABASE shop_bare")
    return seconds


def level4_restore(conn: PgConn, backup_dir: str, jobs: int, stamp: str) -> tuple[float, dict]:
    p = params(conn, backup_dir, state="restored", jobs=jobs, stamp=stamp)
    started = time.monotonic()
    result = db_restore.restore(p, Postgres(conn, "shop"), check_mode=False)
    seconds = time.monotonic() - started
    assert result["verification"]["ok"], result["verification"]
    conn.psql("postgres", 'DROP DATABASE :"aside"', aside=result["aside"])
    return seconds, result["timings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=6_500_000, help="rows of the orders table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    if not BINDIR:
        raise SystemExit("needs PostgreSQL server binaries (/usr/lib/postgresql/<v>/bin)")
    with cluster() as (conn, base):
        backup_dir = str(base / "backups")
        conn.psql("postgres", "CREATE DATABASE shop")
        started = time.monotonic()
        conn.psql("shop", SCHEMA, orders=str(args.orders))
        build = time.monotonic() - started
        size = int(conn.psql("shop", "SELECT pg_database_size('shop')").strip())
        started = time.monotonic()
        backup = db_backup.take(params(conn, backup_dir), check_mode=False)
        backup_seconds = time.monotonic() - started
        dump = backup["path"]
        bare, ours, phases = [], [], []
        for round_no in range(args.rounds):
            bare.append(bare_restore(conn, dump, args.jobs))
            seconds, timings = level4_restore(
                conn, backup_dir, args.jobs, f"2024010100000{round_no}"
            )
            ours.append(seconds)
            phases.append(timings)
        report = {
            "database_bytes": size,
            "database_gib": round(size / 2**30, 2),
            "rows": backup["manifest"]["rows"],
            "dump_bytes": os.path.getsize(dump),
            "jobs": args.jobs,
            "cpus": os.cpu_count(),
            "postgresql": backup["manifest"]["server_version"],
            "build_seconds": round(build, 1),
            "backup_seconds": round(backup_seconds, 1),
            "bare_pg_restore_seconds": [round(s, 2) for s in bare],
            "level4_restore_seconds": [round(s, 2) for s in ours],
            "level4_phases": phases,
            "ratio_median": round(statistics.median(ours) / statistics.median(bare), 3),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
