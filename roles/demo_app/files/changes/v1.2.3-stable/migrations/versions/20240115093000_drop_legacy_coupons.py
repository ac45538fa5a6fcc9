# irreversible
"""drop the legacy coupons table

Revision ID: 20240115093000
Revises: 20240115090000

The coupon codes are deleted with the table; no downgrade can bring them back. To go
below this revision, restore a database backup taken before it.
"""

from alembic import op

revision = "20240115093000"
down_revision = "20240115090000"
irreversible = True  # read by `bin/demo-app migrate` and the database rollback


def upgrade() -> None:
    op.drop_table("coupons_legacy")


def downgrade() -> None:
    raise RuntimeError(
        "20240115093000 is irreversible: the legacy coupons were deleted. "
        "Restore a database backup taken before it."
    )
