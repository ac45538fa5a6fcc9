"""create the shop: items, orders, app_meta, legacy coupons

Revision ID: 20240101120000
Revises:
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "20240101120000"
down_revision = None

ITEMS: list[dict[str, Any]] = [
    {"id": 1, "sku": "SKU-1001", "name": "Espresso beans 1 kg", "price_cents": 1999},
    {"id": 2, "sku": "SKU-1002", "name": "Ceramic pour-over dripper", "price_cents": 2450},
    {"id": 3, "sku": "SKU-1003", "name": "Paper filters, pack of 100", "price_cents": 495},
    {"id": 4, "sku": "SKU-1004", "name": "Conical burr grinder", "price_cents": 8999},
    {"id": 5, "sku": "SKU-1005", "name": "Gooseneck kettle", "price_cents": 4275},
]
ORDERS = [  # (item id, quantity): totals are quantity x price, as the integrity check expects
    (1, 2), (3, 1), (2, 1), (5, 1), (1, 1), (4, 1), (3, 3), (1, 4),
]  # fmt: skip
COUPONS = [
    {"code": "WELCOME10", "percent_off": 10},
    {"code": "SPRING15", "percent_off": 15},
    {"code": "LOYAL20", "percent_off": 20},
]


def upgrade() -> None:
    op.create_table(
        "app_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    items = op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sku", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_cents", sa.Integer, nullable=False),
    )
    orders = op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("total_cents", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    coupons = op.create_table(
        "coupons_legacy",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("percent_off", sa.Integer, nullable=False),
    )
    op.bulk_insert(items, ITEMS)
    prices = {item["id"]: item["price_cents"] for item in ITEMS}
    op.bulk_insert(
        orders,
        [
            {
                "item_id": item_id,
                "quantity": quantity,
                "total_cents": quantity * prices[item_id],
                "created_at": datetime(2024, 1, 2 + number, 10, 30),
            }
            for number, (item_id, quantity) in enumerate(ORDERS)
        ],
    )
    op.bulk_insert(coupons, COUPONS)
    if op.get_bind().dialect.name == "postgresql":
        # The seed rows set ids explicitly: move the sequences past them.
        op.execute("SELECT setval('items_id_seq', (SELECT max(id) FROM items))")


def downgrade() -> None:
    op.drop_table("coupons_legacy")
    op.drop_table("orders")
    op.drop_table("items")
    op.drop_table("app_meta")
