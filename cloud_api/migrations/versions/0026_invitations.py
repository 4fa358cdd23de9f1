"""invitations: a new member gets a one-time link by mail and chooses their own
password with it (no first password handed over); an account stays unclaimed until then

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db import rls
from cloud_api.db.migrate import drop_columns

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invitation",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "token_hash"),
    )
    op.create_index("uq_invitation_token_hash", "invitation", ["token_hash"], unique=True)
    rls.protect_new_table(op, "invitation", lookup=True)
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(
            sa.Column("unclaimed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    drop_columns(op, "app_user", "unclaimed")
    op.drop_index("uq_invitation_token_hash", table_name="invitation")
    op.drop_table("invitation")
