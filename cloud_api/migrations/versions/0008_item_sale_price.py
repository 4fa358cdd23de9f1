"""item sale price (shipments scanned on the floor are invoiced at it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloud_api.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sale_price", cloud_api.db.types.ScaledDecimal(6), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("sale_price")
