"""the heartbeat: a row a second from every app host (the data a restore kept)

Revision ID: 20240101120100
Revises: 20240101120000
"""

import sqlalchemy as sa
from alembic import op

revision = "20240101120100"
down_revision = "20240101120000"


def upgrade() -> None:
    op.create_table(
        "heartbeat",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("heartbeat_at", "heartbeat", ["at"])


def downgrade() -> None:
    op.drop_table("heartbeat")
