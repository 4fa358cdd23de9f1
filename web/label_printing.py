"""Labels: print sheets of item, location, lot, work order and operator badge labels
(PDF, PNG or SVG on A4) from the tenant's master data, drawn by the edge's label
renderer (edge_agent/labels).

Printing is a read: it writes nothing, so every role may print, a viewer included,
and so may a paused tenant (tenant/rbac.py's `read`). The form is therefore a GET,
without a CSRF token, and the sheet is a download. Only the tenant's own codes are
printed: any other code, another tenant's included, answers 404."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from edge_agent.labels.errors import LabelError
from edge_agent.labels.kinds import Label, label_from_fields
from web import label_sheets, queries
from web.common import db
from web.security import PageError, PrincipalDep
from web.templating import render, translate

COPIES_MAX = 100
LABELS_MAX = 500  # codes × copies on one sheet
CODE_MAX = 200
NAME_MAX = 60  # edge_agent/labels/kinds.py TEXT_MAX_CHARS
LOT_KEY = "|"  # item code | lot: the form's value for a lot


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


KINDS = {
    "item": _("Items"),
    "location": _("Locations"),
    "lot": _("Lots"),
    "work_order": _("Work orders"),
    "badge": _("Operator badges"),
}
FORMAT_NAMES = {"pdf": _("PDF, all pages"), "png": _("PNG, one page"), "svg": _("SVG, one page")}
NO_GTIN = _("the item has no GTIN")
NO_EXPIRY = _("no expiry date")
NONE_ON_HAND = _("none on hand")


@dataclass(frozen=True)
class Choice:
    """A code the form offers: what it sends, what it shows, the label's fields (for
    label_from_fields), or why it cannot be printed (a message id)."""

    key: str
    text: str
    fields: dict[str, str] | None
    problem: str | None = None


def _name(text: str | None, fallback: str) -> str:
    """One line of at most NAME_MAX characters, as a label's text must be."""
    return " ".join((text or "").split())[:NAME_MAX].strip() or fallback


def _number(value: Any) -> str:
    return format(Decimal(value or 0).normalize(), "f")


def _items(conn: Connection, tenant_id: Any) -> list[Choice]:
    out = []
    for r in queries.label_items(conn, tenant_id):
        fields = {"code": r.code, "name": _name(r.name, r.code)}
        if r.gtin:
            fields["gtin"] = r.gtin
        out.append(Choice(r.code, f"{r.code} · {r.name}", fields))
    return out


def _locations(conn: Connection, tenant_id: Any) -> list[Choice]:
    return [
        Choice(r.code, f"{r.code} · {r.name}", {"code": r.code})
        for r in queries.label_locations(conn, tenant_id)
    ]


def _work_orders(conn: Connection, tenant_id: Any) -> list[Choice]:
    out = []
    for r in queries.label_work_orders(conn, tenant_id):
        quantity = _number(r.planned_quantity)
        fields = {"code": r.code, "item_code": r.item_code, "quantity": quantity}
        out.append(Choice(r.code, f"{r.code} · {r.item_code} × {quantity}", fields))
    return out


def _badges(conn: Connection, tenant_id: Any) -> list[Choice]:
    return [
        Choice(
            r.code, f"{r.code} · {r.name}", {"operator_code": r.code, "name": _name(r.name, r.code)}
        )
        for r in queries.label_operators(conn, tenant_id)
    ]


def _lots(conn: Connection, tenant_id: Any) -> list[Choice]:
    out = []
    for r in queries.label_lots(conn, tenant_id):
        key, quantity = f"{r.item_code}{LOT_KEY}{r.lot}", Decimal(r.quantity or 0)
        text = f"{r.item_code} · {r.lot}"
        problem = _lot_problem(r, quantity)
        if problem:
            out.append(Choice(key, text, None, problem))
            continue
        fields = {
            "gtin": r.gtin,
            "lot": r.lot,
            "expiry": str(r.expiry)[:10],
            "quantity": _number(quantity),
            "unit": "KG" if r.unit.upper() == "KG" else "EA",
        }
        out.append(Choice(key, f"{text} · {_number(quantity)} {r.unit}", fields))
    return out


def _lot_problem(row: Any, quantity: Decimal) -> str | None:
    """Why a lot label cannot be made: its GS1-128 needs a GTIN, an expiry and a
    quantity (edge_agent/labels/kinds.py LotLabel)."""
    if not row.gtin:
        return NO_GTIN
    if row.expiry is None:
        return NO_EXPIRY
    return NONE_ON_HAND if quantity <= 0 else None


CHOICES = {
    "item": _items,
    "location": _locations,
    "lot": _lots,
    "work_order": _work_orders,
    "badge": _badges,
}


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _pages(r)
    return r


def _kind(text: str) -> str:
    if text not in KINDS:
        raise PageError(404, "No such label kind", text[:32])
    return text


def _pages(r: APIRouter) -> None:
    @r.get("/labels", response_class=HTMLResponse)
    def label_form(request: Request, who: PrincipalDep, kind: str = "item") -> HTMLResponse:
        chosen = _kind(kind)
        with db(request).connect() as conn:
            choices = CHOICES[chosen](conn, who.tenant.id)
        return render(
            request,
            "labels.html",
            who,
            kind=chosen,
            choices=choices,
            KINDS=KINDS,
            FORMAT_NAMES=FORMAT_NAMES,
            copies_max=COPIES_MAX,
        )

    @r.get("/labels/sheet")
    def label_sheet(request: Request, who: PrincipalDep) -> Response:
        params = request.query_params
        kind = _kind(params.get("kind", ""))
        fmt, copies = _format(params.get("format", "")), _copies(params.get("copies", "1"))
        codes = list(dict.fromkeys(c[:CODE_MAX] for c in params.getlist("code")))
        if not codes:
            raise PageError(422, "Choose at least one code", "")
        if len(codes) * copies > LABELS_MAX:
            raise PageError(422, "Too many labels for one sheet", f"≤ {LABELS_MAX}")
        with db(request).connect() as conn:
            offered = {c.key: c for c in CHOICES[kind](conn, who.tenant.id)}
        labels = [_label(request, kind, offered, code) for code in codes]
        try:
            data = label_sheets.render_sheet(labels, copies, fmt)
        except label_sheets.SheetTooLong as error:
            raise PageError(
                422, "More labels than one page holds: choose PDF", str(error)
            ) from error
        filename = f"labels-{kind}.{fmt}"
        return Response(
            data,
            media_type=label_sheets.MEDIA_TYPES[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _format(text: str) -> label_sheets.SheetFormat:
    for fmt in label_sheets.FORMATS:
        if text == fmt:
            return fmt
    raise PageError(422, "Choose PDF, PNG or SVG", text[:16])


def _copies(text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 3):
        raise PageError(422, "Copies must be a whole number from 1 to 100", text[:16])
    if not 1 <= int(digits) <= COPIES_MAX:
        raise PageError(422, "Copies must be a whole number from 1 to 100", text[:16])
    return int(digits)


def _label(request: Request, kind: str, offered: dict[str, Choice], code: str) -> Label:
    """The label of one of the tenant's codes: 404 for a code it does not have, 422
    for one it cannot print (and why)."""
    choice = offered.get(code)
    if choice is None:
        raise PageError(404, "Not found", code[:80])
    if choice.fields is None:
        why = translate(request, choice.problem) if choice.problem else ""
        raise PageError(422, "This label cannot be printed", f"{choice.text}: {why}")
    try:
        return label_from_fields(kind, choice.fields)
    except LabelError as error:
        raise PageError(422, "This label cannot be printed", error.message) from error
