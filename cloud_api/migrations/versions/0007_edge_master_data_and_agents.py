"""edge master data (operators, item GTIN and purchase price, changed_at for the
incremental pull) and the edge agents' heartbeat status

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 01:22:32.839934
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import cloud_api.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANGED_TABLES = ("item", "location", "work_center", "work_order")


def _changed_at() -> sa.Column:
    # SQLite cannot add a column whose default is CURRENT_TIMESTAMP; existing rows are
    # dated at the epoch instead, which an edge's first (full) pull takes anyway. New
    # rows get the time from the model's column default.
    return sa.Column(
        "changed_at",
        sqlmodel.sql.sqltypes.UTCDateTime(),
        server_default=sa.text("'1970-01-01 00:00:00'"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "edge_agent",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("edge_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("agent_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("backlog", sa.Integer(), nullable=False),
        sa.Column("oldest_pending_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("parked", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("clock_offset_s", sa.Float(), nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=True),
        sa.Column("devices", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "edge_id"),
    )
    op.create_table(
        "operator",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_operator_code"),
    )
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gtin", sqlmodel.sql.sqltypes.AutoString(length=14), nullable=True)
        )
        batch_op.add_column(
            sa.Column("purchase_price", cloud_api.db.types.ScaledDecimal(6), nullable=True)
        )
    op.create_index("uq_item_gtin", "item", ["tenant_id", "gtin"], unique=True)
    for table in CHANGED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_changed_at())


def downgrade() -> None:
    for table in CHANGED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("changed_at")
    op.drop_index("uq_item_gtin", table_name="item")
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("purchase_price")
        batch_op.drop_column("gtin")
    op.drop_table("operator")
    op.drop_table("edge_agent")
