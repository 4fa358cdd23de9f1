"""row-level security: roles, policies, grants, append-only ledgers (PostgreSQL)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cloud_api.db import rls

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_tables(conn: sa.Connection) -> list[str]:
    return list(
        conn.scalars(
            sa.text(
                "SELECT c.table_name FROM information_schema.columns c"
                " JOIN information_schema.tables t USING (table_schema, table_name)"
                " WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id'"
                " AND t.table_type = 'BASE TABLE' ORDER BY c.table_name"
            )
        )
    )


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return  # SQLite: every query filters by tenant itself
    op.execute(rls.create_roles())
    superuser = conn.scalar(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    tables = _tenant_tables(conn)
    for table in [*tables, "tenant", "app_user"]:
        if superuser:
            op.execute(rls.owned_by_owner(table))
    for statement in rls.grant_schema():
        op.execute(statement)
    for table in tables:
        for statement in rls.enable_tenant_rls(table):
            op.execute(statement)
    for statement in rls.enable_tenant_rls("tenant", column="id"):
        op.execute(statement)
    for statement in rls.app_user_policies():
        op.execute(statement)
    for table in rls.PLATFORM_LOOKUPS:
        for statement in rls.platform_lookup(table):
            op.execute(statement)
    op.execute(rls.REFUSE_CHANGE)
    for table in rls.LEDGERS:
        for statement in rls.append_only(table):
            op.execute(statement)
    op.execute(f"REVOKE ALL ON alembic_version FROM {rls.APP}, {rls.PLATFORM}")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table in rls.LEDGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS erp_refuse_change()")
    for table in [*_tenant_tables(conn), "tenant", "app_user"]:
        for policy in (
            "tenant_isolation",
            "platform_lookup",
            "member_of_tenant",
            "platform_accounts",
        ):
            op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    # the roles are the cluster's, shared by its other databases: they stay
