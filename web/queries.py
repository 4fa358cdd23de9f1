"""Reads the portal needs that no service offers yet, in SQLAlchemy Core, always
filtered by the tenant. Each is cheap on purpose: it reads the cached balances
(valuation pools, WIP balances, stock balances) or the journal's day totals
(account_day, receivable_day: kept as entries post), never the whole ledger. These
belong in cloud_api/services later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from cloud_api.db import models as m
from cloud_api.domain.clock import utc
from cloud_api.domain.money import ZERO
from cloud_api.services import listing, users

T = m.SQLModel.metadata.tables
RAW_STOCK_ACCOUNT = "1403"  # chart.py: 原材料; the other stock account is 1405 库存商品
COST_OF_SALES_ACCOUNT = "6401"
WIP_ACCOUNT = "5001"  # chart.py: 生产成本, work in progress
ONLINE_WITHIN = timedelta(minutes=5)
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
    raw: Decimal
    wip: Decimal
    finished: Decimal
    by_category: list[CategoryValue]

    @property
    def total(self) -> Decimal:
        return self.raw + self.wip + self.finished


def stock_value(conn: Connection, tenant_id: uuid.UUID) -> StockValue:
    """Stock at value from the valuation pools (raw = categories booked to 1403, the
    rest finished and semi-finished, 1405) and WIP from the work orders' balances.
    The books-check proves both equal to the general ledger's accounts."""
    vp, item, cat, wb = T["valuation_pool"], T["item"], T["item_category"], T["wip_balance"]
    rows = conn.execute(
        select(cat.c.code, cat.c.name, cat.c.stock_account, func.sum(vp.c.value).label("v"))
        .select_from(vp)
        .join(item, and_(item.c.tenant_id == vp.c.tenant_id, item.c.id == vp.c.item_id))
        .join(cat, and_(cat.c.tenant_id == item.c.tenant_id, cat.c.code == item.c.category_code))
        .where(vp.c.tenant_id == tenant_id)
        .group_by(cat.c.code, cat.c.name, cat.c.stock_account)
        .order_by(cat.c.code)
    ).all()
    categories = [CategoryValue(r.code, r.name, r.stock_account, _dec(r.v)) for r in rows]
    raw = sum((c.value for c in categories if c.stock_account == RAW_STOCK_ACCOUNT), ZERO)
    finished = sum((c.value for c in categories if c.stock_account != RAW_STOCK_ACCOUNT), ZERO)
    wip = _dec(conn.scalar(select(func.sum(wb.c.value)).where(wb.c.tenant_id == tenant_id)))
    return StockValue(raw, wip, finished, categories)


def open_exceptions(conn: Connection, tenant_id: uuid.UUID) -> dict[str, int]:
    """How many events wait in the exception queue, held and rejected."""
    ev = T["edge_event"]
    query = (
        select(ev.c.status, func.count())
        .where(ev.c.tenant_id == tenant_id, ev.c.status.in_(("held", "rejected")))
        .group_by(ev.c.status)
    )
    found = {"held": 0, "rejected": 0}
    found.update({status: int(n) for status, n in conn.execute(query)})
    return found


@dataclass(frozen=True)
class DeviceCounts:
    online: int
    offline: int
    backlog: int  # events waiting in the edges' outboxes, from their heartbeats


def device_counts(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> DeviceCounts:
    d, ag = T["device"], T["edge_agent"]
    live = conn.execute(
        select(d.c.last_seen_at).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    ).scalars()
    online = offline = 0
    for seen in live:
        if seen is not None and utc(seen) >= now - ONLINE_WITHIN:
            online += 1
        else:
            offline += 1
    backlog = conn.scalar(select(func.sum(ag.c.backlog)).where(ag.c.tenant_id == tenant_id))
    return DeviceCounts(online, offline, int(backlog or 0))


def parked_on_edges(conn: Connection, tenant_id: uuid.UUID) -> int:
    """Events the edges hold parked (refused before they could be read, or in conflict
    with an id already used), as their last heartbeats said."""
    ag = T["edge_agent"]
    return int(conn.scalar(select(func.sum(ag.c.parked)).where(ag.c.tenant_id == tenant_id)) or 0)


@dataclass(frozen=True)
class DayOutput:
    day: date
    quantity: Decimal
    value: Decimal


@dataclass
class Sales:
    revenue: Decimal = ZERO
    cost_of_sales: Decimal = ZERO

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost_of_sales

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.revenue:
            return None
        return (self.margin * 100 / self.revenue).quantize(Decimal("0.1"))


def sales_by_day(
    conn: Connection, tenant_id: uuid.UUID, first: date, last: date
) -> dict[date, Sales]:
    """Revenue (the revenue accounts, credit − debit) and cost of sales (6401, debit −
    credit) per entry date of the entries dated first..last, from the day totals."""
    acc = T["account"]
    accounts = select(acc.c.code, acc.c.kind).where(
        acc.c.tenant_id == tenant_id,
        or_(acc.c.kind == "revenue", acc.c.code == COST_OF_SALES_ACCOUNT),
    )
    kinds: dict[str, str] = {r.code: r.kind for r in conn.execute(accounts)}
    days: dict[date, Sales] = {}
    for r in _movements(conn, tenant_id, sorted(kinds), first, last, by_day=True):
        sales = days.setdefault(_as_date(r.entry_date), Sales())
        if kinds[r.account_code] == "revenue":
            sales.revenue += _dec(r.c) - _dec(r.d)
        else:
            sales.cost_of_sales += _dec(r.d) - _dec(r.c)
    return dict(sorted(days.items()))


def total_sales(days: Iterable[Sales]) -> Sales:
    """The sales of several days (of sales_by_day), added up."""
    total = Sales()
    for day in days:
        total.revenue += day.revenue
        total.cost_of_sales += day.cost_of_sales
    return total


def _movements(
    conn: Connection,
    tenant_id: uuid.UUID,
    codes: list[str],
    first: date,
    last: date,
    by_day: bool = False,
) -> list[Any]:
    """Debits and credits (d, c) per account (and entry date) of the lines of `codes`
    in the entries dated first..last, from the day totals kept as entries post."""
    if not codes:
        return []
    ad = T["account_day"]
    keys = [ad.c.account_code, *([ad.c.entry_date] if by_day else [])]
    return conn.execute(
        select(*keys, func.sum(ad.c.debit).label("d"), func.sum(ad.c.credit).label("c"))
        .where(
            ad.c.tenant_id == tenant_id,
            ad.c.entry_date >= first,
            ad.c.entry_date <= last,
            ad.c.account_code.in_(codes),
        )
        .group_by(*keys)
    ).all()


def stock_accounts(conn: Connection, tenant_id: uuid.UUID) -> set[str]:
    """The accounts stock is booked to: the item categories' and work in progress."""
    cat = T["item_category"]
    query = select(cat.c.stock_account).where(cat.c.tenant_id == tenant_id).distinct()
    return set(conn.scalars(query)) | {WIP_ACCOUNT}


def movements_outside_stock(
    conn: Connection, tenant_id: uuid.UUID, first: date, last: date
) -> dict[str, Decimal]:
    """Debit − credit per account, over the entries dated first..last, of every account
    but the stock accounts. Every entry balances, so their sum is minus the change of
    the stock accounts; and the internal moves (issues, completions: most of the
    ledger) have no line here to read."""
    acc = T["account"]
    stock = stock_accounts(conn, tenant_id)
    codes = conn.scalars(select(acc.c.code).where(acc.c.tenant_id == tenant_id))
    outside = sorted(set(codes) - stock)
    rows = _movements(conn, tenant_id, outside, first, last)
    return {r.account_code: _dec(r.d) - _dec(r.c) for r in rows}


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


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


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


# -- exception queue ---------------------------------------------------------------


def exceptions(
    conn: Connection, tenant_id: uuid.UUID, status: str, limit: int = 200
) -> list[dict[str, Any]]:
    """Held or rejected events, oldest first (voided ones, the latest first), as the
    /api/v1/exceptions route lists them; at most `limit` (open_exceptions counts all)."""
    rows, _ = listing.edge_events(
        conn, tenant_id, status, limit, 0, newest_first=status == "voided"
    )
    return rows


def event(conn: Connection, tenant_id: uuid.UUID, event_id: uuid.UUID) -> dict[str, Any] | None:
    ev = T["edge_event"]
    row = (
        conn.execute(select(ev).where(ev.c.tenant_id == tenant_id, ev.c.event_id == event_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def entry_lines(
    conn: Connection, tenant_id: uuid.UUID, event_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The journal lines an event booked (its own entry and any revaluations it caused
    are found by the line's source event), with both account names."""
    jl, acc, je = T["journal_line"], T["account"], T["journal_entry"]
    rows = conn.execute(
        select(
            je.c.entry_date,
            je.c.kind,
            jl.c.entry_id,
            jl.c.line_no,
            jl.c.account_code,
            acc.c.name_zh,
            acc.c.name_en,
            jl.c.debit,
            jl.c.credit,
        )
        .select_from(je)
        .join(jl, and_(jl.c.tenant_id == je.c.tenant_id, jl.c.entry_id == je.c.id))
        .join(acc, and_(acc.c.tenant_id == jl.c.tenant_id, acc.c.code == jl.c.account_code))
        .where(je.c.tenant_id == tenant_id, je.c.event_id == event_id)
        .order_by(je.c.posted_at, jl.c.entry_id, jl.c.line_no)
    ).mappings()
    return [dict(r) for r in rows]


# -- inventory -----------------------------------------------------------------------


@dataclass
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


# -- the user's language -----------------------------------------------------------


def set_locale(platform_db: Engine, user_id: uuid.UUID, locale: str) -> None:
    """Store a user's language on their own account. app_user is global: the tenants'
    role may only read it, so this runs on the platform engine, for that one user."""
    u = T["app_user"]
    with platform_db.begin() as conn:
        conn.execute(update(u).where(u.c.id == user_id).values(locale=locale))


def set_locale_of_session(platform_db: Engine, token: str, locale: str, now: datetime) -> None:
    """At sign-up: the new owner's language is the one the sign-up page was shown in."""
    u = T["app_user"]
    with platform_db.begin() as conn:
        user_id = users.principal(conn, token, now).user_id
        conn.execute(update(u).where(u.c.id == user_id).values(locale=locale))


# -- production ----------------------------------------------------------------------

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


# -- finance -------------------------------------------------------------------------

RECEIVABLES_ACCOUNT = "1122"
JOURNAL_PAGE_ENTRIES = 50


@dataclass(frozen=True)
class AccountSums:
    """An account with its debits and credits over some entries."""

    code: str
    name_zh: str
    name_en: str
    kind: str
    debit: Decimal
    credit: Decimal


def account_sums(
    conn: Connection, tenant_id: uuid.UUID, period: str, cumulative: bool
) -> list[AccountSums]:
    """Every account of the chart with the sums of its journal lines in `period`
    (YYYY-MM), or up to and including it when `cumulative`; by code."""
    ad, acc = T["account_day"], T["account"]
    first, after = _period_dates(period)
    in_period = [ad.c.entry_date < after, *([] if cumulative else [ad.c.entry_date >= first])]
    sums = (
        select(
            ad.c.account_code,
            func.sum(ad.c.debit).label("d"),
            func.sum(ad.c.credit).label("c"),
        )
        .where(ad.c.tenant_id == tenant_id, *in_period)
        .group_by(ad.c.account_code)
        .subquery()
    )
    rows = conn.execute(
        select(acc.c.code, acc.c.name_zh, acc.c.name_en, acc.c.kind, sums.c.d, sums.c.c)
        .select_from(acc)
        .outerjoin(sums, sums.c.account_code == acc.c.code)
        .where(acc.c.tenant_id == tenant_id)
        .order_by(acc.c.code)
    ).all()
    return [AccountSums(r.code, r.name_zh, r.name_en, r.kind, _dec(r.d), _dec(r.c)) for r in rows]


def _period_dates(period: str) -> tuple[date, date]:
    """A period's (YYYY-MM) first day and the first day after it (an entry's period is
    its entry date's month)."""
    first = date.fromisoformat(f"{period}-01")
    after = (first + timedelta(days=32)).replace(day=1)
    return first, after


def account_names(conn: Connection, tenant_id: uuid.UUID) -> dict[str, tuple[str, str]]:
    acc = T["account"]
    rows = conn.execute(
        select(acc.c.code, acc.c.name_zh, acc.c.name_en).where(acc.c.tenant_id == tenant_id)
    )
    return {r.code: (r.name_zh, r.name_en) for r in rows}


@dataclass(frozen=True)
class ReceivableLine:
    customer: str
    customer_name: str
    entry_date: date
    debit: Decimal
    credit: Decimal


def receivable_lines(conn: Connection, tenant_id: uuid.UUID) -> list[ReceivableLine]:
    """The receivables account's debits and credits per customer and entry date (the
    day totals kept as entries post: aging needs no finer grain), oldest first."""
    rd, cu = T["receivable_day"], T["customer"]
    rows = conn.execute(
        select(rd.c.entry_date, rd.c.debit.label("d"), rd.c.credit.label("c"), cu.c.code, cu.c.name)
        .select_from(rd)
        .join(cu, and_(cu.c.tenant_id == rd.c.tenant_id, cu.c.id == rd.c.customer_id))
        .where(rd.c.tenant_id == tenant_id)
        .order_by(rd.c.entry_date, cu.c.code)
    ).all()
    return [
        ReceivableLine(r.code or "", r.name or "", _as_date(r.entry_date), _dec(r.d), _dec(r.c))
        for r in rows
    ]


@dataclass(frozen=True)
class PeriodRow:
    code: str
    status: str  # open, closed
    changed_at: datetime | None
    entries: int


def periods(conn: Connection, tenant_id: uuid.UUID, current: str) -> list[PeriodRow]:
    """The months with postings or a status, and the current one; newest first. A
    month with no status row is open."""
    fp, je = T["fiscal_period"], T["journal_entry"]
    status = {
        r.code: (r.status, r.changed_at)
        for r in conn.execute(
            select(fp.c.code, fp.c.status, fp.c.changed_at).where(fp.c.tenant_id == tenant_id)
        )
    }
    counts = {
        r.period: int(r.n)
        for r in conn.execute(
            select(je.c.period, func.count().label("n"))
            .where(je.c.tenant_id == tenant_id)
            .group_by(je.c.period)
        )
    }
    codes = sorted({*status, *counts, current}, reverse=True)
    return [PeriodRow(c, *status.get(c, ("open", None)), counts.get(c, 0)) for c in codes]


# -- members -------------------------------------------------------------------------


def owner_count(conn: Connection, tenant_id: uuid.UUID) -> int:
    """The tenant's owners, locked on PostgreSQL until the transaction ends, so two
    concurrent demotions cannot both see another owner left."""
    ms = T["membership"]
    query = select(ms.c.user_id).where(ms.c.tenant_id == tenant_id, ms.c.role == "owner")
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return len(conn.execute(query).all())


def role_of(conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    ms = T["membership"]
    return conn.scalar(  # type: ignore[no-any-return]
        select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id)
    )


def live_devices(conn: Connection, tenant_id: uuid.UUID) -> int:
    d = T["device"]
    query = select(func.count()).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    return int(conn.scalar(query) or 0)


def member_count(conn: Connection, tenant_id: uuid.UUID) -> int:
    ms = T["membership"]
    return int(conn.scalar(select(func.count()).where(ms.c.tenant_id == tenant_id)) or 0)


# -- labels --------------------------------------------------------------------------

LABEL_ROWS = 1000  # the most codes of one kind a label form offers
INTERNAL_LOCATION_KINDS = ("warehouse", "bin")


def label_items(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    item = T["item"]
    query = select(item.c.code, item.c.name, item.c.gtin).where(item.c.tenant_id == tenant_id)
    return conn.execute(query.order_by(item.c.code).limit(LABEL_ROWS)).all()


def label_locations(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    """The internal locations (the others are virtual: nobody scans them)."""
    loc = T["location"]
    query = select(loc.c.code, loc.c.name).where(
        loc.c.tenant_id == tenant_id, loc.c.kind.in_(INTERNAL_LOCATION_KINDS)
    )
    return conn.execute(query.order_by(loc.c.code).limit(LABEL_ROWS)).all()


def label_work_orders(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    """The newest work orders with their item and planned quantity."""
    wo, item = T["work_order"], T["item"]
    query = (
        select(wo.c.code, wo.c.status, wo.c.planned_quantity, item.c.code.label("item_code"))
        .select_from(wo)
        .join(item, and_(item.c.tenant_id == wo.c.tenant_id, item.c.id == wo.c.item_id))
        .where(wo.c.tenant_id == tenant_id)
        .order_by(wo.c.created_at.desc(), wo.c.code)
    )
    return conn.execute(query.limit(LABEL_ROWS)).all()


def label_operators(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    op = T["operator"]
    query = select(op.c.code, op.c.name).where(op.c.tenant_id == tenant_id, op.c.active)
    return conn.execute(query.order_by(op.c.code).limit(LABEL_ROWS)).all()


def label_lots(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    """The lots with their item's code, GTIN and unit, expiry and quantity on hand (in
    every location, from the stock balances)."""
    lot, item, sb = T["lot"], T["item"], T["stock_balance"]
    on_hand = (
        select(func.sum(sb.c.quantity))
        .where(sb.c.tenant_id == lot.c.tenant_id, sb.c.item_id == lot.c.item_id)
        .where(sb.c.lot == lot.c.lot)
        .scalar_subquery()
    )
    query = (
        select(
            lot.c.lot,
            lot.c.expiry,
            item.c.code.label("item_code"),
            item.c.gtin,
            item.c.unit,
            on_hand.label("quantity"),
        )
        .select_from(lot)
        .join(item, and_(item.c.tenant_id == lot.c.tenant_id, item.c.id == lot.c.item_id))
        .where(lot.c.tenant_id == tenant_id)
        .order_by(item.c.code, lot.c.lot)
    )
    return conn.execute(query.limit(LABEL_ROWS)).all()
