"""Row-level security on PostgreSQL (SAAS.md "RLS setup", cases 4, 5, 6 and 11).

The rest of the suite already runs its API calls as erp_app (tests/roles.py); these
tests look at the database itself: the roles, the policies on every tenant table, what
erp_app sees with no tenant set, one pooled connection serving two tenants in turn,
and the append-only ledgers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError

from cloud_api.api.app import create_app
from cloud_api.db import rls, tenancy
from cloud_api.db.engine import make_engine
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.factory import receipt, setup_workshop
from tests.roles import as_role

pytestmark = pytest.mark.postgres


def unprotected_tables(conn: Any) -> list[str]:
    """Tables with a tenant_id column that lack ENABLE + FORCE RLS or the policy."""
    return list(
        conn.scalars(
            text(
                """
                SELECT c.relname FROM pg_class c
                JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
                  AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (
                      SELECT 1 FROM pg_policy p
                      WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation'))
                ORDER BY 1
                """
            )
        )
    )


def test_every_tenant_table_has_forced_rls_and_the_policy(pg_db: Engine) -> None:
    """Case 6: the meta-test. It would fail for a migration that adds a tenant table
    without enable_tenant_rls(): shown by adding one inside a rolled-back transaction."""
    with pg_db.connect() as conn:
        assert unprotected_tables(conn) == []
        count = conn.scalar(
            text(
                "SELECT count(DISTINCT attrelid) FROM pg_attribute a JOIN pg_class c"
                " ON c.oid = a.attrelid WHERE a.attname = 'tenant_id' AND c.relkind = 'r'"
                " AND c.relnamespace = 'public'::regnamespace"
            )
        )
        assert count >= 38  # every tenant table of the models, none missed by the query
        conn.rollback()
        conn.execute(text("CREATE TABLE sneaky (tenant_id uuid NOT NULL, x int)"))
        assert unprotected_tables(conn) == ["sneaky"]
        conn.rollback()
        assert unprotected_tables(conn) == []


@pytest.mark.parametrize("role", [rls.APP, rls.PLATFORM])
def test_the_app_roles_are_neither_superuser_nor_bypassrls_nor_owners(
    pg_db: Engine, role: str
) -> None:
    with pg_db.connect() as conn:
        row = conn.execute(
            text("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = :r"),
            {"r": role},
        ).one()
        assert tuple(row) == (False, False, False)
        owned = conn.scalar(
            text(
                "SELECT count(*) FROM pg_class WHERE relpersistence <> 't'"  # its own temp
                " AND relowner = (SELECT oid FROM pg_roles WHERE rolname = :r)"  # tables only
            ),
            {"r": role},
        )
        assert owned == 0
        owner = conn.scalar(
            text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'journal_line'")
        )
        assert owner == rls.OWNER


def test_creating_the_roles_again_leaves_the_cluster_wide_rows_alone(pg_db: Engine) -> None:
    """Each database's migration runs create_roles(); when the roles are already right
    it must not rewrite their pg_authid rows, or two databases migrated at once on one
    cluster (parallel test workers) fail with "tuple concurrently updated"."""
    versions = text(
        "SELECT rolname, xmin::text FROM pg_authid WHERE rolname = ANY(:r) ORDER BY rolname"
    )
    roles = [rls.OWNER, rls.APP, rls.PLATFORM]
    with pg_db.begin() as conn:
        before = conn.execute(versions, {"r": roles}).all()
        conn.execute(text(rls.create_roles()))
        after = conn.execute(versions, {"r": roles}).all()
    assert len(before) == 3 and after == before


@pytest.fixture
def two_tenants(pg_db: Engine) -> tuple[Api, Api]:
    a, b = Api(pg_db), Api(pg_db)
    for api in (a, b):
        setup_workshop(api)  # identical codes in both
        api.events(receipt(1, "RAW", "5", "2.00"))
    return a, b


TENANT_TABLES = ("item", "stock_move", "journal_entry", "journal_line", "account", "location")


def test_erp_app_with_no_tenant_set_sees_nothing_and_writes_nothing(
    pg_db: Engine, two_tenants: tuple[Api, Api]
) -> None:
    """Case 4: raw SQL as erp_app, no tenant bound: 0 rows; an INSERT breaks the policy's
    WITH CHECK. With A bound: only A's rows."""
    a, b = two_tenants
    app = as_role(pg_db, rls.APP)
    with app.connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == rls.APP
        assert conn.scalar(text("SELECT current_setting('app.tenant_id', true)")) == ""
        for table in (*TENANT_TABLES, "tenant", "app_user", "membership", "device_key"):
            assert conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table
    with pytest.raises(DBAPIError, match="row-level security"), app.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO item_category (tenant_id, code, name, stock_account,"
                " cogs_account, revenue_account) VALUES (:t, 'X', 'x', '1403', '6401', '6001')"
            ),
            {"t": a.tenant.id},
        )
    with tenancy.as_tenant(a.tenant.id), app.connect() as conn:
        tenants = set(conn.scalars(text("SELECT DISTINCT tenant_id FROM item")))
        assert tenants == {a.tenant.id}
        assert conn.scalar(text("SELECT count(*) FROM tenant")) == 1
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(  # writing as B while bound to A
                text(
                    "INSERT INTO item_category (tenant_id, code, name, stock_account,"
                    " cogs_account, revenue_account) VALUES (:t, 'X', 'x', '1', '2', '3')"
                ),
                {"t": b.tenant.id},
            )


def test_platform_reads_credentials_across_tenants_but_writes_only_as_one(
    pg_db: Engine, two_tenants: tuple[Api, Api]
) -> None:
    a, b = two_tenants
    platform = as_role(pg_db, rls.PLATFORM)
    with platform.connect() as conn:
        ids = set(conn.scalars(text("SELECT id FROM tenant")))
        assert {a.tenant.id, b.tenant.id} <= ids
        assert conn.scalar(text("SELECT count(*) FROM item")) == 0  # not a lookup table
        assert conn.scalar(text("SELECT count(*) FROM journal_line")) == 0
    with pytest.raises(DBAPIError, match="row-level security"), platform.begin() as conn:
        conn.execute(
            text("INSERT INTO tenant_directory (tenant_id, cell) VALUES (:t, 'x')"),
            {"t": uuid.uuid4()},
        )


@pytest.fixture
def one_connection(pg_db: Engine) -> Iterator[Engine]:
    url = as_role(pg_db, rls.APP).url.render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_one_pooled_connection_serves_a_then_b_without_leaking(
    pg_db: Engine, two_tenants: tuple[Api, Api], one_connection: Engine
) -> None:
    """Case 5: pool_size=1, a request as A then one as B on the same backend: B sees
    none of A's rows, and between transactions the setting is empty."""
    a, b = two_tenants
    pids: list[int] = []
    event.listen(
        one_connection,
        "begin",
        lambda conn: pids.append(conn.connection.driver_connection.info.backend_pid),
    )
    client = TestClient(create_app(get_settings(), one_connection, as_role(pg_db, rls.PLATFORM)))
    answers = {}
    for api in (a, b):
        response = client.get(
            "/api/v1/reports/stock", headers={"Authorization": f"Bearer {api.tenant.api_key}"}
        )
        assert response.status_code == 200, response.text
        answers[api.tenant.id] = response.json()
    assert len(set(pids)) == 1 and len(pids) >= 2
    with pg_db.connect() as conn:
        a_ids = {
            str(i)
            for i in conn.scalars(
                text("SELECT id FROM item WHERE tenant_id = :t"), {"t": a.tenant.id}
            )
        }
        b_ids = {
            str(i)
            for i in conn.scalars(
                text("SELECT id FROM item WHERE tenant_id = :t"), {"t": b.tenant.id}
            )
        }
    assert a_ids and b_ids and not (a_ids & b_ids)
    b_text = str(answers[b.tenant.id])
    assert not any(i in b_text for i in a_ids)
    with one_connection.connect() as conn:
        assert conn.scalar(text("SELECT pg_backend_pid()")) == pids[0]
        assert conn.scalar(text("SELECT current_setting('app.tenant_id', true)")) == ""
        assert conn.scalar(text("SELECT count(*) FROM item")) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE journal_line SET debit = debit + 1",
        "DELETE FROM journal_line",
        "UPDATE journal_entry SET memo = 'changed'",
        "DELETE FROM stock_move",
        "UPDATE audit_log SET action = 'nothing'",
    ],
)
def test_the_ledgers_are_append_only_for_the_app(
    pg_db: Engine, two_tenants: tuple[Api, Api], statement: str
) -> None:
    """Case 11: UPDATE or DELETE of posted rows as erp_app: permission denied."""
    a, _ = two_tenants
    with (
        pytest.raises(DBAPIError, match="permission denied"),
        tenancy.as_tenant(a.tenant.id),
        as_role(pg_db, rls.APP).begin() as conn,
    ):
        conn.execute(text(statement))


def test_even_the_owner_cannot_change_a_posted_line(
    pg_db: Engine, two_tenants: tuple[Api, Api]
) -> None:
    """Nobody, platform staff included, edits or deletes posted rows: the trigger
    refuses the superuser too."""
    with pytest.raises(DBAPIError, match="append-only"), pg_db.begin() as conn:
        conn.execute(text("UPDATE journal_line SET debit = debit + 1"))
    with pytest.raises(DBAPIError, match="append-only"), pg_db.begin() as conn:
        conn.execute(text("DELETE FROM stock_move"))


def test_app_user_shows_erp_app_only_its_tenants_members(pg_db: Engine) -> None:
    from tests.test_users import Browser, _email

    owners = []
    for tag in ("a", "b"):
        browser = Browser(pg_db)
        owners.append((browser.sign_up(_email(tag)), browser))
    (a, _), (_b, _) = owners
    with tenancy.as_tenant(uuid.UUID(a["tenant_id"])), as_role(pg_db, rls.APP).connect() as conn:
        emails = list(conn.scalars(text("SELECT email FROM app_user")))
    assert len(emails) == 1 and emails[0].startswith("a-")


def test_db_upgrade_sets_the_roles_passwords_from_the_environment(
    pg_url: str, pg_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_APP_PASSWORD", "s3cret-'quoted")
    monkeypatch.delenv("ERP_PLATFORM_PASSWORD", raising=False)
    try:
        assert rls.set_login_passwords(pg_url) == [rls.APP]
        with pg_db.connect() as conn:
            stored = conn.scalar(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": rls.APP}
            )
        assert stored is not None and stored.startswith(("SCRAM-SHA-256$", "md5"))
    finally:
        with pg_db.begin() as conn:
            conn.execute(text(f"ALTER ROLE {rls.APP} PASSWORD NULL"))
