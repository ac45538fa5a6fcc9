"""orders get an optional note

Revision ID: 20240115090000
Revises: 20240101120100
"""

import sqlalchemy as sa
from alembic import op

revision = "20240115090000"
down_revision = "20240101120100"


def upgrade() -> None:
    op.add_column("orders", sa.Column("note", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "note")  # native DROP COLUMN: SQLite >= 3.35, PostgreSQL
