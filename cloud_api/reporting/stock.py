"""Stock read models: the stock value by role (raw materials, work in progress,
finished goods), the items below their safety stock, the positions per item and
location (with lots) and an item's stock ledger a page at a time. "Now" figures come from the
cached valuation pools and WIP balances, which the books-check proves equal to the
general ledger; which stock account is raw material comes from chart.account_roles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from cloud_api.db import models as m
from cloud_api.domain.money import ZERO
from cloud_api.reporting.chart import AccountRoles, account_roles

T = m.SQLModel.metadata.tables
LEDGER_PAGE_ROWS = 200


def _dec(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(value)


@dataclass(frozen=True)
class CategoryValue:
    code: str
    name: str
    stock_account: str
    value: Decimal


@dataclass(frozen=True)
class StockValue:
    """Stock at value. Invariant: raw + finished is the sum of by_category."""

    raw: Decimal
    wip: Decimal
    finished: Decimal
    by_category: list[CategoryValue]

    @property
    def total(self) -> Decimal:
        return self.raw + self.wip + self.finished


def category_values(conn: Connection, tenant_id: uuid.UUID) -> list[CategoryValue]:
    """The valuation pools' value per item category, by category code."""
    vp, item, cat = T["valuation_pool"], T["item"], T["item_category"]
    rows = conn.execute(
        select(cat.c.code, cat.c.name, cat.c.stock_account, func.sum(vp.c.value).label("v"))
        .select_from(vp)
        .join(item, and_(item.c.tenant_id == vp.c.tenant_id, item.c.id == vp.c.item_id))
        .join(cat, and_(cat.c.tenant_id == item.c.tenant_id, cat.c.code == item.c.category_code))
        .where(vp.c.tenant_id == tenant_id)
        .group_by(cat.c.code, cat.c.name, cat.c.stock_account)
        .order_by(cat.c.code)
    ).all()
    return [CategoryValue(r.code, r.name, r.stock_account, _dec(r.v)) for r in rows]


def split_by_role(categories: list[CategoryValue], wip: Decimal, roles: AccountRoles) -> StockValue:
    """Raw materials are the categories booked to a raw-material account of the
    tenant's chart, the rest finished and semi-finished goods. Pure."""
    raw = sum((c.value for c in categories if roles.is_raw_material(c.stock_account)), ZERO)
    total = sum((c.value for c in categories), ZERO)
    return StockValue(raw, wip, total - raw, categories)


def stock_value(conn: Connection, tenant_id: uuid.UUID) -> StockValue:
    """Stock at value from the valuation pools and WIP from the work orders' balances."""
    wb = T["wip_balance"]
    wip = _dec(conn.scalar(select(func.sum(wb.c.value)).where(wb.c.tenant_id == tenant_id)))
    return split_by_role(category_values(conn, tenant_id), wip, account_roles(conn, tenant_id))


@dataclass(frozen=True)
class Shortfall:
    item: str
    name: str
    on_hand: Decimal
    safety_stock: Decimal


def below_safety_stock(
    conn: Connection, tenant_id: uuid.UUID, limit: int = 20
) -> tuple[int, list[Shortfall]]:
    """Items whose stock in all warehouses (the valuation pools) is under their safety
    stock: how many, and the first `limit` of them by code."""
    item, vp = T["item"], T["valuation_pool"]
    on_hand = func.coalesce(func.sum(vp.c.quantity), 0)
    rows = conn.execute(
        select(item.c.code, item.c.name, item.c.safety_stock, func.sum(vp.c.quantity).label("q"))
        .select_from(item)
        .outerjoin(vp, and_(vp.c.tenant_id == item.c.tenant_id, vp.c.item_id == item.c.id))
        .where(item.c.tenant_id == tenant_id, item.c.safety_stock > 0)
        .group_by(item.c.id, item.c.code, item.c.name, item.c.safety_stock)
        .having(on_hand < item.c.safety_stock)
        .order_by(item.c.code)
    ).all()
    short = [Shortfall(r.code, r.name, _dec(r.q), _dec(r.safety_stock)) for r in rows]
    return len(short), short[:limit]


@dataclass(frozen=True)
class Position:
    item: str
    name: str
    unit: str
    location: str
    quantity: Decimal
    value: Decimal
    safety_stock: Decimal
    lots: list[tuple[str, Decimal]] = field(default_factory=list)


def positions(
    conn: Connection,
    tenant_id: uuid.UUID,
    search: str = "",
    limit: int = 500,
    item_id: uuid.UUID | None = None,
) -> list[Position]:
    """On hand per item × internal location from the valuation pools (quantity and
    value), with the lots from the stock balances; of one item, or of the items whose
    code or name contains `search`."""
    vp, item, loc, sb = T["valuation_pool"], T["item"], T["location"], T["stock_balance"]
    query = (
        select(
            item.c.id.label("item_id"),
            loc.c.id.label("location_id"),
            item.c.code.label("item"),
            item.c.name,
            item.c.unit,
            item.c.safety_stock,
            item.c.lot_tracked,
            loc.c.code.label("location"),
            vp.c.quantity,
            vp.c.value,
        )
        .select_from(vp)
        .join(item, and_(item.c.tenant_id == vp.c.tenant_id, item.c.id == vp.c.item_id))
        .join(loc, and_(loc.c.tenant_id == vp.c.tenant_id, loc.c.id == vp.c.location_id))
        .where(vp.c.tenant_id == tenant_id, or_(vp.c.quantity != 0, vp.c.value != 0))
        .order_by(item.c.code, loc.c.code)
        .limit(limit)
    )
    if item_id is not None:
        query = query.where(vp.c.item_id == item_id)
    if search:
        pattern = "%" + search.replace("\\", "").replace("%", "").replace("_", "") + "%"
        query = query.where(or_(item.c.code.ilike(pattern), item.c.name.ilike(pattern)))
    rows = conn.execute(query).all()
    out = {
        (r.item_id, r.location_id): Position(
            r.item,
            r.name,
            r.unit,
            r.location,
            _dec(r.quantity),
            _dec(r.value),
            _dec(r.safety_stock),
        )
        for r in rows
    }
    tracked = [r.item_id for r in rows if r.lot_tracked]
    if tracked:
        for b in conn.execute(
            select(sb.c.item_id, sb.c.location_id, sb.c.lot, sb.c.quantity)
            .where(sb.c.tenant_id == tenant_id, sb.c.item_id.in_(tracked), sb.c.quantity != 0)
            .order_by(sb.c.lot)
        ):
            if (b.item_id, b.location_id) in out:
                out[(b.item_id, b.location_id)].lots.append((b.lot, _dec(b.quantity)))
    return list(out.values())


def item_by_code(conn: Connection, tenant_id: uuid.UUID, code: str) -> dict[str, Any] | None:
    item = T["item"]
    row = (
        conn.execute(select(item).where(item.c.tenant_id == tenant_id, item.c.code == code))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def stock_ledger_page(
    conn: Connection, tenant_id: uuid.UUID, item_id: uuid.UUID, page: int
) -> tuple[list[dict[str, Any]], bool]:
    """One page of an item's moves, newest first, each with its source event, device
    and operator and its value after revaluations; and whether there are more."""
    mv, rv, ev, loc = T["stock_move"], T["stock_revaluation"], T["edge_event"], T["location"]
    src, dst = loc.alias("src"), loc.alias("dst")
    revalued = (
        select(func.sum(rv.c.delta_value))
        .where(rv.c.tenant_id == mv.c.tenant_id, rv.c.move_id == mv.c.id)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            mv.c.occurred_at,
            mv.c.event_id,
            mv.c.kind,
            mv.c.lot,
            mv.c.quantity,
            mv.c.value,
            revalued.label("delta"),
            src.c.code.label("from_code"),
            src.c.kind.label("from_kind"),
            dst.c.code.label("to_code"),
            dst.c.kind.label("to_kind"),
            ev.c.type.label("event_type"),
            ev.c.device_id,
            ev.c.operator,
        )
        .select_from(mv)
        .join(src, and_(src.c.tenant_id == mv.c.tenant_id, src.c.id == mv.c.from_location_id))
        .join(dst, and_(dst.c.tenant_id == mv.c.tenant_id, dst.c.id == mv.c.to_location_id))
        .join(ev, and_(ev.c.tenant_id == mv.c.tenant_id, ev.c.event_id == mv.c.event_id))
        .where(mv.c.tenant_id == tenant_id, mv.c.item_id == item_id)
        .order_by(mv.c.occurred_at.desc(), mv.c.event_id.desc(), mv.c.line_no.desc())
        .limit(LEDGER_PAGE_ROWS + 1)
        .offset(page * LEDGER_PAGE_ROWS)
    ).mappings()
    moves = [{**r, "effective": _dec(r["value"]) + _dec(r["delta"])} for r in rows]
    return moves[:LEDGER_PAGE_ROWS], len(moves) > LEDGER_PAGE_ROWS
