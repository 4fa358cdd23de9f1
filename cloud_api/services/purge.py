"""Purging a canceled tenant (SAAS.md: canceled → locked at day 30 → purge at day 90).

The platform finds the tenants whose subscription is due for purge; for each, the
schema's owner deletes every row of that tenant, the ledgers included, in one
transaction bound to the tenant (row-level security lets it see nothing else) with
`app.purging` set to it (the one case the append-only trigger lets a ledger row go).
A deletion record stays; the tenant's users who belong to no other tenant go too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, exists, func, insert, select, text

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.services import idempotency, subscriptions
from cloud_api.services.audit import audit

T = m.SQLModel.metadata.tables


@dataclass(frozen=True)
class Purged:
    tenant_id: uuid.UUID
    slug: str
    rows_deleted: int
    users_deleted: int


def purge_due(owner_db: Engine, platform_db: Engine, now: datetime) -> list[Purged]:
    s = T["subscription"]
    with platform_db.connect() as conn:
        due_now = select(s.c.tenant_id).where(s.c.purge_due.is_(True))
        due = list(conn.scalars(due_now.execution_options(cross_tenant=True)))
    return [purge_tenant(owner_db, platform_db, tenant_id, now) for tenant_id in due]


def purge_tenant(
    owner_db: Engine, platform_db: Engine, tenant_id: uuid.UUID, now: datetime
) -> Purged:
    ms = T["membership"]
    with tenancy.as_tenant(tenant_id), platform_db.connect() as conn:
        members = list(conn.scalars(select(ms.c.user_id).where(ms.c.tenant_id == tenant_id)))
    with tenancy.as_tenant(tenant_id), owner_db.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT set_config('app.purging', :t, true)"), {"t": str(tenant_id)})
        slug = conn.scalar(select(T["tenant"].c.slug).where(T["tenant"].c.id == tenant_id))
        rows = _delete_rows(conn, tenant_id)
        conn.execute(
            insert(T["tenant_deletion"]).values(
                tenant=tenant_id,
                slug=slug or "",
                purged_at=now,
                rows_deleted=rows,
                users_deleted=0,
            )
        )
    users = _delete_orphan_users(platform_db, members)
    with owner_db.begin() as conn:
        td = T["tenant_deletion"]
        conn.execute(td.update().where(td.c.tenant == tenant_id).values(users_deleted=users))
    return Purged(tenant_id, slug or "", rows, users)


@dataclass(frozen=True)
class Expired:
    tenant_id: uuid.UUID
    before: datetime
    rows_deleted: int


def expire_audit(owner_db: Engine, platform_db: Engine, now: datetime) -> list[Expired]:
    """The audit log kept as long as each tenant's plan says (SAAS.md: 30 days on a
    trial to 10 years on Enterprise), no longer: the schema owner, bound to one tenant
    at a time, deletes its audit rows older than the retention (the append-only trigger
    lets exactly those go). Each deletion leaves an audit line saying how many went."""
    al = T["audit_log"]
    done = []
    for tenant_id in subscriptions.every_tenant(platform_db):
        with tenancy.as_tenant(tenant_id), platform_db.connect() as conn:
            days = subscriptions.plan_of(conn, tenant_id).audit_retention_days
        if days is None:
            continue
        before = now - timedelta(days=days)
        with tenancy.as_tenant(tenant_id), owner_db.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text(
                        "SELECT set_config('app.audit_expiry', :t, true), "
                        "set_config('app.audit_expiry_before', :b, true)"
                    ),
                    {"t": str(tenant_id), "b": before.isoformat()},
                )
            gone = conn.execute(
                delete(al).where(al.c.tenant_id == tenant_id, al.c.at < before)
            ).rowcount
            if gone:
                actor = ("system", "audit_retention")
                audit(
                    conn, tenant_id, now, actor, "audit.expired", detail=f"{gone} before {before}"
                )
                done.append(Expired(tenant_id, before, int(gone)))
    return done


def expire_idempotency_keys(platform_db: Engine, now: datetime) -> int:
    """Forget every tenant's Idempotency-Keys older than a day (not audited: a key is a
    cache of a reply, not a record of the books)."""
    gone = 0
    for tenant_id in subscriptions.every_tenant(platform_db):
        with tenancy.as_tenant(tenant_id), platform_db.begin() as conn:
            gone += idempotency.expire(conn, tenant_id, now)
    return gone


def _delete_rows(conn: Connection, tenant_id: uuid.UUID) -> int:
    rows = 0
    for table in reversed(m.tenant_tables()):  # children before their parents
        rows += conn.execute(delete(table).where(table.c.tenant_id == tenant_id)).rowcount
    rows += conn.execute(delete(T["tenant"]).where(T["tenant"].c.id == tenant_id)).rowcount
    return rows


def _delete_orphan_users(platform_db: Engine, members: list[uuid.UUID]) -> int:
    """The purged tenant's members who belong to no other tenant (their memberships
    went with the tenant)."""
    if not members:
        return 0
    u, ms = T["app_user"], T["membership"]
    with platform_db.begin() as conn:
        still_member = exists().where(ms.c.user_id == u.c.id)
        orphans = conn.scalar(select(func.count()).where(u.c.id.in_(members), ~still_member))
        conn.execute(delete(u).where(u.c.id.in_(members), ~still_member))
    return int(orphans or 0)
