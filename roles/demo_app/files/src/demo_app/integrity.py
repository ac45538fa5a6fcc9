"""`bin/demo-app db validate`: is the data consistent, and is the schema one this release knows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from demo_app import migrate
from demo_app.config import Settings
from demo_app.db import create_db_engine

CHECKS: dict[str, tuple[str, str]] = {
    "orders_reference_items": (
        "SELECT count(*) FROM orders o LEFT JOIN items i ON i.id = o.item_id WHERE i.id IS NULL",
        "orders whose item does not exist",
    ),
    "order_totals_match_prices": (
        "SELECT count(*) FROM orders o JOIN items i ON i.id = o.item_id "
        "WHERE o.total_cents <> o.quantity * i.price_cents",
        "orders whose total is not quantity x the item's price (prices were changed)",
    ),
    "prices_positive": (
        "SELECT count(*) FROM items WHERE price_cents <= 0",
        "items without a positive price",
    ),
}


def _scalar(connection: Connection, sql: str) -> Any:
    return connection.execute(text(sql)).scalar()


def _metadata(connection: Connection) -> dict[str, str]:
    rows = connection.execute(text("SELECT key, value FROM app_meta"))
    return {str(key): str(value) for key, value in rows}


def info(settings: Settings) -> dict[str, Any]:
    """Schema revision, recorded environment and row counts."""
    state = migrate.status(settings)
    result: dict[str, Any] = {"backend": settings.database_backend, **state}
    if state["current"] == migrate.BASE:
        return result
    engine = create_db_engine(settings, pooled=False)
    try:
        with engine.connect() as connection:
            result["meta"] = _metadata(connection)
            result["counts"] = {
                table: int(_scalar(connection, f"SELECT count(*) FROM {table}"))  # noqa: S608
                for table in ("items", "orders")
            }
    finally:
        engine.dispose()
    return result


def validate(settings: Settings) -> dict[str, Any]:
    """Every integrity check with its result; `ok` is true only when all of them pass."""
    state = migrate.status(settings)
    checks = [
        {
            "name": "schema_known",
            "ok": bool(state["known"]) and state["current"] != migrate.BASE,
            "detail": f"revision {state['current']} (head of this release: {state['head']})",
        }
    ]
    if checks[0]["ok"]:
        engine = create_db_engine(settings, pooled=False)
        try:
            with engine.connect() as connection:
                for name, (sql, meaning) in CHECKS.items():
                    bad = int(_scalar(connection, sql))
                    checks.append({"name": name, "ok": bad == 0, "detail": f"{bad} {meaning}"})
        finally:
            engine.dispose()
    return {
        "ok": all(check["ok"] for check in checks),
        "revision": state["current"],
        "checks": checks,
    }
