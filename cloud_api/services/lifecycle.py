"""What the platform and the owner do to a tenant's subscription, with what must go
with it (SAAS.md's state table): a suspension (support, for abuse or a legal hold)
ends every portal session, an owner's cancellation revokes the device keys. The state
machine itself is pure, in tenant/subscriptions.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select

from cloud_api.db import models as m
from cloud_api.errors import Rejected
from cloud_api.services import devices, subscriptions, users
from cloud_api.services.audit import audit
from tenant import subscriptions as subs

T = m.SQLModel.metadata.tables
Step = Callable[[subs.Subscription], subs.Outcome]
SUPPORT = ("system", "erp-cli")  # an operator at the command line


def _move(
    conn: Connection,
    tenant_id: uuid.UUID,
    step: Step,
    actor: tuple[str, str],
    now: datetime,
    detail: str = "",
) -> subs.Subscription:
    """Apply `step` to the stored subscription, keep it and audit every move (those
    that fell due first, then the step's own). A move the state does not take: 409
    invalid_subscription_transition, nothing kept."""
    sub, moves = step(subscriptions.load(conn, tenant_id))
    subscriptions.save(conn, tenant_id, sub)
    for move in moves:
        audit(
            conn,
            tenant_id,
            move.at,
            actor,
            f"subscription.{move.reason}",
            f"{move.from_state} -> {move.to_state}",
            detail=detail,
        )
    return sub


def suspend(
    conn: Connection, tenant_id: uuid.UUID, reason: str, now: datetime
) -> tuple[subs.Subscription, int]:
    """Support suspends a tenant: its portal is the owner's only, its devices get 403
    tenant_suspended (their events wait in the edge outbox), and every portal session
    ends (the owner signs in again). Returns the subscription and the sessions ended."""
    reason = reason.strip()
    if not reason:
        raise Rejected("reason_required", "say why the tenant is suspended (audited)")
    sub = _move(
        conn, tenant_id, lambda s: subs.suspend(s, reason, now), SUPPORT, now, detail=reason
    )
    return sub, users.end_sessions(conn, tenant_id, now)


def unsuspend(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> subs.Subscription:
    """Back to the state it was suspended from (and what fell due meanwhile)."""
    return _move(conn, tenant_id, lambda s: subs.unsuspend(s, now), SUPPORT, now)


def cancel(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, confirm: str, now: datetime
) -> tuple[subs.Subscription, int]:
    """The owner cancels, confirming with the company's slug (else 422
    confirmation_mismatch): read-only for 30 days (export works), then locked, purged
    at 90 days; every device key is revoked at once, so no device posts again (the
    edge keeps what it has not sent). Returns the subscription and the devices
    revoked."""
    t = T["tenant"]
    if confirm.strip() != conn.scalar(select(t.c.slug).where(t.c.id == tenant_id)):
        raise Rejected("confirmation_mismatch", "type the company's short name to confirm")
    sub = _move(conn, tenant_id, lambda s: subs.cancel(s, now), ("user", str(user_id)), now)
    return sub, devices.revoke_all(conn, tenant_id, now, ("system", "subscription_cancel"))
