"""audit retention: the append-only trigger lets the audit log's rows older than the
plan's retention go, when the expiry job (run by the schema owner) asks for them

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 08:10:00
"""

from collections.abc import Sequence

from alembic import op

from cloud_api.db import rls

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(rls.REFUSE_CHANGE_UNLESS_PURGING_OR_EXPIRED)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(rls.REFUSE_CHANGE_UNLESS_PURGING)
