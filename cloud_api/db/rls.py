"""Row-level security on PostgreSQL: the roles, the per-table policies and the grants,
as SQL the migrations run (SAAS.md, "RLS setup").

Roles (cluster-wide, created once, idempotently):
- erp_owner     owns the schema and runs the migrations; never used by the app.
- erp_app       the tenants' requests: LOGIN, NOSUPERUSER, NOBYPASSRLS, DML only; sees
                the rows of the tenant its transaction set in `app.tenant_id`.
- erp_platform  credential lookups before the tenant is known, sign-up and the
                cross-tenant jobs: it may *read* the credential and subscription tables
                across tenants (named below) and writes only as a tenant, like erp_app.

Every table with a tenant_id column gets ENABLE + FORCE row-level security and the
`tenant_isolation` policy; a new tenant table calls `enable_tenant_rls()` in its
migration, and tests/test_rls.py fails CI for one that does not. The ledgers are
append-only for both roles (no UPDATE or DELETE granted) and, whoever runs the
statement, a trigger refuses to change or delete their rows.
"""

import os
from typing import Any

from sqlalchemy import text

APP, PLATFORM, OWNER = "erp_app", "erp_platform", "erp_owner"
SETTING = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"

# read by erp_platform across tenants: resolving a key, a session, a code, a login;
# the subscription job walks every tenant's subscription
PLATFORM_LOOKUPS = (
    "tenant",
    "membership",
    "user_session",
    "device",
    "device_key",
    "enrollment_code",
    "subscription",
)
# append-only: posted rows are never changed or deleted, by anyone
LEDGERS = ("journal_entry", "journal_line", "stock_move", "stock_revaluation", "audit_log")


def create_roles() -> str:
    """The three roles, if missing, with their attributes enforced either way.

    A role that already has them is left untouched: ALTER ROLE rewrites the role's row
    in the cluster-wide pg_authid even when nothing changes, and two databases migrated
    at once on one cluster (parallel test workers, two deployments) then fail with
    "tuple concurrently updated"."""
    parts = []
    for role, login in ((OWNER, "LOGIN"), (APP, "LOGIN"), (PLATFORM, "LOGIN")):
        attrs = f"{login} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
        drifted = "rolsuper OR rolbypassrls OR rolcreatedb OR rolcreaterole OR NOT rolcanlogin"
        parts.append(
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} {attrs}; "
            f"ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}' AND ({drifted})) "
            f"THEN ALTER ROLE {role} {attrs}; END IF;"
        )
    # concurrent migrations of two databases on one cluster may race to create a role
    return (
        "DO $$ BEGIN "
        + " ".join(parts)
        + " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def grant_schema() -> list[str]:
    return [
        f"GRANT USAGE ON SCHEMA public TO {APP}, {PLATFORM}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP}, {PLATFORM}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
        f"ON TABLES TO {APP}, {PLATFORM}",
    ]


def enable_tenant_rls(table: str, column: str = "tenant_id") -> list[str]:
    """ENABLE + FORCE row-level security, the tenant_isolation policy (for every role:
    reads and writes only where `column` is the transaction's tenant), DML grants."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {SETTING}) WITH CHECK ({column} = {SETTING})",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP}, {PLATFORM}",
    ]


def platform_lookup(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS platform_lookup ON {table}",
        f"CREATE POLICY platform_lookup ON {table} FOR SELECT TO {PLATFORM} USING (true)",
    ]


def app_user_policies() -> list[str]:
    """The global user table: erp_app reads the members of its tenant (membership's own
    policy limits the subquery) and writes nothing; erp_platform manages accounts."""
    return [
        "ALTER TABLE app_user ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE app_user FORCE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS member_of_tenant ON app_user",
        f"CREATE POLICY member_of_tenant ON app_user FOR SELECT TO {APP} USING "
        "(EXISTS (SELECT 1 FROM membership ms WHERE ms.user_id = app_user.id))",
        "DROP POLICY IF EXISTS platform_accounts ON app_user",
        f"CREATE POLICY platform_accounts ON app_user TO {PLATFORM} USING (true) WITH CHECK (true)",
        f"REVOKE ALL ON app_user FROM {APP}",
        f"GRANT SELECT ON app_user TO {APP}",
        f"GRANT SELECT, INSERT, UPDATE ON app_user TO {PLATFORM}",
    ]


def append_only(table: str) -> list[str]:
    return [
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP}, {PLATFORM}",
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION erp_refuse_change()",
    ]


def _refuse_change(*exceptions: str) -> str:
    """The append-only trigger's function: refuse every UPDATE and DELETE, but for the
    `exceptions` (PL/pgSQL blocks that RETURN OLD to let a row go)."""
    allowed = "".join(exceptions)
    return f"""
CREATE OR REPLACE FUNCTION erp_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{allowed}
    RAISE EXCEPTION '% is append-only: post a reversal instead', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


# the purge of a canceled tenant after 90 days, run by the schema owner with
# `app.purging` set to that tenant (services/purge.py); row-level security still limits
# it to that tenant's rows
_PURGING = """
    IF TG_OP = 'DELETE'
       AND current_setting('app.purging', true) = OLD.tenant_id::text THEN
        RETURN OLD;
    END IF;"""
# the audit log's expiry after the plan's retention (services/purge.py expire_audit),
# by the schema owner with `app.audit_expiry` set to the tenant and
# `app.audit_expiry_before` to the cut-off: only audit rows older than that go
_AUDIT_EXPIRY = """
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log'
       AND current_setting('app.audit_expiry', true) = OLD.tenant_id::text THEN
        -- nested: only audit_log rows have `at` (PL/pgSQL does not short-circuit)
        IF OLD.at < NULLIF(current_setting('app.audit_expiry_before', true), '')::timestamptz
        THEN
            RETURN OLD;
        END IF;
    END IF;"""
REFUSE_CHANGE = _refuse_change()
REFUSE_CHANGE_UNLESS_PURGING = _refuse_change(_PURGING)  # since 0017
REFUSE_CHANGE_UNLESS_PURGING_OR_EXPIRED = _refuse_change(_PURGING, _AUDIT_EXPIRY)  # since 0021


def owned_by_owner(table: str) -> str:
    return f"ALTER TABLE {table} OWNER TO {OWNER}"


def protect_new_table(op: Any, table: str, lookup: bool = False) -> None:
    """For a migration that adds a tenant table: ownership, ENABLE + FORCE RLS, the
    tenant_isolation policy and grants; `lookup` lets erp_platform resolve credentials
    in it before the tenant is known. A no-op on SQLite."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    superuser = conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    statements = [owned_by_owner(table)] if superuser else []
    statements += enable_tenant_rls(table)
    if lookup:
        statements += platform_lookup(table)
    for statement in statements:
        op.execute(statement)


def set_login_passwords(url: str) -> list[str]:
    """After the migrations: give erp_app and erp_platform the passwords in
    $ERP_APP_PASSWORD and $ERP_PLATFORM_PASSWORD, where set (a deployment's first
    `erp db upgrade`; without them the roles log in only where pg_hba trusts them)."""
    from cloud_api.db.engine import make_engine

    wanted = {r: os.environ.get(f"{r.upper()}_PASSWORD") for r in (APP, PLATFORM)}
    wanted = {r: p for r, p in wanted.items() if p}
    if not wanted or not url.startswith("postgres"):
        return []
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for role, password in wanted.items():
                quoted = conn.scalar(text("SELECT quote_literal(:p)"), {"p": password})
                conn.execute(text(f"ALTER ROLE {role} PASSWORD {quoted}"))
    finally:
        engine.dispose()
    return sorted(wanted)
