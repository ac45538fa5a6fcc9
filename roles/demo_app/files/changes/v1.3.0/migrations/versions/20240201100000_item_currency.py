"""items get a currency; prices are normalised to whole units

Revision ID: 20240201100000
Revises: 20240115093000

Rounding the prices loses the cents: the downgrade restores the schema (drops the
currency column) but not the old prices. Only a database backup brings those back;
`bin/demo-app db validate` reports the orders whose totals no longer match.
"""

import sqlalchemy as sa
from alembic import op

revision = "20240201100000"
down_revision = "20240115093000"


def upgrade() -> None:
    op.add_column(
        "items", sa.Column("currency", sa.String(3), nullable=False, server_default="EUR")
    )
    op.execute("UPDATE items SET price_cents = ((price_cents + 50) / 100) * 100")


def downgrade() -> None:
    op.drop_column("items", "currency")  # native DROP COLUMN: SQLite >= 3.35, PostgreSQL
