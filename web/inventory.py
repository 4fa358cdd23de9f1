"""Inventory: on hand per item, location and lot with value; an item's stock ledger;
and the source of a move or journal line: its edge event, device and operator."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cloud_api.domain.money import ZERO
from cloud_api.reporting import queue, stock
from web.common import db, parse_uuid
from web.reasons import reason_for, rejection_for
from web.security import PageError, PrincipalDep
from web.templating import render


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _inventory(r)
    return r


def _inventory(r: APIRouter) -> None:
    @r.get("/inventory", response_class=HTMLResponse)
    def inventory(request: Request, who: PrincipalDep, q: str = "") -> HTMLResponse:
        search = q.strip()[:64]
        with db(request).connect() as conn:
            rows = stock.positions(conn, who.tenant.id, search)
        total = sum((p.value for p in rows), ZERO)
        return render(request, "inventory.html", who, rows=rows, q=search, total=total)

    @r.get("/inventory/{item_code}", response_class=HTMLResponse)
    def item_page(
        request: Request, item_code: str, who: PrincipalDep, page: str = "0"
    ) -> HTMLResponse:
        number = int(page) if page.isdigit() and len(page) < 7 else 0
        with db(request).connect() as conn:
            item = stock.item_by_code(conn, who.tenant.id, item_code[:64])
            if item is None:
                raise PageError(404, "Not found", item_code[:64])
            here = stock.positions(conn, who.tenant.id, item_id=item["id"])
            moves, more = stock.stock_ledger_page(conn, who.tenant.id, item["id"], number)
        return render(
            request,
            "item.html",
            who,
            item=item,
            positions=here,
            moves=moves,
            page=number,
            more=more,
        )

    @r.get("/events/{event_id}", response_class=HTMLResponse)
    def event_page(request: Request, event_id: str, who: PrincipalDep) -> HTMLResponse:
        key = parse_uuid(event_id)
        with db(request).connect() as conn:
            found = queue.event(conn, who.tenant.id, key)
            if found is None:
                raise PageError(404, "Not found", event_id[:80])
            lines = queue.entry_lines(conn, who.tenant.id, key)
        payload = json.dumps(json.loads(found["payload"]), indent=2, ensure_ascii=False)
        return render(
            request,
            "event.html",
            who,
            event=found,
            payload=payload,
            lines=lines,
            reason=(
                reason_for(found["code"])
                if found["status"] == "held"
                else rejection_for(found["code"])
                if found["status"] == "rejected"
                else None
            ),
        )
