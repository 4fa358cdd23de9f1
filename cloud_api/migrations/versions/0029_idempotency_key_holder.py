"""idempotency key holder: a key being answered names the process that took it, so a
repeat can tell a claim left behind by a dead process (and take it over at once)
from a live one; claims from before have no holder and keep the 5-minute lease

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_record") as batch:
        batch.add_column(
            sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    drop_columns(op, "idempotency_record", "holder")
