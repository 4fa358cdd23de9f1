"""Creating a tenant: its row, an API key, the default chart, categories and locations."""

import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Conflict, Unauthorized
from cloud_api.services import subscriptions
from cloud_api.services.audit import audit
from cloud_api.services.chart import DEFAULT_ACCOUNTS, DEFAULT_CATEGORIES, DEFAULT_LOCATIONS
from cloud_api.services.store import TenantContext
from tenant import subscriptions as subs
from tenant.api_keys import hash_api_key, new_api_key

T = m.SQLModel.metadata.tables


@dataclass(frozen=True)
class NewTenant:
    id: uuid.UUID
    slug: str
    api_key: str


def create_tenant(
    db: Engine,
    slug: str,
    name: str,
    pepper: str,
    currency: str = "CNY",
    timezone: str = "Asia/Shanghai",
    allow_negative_stock: bool = False,
    plan_code: str = "pro",
    trial: bool = False,
) -> NewTenant:
    """An operator's `erp tenant create` starts the subscription active on `plan_code`;
    the self-service sign-up (`trial=True`) starts a 14-day trial of it."""
    key = new_api_key()
    tenant_id = uuid.uuid4()
    with db.begin() as conn:
        taken = select(T["tenant"].c.id).where(T["tenant"].c.slug == slug)
        if conn.scalar(taken.execution_options(cross_tenant=True)):  # slugs are global
            raise Conflict("tenant_exists", f"a tenant with slug {slug!r} already exists")
        tenancy.switch(conn, tenant_id)
        conn.execute(
            insert(T["tenant"]).values(
                id=tenant_id,
                slug=slug,
                name=name,
                currency=currency,
                timezone=timezone,
                allow_negative_stock=allow_negative_stock,
                api_key_hash=hash_api_key(key, pepper),
                created_at=now_utc(),
            )
        )
        seed_tenant(conn, tenant_id)
        now = now_utc()
        sub, _ = (
            subs.start_trial(plan_code, now)
            if trial
            else subs.record_payment(subs.start_checkout(plan_code, now)[0], now)
        )
        subscriptions.save(conn, tenant_id, sub)
        conn.execute(insert(T["tenant_directory"]).values(tenant_id=tenant_id, cell="default"))
    return NewTenant(tenant_id, slug, key)


def seed_tenant(conn: Connection, tenant_id: uuid.UUID) -> None:
    conn.execute(
        insert(T["account"]),
        [
            {
                "tenant_id": tenant_id,
                "code": c,
                "name_zh": zh,
                "name_en": en,
                "kind": k,
                "normal_side": side,
            }
            for c, zh, en, k, side in DEFAULT_ACCOUNTS
        ],
    )
    conn.execute(
        insert(T["item_category"]),
        [
            {
                "tenant_id": tenant_id,
                "code": c,
                "name": n,
                "stock_account": s,
                "cogs_account": cg,
                "revenue_account": r,
            }
            for c, n, s, cg, r in DEFAULT_CATEGORIES
        ],
    )
    conn.execute(
        insert(T["location"]),
        [
            {
                "tenant_id": tenant_id,
                "id": uuid.uuid4(),
                "code": c,
                "name": n,
                "kind": k,
                "parent_id": None,
            }
            for c, n, k in DEFAULT_LOCATIONS
        ],
    )


_CONTEXT_COLUMNS = [
    T["tenant"].c.id,
    T["tenant"].c.allow_negative_stock,
    T["tenant"].c.timezone,
    T["tenant"].c.allow_issue_from_reserved,
    T["tenant"].c.completion_tolerance,
    T["tenant"].c.variance_policy,
    T["tenant"].c.reversal_sod_waived,
]


def _context(row: Any) -> TenantContext:
    return TenantContext(
        row.id,
        row.allow_negative_stock,
        row.timezone,
        row.allow_issue_from_reserved,
        row.completion_tolerance,
        row.variance_policy,
        row.reversal_sod_waived,
    )


def rotate_api_key(
    conn: Connection, tenant_id: uuid.UUID, pepper: str, now: datetime, by: tuple[str, str]
) -> str:
    """A new tenant API key, returned once; the old one stops working at once (a key
    shown at sign-up, or leaked, can be replaced). Audited."""
    key = new_api_key()
    t = T["tenant"]
    conn.execute(
        update(t).where(t.c.id == tenant_id).values(api_key_hash=hash_api_key(key, pepper))
    )
    audit(conn, tenant_id, now, by, "tenant.api_key_rotated")
    return key


# a revoked tenant key's stored "hash": not hex, so no key ever hashes to it
REVOKED_KEY = "revoked:"


def revoke_api_key(
    conn: Connection, tenant_id: uuid.UUID, now: datetime, by: tuple[str, str]
) -> None:
    """No tenant API key at all from now on: integrations use scoped tokens (the key
    acts for the owner, like a payment provider's secret key). Replacing it gives the
    tenant one again. Audited."""
    t = T["tenant"]
    revoked = REVOKED_KEY + secrets.token_hex(28)  # unique, as the column wants
    conn.execute(update(t).where(t.c.id == tenant_id).values(api_key_hash=revoked))
    audit(conn, tenant_id, now, by, "tenant.api_key_revoked")


def has_api_key(conn: Connection, tenant_id: uuid.UUID) -> bool:
    t = T["tenant"]
    stored = conn.scalar(select(t.c.api_key_hash).where(t.c.id == tenant_id))
    return stored is not None and not stored.startswith(REVOKED_KEY)


def tenant_for_key(db: Engine, api_key: str, pepper: str) -> TenantContext:
    t = T["tenant"]
    with db.connect() as conn:
        row = conn.execute(
            select(*_CONTEXT_COLUMNS)
            .where(t.c.api_key_hash == hash_api_key(api_key, pepper))
            .execution_options(cross_tenant=True)  # the credential names the tenant
        ).first()
    if row is None:
        raise Unauthorized("invalid_api_key", "the API key is not valid")
    return _context(row)


def tenant_by_id(conn: Connection, tenant_id: uuid.UUID) -> TenantContext:
    row = conn.execute(select(*_CONTEXT_COLUMNS).where(T["tenant"].c.id == tenant_id)).first()
    if row is None:
        raise Unauthorized("invalid_api_key", "the API key is not valid")
    return _context(row)


def tenant_by_slug(db: Engine, slug: str) -> TenantContext:
    t = T["tenant"]
    with db.connect() as conn:
        query = select(*_CONTEXT_COLUMNS).where(t.c.slug == slug)
        row = conn.execute(query.execution_options(cross_tenant=True)).first()  # operators
    if row is None:
        raise Unauthorized("unknown_tenant", f"no tenant {slug!r}")
    return _context(row)


def change_settings(
    conn: Connection,
    tenant: TenantContext,
    values: dict[str, Any],
    now: datetime,
    by: tuple[str, str],
    ip: str | None,
) -> TenantContext:
    """Change the tenant's production and costing settings (those given), audited;
    the tenant as it is now. Nothing given: nothing written."""
    if not values:
        return tenant
    t = T["tenant"]
    conn.execute(update(t).where(t.c.id == tenant.id).values(**values))
    changed = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
    audit(conn, tenant.id, now, by, "settings.change", changed, ip)
    return replace(tenant, **values)
