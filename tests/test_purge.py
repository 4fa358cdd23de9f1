"""SAAS.md case 16, the canceled end: after 30 days nobody signs in; at day 90 the
subscription job marks the tenant due and the purge deletes all of its rows, ledgers
included, and its users who belong nowhere else, leaving a deletion record, and
touches nothing of any other tenant. On PostgreSQL the purge runs as the schema owner
bound to the tenant (row-level security), and the app's roles still cannot delete a
ledger row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.services import subscriptions
from cloud_api.services.purge import purge_due
from tenant import subscriptions as subs
from tests.factory import receipt
from tests.roles import as_role
from tests.test_isolation import snapshot
from tests.test_users import Browser, _email

T = m.SQLModel.metadata.tables


def _company(db: Engine) -> tuple[Browser, dict[str, Any], str]:
    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    for path, body in (
        ("/items", {"code": "RAW", "name": "Board", "kind": "raw"}),
        ("/suppliers", {"code": "SUP", "name": "Supplier"}),
    ):
        assert owner.call("POST", path, json=body).status_code == 201
    posted = owner.call("POST", "/edge/events", json={"events": [receipt(1, "RAW", "3", "2")]})
    assert posted.json()["posted"] == 1
    return owner, signed, email


def _cancel(db: Engine, tenant_id: Any, days_ago: int) -> None:
    with db.begin() as conn:
        sub = subscriptions.load(conn, tenant_id)
        sub, _ = subs.cancel(sub, now_utc() - timedelta(days=days_ago))
        subscriptions.save(conn, tenant_id, sub)


def _rows_of(db: Engine, tenant_id: Any) -> int:
    with db.connect() as conn:
        return sum(
            conn.scalar(select(text("count(*)")).select_from(t).where(t.c.tenant_id == tenant_id))
            or 0
            for t in m.tenant_tables()
        )


def test_locked_after_30_days_purged_at_90_and_nothing_else_touched(db: Engine) -> None:
    _, gone, gone_email = _company(db)
    _, locked, locked_email = _company(db)
    _, kept, _ = _company(db)
    gone_id, locked_id = gone["tenant_id"], locked["tenant_id"]
    import uuid

    gone_id, locked_id, kept_id = (
        uuid.UUID(gone_id),
        uuid.UUID(locked_id),
        uuid.UUID(kept["tenant_id"]),
    )
    _cancel(db, gone_id, 91)
    _cancel(db, locked_id, 31)
    subscriptions.tick_all(as_role(db, rls.PLATFORM), now_utc())  # marks `gone` due
    refused = Browser(db).log_in(locked_email)  # canceled and locked: nobody signs in
    assert refused.status_code in (402, 403), refused.text
    kept_before = snapshot(db, kept_id)
    locked_before = snapshot(db, locked_id)
    owner, platform = as_role(db, rls.OWNER), as_role(db, rls.PLATFORM)
    purged = purge_due(owner, platform, now_utc())

    assert [p.tenant_id for p in purged] == [gone_id]
    assert purged[0].rows_deleted > 30 and purged[0].users_deleted == 1
    assert _rows_of(db, gone_id) == 0
    with db.connect() as conn:
        assert conn.scalar(select(T["tenant"].c.id).where(T["tenant"].c.id == gone_id)) is None
        record = conn.execute(
            select(T["tenant_deletion"]).where(T["tenant_deletion"].c.tenant == gone_id)
        ).one()
        assert record.slug == gone["slug"] and record.rows_deleted == purged[0].rows_deleted
        assert (
            conn.scalar(select(T["app_user"].c.id).where(T["app_user"].c.email == gone_email))
            is None
        )
    assert snapshot(db, kept_id) == kept_before
    assert snapshot(db, locked_id) == locked_before  # locked, not yet due
    assert purge_due(owner, platform, now_utc()) == []  # done once
    Browser(db).sign_up(gone_email)  # the address is free again


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_outside_a_purge_even_the_owner_cannot_delete_a_ledger_row(db: Engine) -> None:
    _, signed, _ = _company(db)
    import uuid

    tenant_id = uuid.UUID(signed["tenant_id"])
    owner = as_role(db, rls.OWNER)
    with (
        pytest.raises(DBAPIError, match="append-only"),
        tenancy.as_tenant(tenant_id),
        owner.begin() as conn,
    ):
        conn.execute(text("DELETE FROM journal_line"))
    with (
        pytest.raises(DBAPIError, match="append-only"),
        tenancy.as_tenant(tenant_id),
        owner.begin() as conn,
    ):  # purging another tenant does not open this one
        conn.execute(text("SELECT set_config('app.purging', :t, true)"), {"t": str(uuid.uuid4())})
        conn.execute(text("DELETE FROM stock_move"))
    assert _rows_of(db, tenant_id) > 0


def test_the_audit_log_expires_after_the_plans_retention_and_no_sooner(db: Engine) -> None:
    """SAAS.md's plan table: a trial keeps its audit log 30 days. The daily job deletes
    each tenant's lines older than that (on PostgreSQL as the schema owner, the
    append-only trigger letting exactly those go), leaves the rest and every other
    tenant's alone, and says how many went; outside it, an old line stays undeletable."""
    import uuid

    from cloud_api.services.purge import expire_audit

    _, first, _ = _company(db)
    _, second, _ = _company(db)
    a, b = uuid.UUID(first["tenant_id"]), uuid.UUID(second["tenant_id"])
    al, now = T["audit_log"], now_utc()
    for tenant_id in (a, b):
        with tenancy.as_tenant(tenant_id), db.begin() as conn:
            for days in (45, 31, 29):
                conn.execute(
                    al.insert().values(
                        tenant_id=tenant_id,
                        id=uuid.uuid4(),
                        at=now - timedelta(days=days),
                        actor_kind="system",
                        actor_id="test",
                        action=f"test.{days}",
                        object="",
                        detail="",
                    )
                )
    with tenancy.as_tenant(b), db.begin() as conn:  # B on Pro: 7 years
        sub = subs.record_payment(subs.start_checkout("pro", now)[0], now)[0]
        subscriptions.save(conn, b, sub)
    owner, platform = as_role(db, rls.OWNER), as_role(db, rls.PLATFORM)
    if db.dialect.name == "postgresql":
        with (
            pytest.raises(DBAPIError, match="append-only"),
            tenancy.as_tenant(a),
            owner.begin() as conn,
        ):  # the cut-off alone, without the expiry's tenant, opens nothing
            conn.execute(
                text("SELECT set_config('app.audit_expiry_before', :b, true)"),
                {"b": now.isoformat()},
            )
            conn.execute(text("DELETE FROM audit_log"))

    done = expire_audit(owner, platform, now)

    ours = {a, b}  # the database may hold other tests' tenants
    assert [(e.tenant_id, e.rows_deleted) for e in done if e.tenant_id in ours] == [(a, 2)]

    def actions(tenant_id: Any) -> set[str]:
        with tenancy.as_tenant(tenant_id), db.connect() as conn:
            query = select(al.c.action).where(al.c.tenant_id == tenant_id)
            return {x for x in conn.scalars(query) if x.startswith(("test.", "audit."))}

    assert actions(a) == {"test.29", "audit.expired"}
    assert actions(b) == {"test.45", "test.31", "test.29"}
    assert [e for e in expire_audit(owner, platform, now) if e.tenant_id in ours] == []
