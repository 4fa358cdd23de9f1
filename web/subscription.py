"""The subscription: plan, state, what is used against the plan's limits (events
this month, users, devices) and, for the owner, the invoices."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cloud_api.domain.clock import now_utc
from cloud_api.services import billing, subscriptions
from tenant.rbac import can
from web import queries
from web.common import db
from web.security import PrincipalDep
from web.templating import render


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


INVOICES_ACTION = "users.manage"  # cloud_api/api/access.py READ_ACTIONS: the owner's
INVOICE_STATUSES = {"open": _("Not paid yet"), "paid": _("Paid"), "void": _("Void")}


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
        billing_allowed = can(who.role, INVOICES_ACTION)
        with db(request).connect() as conn:
            described = subscriptions.describe(conn, who.tenant, now_utc())
            users = queries.member_count(conn, who.tenant.id)
            devices = queries.live_devices(conn, who.tenant.id)
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
            sub=described,
            plan_name=limits["name"],
            meters=meters,
            invoices=invoices,
            billing_allowed=billing_allowed,
            INVOICE_STATUSES=INVOICE_STATUSES,
        )

    return r
