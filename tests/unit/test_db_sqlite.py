"""db_backup, db_restore and db_inspect on SQLite files (the embedded default)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import db_backups as bk
from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    EngineError,
    Sqlite,
)
from ansible_collections.sre.rollback.plugins.modules import db_backup, db_inspect, db_restore
from tests.support.databases import db_params

SCHEMA = """
CREATE TABLE app_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, sku TEXT, price_cents INT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INT, quantity INT, total_cents INT);
INSERT INTO app_meta VALUES ('environment', 'unit');
INSERT INTO alembic_version VALUES ('20240115093000');
"""


def execute(path: Path | str, script: str) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript(script)
        con.commit()
    finally:
        con.close()


def scalar(path: Path | str, query: str) -> Any:
    con = sqlite3.connect(path)
    try:
        return con.execute(query).fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def live(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "app.db"
    path.parent.mkdir()
    execute(path, SCHEMA)
    rows = ",".join(f"('SKU-{i}', {100 * i + 99})" for i in range(1, 21))
    execute(path, f"INSERT INTO items (sku, price_cents) VALUES {rows};")  # noqa: S608
    orders = ",".join(f"({1 + i % 20}, 1, {100 * (1 + i % 20) + 99})" for i in range(1, 101))
    execute(path, f"INSERT INTO orders (item_id, quantity, total_cents) VALUES {orders};")  # noqa: S608
    path.chmod(0o640)
    return path


def params(live: Path, tmp_path: Path, **over: Any) -> dict[str, Any]:
    given: dict[str, Any] = dict(
        engine="sqlite",
        database=str(live),
        os_user="",
        backup_dir=str(tmp_path / "backups"),
        name="",
        environment="unit",
        release="v1.3.0-g6b95fa0f02",
        expected_environment="",
        jobs=1,
        compare_to="",
        exact=False,
    )
    return db_params(**{**given, **over})


def take(live: Path, tmp_path: Path, **over: Any) -> dict[str, Any]:
    return db_backup.take(params(live, tmp_path, **over), check_mode=False)


def restore(live: Path, tmp_path: Path, name: str, **over: Any) -> dict[str, Any]:
    p = params(live, tmp_path, name=name, state="restored", **over)
    return db_restore.restore(p, Sqlite(str(live), p["timeout"]), check_mode=False)


def test_online_backup_with_manifest(live: Path, tmp_path: Path) -> None:
    result = take(live, tmp_path, name="unit-2024-01-15")
    copy = Path(result["path"])
    manifest = result["manifest"]
    assert copy.name == "unit-2024-01-15.sqlite3"
    assert manifest["tables"] == {"alembic_version": 1, "app_meta": 1, "items": 20, "orders": 100}
    assert manifest["revision"] == "20240115093000" and manifest["environment"] == "unit"
    assert manifest["sha256"] == bk.sha256_file(str(copy))
    assert manifest["sequences"]["items"] == {
        "table": "items",
        "column": "rowid",
        "last_value": 20,
        "max": 20,
    }
    assert "online backup API" in manifest["tool"]
    for path in (copy, Path(bk.manifest_path(str(tmp_path / "backups"), "unit-2024-01-15"))):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert scalar(copy, "SELECT count(*) FROM orders") == 100


def test_default_name_is_environment_and_date(live: Path, tmp_path: Path) -> None:
    name = take(live, tmp_path)["name"]
    assert name.startswith("unit-20") and len(name) == len("unit-2024-01-15")


def test_missing_database_fails_and_records_nothing(live: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no database"):
        take(tmp_path / "nope.db", tmp_path)
    assert bk.list_backups(str(tmp_path / "backups")) == []


def test_restore_swaps_files_atomically_and_keeps_the_newer_one(live: Path, tmp_path: Path) -> None:
    name = take(live, tmp_path, name="before-v1.3.0")["name"]
    execute(live, "UPDATE items SET price_cents = (price_cents + 50) / 100 * 100;")
    execute(live, "INSERT INTO orders (item_id, quantity, total_cents) VALUES (1, 1, 200);")
    mode, owner = stat.S_IMODE(live.stat().st_mode), live.stat().st_uid

    result = restore(live, tmp_path, name, stamp="20240115120000")

    assert result["verification"]["ok"]
    assert scalar(live, "SELECT count(*) FROM orders") == 100
    assert scalar(live, "SELECT price_cents FROM items WHERE id = 1") == 199
    assert stat.S_IMODE(live.stat().st_mode) == mode and live.stat().st_uid == owner
    aside = live.parent / "app_pre_rollback_20240115120000.db"
    assert result["aside"] == str(aside)
    assert scalar(aside, "SELECT count(*) FROM orders") == 101, "nothing lost"
    assert not list(live.parent.glob(".app.db.restore-*"))


def test_corrupted_and_missing_backups_are_refused(live: Path, tmp_path: Path) -> None:
    name = take(live, tmp_path, name="good")["name"]
    copy = tmp_path / "backups" / "good.sqlite3"
    data = bytearray(copy.read_bytes())
    data[100] ^= 0x01
    copy.write_bytes(bytes(data))
    before = live.read_bytes()
    with pytest.raises(bk.BackupError, match="damaged"):
        restore(live, tmp_path, name)
    with pytest.raises(bk.BackupError, match="does not exist"):
        restore(live, tmp_path, "other")
    assert live.read_bytes() == before
    assert sorted(p.name for p in live.parent.iterdir()) == ["app.db"]


def test_restore_refuses_while_another_process_holds_the_database(
    live: Path, tmp_path: Path
) -> None:
    name = take(live, tmp_path, name="busy")["name"]
    execute(live, "PRAGMA journal_mode=WAL;")
    holder = sqlite3.connect(live)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO orders (item_id, quantity, total_cents) VALUES (1, 1, 1)")
    try:
        with pytest.raises((EngineError, sqlite3.OperationalError)):
            restore(live, tmp_path, name, timeout=1)
    finally:
        holder.rollback()
        holder.close()
    assert not list(live.parent.glob(".app.db.restore-*")), "the restored copy was dropped"


def test_revert_and_drop(live: Path, tmp_path: Path) -> None:
    name = take(live, tmp_path, name="x")["name"]
    execute(live, "DELETE FROM orders WHERE id > 50;")
    first = restore(live, tmp_path, name, stamp="20240101000001")
    engine = Sqlite(str(live))
    assert engine.set_aside() == [first["aside"]]
    p = params(live, tmp_path, set_aside=first["aside"], stamp="20240101000002")
    db_restore.revert(p, engine, check_mode=False)
    assert scalar(live, "SELECT count(*) FROM orders") == 50
    (second,) = engine.set_aside()
    assert db_restore.drop(params(live, tmp_path, set_aside=second), engine, False)["changed"]
    assert engine.set_aside() == []
    with pytest.raises(bk.BackupError):
        db_restore.drop(params(live, tmp_path, set_aside=str(live)), engine, False)


def test_inspect_reports_deltas_against_the_latest_backup(live: Path, tmp_path: Path) -> None:
    take(live, tmp_path, name="latest")
    execute(live, "DELETE FROM orders WHERE id <= 10;")
    found = db_inspect.inspect(params(live, tmp_path, compare_to="latest"))
    assert found["comparison"]["deltas"] == {"orders": -10}
    assert found["comparison"]["ok"]
    assert found["latest_backup"]["name"] == "latest"
    manifest = json.loads((tmp_path / "backups" / "latest.manifest.json").read_text())
    assert manifest["rows"] == 122


def test_retention_and_listing(live: Path, tmp_path: Path) -> None:
    for name in ("s1", "s2", "s3"):
        take(live, tmp_path, name=name, keep=2)
    assert [b["name"] for b in bk.list_backups(str(tmp_path / "backups"))] == ["s2", "s3"]
    os.unlink(tmp_path / "backups" / "s3.sqlite3")
    listed = {b["name"]: b["present"] for b in bk.list_backups(str(tmp_path / "backups"))}
    assert listed == {"s2": True, "s3": False}
