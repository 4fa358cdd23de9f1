"""item issue method (manual or backflush) and lots with their expiry

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 00:31:48.448807
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lot",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("lot", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("first_received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_id"], ["item.tenant_id", "item.id"], name="fk_lot_item"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "item_id", "lot"),
    )
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "issue_method",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                server_default="manual",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("issue_method")
    op.drop_table("lot")
