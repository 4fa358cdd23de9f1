"""The subscription: plan, state, what is used against the plan's limits (events
this month, users, devices) and, for the owner, the invoices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud_api.domain.clock import now_utc
from cloud_api.errors import ErpError
from cloud_api.reporting.devices import live_devices
from cloud_api.services import billing, lifecycle, subscriptions
from tenant import subscriptions as subs
from tenant.rbac import can
from web import queries
from web.common import db, notice
from web.security import Principal, PrincipalDep, Write, writer
from web.templating import render


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


# the owner's, as Requires("users.manage") on the API's invoices (api/routes/subscription.py)
INVOICES_ACTION = "users.manage"
INVOICE_STATUSES = {"open": _("Not paid yet"), "paid": _("Paid"), "void": _("Void")}
CANCELABLE = frozenset(state for state in subs.TRANSITIONS["canceled"] if state)
Billing = Annotated[Write, Depends(writer("billing"))]


@dataclass(frozen=True)
class Meter:
    name: str  # a message id
    element_id: str
    used: int
    limit: int | None  # None: no limit on the plan

    @property
    def over(self) -> bool:
        return self.limit is not None and self.used > self.limit


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/subscription", response_class=HTMLResponse)
    def subscription_page(request: Request, who: PrincipalDep) -> HTMLResponse:
        # a read: a paused tenant's owner still sees what to pay
        return _page(request, who)

    @r.post("/subscription/cancel", response_class=HTMLResponse)
    def cancel(request: Request, write: Billing) -> Response:
        """The owner cancels, typing the company's short name to confirm; a mismatch
        shows the page again with the reason, and nothing changes."""
        who = write.who
        try:
            with db(request).begin() as conn:
                lifecycle.cancel(
                    conn, who.tenant.id, who.user_id, write.field("confirm", 64), now_utc()
                )
        except (ErpError, subs.InvalidTransition) as error:
            status = error.status if isinstance(error, ErpError) else error.http_status
            return _page(request, who, status, cancel_error=error.message)
        return RedirectResponse("/subscription?notice=subscription_canceled", status_code=303)

    return r


def _page(request: Request, who: Principal, status: int = 200, **shown: Any) -> HTMLResponse:
    billing_allowed = can(who.role, INVOICES_ACTION)
    with db(request).connect() as conn:
        described = subscriptions.describe(conn, who.tenant, now_utc())
        users = queries.member_count(conn, who.tenant.id)
        devices = live_devices(conn, who.tenant.id)
        invoices = billing.invoices(conn, who.tenant.id) if billing_allowed else None
    limits = described["limits"]
    meters = [
        Meter(
            _("Events posted this month"),
            "meter-events",
            described["events_this_month"],
            limits["events_per_month"],
        ),
        Meter(_("Users"), "meter-users", users, limits["max_users"]),
        Meter(_("Devices"), "meter-devices", devices, limits["max_devices"]),
    ]
    return render(
        request,
        "subscription.html",
        who,
        status=status,
        sub=described,
        plan_name=limits["name"],
        meters=meters,
        invoices=invoices,
        billing_allowed=billing_allowed,
        cancelable=who.can("billing") and described["state"] in CANCELABLE,
        cancel_error=shown.get("cancel_error"),
        notice=notice(request),
        INVOICE_STATUSES=INVOICE_STATUSES,
    )
