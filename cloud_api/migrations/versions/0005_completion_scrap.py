"""completion scrap quantity on stock moves

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 00:18:56.557595
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cloud_api.db.types import ScaledDecimal

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock_move", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scrap_quantity", ScaledDecimal(6), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("stock_move", schema=None) as batch_op:
        batch_op.drop_column("scrap_quantity")
