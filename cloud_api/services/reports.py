"""Reports read straight from the ledgers, and the books-check (reconciliation)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, case, func, select, tuple_

from cloud_api.db import models as m
from cloud_api.domain.money import ZERO
from cloud_api.domain.posting_rules import RECEIVABLES
from cloud_api.domain.posting_rules import WIP as WIP_ACCOUNT
from cloud_api.domain.refs import INTERNAL_KINDS
from cloud_api.errors import NotFound
from cloud_api.services import listing
from cloud_api.services.store import TenantContext

T = m.SQLModel.metadata.tables


def _effective_moves(
    tenant_id: uuid.UUID, at: datetime | None = None, work_order_id: uuid.UUID | None = None
) -> Any:
    """Stock moves with their effective value (booked value + revaluations).

    With `work_order_id`, only that order's moves, and only their revaluations are
    summed (not the whole tenant's), so a per-order report does not scale with the
    tenant's history."""
    mv, rv = T["stock_move"], T["stock_revaluation"]
    deltas = select(rv.c.move_id, func.sum(rv.c.delta_value).label("delta")).where(
        rv.c.tenant_id == tenant_id
    )
    if work_order_id is not None:
        order_moves = mv.alias("order_move")
        deltas = deltas.join(
            order_moves,
            and_(order_moves.c.tenant_id == rv.c.tenant_id, order_moves.c.id == rv.c.move_id),
        ).where(order_moves.c.work_order_id == work_order_id)
    summed = deltas.group_by(rv.c.move_id).subquery()
    query = (
        select(mv, (mv.c.value + func.coalesce(summed.c.delta, 0)).label("effective"))
        .outerjoin(summed, summed.c.move_id == mv.c.id)
        .where(mv.c.tenant_id == tenant_id)
    )
    if at is not None:
        query = query.where(mv.c.occurred_at <= at)
    if work_order_id is not None:
        query = query.where(mv.c.work_order_id == work_order_id)
    return query.subquery()


def _kinds(conn: Connection, tenant_id: uuid.UUID) -> dict[uuid.UUID, tuple[str, str]]:
    loc = T["location"]
    return {
        r.id: (r.code, r.kind)
        for r in conn.execute(
            select(loc.c.id, loc.c.code, loc.c.kind).where(loc.c.tenant_id == tenant_id)
        )
    }


def stock_positions(
    conn: Connection, tenant: TenantContext, at: datetime | None = None
) -> dict[tuple[uuid.UUID, uuid.UUID, str], tuple[Decimal, Decimal]]:
    """(item, internal location, lot) → (quantity, value) from the moves alone."""
    kinds = _kinds(conn, tenant.id)
    moves = _effective_moves(tenant.id, at)
    out: dict[tuple[uuid.UUID, uuid.UUID, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for side, sign in (("to_location_id", 1), ("from_location_id", -1)):
        col = moves.c[side]
        query = select(
            moves.c.item_id,
            col.label("loc"),
            moves.c.lot,
            func.sum(moves.c.quantity).label("q"),
            func.sum(moves.c.effective).label("v"),
        ).group_by(moves.c.item_id, col, moves.c.lot)
        for row in conn.execute(query):
            if kinds[row.loc][1] in INTERNAL_KINDS:
                acc = out[(row.item_id, row.loc, row.lot)]
                acc[0] += sign * Decimal(row.q)
                acc[1] += sign * Decimal(row.v)
    return {k: (v[0], v[1]) for k, v in out.items()}


def stock_on_hand(
    conn: Connection, tenant: TenantContext, at: datetime | None = None
) -> list[dict[str, Any]]:
    item, loc = T["item"], _kinds(conn, tenant.id)
    items = {r.id: r for r in conn.execute(select(item).where(item.c.tenant_id == tenant.id))}
    rows = []
    for (item_id, loc_id, lot), (quantity, value) in sorted(
        stock_positions(conn, tenant, at).items(),
        key=lambda kv: (items[kv[0][0]].code, loc[kv[0][1]][0], kv[0][2]),
    ):
        if quantity == 0 and value == 0:
            continue
        rows.append(
            {
                "item": items[item_id].code,
                "name": items[item_id].name,
                "location": loc[loc_id][0],
                "lot": lot,
                "quantity": quantity,
                "value": value,
                "unit": items[item_id].unit,
            }
        )
    return rows


def trial_balance(conn: Connection, tenant: TenantContext) -> dict[str, Any]:
    """Every account's debits and credits, from the day totals (which the books-check
    proves equal to the journal lines)."""
    ad, acc = T["account_day"], T["account"]
    sums = {
        r.account_code: (Decimal(r.d), Decimal(r.c))
        for r in conn.execute(
            select(
                ad.c.account_code, func.sum(ad.c.debit).label("d"), func.sum(ad.c.credit).label("c")
            )
            .where(ad.c.tenant_id == tenant.id)
            .group_by(ad.c.account_code)
        )
    }
    accounts, total_d, total_c = [], ZERO, ZERO
    for a in conn.execute(select(acc).where(acc.c.tenant_id == tenant.id).order_by(acc.c.code)):
        debit, credit = sums.get(a.code, (ZERO, ZERO))
        total_d, total_c = total_d + debit, total_c + credit
        if debit or credit:
            accounts.append(
                {
                    "code": a.code,
                    "name_zh": a.name_zh,
                    "name_en": a.name_en,
                    "debit": debit,
                    "credit": credit,
                    "balance": debit - credit,
                }
            )
    return {"accounts": accounts, "total_debit": total_d, "total_credit": total_c}


def journal(
    conn: Connection, tenant: TenantContext, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    je, jl = T["journal_entry"], T["journal_line"]
    entries = (
        conn.execute(
            select(je)
            .where(je.c.tenant_id == tenant.id)
            .order_by(je.c.entry_date, je.c.posted_at, je.c.id)
            .limit(limit)
            .offset(offset)
        )
        .mappings()
        .all()
    )
    ids = [e["id"] for e in entries]
    lines: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    if ids:
        for ln in conn.execute(
            select(jl)
            .where(jl.c.tenant_id == tenant.id, jl.c.entry_id.in_(ids))
            .order_by(jl.c.entry_id, jl.c.line_no)
        ).mappings():
            lines[ln["entry_id"]].append(
                {
                    k: v
                    for k, v in ln.items()
                    if k not in ("tenant_id", "entry_id") and v is not None
                }
            )
    return [
        {**{k: v for k, v in e.items() if k != "tenant_id"}, "lines": lines[e["id"]]}
        for e in entries
    ]


def journal_count(conn: Connection, tenant: TenantContext) -> int:
    """How many journal entries the tenant has (the journal's X-Total-Count)."""
    je = T["journal_entry"]
    return int(conn.scalar(select(func.count()).where(je.c.tenant_id == tenant.id)) or 0)


def stock_ledger(
    conn: Connection, tenant: TenantContext, item_code: str, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A page of the item's moves, oldest first, and how many there are. An item the
    tenant does not have is 404 unknown_item, not an empty ledger (a typo would read
    as "never moved")."""
    item = T["item"]
    item_id = conn.scalar(
        select(item.c.id).where(item.c.tenant_id == tenant.id, item.c.code == item_code)
    )
    if item_id is None:
        raise NotFound("unknown_item", f"item {item_code} does not exist")
    kinds = _kinds(conn, tenant.id)
    moves = _effective_moves(tenant.id)
    ev = T["edge_event"]
    query = (
        select(moves, ev.c.type, ev.c.device_id, ev.c.operator)
        .join(ev, and_(ev.c.tenant_id == moves.c.tenant_id, ev.c.event_id == moves.c.event_id))
        .where(moves.c.item_id == item_id)
        .order_by(moves.c.occurred_at, moves.c.event_id, moves.c.line_no, moves.c.id)
    )
    rows, total = listing.fetch_page(conn, query, limit, offset)
    out = [
        {
            "move_id": r["id"],
            "occurred_at": r["occurred_at"],
            "event_id": r["event_id"],
            "event_type": r["type"],
            "device_id": r["device_id"],
            "operator": r["operator"],
            "from": kinds[r["from_location_id"]][0],
            "to": kinds[r["to_location_id"]][0],
            "lot": r["lot"],
            "quantity": r["quantity"],
            "value": Decimal(r["effective"]),
            "booked_value": r["value"],
        }
        for r in rows
    ]
    return out, total


def wip_by_work_order(conn: Connection, tenant: TenantContext) -> dict[uuid.UUID, Decimal]:
    """Work in progress per work order from the moves and charges alone."""
    kinds = _kinds(conn, tenant.id)
    moves, ch = _effective_moves(tenant.id), T["wip_charge"]
    out: dict[uuid.UUID, Decimal] = defaultdict(lambda: ZERO)
    query = (
        select(
            moves.c.work_order_id,
            moves.c.from_location_id,
            moves.c.to_location_id,
            func.sum(moves.c.effective).label("v"),
        )
        .where(moves.c.work_order_id.is_not(None))
        .group_by(moves.c.work_order_id, moves.c.from_location_id, moves.c.to_location_id)
    )
    for r in conn.execute(query):
        if kinds[r.to_location_id][1] == "production":
            out[r.work_order_id] += Decimal(r.v)
        if kinds[r.from_location_id][1] == "production":
            out[r.work_order_id] -= Decimal(r.v)
    for r in conn.execute(
        select(ch.c.work_order_id, func.sum(ch.c.value).label("v"))
        .where(ch.c.tenant_id == tenant.id)
        .group_by(ch.c.work_order_id)
    ):
        out[r.work_order_id] += Decimal(r.v)
    return dict(out)


def wip_report(conn: Connection, tenant: TenantContext) -> list[dict[str, Any]]:
    wo, item = T["work_order"], T["item"]
    wip = wip_by_work_order(conn, tenant)
    rows = conn.execute(
        select(wo.c.id, wo.c.code, wo.c.status, wo.c.planned_quantity, item.c.code.label("item"))
        .join(item, and_(item.c.tenant_id == wo.c.tenant_id, item.c.id == wo.c.item_id))
        .where(wo.c.tenant_id == tenant.id)
        .order_by(wo.c.code)
    )
    return [
        {
            "work_order": r.code,
            "item": r.item,
            "status": r.status,
            "planned_quantity": r.planned_quantity,
            "wip_value": wip.get(r.id, ZERO),
        }
        for r in rows
    ]


@dataclass
class Difference:
    check: str
    key: str
    expected: Decimal
    actual: Decimal

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "difference": self.difference}


def reconcile(conn: Connection, tenant: TenantContext) -> list[Difference]:
    """Every invariant of the books; an empty list means the books agree."""
    out: list[Difference] = []
    out += _unbalanced_entries(conn, tenant)
    positions = stock_positions(conn, tenant)
    out += _stock_vs_accounts(conn, tenant, positions)
    out += _caches_vs_moves(conn, tenant, positions)
    out += _wip_vs_account(conn, tenant)
    out += _days_vs_ledger(conn, tenant)
    out += _snapshots_vs_moves(conn, tenant)
    return out


def _unbalanced_entries(conn: Connection, tenant: TenantContext) -> list[Difference]:
    jl = T["journal_line"]
    query = (
        select(jl.c.entry_id, func.sum(jl.c.debit).label("d"), func.sum(jl.c.credit).label("c"))
        .where(jl.c.tenant_id == tenant.id)
        .group_by(jl.c.entry_id)
        .having(func.sum(jl.c.debit) != func.sum(jl.c.credit))
    )
    return [
        Difference("entry_balanced", str(r.entry_id), Decimal(r.d), Decimal(r.c))
        for r in conn.execute(query)
    ]


def _account_balances(
    conn: Connection, tenant: TenantContext, group: Any = None
) -> dict[Any, Decimal]:
    jl = T["journal_line"]
    cols = [jl.c.account_code] + ([group] if group is not None else [])
    query = (
        select(*cols, func.sum(jl.c.debit).label("d"), func.sum(jl.c.credit).label("c"))
        .where(jl.c.tenant_id == tenant.id)
        .group_by(*cols)
    )
    return {
        tuple(r[: len(cols)]) if group is not None else r[0]: Decimal(r.d) - Decimal(r.c)
        for r in conn.execute(query)
    }


def _stock_vs_accounts(
    conn: Connection, tenant: TenantContext, positions: dict[Any, Any]
) -> list[Difference]:
    item, cat = T["item"], T["item_category"]
    account_of = {
        r.id: r.stock_account
        for r in conn.execute(
            select(item.c.id, cat.c.stock_account)
            .join(
                cat, and_(cat.c.tenant_id == item.c.tenant_id, cat.c.code == item.c.category_code)
            )
            .where(item.c.tenant_id == tenant.id)
        )
    }
    valuation: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (item_id, _, _), (_, value) in positions.items():
        valuation[account_of[item_id]] += value
    stock_accounts = set(account_of.values())
    balances = _account_balances(conn, tenant)
    return [
        Difference(
            "stock_value_equals_account", code, valuation.get(code, ZERO), balances.get(code, ZERO)
        )
        for code in sorted(stock_accounts)
        if valuation.get(code, ZERO) != balances.get(code, ZERO)
    ]


def _caches_vs_moves(
    conn: Connection, tenant: TenantContext, positions: dict[Any, Any]
) -> list[Difference]:
    out = []
    sb, vp = T["stock_balance"], T["valuation_pool"]
    cached = {
        (r.item_id, r.location_id, r.lot): r.quantity
        for r in conn.execute(select(sb).where(sb.c.tenant_id == tenant.id))
    }
    for key in set(cached) | set(positions):
        expected = positions.get(key, (ZERO, ZERO))[0]
        actual = cached.get(key, ZERO)
        if expected != actual:
            out.append(Difference("on_hand_equals_moves", _key(key), expected, actual))
        if actual < 0 and not tenant.allow_negative_stock:
            out.append(Difference("no_negative_stock", _key(key), ZERO, actual))
    pools: dict[tuple[Any, Any], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for (item_id, loc_id, _), (q, v) in positions.items():
        pools[(item_id, loc_id)][0] += q
        pools[(item_id, loc_id)][1] += v
    cached_pools = {
        (r.item_id, r.location_id): (r.quantity, r.value)
        for r in conn.execute(select(vp).where(vp.c.tenant_id == tenant.id))
    }
    for key in set(pools) | set(cached_pools):
        eq, ev = pools.get(key, [ZERO, ZERO])
        aq, av = cached_pools.get(key, (ZERO, ZERO))
        if eq != aq:
            out.append(Difference("pool_quantity_equals_moves", _key(key), eq, aq))
        if ev != av:
            out.append(Difference("pool_value_equals_moves", _key(key), ev, av))
    return out + _layers_vs_moves(conn, tenant, pools)


def _layers_vs_moves(
    conn: Connection, tenant: TenantContext, pools: dict[tuple[Any, Any], list[Decimal]]
) -> list[Difference]:
    """A FIFO pool's open layers hold exactly its quantity and value."""
    item, cl = T["item"], T["cost_layer"]
    fifo = set(
        conn.scalars(
            select(item.c.id).where(
                item.c.tenant_id == tenant.id, item.c.valuation_method == "fifo"
            )
        )
    )
    layers = {
        (r.item_id, r.location_id): (Decimal(r.q), Decimal(r.v))
        for r in conn.execute(
            select(
                cl.c.item_id,
                cl.c.location_id,
                func.sum(cl.c.quantity_left).label("q"),
                func.sum(cl.c.value_left).label("v"),
            )
            .where(cl.c.tenant_id == tenant.id)
            .group_by(cl.c.item_id, cl.c.location_id)
        )
    }
    out = []
    for key in {k for k in pools if k[0] in fifo} | set(layers):
        eq, ev = pools.get(key, [ZERO, ZERO])
        aq, av = layers.get(key, (ZERO, ZERO))
        if eq != aq:
            out.append(Difference("fifo_layers_quantity_equals_moves", _key(key), eq, aq))
        if ev != av:
            out.append(Difference("fifo_layers_value_equals_moves", _key(key), ev, av))
    return out


@dataclass
class _Summed:
    """What a snapshot should hold, from the moves: quantity, value, lots."""

    quantity: Decimal = ZERO
    value: Decimal = ZERO
    lots: dict[str, Decimal] | None = None


def _snapshots_vs_moves(conn: Connection, tenant: TenantContext) -> list[Difference]:
    """Each pool snapshot equals the moves it sums up: a stock pool's quantity, value
    and quantity per lot are its moves' (effective values) up to the snapshot's
    position, and a FIFO pool's layers add up to its quantity and value; a work
    order's value is what went into its work in progress less what came out, and its
    units completed (good and scrap) its completions', up to the snapshot. A late
    event that replays a pool rewrites the snapshots it passes, so a snapshot that
    disagrees was tampered with or written wrong."""
    ps, ch = T["pool_snapshot"], T["wip_charge"]
    moves = _effective_moves(tenant.id)
    production = [i for i, (_, kind) in _kinds(conn, tenant.id).items() if kind == "production"]
    expected: dict[uuid.UUID, _Summed] = defaultdict(_Summed)
    upto = _position(moves) <= _position(ps)
    stock = and_(ps.c.tenant_id == tenant.id, ps.c.item_id.is_not(None))
    for side, sign in ((moves.c.to_location_id, 1), (moves.c.from_location_id, -1)):
        on = and_(moves.c.item_id == ps.c.item_id, side == ps.c.location_id, upto)
        query = (
            select(ps.c.id, moves.c.lot, func.sum(moves.c.quantity), func.sum(moves.c.effective))
            .join(moves, on)
            .where(stock)
            .group_by(ps.c.id, moves.c.lot)
        )
        for snapshot_id, lot, quantity, value in conn.execute(query):
            summed = expected[snapshot_id]
            summed.lots = summed.lots or {}
            summed.lots[lot] = summed.lots.get(lot, ZERO) + sign * Decimal(quantity)
            summed.quantity += sign * Decimal(quantity)
            summed.value += sign * Decimal(value)
    wip = and_(ps.c.tenant_id == tenant.id, ps.c.work_order_id.is_not(None))
    units = case((moves.c.kind == "completion", moves.c.quantity + moves.c.scrap_quantity), else_=0)
    for side, sign in ((moves.c.to_location_id, 1), (moves.c.from_location_id, -1)):
        on = and_(moves.c.work_order_id == ps.c.work_order_id, side.in_(production), upto)
        wip_query = (
            select(ps.c.id, func.sum(units), func.sum(moves.c.effective))
            .join(moves, on)
            .where(wip)
            .group_by(ps.c.id)
        )
        for snapshot_id, completed, value in conn.execute(wip_query):
            expected[snapshot_id].quantity -= sign * Decimal(completed)  # out: units made
            expected[snapshot_id].value += sign * Decimal(value)
    charges = select(ps.c.id, func.sum(ch.c.value)).join(
        ch,
        and_(
            ch.c.tenant_id == ps.c.tenant_id,
            ch.c.work_order_id == ps.c.work_order_id,
            _position(ch) <= _position(ps),
        ),
    )
    for snapshot_id, value in conn.execute(charges.where(wip).group_by(ps.c.id)):
        expected[snapshot_id].value += Decimal(value)
    item = T["item"]
    fifo = set(
        conn.scalars(
            select(item.c.id).where(
                item.c.tenant_id == tenant.id, item.c.valuation_method == "fifo"
            )
        )
    )
    out = []
    for row in conn.execute(select(ps).where(ps.c.tenant_id == tenant.id)):
        out += _snapshot_differences(row, expected[row.id], row.item_id in fifo)
    return out


def _position(table: Any) -> Any:
    return tuple_(table.c.occurred_at, table.c.event_id, table.c.line_no)


def _snapshot_differences(row: Any, expected: _Summed, fifo: bool) -> list[Difference]:
    key = _key((row.item_id or row.work_order_id, row.location_id or "", row.id))
    out = []
    if expected.quantity != row.quantity:
        out.append(
            Difference("snapshot_quantity_equals_moves", key, expected.quantity, row.quantity)
        )
    if expected.value != row.value:
        out.append(Difference("snapshot_value_equals_moves", key, expected.value, row.value))
    if row.work_order_id is not None:
        return out
    state = json.loads(row.state)
    lots = {lot: Decimal(q) for lot, q in state["lots"].items() if Decimal(q)}
    if sum(lots.values(), ZERO) != row.quantity:
        total = sum(lots.values(), ZERO)
        out.append(Difference("snapshot_lots_equal_quantity", key, row.quantity, total))
    moved = {lot: q for lot, q in (expected.lots or {}).items() if q}
    wrong = sorted(lot for lot in set(lots) | set(moved) if lots.get(lot) != moved.get(lot))
    if wrong:  # the first lot that disagrees
        lot = wrong[0]
        out.append(
            Difference(
                "snapshot_lots_equal_moves",
                f"{key}/{lot}",
                moved.get(lot, ZERO),
                lots.get(lot, ZERO),
            )
        )
    if fifo:
        layers = state["layers"]
        left = sum((Decimal(layer[3]) for layer in layers), ZERO)
        worth = sum((Decimal(layer[4]) for layer in layers), ZERO)
        if left != row.quantity:
            out.append(Difference("snapshot_layers_equal_quantity", key, row.quantity, left))
        if worth != row.value:
            out.append(Difference("snapshot_layers_equal_value", key, row.value, worth))
    return out


def _wip_vs_account(conn: Connection, tenant: TenantContext) -> list[Difference]:
    jl, wb = T["journal_line"], T["wip_balance"]
    from_ledger = wip_by_work_order(conn, tenant)
    by_order = {
        key[1]: bal
        for key, bal in _account_balances(conn, tenant, jl.c.work_order_id).items()
        if key[0] == WIP_ACCOUNT
    }
    cached = {
        r.work_order_id: r.value
        for r in conn.execute(select(wb).where(wb.c.tenant_id == tenant.id))
    }
    out = []
    for order in set(from_ledger) | set(by_order) | set(cached):
        expected = from_ledger.get(order, ZERO)
        if by_order.get(order, ZERO) != expected:
            out.append(
                Difference(
                    "wip_equals_account_5001", str(order), expected, by_order.get(order, ZERO)
                )
            )
        if cached.get(order, ZERO) != expected:
            out.append(
                Difference("wip_cache_equals_ledger", str(order), expected, cached.get(order, ZERO))
            )
    return out


def _days_vs_ledger(conn: Connection, tenant: TenantContext) -> list[Difference]:
    """The day totals (account_day, receivable_day) equal the journal lines they add
    up, debit and credit, day by day; output_day the completion moves."""
    je, jl = T["journal_entry"], T["journal_line"]
    out = []
    for table, group in (
        (T["account_day"], jl.c.account_code),
        (T["receivable_day"], jl.c.customer_id),
    ):
        key_column = table.c[group.name]
        query = (
            select(group, je.c.entry_date, func.sum(jl.c.debit), func.sum(jl.c.credit))
            .select_from(je)
            .join(jl, and_(jl.c.tenant_id == je.c.tenant_id, jl.c.entry_id == je.c.id))
            .where(je.c.tenant_id == tenant.id)
            .group_by(group, je.c.entry_date)
        )
        if table.name == "receivable_day":
            query = query.where(jl.c.account_code == RECEIVABLES, jl.c.customer_id.is_not(None))
        lines = {(r[0], r[1]): (Decimal(r[2]), Decimal(r[3])) for r in conn.execute(query)}
        days = {
            (r[0], r[1]): (r[2], r[3])
            for r in conn.execute(
                select(key_column, table.c.entry_date, table.c.debit, table.c.credit).where(
                    table.c.tenant_id == tenant.id
                )
            )
        }
        out += _compare(table.name, lines, days)
    return out + _output_vs_moves(conn, tenant)


def _output_vs_moves(conn: Connection, tenant: TenantContext) -> list[Difference]:
    """output_day equals the completion moves of each day's entries (not the
    revaluations'), a reversed completion counted back."""
    je, mv, od = T["journal_entry"], T["stock_move"], T["output_day"]
    original = mv.c.mirrors_move_id.is_(None)
    moves: dict[Any, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for r in conn.execute(
        select(je.c.entry_date, original, func.sum(mv.c.quantity), func.sum(mv.c.value))
        .select_from(je)
        .join(mv, and_(mv.c.tenant_id == je.c.tenant_id, mv.c.event_id == je.c.event_id))
        .where(je.c.tenant_id == tenant.id, je.c.kind != "revaluation", mv.c.kind == "completion")
        .group_by(je.c.entry_date, original)
    ):
        sign = 1 if r[1] else -1
        moves[(r[0], "")][0] += sign * Decimal(r[2])
        moves[(r[0], "")][1] += sign * Decimal(r[3])
    days = {
        (r.entry_date, ""): (r.quantity, r.value)
        for r in conn.execute(select(od).where(od.c.tenant_id == tenant.id))
    }
    expected = {key: (q, v) for key, (q, v) in moves.items() if q or v or key in days}
    # a day whose completions were all reversed adds up to zero, stored or not
    return _compare("output_day", expected, days, sides=("quantity", "value"))


def _compare(
    name: str,
    expected_by_key: dict[Any, tuple[Decimal, Decimal]],
    actual_by_key: dict[Any, tuple[Decimal, Decimal]],
    sides: tuple[str, str] = ("debit", "credit"),
) -> list[Difference]:
    """A difference per key and side where a day total disagrees with its ledger."""
    out = []
    keys = sorted(set(expected_by_key) | set(actual_by_key), key=lambda k: tuple(map(str, k)))
    for key in keys:
        expected = expected_by_key.get(key, (ZERO, ZERO))
        actual = actual_by_key.get(key, (ZERO, ZERO))
        for side, e, a in zip(sides, expected, actual, strict=True):
            if e != a:
                out.append(Difference(f"{name}_{side}_equals_ledger", _key(key), e, a))
    return out


def _key(key: tuple[Any, ...]) -> str:
    return "/".join(str(k) for k in key)
