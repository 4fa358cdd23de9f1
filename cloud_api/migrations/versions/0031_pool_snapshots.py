"""pool snapshots: a cost pool's state every N records and at a period's close, so a
late event replays from the newest snapshot before it rather than from the pool's
first move (issue 16). The caches count the records applied since the last one; an
index finds the reversals of a move (a replay revalues them with it).
Existing pools get their first snapshot when they next reach N records.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import cloud_api.db.types
from cloud_api.db import rls
from cloud_api.db.migrate import drop_columns

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTER = "records_since_snapshot"


def upgrade() -> None:
    op.create_table(
        "pool_snapshot",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("location_id", sa.Uuid(), nullable=True),
        sa.Column("work_order_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("quantity", cloud_api.db.types.ScaledDecimal(6), nullable=False),
        sa.Column("value", cloud_api.db.types.ScaledDecimal(2), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("taken_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    for name, columns, pool in (
        ("uq_snapshot_stock_pool", ["item_id", "location_id"], "item_id"),
        ("uq_snapshot_wip_pool", ["work_order_id"], "work_order_id"),
    ):
        op.create_index(
            name,
            "pool_snapshot",
            ["tenant_id", *columns, "occurred_at", "event_id", "line_no"],
            unique=True,
            sqlite_where=sa.text(f"{pool} IS NOT NULL"),
            postgresql_where=sa.text(f"{pool} IS NOT NULL"),
        )
    rls.protect_new_table(op, "pool_snapshot")
    op.create_index(
        "ix_move_mirrors",
        "stock_move",
        ["tenant_id", "mirrors_move_id"],
        sqlite_where=sa.text("mirrors_move_id IS NOT NULL"),
        postgresql_where=sa.text("mirrors_move_id IS NOT NULL"),
    )
    for table in ("valuation_pool", "wip_balance"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(COUNTER, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_index("ix_move_mirrors", table_name="stock_move")
    for table in ("wip_balance", "valuation_pool"):
        drop_columns(op, table, COUNTER)
    op.drop_index("uq_snapshot_wip_pool", table_name="pool_snapshot")
    op.drop_index("uq_snapshot_stock_pool", table_name="pool_snapshot")
    op.drop_table("pool_snapshot")
