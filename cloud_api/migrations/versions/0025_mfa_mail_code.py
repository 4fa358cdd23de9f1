"""mfa mail code: setting up a second factor needs a code mailed to the account's
address as well as the authenticator's first code

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 09:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(
            sa.Column(
                "mfa_mail_code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )
        batch.add_column(
            sa.Column("mfa_mail_code_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "mfa_pending_session", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )


def downgrade() -> None:
    drop_columns(op, "app_user", "mfa_pending_session", "mfa_mail_code_at", "mfa_mail_code_hash")
