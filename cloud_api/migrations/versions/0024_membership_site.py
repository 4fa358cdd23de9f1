"""membership site: a warehouse or production member may be bound to one site, whose
devices they enroll and revoke (SAAS.md's RBAC "✓ own site"); NULL: every site

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("membership") as batch:
        batch.add_column(
            sa.Column("site", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    drop_columns(op, "membership", "site")
