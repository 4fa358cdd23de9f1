"""Revision 0028 (pending invitations) keeps an invitation of the old kind working: one
made before it (an unclaimed account and a membership made at invitation time, the
link pointing at them) is filled from them, and its link still lets the person choose
their password and sign in; one whose membership the owner removed stays dead. Going
back to 0027 works with invitations of the new kind pending. On a database of its
own, SQLite and PostgreSQL; on PostgreSQL the migrations run as the schema owner
(erp_owner, under FORCEd row-level security), as in production."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, make_url, select, text

from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.db.engine import make_engine
from cloud_api.db.migrate import downgrade, upgrade
from cloud_api.domain.clock import now_utc
from cloud_api.mail import FileMailer
from cloud_api.services import invitations, users
from cloud_api.services.tenants import create_tenant
from tenant.security import hash_password

T = m.SQLModel.metadata.tables
PEPPER = "test-pepper"
PASSWORD = "tiger-lily walks 42 oak benches"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own at head; on PostgreSQL the URL is the schema owner's
    (the superuser creates the database and the roles, as the deployment does)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
        upgrade(url)
        yield url
        return
    server: str = request.getfixturevalue("pg_server")
    name = f"erp_inv_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    database = make_engine(url)
    try:
        with database.begin() as conn:  # the owner runs the migrations from here on
            conn.execute(text(f"ALTER SCHEMA public OWNER TO {rls.OWNER}"))
            conn.execute(text(f"ALTER TABLE alembic_version OWNER TO {rls.OWNER}"))
        owner = make_url(url).set(username=rls.OWNER).render_as_string(hide_password=False)
        yield owner
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _superuser(url: str) -> Engine:
    """Where the test sets rows up and reads them (a superuser sees every tenant's)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(username="postgres")
    return tenancy.install(make_engine(parsed.render_as_string(hide_password=False)))


def _old_member(
    db: Engine, tenant_id: uuid.UUID, email: str, role: str, site: str | None, now: datetime
) -> uuid.UUID:
    """An account made unclaimed by an invitation of the old kind, and its membership."""
    user_id = uuid.uuid4()
    with tenancy.as_tenant(tenant_id), db.begin() as conn:
        conn.execute(
            insert(T["app_user"]).values(
                id=user_id,
                email=email,
                name="Old Timer",
                password_hash=hash_password("nobody knows this one 123"),
                created_at=now,
                unclaimed=True,
            )
        )
        users.join(conn, tenant_id, user_id, role, now, site)
    return user_id


def _old_link(db: Engine, tenant_id: uuid.UUID, user_id: uuid.UUID, token: str) -> None:
    """An invitation row of the 0027 schema: the token's hash and the account."""
    with tenancy.as_tenant(tenant_id), db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO invitation (tenant_id, token_hash, user_id, created_at) "
                "VALUES (:tenant, :hash, :user, :at)"
            ),
            {
                "tenant": tenant_id if db.dialect.name == "postgresql" else tenant_id.hex,
                "hash": invitations._hash(token, PEPPER),
                "user": user_id if db.dialect.name == "postgresql" else user_id.hex,
                "at": now_utc() if db.dialect.name == "postgresql" else str(now_utc()),
            },
        )


def test_an_old_invitation_survives_the_migration_and_a_dead_one_stays_dead(
    fresh_url: str,
) -> None:
    """Review of issue 15: the backfill gave every old row a role ("viewer" when its
    membership was gone), so a link whose member the owner had removed became live
    again and made the person a viewer on acceptance."""
    db = _superuser(fresh_url)
    try:
        tenant = create_tenant(db, "t-old", "Old & Co", PEPPER)
        now = now_utc()
        kept_token, removed_token = "Abc_def-1234567890123456789012345678", "Zyx_wvu-9" + "8" * 30
        kept = _old_member(db, tenant.id, "old@example.com", "warehouse", "p2", now)
        removed = _old_member(db, tenant.id, "gone@example.com", "production", None, now)
        with tenancy.as_tenant(tenant.id), db.begin() as conn:
            ms = T["membership"]
            mine = (ms.c.tenant_id == tenant.id) & (ms.c.user_id == removed)
            conn.execute(ms.delete().where(mine))  # the owner removed them before 0028
        downgrade(fresh_url, "0027")  # the old schema, and invitation rows of the old kind
        _old_link(db, tenant.id, kept, kept_token)
        _old_link(db, tenant.id, removed, removed_token)
        upgrade(fresh_url)

        with tenancy.as_tenant(tenant.id), db.connect() as conn:
            inv = T["invitation"]
            (row,) = conn.execute(select(inv).where(inv.c.tenant_id == tenant.id)).all()
        assert (row.email, row.name, row.role, row.site) == (
            "old@example.com",
            "Old Timer",
            "warehouse",
            "p2",
        )
        assert row.id is not None and row.user_id == kept
        with pytest.raises(invitations.Unauthorized) as dead:
            invitations.accept(db, removed_token, PASSWORD, PEPPER, now_utc())
        assert dead.value.code == "invalid_invitation"

        joined_tenant, session = invitations.accept(db, kept_token, PASSWORD, PEPPER, now_utc())
        assert joined_tenant == tenant.id and session
        with tenancy.as_tenant(tenant.id), db.connect() as conn:
            members = [m_["email"] for m_ in users.members(conn, tenant.id)]
        assert members == ["old@example.com"]  # and not gone@example.com, as a viewer
        _, again = users.log_in(db, "old@example.com", PASSWORD, None, now_utc())
        assert again
    finally:
        db.dispose()


def test_going_back_to_0027_with_a_pending_invitation_works(fresh_url: str, tmp_path: Path) -> None:
    """Review of issue 15: on PostgreSQL the downgrade's delete of the invitations with
    no account ran under FORCEd row-level security, deleted nothing, and SET NOT NULL
    then failed. The pending invitation (nobody's account yet) is gone after it; an
    accepted one stays."""
    db = _superuser(fresh_url)
    try:
        tenant = create_tenant(db, "t-new", "New & Co", PEPPER)
        mailer, url = FileMailer(tmp_path / "mail", "erp@localhost"), "http://x"
        with tenancy.as_tenant(tenant.id), db.begin() as conn:
            for who in ("pending@example.com", "taken@example.com"):
                added = invitations.add(
                    conn, tenant.id, who, "P", "viewer", None, None, now_utc(), None,
                    PEPPER, mailer, url,
                )  # fmt: skip
                assert added.status == "invited"
        token = _token_in_newest_mail(tmp_path / "mail")
        invitations.accept(db, token, PASSWORD, PEPPER, now_utc())  # taken@: now a member

        downgrade(fresh_url, "0027")
        with tenancy.as_tenant(tenant.id), db.connect() as conn:
            rows = conn.execute(text("SELECT user_id FROM invitation")).all()
            emails = [m_["email"] for m_ in users.members(conn, tenant.id)]
        assert len(rows) == 1 and emails == ["taken@example.com"]
        upgrade(fresh_url)  # and forward again
    finally:
        db.dispose()


def _token_in_newest_mail(directory: Path) -> str:
    import email
    import re

    newest = sorted(directory.glob("*.eml"))[-1]
    body = email.message_from_bytes(newest.read_bytes()).get_payload(decode=True)
    assert isinstance(body, bytes)
    found = re.search(r"/invite/([A-Za-z0-9_-]+)\s", body.decode())
    assert found, body
    return found.group(1)
