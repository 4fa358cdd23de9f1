"""Production read models: the open work orders with their shortages, and the good
units completed per day (the output day totals kept as completions post)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select

from cloud_api.db import models as m
from cloud_api.domain.money import ZERO

T = m.SQLModel.metadata.tables


def _dec(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(value)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class DayOutput:
    day: date
    quantity: Decimal
    value: Decimal


def output_by_day(
    conn: Connection, tenant_id: uuid.UUID, first: date, last: date
) -> list[DayOutput]:
    """Good units completed per booking day (a reversed completion counts back), and
    their value, of the entries dated first..last: the day totals kept as they post."""
    od = T["output_day"]
    rows = conn.execute(
        select(od.c.entry_date, od.c.quantity, od.c.value)
        .where(od.c.tenant_id == tenant_id, od.c.entry_date >= first, od.c.entry_date <= last)
        .order_by(od.c.entry_date)
    )
    return [DayOutput(_as_date(r.entry_date), r.quantity, r.value) for r in rows]


OPEN_ORDER_STATUSES = ("released", "in_progress", "completed")  # postings still come


@dataclass
class OrderRow:
    code: str
    item: str
    item_name: str
    unit: str
    status: str
    planned: Decimal
    completed: Decimal  # good units
    created_at: datetime
    short_items: list[str] = field(default_factory=list)

    @property
    def progress_percent(self) -> int:
        if self.planned <= 0:
            return 0
        return int(min(self.completed * 100 / self.planned, Decimal(100)))


def work_orders(conn: Connection, tenant_id: uuid.UUID, limit: int = 200) -> list[OrderRow]:
    """The newest `limit` work orders with their good quantity completed (the WIP
    balance) and, for the open ones, the components still short."""
    wo, item, wb = T["work_order"], T["item"], T["wip_balance"]
    rows = conn.execute(
        select(
            wo.c.id,
            wo.c.code,
            wo.c.status,
            wo.c.planned_quantity,
            wo.c.created_at,
            item.c.code.label("item"),
            item.c.name,
            item.c.unit,
            wb.c.good_quantity,
        )
        .select_from(wo)
        .join(item, and_(item.c.tenant_id == wo.c.tenant_id, item.c.id == wo.c.item_id))
        .outerjoin(wb, and_(wb.c.tenant_id == wo.c.tenant_id, wb.c.work_order_id == wo.c.id))
        .where(wo.c.tenant_id == tenant_id)
        .order_by(wo.c.created_at.desc(), wo.c.code)
        .limit(limit)
    ).all()
    short = shortages(conn, tenant_id, [r.id for r in rows if r.status in OPEN_ORDER_STATUSES])
    return [
        OrderRow(
            r.code,
            r.item,
            r.name,
            r.unit,
            r.status,
            _dec(r.planned_quantity),
            _dec(r.good_quantity),
            r.created_at,
            short.get(r.id, []),
        )
        for r in rows
    ]


def shortages(
    conn: Connection, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The item codes of each order's components still short: planned − issued − held
    > 0, as work_orders.read computes it for one order (issued = the net of material
    moves into the order's WIP), here for many orders in three queries."""
    if not order_ids:
        return {}
    woc, rv, mv, item, loc = (
        T["work_order_component"],
        T["reservation"],
        T["stock_move"],
        T["item"],
        T["location"],
    )
    src, dst = loc.alias("src"), loc.alias("dst")
    issued: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = {}
    for r in conn.execute(
        select(
            mv.c.work_order_id,
            mv.c.item_id,
            src.c.kind.label("from_kind"),
            dst.c.kind.label("to_kind"),
            func.sum(mv.c.quantity).label("q"),
        )
        .select_from(mv)
        .join(src, and_(src.c.tenant_id == mv.c.tenant_id, src.c.id == mv.c.from_location_id))
        .join(dst, and_(dst.c.tenant_id == mv.c.tenant_id, dst.c.id == mv.c.to_location_id))
        .where(
            mv.c.tenant_id == tenant_id,
            mv.c.work_order_id.in_(order_ids),
            mv.c.kind.not_in(["completion", "settlement"]),
        )
        .group_by(mv.c.work_order_id, mv.c.item_id, src.c.kind, dst.c.kind)
    ):
        sign = int(r.to_kind == "production") - int(r.from_kind == "production")
        key = (r.work_order_id, r.item_id)
        issued[key] = issued.get(key, ZERO) + sign * _dec(r.q)
    held: dict[tuple[uuid.UUID, int], Decimal] = {}
    for r in conn.execute(
        select(rv.c.work_order_id, rv.c.line_no, rv.c.quantity, rv.c.consumed, rv.c.released).where(
            rv.c.tenant_id == tenant_id, rv.c.work_order_id.in_(order_ids)
        )
    ):
        key2 = (r.work_order_id, r.line_no)
        held[key2] = held.get(key2, ZERO) + _dec(r.quantity) - _dec(r.consumed) - _dec(r.released)
    out: dict[uuid.UUID, list[str]] = {}
    for c in conn.execute(
        select(
            woc.c.work_order_id,
            woc.c.line_no,
            woc.c.item_id,
            woc.c.planned_quantity,
            item.c.code,
        )
        .select_from(woc)
        .join(item, and_(item.c.tenant_id == woc.c.tenant_id, item.c.id == woc.c.item_id))
        .where(woc.c.tenant_id == tenant_id, woc.c.work_order_id.in_(order_ids))
        .order_by(woc.c.work_order_id, woc.c.line_no)
    ):
        got = issued.get((c.work_order_id, c.item_id), ZERO)
        left = _dec(c.planned_quantity) - got - held.get((c.work_order_id, c.line_no), ZERO)
        if left > 0:
            out.setdefault(c.work_order_id, []).append(c.code)
    return out
