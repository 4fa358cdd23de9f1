"""Subscription invoices and payments, kept in the database; the rules (prices, when
to invoice, the payment port and its manual adapter) are pure, in tenant/billing.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from cloud_api.db import models as m
from cloud_api.errors import Conflict, NotFound, Rejected
from cloud_api.services import subscriptions
from cloud_api.services.audit import audit
from tenant import billing
from tenant import subscriptions as subs
from tenant.billing import ManualBankTransfer, PaymentProvider

T = m.SQLModel.metadata.tables


def _period_end(sub: subs.Subscription) -> datetime | None:
    if sub.state == subs.TRIALING:
        return sub.trial_ends_at
    if sub.state in (subs.ACTIVE, subs.PAST_DUE):
        return sub.current_period_end
    return None


def issue_due_invoice(conn: Connection, tenant_id: Any, now: datetime) -> str | None:
    """Issue the invoice for the next period once its time has come (once per period);
    its number, or None."""
    sub = subscriptions.load(conn, tenant_id)
    draft = billing.next_invoice(sub.plan_code, _period_end(sub), now)
    if draft is None or draft.net == 0:
        return None
    inv = T["subscription_invoice"]
    if conn.scalar(
        select(inv.c.id).where(
            inv.c.tenant_id == tenant_id, inv.c.period_start == draft.period_start
        )
    ):
        return None
    count = conn.scalar(select(func.count()).where(inv.c.tenant_id == tenant_id)) or 0
    number = f"INV-{draft.period_start:%Y%m}-{count + 1:04d}"
    conn.execute(
        insert(inv).values(
            tenant_id=tenant_id,
            id=uuid.uuid4(),
            number=number,
            plan_code=draft.plan_code,
            period_start=draft.period_start,
            period_end=draft.period_end,
            net=draft.net,
            vat=draft.vat,
            issued_at=now,
            due_at=draft.due_at,
        )
    )
    audit(conn, tenant_id, now, ("system", "billing"), "invoice.issue", number)
    return number


def fail_overdue(conn: Connection, tenant_id: Any, now: datetime) -> bool:
    """An active subscription whose renewal invoice is open at its due date: past due."""
    inv = T["subscription_invoice"]
    overdue = conn.scalar(
        select(inv.c.number).where(
            inv.c.tenant_id == tenant_id, inv.c.status == "open", inv.c.due_at <= now
        )
    )
    sub = subscriptions.load(conn, tenant_id)
    if overdue is None or sub.state != subs.ACTIVE:
        return False
    failed, _ = subs.renewal_failed(sub, now)
    subscriptions.save(conn, tenant_id, failed)
    audit(conn, tenant_id, now, ("system", "billing"), "invoice.overdue", overdue)
    return True


def record_payment(
    conn: Connection,
    tenant_id: Any,
    number: str,
    reference: str,
    now: datetime,
    provider: PaymentProvider | None = None,
) -> subs.Subscription:
    """An operator records a payment received for an invoice: the invoice is paid and
    the subscription active for the invoiced period."""
    inv = T["subscription_invoice"]
    row = conn.execute(
        select(inv).where(inv.c.tenant_id == tenant_id, inv.c.number == number)
    ).first()
    if row is None:
        raise NotFound("unknown_invoice", f"no invoice {number} for this tenant")
    if row.status != "open":
        raise Conflict("invoice_not_open", f"invoice {number} is {row.status}")
    result = (provider or ManualBankTransfer()).confirm(number, row.net + row.vat, reference)
    if not result.paid:
        raise Rejected("payment_not_confirmed", result.message)
    conn.execute(
        update(inv)
        .where(inv.c.tenant_id == tenant_id, inv.c.id == row.id)
        .values(status="paid", paid_at=now, payment_reference=result.reference)
    )
    sub, _ = subs.record_payment(
        subscriptions.load(conn, tenant_id), now, period_start=row.period_start
    )
    subscriptions.save(conn, tenant_id, sub)
    audit(conn, tenant_id, now, ("system", "operator"), "invoice.paid", number, detail=reference)
    return sub


def invoices(conn: Connection, tenant_id: Any) -> list[dict[str, Any]]:
    inv = T["subscription_invoice"]
    rows = conn.execute(
        select(inv).where(inv.c.tenant_id == tenant_id).order_by(inv.c.issued_at)
    ).mappings()
    return [
        {
            **{k: v for k, v in row.items() if k not in ("tenant_id", "id")},
            "total": row["net"] + row["vat"],
        }
        for row in rows
    ]
