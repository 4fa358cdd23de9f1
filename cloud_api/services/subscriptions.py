"""The tenant's subscription and usage, kept in the database; the rules are pure, in
tenant/subscriptions.py, tenant/plans.py and tenant/metering.py."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.errors import ErpError
from cloud_api.services.audit import audit
from cloud_api.services.store import TenantContext, upsert
from tenant import metering
from tenant import subscriptions as subs

T = m.SQLModel.metadata.tables
FIELDS = [f.name for f in dataclasses.fields(subs.Subscription)]


class Refused(ErpError):
    """What the tenant's subscription, plan or quota does not allow now; with the
    seconds after which to try again (the Retry-After header) when there are some."""

    def __init__(
        self, status: int, code: str, message: str, retry_after_s: int | None = None
    ) -> None:
        super().__init__(code, message)
        self.status = status
        self.retry_after_s = retry_after_s


def load(conn: Connection, tenant_id: Any) -> subs.Subscription:
    t = T["subscription"]
    row = conn.execute(select(t).where(t.c.tenant_id == tenant_id)).mappings().first()
    if row is None:
        raise ErpError("no_subscription", "the tenant has no subscription")
    return subs.Subscription(**{name: row[name] for name in FIELDS})


def save(conn: Connection, tenant_id: Any, sub: subs.Subscription) -> None:
    upsert(
        conn,
        T["subscription"],
        [{"tenant_id": tenant_id, **{name: getattr(sub, name) for name in FIELDS}}],
        ["tenant_id"],
    )


def check_ingest(conn: Connection, tenant: TenantContext, now: datetime) -> None:
    """May a batch of events be posted now? The subscription must allow ingest (else
    402/403, with Retry-After while unpaid or paused) and the monthly quota must not be
    spent (soft: the plan's events + 10 %, then 429 quota_exceeded until next month)."""
    sub = load(conn, tenant.id)
    _raise_unless(subs.allows(sub, "device_ingest", now=now))
    used = used_events(conn, tenant.id, now)
    _raise_unless(metering.admit(used, subs.effective_plan(sub), now))


def gate_portal(
    conn: Connection,
    tenant: TenantContext,
    write: bool,
    role: str,
    now: datetime,
    billing: bool = False,
) -> None:
    """A portal user's request under the subscription: reads (and, for a suspended
    tenant, only the owner's) or writes, per SAAS.md's table; `billing` for what the
    table's "read + billing" still allows an unpaid or paused tenant (cancelling)."""
    action: subs.Action = "billing" if billing else "portal_write" if write else "portal_read"
    _raise_unless(subs.allows(load(conn, tenant.id), action, now=now, role=role))


def gate_login(conn: Connection, tenant_id: Any, role: str | None, now: datetime) -> None:
    """Signing in is refused where the portal would be: a locked canceled tenant for
    everyone, a suspended one for all but the owner (a `role` of None, no membership
    row found, is not the owner)."""
    _raise_unless(subs.allows(load(conn, tenant_id), "portal_read", now=now, role=role))


def _raise_unless(decision: subs.Decision) -> None:
    if not decision.ok:
        raise Refused(decision.http_status, decision.code, decision.message, decision.retry_after_s)


def used_events(conn: Connection, tenant_id: Any, now: datetime) -> int:
    u = T["usage_counter"]
    found = conn.scalar(
        select(u.c.events).where(u.c.tenant_id == tenant_id, u.c.month == metering.month_key(now))
    )
    return int(found or 0)


def count_posted(conn: Connection, tenant_id: Any, posted: int, now: datetime) -> None:
    """Add newly posted events to this month's count (an event id posts once, so a
    retry or a duplicate is never counted twice)."""
    if posted <= 0:
        return
    u = T["usage_counter"]
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(u).values(tenant_id=tenant_id, month=metering.month_key(now), events=posted)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "month"], set_={"events": u.c.events + posted}
        )
    )


def plan_of(conn: Connection, tenant_id: Any) -> Any:
    return subs.effective_plan(load(conn, tenant_id))


def describe(conn: Connection, tenant: TenantContext, now: datetime) -> dict[str, Any]:
    sub, _ = subs.advance(load(conn, tenant.id), now)
    limits = subs.effective_plan(sub)  # a trial's own limits until it is paid
    return {
        "state": sub.state,
        "plan": sub.plan_code,
        "banner": subs.banner(sub, now),
        "trial_ends_at": sub.trial_ends_at,
        "current_period_end": sub.current_period_end,
        "events_this_month": used_events(conn, tenant.id, now),
        "limits": dataclasses.asdict(limits),
    }


def every_tenant(db: Engine) -> list[Any]:
    """Every tenant with a subscription, in id order, for the scheduled jobs that visit
    each in turn (erp_platform reads subscriptions across tenants)."""
    s = T["subscription"]
    with db.connect() as conn:
        every = select(s.c.tenant_id).order_by(s.c.tenant_id)
        return list(conn.scalars(every.execution_options(cross_tenant=True)))


def tick_all(db: Engine, now: datetime) -> list[tuple[Any, subs.Transition]]:
    """The scheduled job: issue the renewal invoices that are due, mark the active
    subscriptions whose invoice is overdue past due, and apply the time-driven
    transitions (trial end, grace expiry, checkout expiry, the canceled lock and purge
    dates) to every tenant, each in its own transaction, auditing each one. Requests
    apply the transitions lazily too (allows() advances first); this makes the stored
    state and the audit trail follow."""
    from cloud_api.services import billing  # billing reads subscriptions: not at the top

    done = []
    for tenant_id in every_tenant(db):
        with tenancy.as_tenant(tenant_id), db.begin() as conn:
            billing.issue_due_invoice(conn, tenant_id, now)
            billing.fail_overdue(conn, tenant_id, now)
            sub, moves = subs.advance(load(conn, tenant_id), now)
            if not moves:
                continue
            save(conn, tenant_id, sub)
            for move in moves:
                audit(
                    conn,
                    tenant_id,
                    move.at,
                    ("system", "subscription_tick"),
                    f"subscription.{move.reason}",
                    f"{move.from_state} -> {move.to_state}",
                )
                done.append((tenant_id, move))
    return done
