"""The tenant's subscription: its state, cancelling it, and the invoices."""

from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api import schemas
from cloud_api.api.deps import DbDep, PrincipalDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.devices import (
    InvoicePublic,
    SubscriptionCanceled,
    SubscriptionPublic,
)
from cloud_api.domain.clock import now_utc
from cloud_api.services import billing, lifecycle, subscriptions

router = APIRouter(route_class=IdempotentRoute)


@router.get("/subscription", response_model=SubscriptionPublic, dependencies=[Requires("read")])
def read_subscription(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    with db.connect() as conn:
        return subscriptions.describe(conn, tenant, now_utc())


@router.post(
    "/subscription/cancel",
    response_model=SubscriptionCanceled,
    dependencies=[Requires("billing", billing=True)],
)
def cancel_subscription(
    body: schemas.SubscriptionCancel, principal: PrincipalDep, db: DbDep
) -> dict[str, Any]:
    """The owner cancels the subscription: read-only for 30 days (export works),
    then locked, purged at 90 days; every device key is revoked at once. `confirm`
    must be the company's slug (422 confirmation_mismatch, nothing changed)."""
    user_id = principal.signed_in("cancels")
    with db.begin() as conn:
        sub, revoked = lifecycle.cancel(conn, principal.tenant.id, user_id, body.confirm, now_utc())
    return {"state": sub.state, "devices_revoked": revoked}


@router.get(
    "/subscription/invoices",
    response_model=list[InvoicePublic],
    dependencies=[Requires("users.manage")],
)
def subscription_invoices(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    """What the platform billed: the bank details and invoice number to quote are
    on each; a transfer is recorded by an operator (`erp tenant record-payment`)."""
    with db.connect() as conn:
        rows, total = page.slice(billing.invoices(conn, tenant.id))
    return paged(request, response, page, rows, total)
