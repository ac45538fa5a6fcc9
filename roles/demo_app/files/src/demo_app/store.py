"""Reading and writing the shop's rows (the schema itself belongs to the migrations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, select
from sqlalchemy.engine import Connection

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String(32)),
    Column("name", String(200)),
    Column("price_cents", Integer),
)
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer),
    Column("quantity", Integer),
    Column("total_cents", Integer),
    Column("created_at", DateTime, server_default=func.now()),
)


class NotFound(Exception):
    """The row asked for does not exist."""


@dataclass(frozen=True)
class Item:
    id: int
    sku: str
    name: str
    price_cents: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sku": self.sku, "name": self.name, "price_cents": self.price_cents}


def _columns() -> tuple[Any, ...]:
    return (items.c.id, items.c.sku, items.c.name, items.c.price_cents)


def list_items(connection: Connection) -> list[Item]:
    rows = connection.execute(select(*_columns()).order_by(items.c.id))
    return [Item(*row) for row in rows]


def get_item(connection: Connection, reference: str) -> Item:
    """An item by id ("3") or by SKU ("SKU-1003")."""
    condition = items.c.id == int(reference) if reference.isdigit() else items.c.sku == reference
    row = connection.execute(select(*_columns()).where(condition)).first()
    if row is None:
        raise NotFound(f"no item {reference!r}")
    return Item(*row)


def create_order(connection: Connection, item: Item, quantity: int, total_cents: int) -> int:
    result = connection.execute(
        orders.insert().values(item_id=item.id, quantity=quantity, total_cents=total_cents)
    )
    connection.commit()
    return int(result.inserted_primary_key[0])


def list_orders(connection: Connection, limit: int) -> list[dict[str, Any]]:
    query = (
        select(orders.c.id, orders.c.item_id, orders.c.quantity, orders.c.total_cents)
        .order_by(orders.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


def count_rows(connection: Connection, table: Table) -> int:
    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
