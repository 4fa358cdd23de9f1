"""Production: the work orders with status, progress and shortages; one order's
components (reserved, issued, short) and its cost report (planned against actual
material, labour and overhead, variances, unit cost); release, close and cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud_api.domain.clock import now_utc
from cloud_api.domain.posting_rules import POSTABLE_STATUSES
from cloud_api.reporting import production as order_reads
from cloud_api.services import work_order_cost, work_orders
from contract import ResultStatus
from web.common import actor_of, db, notice, service_call
from web.security import PageError, PrincipalDep, Write, writer
from web.templating import render

CODE_MAX = 64
CLOSE_REASON_MAX = 200
ProductionWrite = Annotated[Write, Depends(writer("production.write"))]


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


ORDER_STATUSES = {
    "draft": _("Draft"),
    "released": _("Released"),
    "in_progress": _("In progress"),
    "completed": _("Completed"),
    "closed": _("Closed"),
    "cancelled": _("Cancelled"),
}


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _pages(r)
    _actions(r)
    return r


def _pages(r: APIRouter) -> None:
    @r.get("/production", response_class=HTMLResponse)
    def order_list(request: Request, who: PrincipalDep) -> HTMLResponse:
        with db(request).connect() as conn:
            orders = order_reads.work_orders(conn, who.tenant.id)
        return render(request, "production.html", who, orders=orders, ORDER_STATUSES=ORDER_STATUSES)

    @r.get("/production/{code}", response_class=HTMLResponse)
    def order_page(request: Request, code: str, who: PrincipalDep) -> HTMLResponse:
        def read() -> tuple[dict[str, Any], dict[str, Any]]:
            with db(request).connect() as conn:
                if conn.dialect.name == "postgresql":  # one snapshot: the figures add up
                    conn.execution_options(isolation_level="REPEATABLE READ")
                order = work_orders.read(conn, who.tenant, code[:CODE_MAX])
                return order, work_order_cost.cost_report(conn, who.tenant, code[:CODE_MAX])

        order, cost = service_call(read)
        return render(
            request,
            "work_order.html",
            who,
            order=order,
            cost=cost,
            notice=notice(request),
            ORDER_STATUSES=ORDER_STATUSES,
            can_close=order["status"] in POSTABLE_STATUSES,
        )


def _actions(r: APIRouter) -> None:
    @r.post("/production/{code}/release")
    def release(request: Request, code: str, write: ProductionWrite) -> Response:
        allow = write.field("allow_shortages") == "1"

        def call() -> None:
            with db(request).begin() as conn:
                work_orders.release(conn, write.who.tenant, code[:CODE_MAX], allow)

        service_call(call)
        return _back(code, "released")

    @r.post("/production/{code}/cancel")
    def cancel(request: Request, code: str, write: ProductionWrite) -> Response:
        def call() -> None:
            with db(request).begin() as conn:
                work_orders.cancel(conn, write.who.tenant, code[:CODE_MAX])

        service_call(call)
        return _back(code, "cancelled")

    @r.post("/production/{code}/close")
    def close(request: Request, code: str, write: ProductionWrite) -> Response:
        """Posts a `work_order_close` event through the ingest, as the JSON route does:
        the residual WIP is settled under the tenant's variance policy."""
        code = code[:CODE_MAX]
        with db(request).connect() as conn:
            status = service_call(lambda: work_orders.status_of(conn, write.who.tenant, code))
        if status not in POSTABLE_STATUSES:
            raise PageError(409, "Not done", f"{code}: {status}")
        event = {
            "event_id": str(uuid.uuid4()),
            "device_id": "portal",
            "seq": 0,
            "type": "work_order_close",
            "occurred_at": now_utc().isoformat(),
            "payload": {"work_order": code, "reason": write.field("reason", CLOSE_REASON_MAX)},
        }
        ingest = request.app.state.ingest
        (result,) = service_call(
            lambda: ingest.ingest(write.who.tenant, [event], actor=actor_of(write.who))
        )
        if result.status != ResultStatus.posted:
            raise PageError(409, "Not done", result.message or result.code or "")
        return _back(code, "closed")


def _back(code: str, what: str) -> Response:
    return RedirectResponse(f"/production/{quote(code, safe='')}?notice={what}", status_code=303)
