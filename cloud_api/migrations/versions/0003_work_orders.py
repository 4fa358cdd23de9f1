"""work orders: lifecycle, warehouse, BOM snapshot, reservations; tenant production settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:56:07.904105
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.types import ScaledDecimal

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reservation",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("work_order_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", ScaledDecimal(6), nullable=False),
        sa.Column("consumed", ScaledDecimal(6), nullable=False),
        sa.Column("released", ScaledDecimal(6), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_id"], ["item.tenant_id", "item.id"], name="fk_reservation_item"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "location_id"],
            ["location.tenant_id", "location.id"],
            name="fk_reservation_location",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "work_order_id"],
            ["work_order.tenant_id", "work_order.id"],
            name="fk_reservation_work_order",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    with op.batch_alter_table("reservation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reservation_pool", ["tenant_id", "item_id", "location_id", "status"], unique=False
        )

    op.create_table(
        "work_order_component",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("work_order_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("location_id", sa.Uuid(), nullable=False),
        sa.Column("planned_quantity", ScaledDecimal(6), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_id"], ["item.tenant_id", "item.id"], name="fk_component_item"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "location_id"],
            ["location.tenant_id", "location.id"],
            name="fk_component_location",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "work_order_id"],
            ["work_order.tenant_id", "work_order.id"],
            name="fk_component_work_order",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "work_order_id", "line_no"),
    )
    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "allow_issue_from_reserved", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )

    with op.batch_alter_table("work_order", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warehouse_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("bom_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("released_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )

    # Orders made before the lifecycle were open cost collectors: released now.
    op.execute("UPDATE work_order SET status = 'released' WHERE status = 'open'")
    # Every tenant gets the virtual location a closed order's residual WIP goes to.
    location = sa.table(
        "location",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("id", sa.Uuid()),
        sa.column("code", sa.String()),
        sa.column("name", sa.String()),
        sa.column("kind", sa.String()),
    )
    tenants = (
        op.get_bind()
        .execute(sa.select(sa.column("id", sa.Uuid())).select_from(sa.table("tenant")))
        .scalars()
        .all()
    )
    if tenants:
        op.bulk_insert(
            location,
            [
                {
                    "tenant_id": tenant_id,
                    "id": uuid.uuid4(),
                    "code": "VARIANCE",
                    "name": "生产差异 Production variances (virtual)",
                    "kind": "variance",
                }
                for tenant_id in tenants
            ],
        )


def downgrade() -> None:
    op.execute("DELETE FROM location WHERE kind = 'variance'")
    op.execute(
        "UPDATE work_order SET status = 'open' "
        "WHERE status IN ('draft', 'released', 'in_progress', 'completed')"
    )
    with op.batch_alter_table("work_order", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
        batch_op.drop_column("released_at")
        batch_op.drop_column("bom_id")
        batch_op.drop_column("warehouse_id")

    with op.batch_alter_table("tenant", schema=None) as batch_op:
        batch_op.drop_column("allow_issue_from_reserved")

    op.drop_table("work_order_component")
    with op.batch_alter_table("reservation", schema=None) as batch_op:
        batch_op.drop_index("ix_reservation_pool")

    op.drop_table("reservation")
