"""The exception queue: held events (they may post once something else happens) and
rejected ones (wrong as the master data stands), each with why, in plain words, and
the fix; re-post, or void with a reason. Nothing leaves it any other way. Events too
malformed to read stay parked on their edge, which reports how many."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud_api.reporting import devices as device_reads
from cloud_api.reporting import queue
from contract import ResultStatus
from web.common import actor_of, db, notice, parse_uuid, service_call
from web.reasons import reason_for, rejection_for
from web.security import PageError, PrincipalDep, Write, writer
from web.templating import render

VOID_REASON_MIN = 3
SHOWN = 200  # of each list, the oldest first; the page says how many more wait
StockPost = Annotated[Write, Depends(writer("events.post"))]


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _exceptions(r)
    return r


def _exceptions(r: APIRouter) -> None:
    @r.get("/exceptions", response_class=HTMLResponse)
    def exception_queue(request: Request, who: PrincipalDep) -> HTMLResponse:
        with db(request).connect() as conn:
            waiting = queue.open_exceptions(conn, who.tenant.id)
            held = queue.exceptions(conn, who.tenant.id, "held", limit=SHOWN)
            rejected = queue.exceptions(conn, who.tenant.id, "rejected", limit=SHOWN)
            voided = queue.exceptions(conn, who.tenant.id, "voided", limit=50)
            parked = device_reads.parked_on_edges(conn, who.tenant.id)
        for row in held:
            row["reason"] = reason_for(row["code"])
        for row in rejected:
            row["reason"] = rejection_for(row["code"])
        return render(
            request,
            "exceptions.html",
            who,
            held=held,
            rejected=rejected,
            more_held=waiting["held"] - len(held),
            more_rejected=waiting["rejected"] - len(rejected),
            parked=parked,
            voided=voided,
            notice=notice(request),
            code=request.query_params.get("code", "")[:64],
        )

    @r.post("/exceptions/{event_id}/repost")
    def repost(request: Request, event_id: str, write: StockPost) -> Response:
        key = parse_uuid(event_id)
        ingest, who = request.app.state.ingest, write.who
        result = service_call(lambda: ingest.repost(who.tenant, key, actor_of(who)))
        if result.status == ResultStatus.posted:
            return RedirectResponse("/exceptions?notice=posted", status_code=303)
        still = "still_rejected" if result.status == ResultStatus.rejected else "still_held"
        return RedirectResponse(
            f"/exceptions?notice={still}&code={quote(result.code or '')}", status_code=303
        )

    @r.post("/exceptions/{event_id}/void", response_class=HTMLResponse)
    def void(request: Request, event_id: str, write: StockPost) -> Response:
        key = parse_uuid(event_id)
        reason = write.field("reason", 500)
        if len(reason) < VOID_REASON_MIN:
            raise PageError(422, "Give a reason to void the event", "")
        ingest, who = request.app.state.ingest, write.who
        service_call(lambda: ingest.void(who.tenant, key, reason, actor_of(who)))
        return RedirectResponse("/exceptions?notice=voided", status_code=303)
