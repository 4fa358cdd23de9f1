"""tenancy: subscriptions, usage counters, devices and their keys, enrollment codes,
audit log, tenant directory

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 02:26:13.188328
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("actor_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("object", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("source_ip", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["tenant_id", "at"], unique=False)

    op.create_table(
        "device",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scopes", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_device_name"),
    )
    op.create_table(
        "enrollment_code",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("site", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "code_hash"),
    )
    with op.batch_alter_table("enrollment_code", schema=None) as batch_op:
        batch_op.create_index("uq_enrollment_code_hash", ["code_hash"], unique=True)

    op.create_table(
        "subscription",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("plan_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("state_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("has_payment_method", sa.Boolean(), nullable=False),
        sa.Column("trial_ends_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("current_period_start", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("current_period_end", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("past_due_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("canceled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("suspended_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("suspended_from", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("purge_due", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "tenant_directory",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("cell", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_table(
        "usage_counter",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("month", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "month"),
    )
    op.create_table(
        "device_key",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("keyid", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rotated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "device_id"],
            ["device.tenant_id", "device.id"],
            name="fk_device_key_device",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
        ),
        sa.PrimaryKeyConstraint("tenant_id", "keyid"),
    )
    with op.batch_alter_table("device_key", schema=None) as batch_op:
        batch_op.create_index("uq_device_key_keyid", ["keyid"], unique=True)

    _backfill()


def _backfill() -> None:
    """Tenants made before subscriptions existed: active on the pro plan (they were
    set up by an operator, not through the trial sign-up), in the default cell."""
    from datetime import UTC, datetime, timedelta

    conn = op.get_bind()
    tenant = sa.table("tenant", sa.column("id", sa.Uuid()))
    now = datetime.now(UTC)
    subscription = sa.table(
        "subscription",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("state", sa.String()),
        sa.column("plan_code", sa.String()),
        sa.column("state_since", sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column("has_payment_method", sa.Boolean()),
        sa.column("current_period_start", sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column("current_period_end", sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column("locked", sa.Boolean()),
        sa.column("purge_due", sa.Boolean()),
    )
    directory = sa.table(
        "tenant_directory", sa.column("tenant_id", sa.Uuid()), sa.column("cell", sa.String())
    )
    ids = list(conn.scalars(sa.select(tenant.c.id)))
    if not ids:
        return
    conn.execute(
        subscription.insert(),
        [
            {
                "tenant_id": tid,
                "state": "active",
                "plan_code": "pro",
                "state_since": now,
                "has_payment_method": True,
                "current_period_start": now,
                "current_period_end": now + timedelta(days=30),
                "locked": False,
                "purge_due": False,
            }
            for tid in ids
        ],
    )
    conn.execute(directory.insert(), [{"tenant_id": tid, "cell": "default"} for tid in ids])


def downgrade() -> None:
    with op.batch_alter_table("device_key", schema=None) as batch_op:
        batch_op.drop_index("uq_device_key_keyid")

    op.drop_table("device_key")
    op.drop_table("usage_counter")
    op.drop_table("tenant_directory")
    op.drop_table("subscription")
    with op.batch_alter_table("enrollment_code", schema=None) as batch_op:
        batch_op.drop_index("uq_enrollment_code_hash")

    op.drop_table("enrollment_code")
    op.drop_table("device")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")

    op.drop_table("audit_log")
