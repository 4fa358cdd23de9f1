"""tenant purge

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-22 04:37:42.521130
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db import rls

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_deletion",
        sa.Column("tenant", sa.Uuid(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purged_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("rows_deleted", sa.Integer(), nullable=False),
        sa.Column("users_deleted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(rls.REFUSE_CHANGE_UNLESS_PURGING)
        # the deletion record is the owner's: the app's roles neither read nor write it
        op.execute(f"REVOKE ALL ON tenant_deletion FROM {rls.APP}, {rls.PLATFORM}")
        if op.get_bind().scalar(
            sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ):
            op.execute(rls.owned_by_owner("tenant_deletion"))
        # a purged tenant's users who belong to no other tenant go too
        op.execute(f"GRANT DELETE ON app_user TO {rls.PLATFORM}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(rls.REFUSE_CHANGE)
        op.execute(f"REVOKE DELETE ON app_user FROM {rls.PLATFORM}")
    op.drop_table("tenant_deletion")
