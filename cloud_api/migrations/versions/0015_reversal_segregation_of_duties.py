"""reversal segregation of duties

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-22 04:14:23.530343
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("edge_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("posted_by", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )

    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reversal_sod_waived", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("reversal_sod_waived")

    with op.batch_alter_table("edge_event", schema=None) as batch_op:
        batch_op.drop_column("posted_by")
