"""variance policy per tenant, and good units completed per work order's WIP

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import cloud_api.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "variance_policy",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                server_default="cost_of_sales",
                nullable=False,
            )
        )
    with op.batch_alter_table("wip_balance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "good_quantity",
                cloud_api.db.types.ScaledDecimal(6),
                server_default="0",
                nullable=False,
            )
        )
    # Existing orders: the good units their completions (less reversed ones) made.
    op.execute(
        """
        UPDATE wip_balance SET good_quantity = COALESCE((
            SELECT SUM(CASE WHEN src.kind = 'production' THEN m.quantity ELSE -m.quantity END)
            FROM stock_move m
            JOIN location src ON src.tenant_id = m.tenant_id AND src.id = m.from_location_id
            WHERE m.tenant_id = wip_balance.tenant_id
              AND m.work_order_id = wip_balance.work_order_id
              AND m.kind = 'completion'
        ), 0)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("wip_balance", schema=None) as batch_op:
        batch_op.drop_column("good_quantity")
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("variance_policy")
