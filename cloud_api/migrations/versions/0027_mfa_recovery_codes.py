"""mfa recovery codes: ten one-time codes given when a second factor is set up, kept
as keyed hashes, so a lost phone does not lock its owner out

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(
            sa.Column("mfa_recovery_hashes", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )


def downgrade() -> None:
    drop_columns(op, "app_user", "mfa_recovery_hashes")
