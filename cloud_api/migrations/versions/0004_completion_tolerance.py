"""tenant completion tolerance

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:07:04.636500
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cloud_api.db.types import ScaledDecimal

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("completion_tolerance", ScaledDecimal(6), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("completion_tolerance")
