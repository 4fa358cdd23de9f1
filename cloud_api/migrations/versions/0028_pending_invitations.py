"""pending invitations: adding a member by e-mail no longer makes anybody a member (nor
an account) at once; the invitation holds who is invited (address, name, role, site,
by whom) and the person becomes a member when they accept it: a new address by
choosing a password, an existing account with its own password. Each invitation gets
a public id (the owner lists and withdraws them by it). Existing rows keep working:
they are filled from the account and the membership they were made with.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 09:00:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from cloud_api.db.migrate import drop_columns

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS = ("id", "email", "name", "role", "site", "invited_by")
# row-level security forced on these would show the schema owner no rows (a superuser
# sees them anyway): the backfill runs with FORCE lifted, in the same transaction
READ_ACROSS = ("invitation", "app_user", "membership")


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    with op.batch_alter_table("invitation") as batch:
        batch.add_column(sa.Column("id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("email", text(length=254), nullable=True))
        batch.add_column(sa.Column("name", text(length=200), nullable=True))
        batch.add_column(sa.Column("role", text(length=16), nullable=True))
        batch.add_column(sa.Column("site", text(length=64), nullable=True))
        batch.add_column(sa.Column("invited_by", sa.Uuid(), nullable=True))
    _fill_existing_rows()
    with op.batch_alter_table("invitation") as batch:
        batch.alter_column("id", existing_type=sa.Uuid(), nullable=False)
        batch.alter_column("email", existing_type=text(length=254), nullable=False)
        batch.alter_column("name", existing_type=text(length=200), nullable=False)
        batch.alter_column("role", existing_type=text(length=16), nullable=False)
        batch.alter_column("user_id", existing_type=sa.Uuid(), nullable=True)
    op.create_index("uq_invitation_id", "invitation", ["id"], unique=True)
    op.create_index("ix_invitation_email", "invitation", ["tenant_id", "email"])


def _fill_existing_rows() -> None:
    """An invitation made before this revision: its account (the address and name)
    and its membership (the role and site) say who it was for. One whose membership
    is gone (the owner removed the person) or whose account is gone was dead already
    (the old link only set a password on an account that is a member): it is deleted,
    never given a role of its own, so the upgrade revives no link."""
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        for table in READ_ACROSS:
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    inv = sa.table(
        "invitation",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("token_hash", sa.String()),
        sa.column("user_id", sa.Uuid()),
        *(
            sa.column(c, sa.Uuid() if c in ("id", "invited_by") else sa.String())
            for c in NEW_COLUMNS
        ),
    )
    users = sa.table("app_user", sa.column("id", sa.Uuid()), sa.column("email"), sa.column("name"))
    ms = sa.table(
        "membership",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        sa.column("role"),
        sa.column("site"),
    )
    rows = conn.execute(
        sa.select(
            inv.c.tenant_id, inv.c.token_hash, users.c.email, users.c.name, ms.c.role, ms.c.site
        )
        .join(users, users.c.id == inv.c.user_id)
        .outerjoin(ms, (ms.c.tenant_id == inv.c.tenant_id) & (ms.c.user_id == inv.c.user_id))
        .execution_options(cross_tenant=True)  # every tenant's rows: a migration
    ).all()
    for row in rows:
        if row.role is None:  # no membership: left without an id, deleted below
            continue
        conn.execute(
            sa.update(inv)
            .where(inv.c.tenant_id == row.tenant_id, inv.c.token_hash == row.token_hash)
            .values(id=uuid.uuid4(), email=row.email, name=row.name, role=row.role, site=row.site)
            .execution_options(cross_tenant=True)
        )
    # a link whose membership (or account) is gone was dead already: it stays dead
    conn.execute(sa.delete(inv).where(inv.c.id.is_(None)).execution_options(cross_tenant=True))
    if postgres:
        for table in READ_ACROSS:
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    # invitations with no account behind them cannot be told apart by the old schema.
    # FORCE row-level security would show the schema owner no rows to delete (and the
    # NOT NULL below would then fail): lifted for the delete, as in the upgrade
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE invitation NO FORCE ROW LEVEL SECURITY")
    op.execute("DELETE FROM invitation WHERE user_id IS NULL")
    if postgres:
        op.execute("ALTER TABLE invitation FORCE ROW LEVEL SECURITY")
    op.drop_index("ix_invitation_email", table_name="invitation")
    op.drop_index("uq_invitation_id", table_name="invitation")
    with op.batch_alter_table("invitation") as batch:
        batch.alter_column("user_id", existing_type=sa.Uuid(), nullable=False)
    drop_columns(op, "invitation", *NEW_COLUMNS)
