"""The SQL side of posting: master-data lookups, the engine's `History` port, the
buffer of rows an ingest batch writes, and the pool caches.

Rows are buffered and written with one multi-row INSERT per table per batch
(`flush`); a history read flushes first, so it always sees the batch's own rows.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc as utc_now
from cloud_api.domain.clock import utc
from cloud_api.domain.engine import (
    ChargeRecord,
    MoveRecord,
    Pool,
    PoolKey,
    Position,
    Record,
    Slot,
    Snapshot,
)
from cloud_api.domain.money import ZERO
from cloud_api.domain.pools import Layer, StockPool, WipPool
from cloud_api.domain.posting_rules import RECEIVABLES as RECEIVABLES_ACCOUNT
from cloud_api.domain.posting_rules import WIP as WIP_ACCOUNT
from cloud_api.domain.refs import (
    ComponentRef,
    ItemRef,
    LocationRef,
    LotStock,
    PartyRef,
    WorkCenterRef,
    WorkOrderRef,
)
from cloud_api.errors import Held
from cloud_api.settings import get_settings

T = m.SQLModel.metadata.tables


@dataclass(frozen=True)
class TenantContext:
    id: uuid.UUID
    allow_negative_stock: bool
    timezone: str
    allow_issue_from_reserved: bool = False
    completion_tolerance: Decimal = Decimal(0)
    variance_policy: str = "cost_of_sales"
    reversal_sod_waived: bool = False


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(table)
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changed), rows)


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows. On PostgreSQL through COPY (one round trip for the lot, the
    cheapest path the server has); elsewhere an executemany. Values go through each
    column type's own bind processing, so the stored values are the same either way.

    COPY FROM refuses a table under row-level security, so a role it applies to (the
    app's erp_app) copies into a temporary staging table of the same shape and moves
    the rows across in one INSERT, where the tenant policy's WITH CHECK still holds."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = [c for c in table.columns if c.name in rows[0] or c.default is not None]
    processors = [c.type._cached_bind_processor(conn.dialect) for c in columns]
    defaults = [_python_default(c) for c in columns]
    names = ", ".join(f'"{c.name}"' for c in columns)
    driver = conn.connection.driver_connection
    assert driver is not None
    target = table.name
    if _under_rls(conn):
        target = f"_bulk_{table.name}"
        conn.exec_driver_sql(
            f'CREATE TEMP TABLE IF NOT EXISTS "{target}" '
            f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
        )
    with driver.cursor() as cur, cur.copy(f'COPY "{target}" ({names}) FROM STDIN') as copy:
        for row in rows:
            values = []
            for column, process, default in zip(columns, processors, defaults, strict=True):
                value = row[column.name] if column.name in row else default()
                values.append(process(value) if process is not None else value)
            copy.write_row(values)
    if target != table.name:
        conn.exec_driver_sql(
            f'WITH staged AS (DELETE FROM "{target}" RETURNING *) '
            f'INSERT INTO "{table.name}" SELECT * FROM staged'
        )


def _under_rls(conn: Connection) -> bool:
    """Whether row-level security binds this connection's role (cached per pooled
    connection: the role of a connection never changes)."""
    info = conn.connection.info
    if "erp_under_rls" not in info:
        info["erp_under_rls"] = not conn.exec_driver_sql(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).scalar()
    return bool(info["erp_under_rls"])


def _python_default(column: Any) -> Any:
    default = column.default
    if default is None:
        return lambda: None
    if default.is_callable:
        return lambda: default.arg(None)
    return lambda: default.arg


# The quantity on hand now per lot of an (item, location), as the unit of work sees it.
StockLots = Callable[[uuid.UUID, uuid.UUID], dict[str, Decimal]]


class MasterDataStore:
    """Looks master data up by code, memoised for one unit of work. `stock_lots` gives
    the lots on hand now, including what the unit of work has posted so far."""

    def __init__(
        self, conn: Connection, tenant: TenantContext, buffer: RowBuffer, stock_lots: StockLots
    ) -> None:
        self.conn, self.tenant, self.buffer = conn, tenant, buffer
        self.stock_lots = stock_lots
        self._backflush: dict[uuid.UUID, list[ComponentRef]] = {}
        self._items: dict[str, ItemRef] = {}
        self._items_by_id: dict[uuid.UUID, ItemRef] = {}
        self._locations: dict[str, LocationRef] = {}
        self._locations_by_id: dict[uuid.UUID, LocationRef] = {}
        self._virtual: dict[str, LocationRef] = {}
        self._orders: dict[str, WorkOrderRef] = {}
        self._orders_by_id: dict[uuid.UUID, WorkOrderRef] = {}
        self._centers: dict[str, WorkCenterRef] = {}
        self._customers: dict[str, PartyRef] = {}
        self._suppliers: dict[str, PartyRef] = {}
        self._operator_rates: dict[str, Decimal | None] = {}
        self._load_locations()

    def _load_locations(self) -> None:
        loc = T["location"]
        rows = self.conn.execute(
            select(loc.c.id, loc.c.code, loc.c.kind, loc.c.site).where(
                loc.c.tenant_id == self.tenant.id
            )
        )
        for row in rows:
            ref = LocationRef(row.id, row.code, row.kind, row.site)
            self._locations[row.code] = ref
            self._locations_by_id[row.id] = ref
            if not ref.internal:
                self._virtual.setdefault(row.kind, ref)

    def prefetch_items(self, codes: set[str]) -> None:
        missing = codes - self._items.keys()
        if missing:
            self._fetch_items(m.Item.code.in_(sorted(missing)))  # type: ignore[attr-defined]

    def _fetch_items(self, condition: Any) -> None:
        item, cat = T["item"], T["item_category"]
        query = (
            select(
                item.c.id,
                item.c.code,
                item.c.valuation_method,
                item.c.lot_tracked,
                cat.c.stock_account,
                cat.c.cogs_account,
                cat.c.revenue_account,
            )
            .join(
                cat, and_(cat.c.tenant_id == item.c.tenant_id, cat.c.code == item.c.category_code)
            )
            .where(item.c.tenant_id == self.tenant.id, condition)
        )
        for row in self.conn.execute(query):
            ref = ItemRef(
                row.id,
                row.code,
                row.valuation_method,
                row.lot_tracked,
                row.stock_account,
                row.cogs_account,
                row.revenue_account,
            )
            self._items[ref.code] = ref
            self._items_by_id[ref.id] = ref

    def prefetch_by_ids(self, item_ids: set[uuid.UUID], order_ids: set[uuid.UUID]) -> None:
        """The items and work orders of pools about to be loaded, a query each."""
        for chunk in _chunks(sorted(item_ids - self._items_by_id.keys())):
            self._fetch_items(T["item"].c.id.in_(chunk))
        for chunk in _chunks(sorted(order_ids - self._orders_by_id.keys())):
            self._fetch_orders(T["work_order"].c.id.in_(chunk))

    def item(self, code: str) -> ItemRef:
        if code not in self._items:
            self._fetch_items(T["item"].c.code == code)
        if code not in self._items:
            raise Held("unknown_item", f"item {code} does not exist; it posts once it is created")
        return self._items[code]

    def item_by_id(self, item_id: uuid.UUID) -> ItemRef:
        if item_id not in self._items_by_id:
            self._fetch_items(T["item"].c.id == item_id)
        return self._items_by_id[item_id]

    def location(self, code: str) -> LocationRef:
        if code not in self._locations:
            raise Held(
                "unknown_location", f"location {code} does not exist; it posts once it is created"
            )
        return self._locations[code]

    def location_by_id(self, location_id: uuid.UUID) -> LocationRef:
        return self._locations_by_id[location_id]

    def virtual_location(self, kind: str) -> LocationRef:
        if kind not in self._virtual:
            raise Held("missing_virtual_location", f"the tenant has no {kind} location")
        return self._virtual[kind]

    def production_location(self) -> LocationRef:
        return self.virtual_location("production")

    def set_order_status(self, work_order_id: uuid.UUID, status: str) -> None:
        ref = replace(self.work_order_by_id(work_order_id), status=status)
        self._orders[ref.code] = self._orders_by_id[ref.id] = ref

    def prefetch_work_orders(self, codes: set[str]) -> None:
        """The orders of a batch and their backflushed components, in two queries."""
        missing = codes - self._orders.keys()
        if missing:
            found = self._fetch_orders(T["work_order"].c.code.in_(sorted(missing)))
            self._fetch_backflush(sorted(ref.id for ref in found))

    def work_order(self, code: str) -> WorkOrderRef:
        if code not in self._orders:
            self._fetch_order(T["work_order"].c.code == code, code)
        return self._orders[code]

    def work_order_by_id(self, work_order_id: uuid.UUID) -> WorkOrderRef:
        if work_order_id in self._orders_by_id:
            return self._orders_by_id[work_order_id]
        return self._fetch_order(T["work_order"].c.id == work_order_id, str(work_order_id))

    def _fetch_order(self, condition: Any, label: str) -> WorkOrderRef:
        found = self._fetch_orders(condition)
        if not found:
            raise Held(
                "unknown_work_order",
                f"work order {label} does not exist; it posts once it is created and released",
            )
        return found[0]

    def _fetch_orders(self, condition: Any) -> list[WorkOrderRef]:
        wo = T["work_order"]
        found = []
        for row in self.conn.execute(select(wo).where(wo.c.tenant_id == self.tenant.id, condition)):
            ref = WorkOrderRef(
                row.id, row.code, row.item_id, row.planned_quantity, row.status, row.warehouse_id
            )
            self._orders[ref.code] = self._orders_by_id[ref.id] = ref
            found.append(ref)
        return found

    def work_center(self, code: str) -> WorkCenterRef:
        if code not in self._centers:
            wc = T["work_center"]
            row = self.conn.execute(
                select(wc).where(wc.c.tenant_id == self.tenant.id, wc.c.code == code)
            ).first()
            if row is None:
                raise Held("unknown_work_center", f"work centre {code} does not exist")
            self._centers[code] = WorkCenterRef(
                row.id, row.code, row.labour_rate, row.overhead_rate
            )
        return self._centers[code]

    def customer(self, code: str) -> PartyRef:
        return self._party("customer", code, self._customers)

    def supplier(self, code: str) -> PartyRef:
        return self._party("supplier", code, self._suppliers)

    def _party(self, table: str, code: str, memo: dict[str, PartyRef]) -> PartyRef:
        if code not in memo:
            t = T[table]
            row = self.conn.execute(
                select(t.c.id, t.c.code).where(t.c.tenant_id == self.tenant.id, t.c.code == code)
            ).first()
            if row is None:
                raise Held(f"unknown_{table}", f"{table} {code} does not exist; create it")
            memo[code] = PartyRef(row.id, row.code)
        return memo[code]

    def on_hand(self, item: ItemRef, location: LocationRef, lot: str, at: datetime) -> Decimal:
        """Quantity on hand just before `at` (moves strictly earlier)."""
        self.buffer.flush(self.conn)
        at = utc(at)
        mv = T["stock_move"]
        base = [
            mv.c.tenant_id == self.tenant.id,
            mv.c.item_id == item.id,
            mv.c.lot == lot,
            mv.c.occurred_at < at,
        ]
        inbound = self.conn.scalar(
            select(func.coalesce(func.sum(mv.c.quantity), 0)).where(
                *base, mv.c.to_location_id == location.id
            )
        )
        outbound = self.conn.scalar(
            select(func.coalesce(func.sum(mv.c.quantity), 0)).where(
                *base, mv.c.from_location_id == location.id
            )
        )
        return Decimal(inbound or 0) - Decimal(outbound or 0)

    def variance_policy(self) -> str:
        return self.tenant.variance_policy

    def accounts(self) -> set[str]:
        a = T["account"]
        return set(self.conn.scalars(select(a.c.code).where(a.c.tenant_id == self.tenant.id)))

    def control_accounts(self) -> set[str]:
        cat = T["item_category"]
        stock = self.conn.scalars(
            select(cat.c.stock_account).where(cat.c.tenant_id == self.tenant.id)
        )
        return {*stock, WIP_ACCOUNT}

    def operator_rate(self, code: str) -> Decimal | None:
        """The labour rate of the operator's grade; None for an operator without a
        grade, or one the master data does not know (the work centre's rate then)."""
        if code not in self._operator_rates:
            op, grade = T["operator"], T["operator_grade"]
            self._operator_rates[code] = self.conn.scalar(
                select(grade.c.labour_rate)
                .join(
                    op,
                    (op.c.tenant_id == grade.c.tenant_id) & (op.c.grade == grade.c.code),
                )
                .where(op.c.tenant_id == self.tenant.id, op.c.code == code)
            )
        return self._operator_rates[code]

    def output_location(self, order: WorkOrderRef, at: datetime) -> LocationRef | None:
        """Where the order's latest completion before `at` put its goods."""
        self.buffer.flush(self.conn)
        mv, loc = T["stock_move"], T["location"]
        found = self.conn.scalar(
            select(mv.c.to_location_id)
            .join(loc, (loc.c.tenant_id == mv.c.tenant_id) & (loc.c.id == mv.c.from_location_id))
            .where(
                mv.c.tenant_id == self.tenant.id,
                mv.c.work_order_id == order.id,
                mv.c.kind == "completion",
                loc.c.kind == "production",
                mv.c.occurred_at < utc(at),
            )
            .order_by(mv.c.occurred_at.desc(), mv.c.event_id.desc(), mv.c.line_no.desc())
            .limit(1)
        )
        return None if found is None else self.location_by_id(found)

    def backflush_components(self, order: WorkOrderRef) -> list[ComponentRef]:
        if order.id not in self._backflush:
            self._fetch_backflush([order.id])
        return self._backflush[order.id]

    def _fetch_backflush(self, order_ids: list[uuid.UUID]) -> None:
        """The backflushed components of these orders, in one query."""
        woc, item = T["work_order_component"], T["item"]
        found: dict[uuid.UUID, list[ComponentRef]] = {o: [] for o in order_ids}
        for r in self.conn.execute(
            select(
                woc.c.work_order_id,
                woc.c.line_no,
                woc.c.item_id,
                woc.c.location_id,
                woc.c.planned_quantity,
            )
            .join(item, and_(item.c.tenant_id == woc.c.tenant_id, item.c.id == woc.c.item_id))
            .where(
                woc.c.tenant_id == self.tenant.id,
                woc.c.work_order_id.in_(order_ids),
                item.c.issue_method == "backflush",
            )
            .order_by(woc.c.work_order_id, woc.c.line_no)
        ):
            found[r.work_order_id].append(
                ComponentRef(
                    r.line_no,
                    self.item_by_id(r.item_id),
                    self.location_by_id(r.location_id),
                    r.planned_quantity,
                )
            )
        self._backflush.update(found)

    def lots_on_hand(self, item: ItemRef, location: LocationRef) -> list[LotStock]:
        quantities = {
            lot: q for lot, q in self.stock_lots(item.id, location.id).items() if q > 0 and lot
        }
        if not quantities:
            return []
        self.buffer.flush(self.conn)  # the lots this unit of work has received
        lt = T["lot"]
        known = {
            row.lot: row
            for row in self.conn.execute(
                select(lt.c.lot, lt.c.expiry, lt.c.first_received_at).where(
                    lt.c.tenant_id == self.tenant.id,
                    lt.c.item_id == item.id,
                    lt.c.lot.in_(sorted(quantities)),
                )
            )
        }
        return [
            LotStock(
                lot,
                q,
                known[lot].expiry if lot in known else None,
                known[lot].first_received_at if lot in known else None,
            )
            for lot, q in sorted(quantities.items())
        ]


class RowBuffer:
    """Rows of a unit of work, written per table in foreign-key order."""

    ORDER = (
        "edge_event",
        "journal_entry",
        "stock_move",
        "wip_charge",
        "journal_line",
        "stock_revaluation",
    )

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.event_updates: list[dict[str, Any]] = []
        self.lots: dict[tuple[uuid.UUID, uuid.UUID, str], dict[str, Any]] = {}

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows[table].append(row)

    def add_lot(
        self,
        tenant_id: uuid.UUID,
        item_id: uuid.UUID,
        lot: str,
        received_at: datetime,
        expiry: date | None,
    ) -> None:
        """Keep a lot as received: the earliest receipt time and the first expiry
        given win, here and against the stored row (`_flush_lots`)."""
        key = (tenant_id, item_id, lot)
        row = self.lots.setdefault(
            key,
            {
                "tenant_id": tenant_id,
                "item_id": item_id,
                "lot": lot,
                "first_received_at": received_at,
                "expiry": expiry,
            },
        )
        row["first_received_at"] = min(row["first_received_at"], received_at)
        row["expiry"] = row["expiry"] or expiry

    def flush(self, conn: Connection) -> None:
        days = day_totals(
            self.rows.get("journal_entry", []),
            self.rows.get("journal_line", []),
            self.rows.get("stock_move", []),
        )
        for name in self.ORDER:
            bulk_insert(conn, T[name], self.rows.pop(name, []))
        add_to_days(conn, days)
        self._flush_lots(conn)
        if self.event_updates:
            # One executemany per shape of update (held again, now posted, reversed)
            # instead of one statement per event.
            ev = T["edge_event"]
            shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
            for params in self.event_updates:
                row = {
                    ("b_" + k if k in ("tenant_id", "event_id") else k): v
                    for k, v in params.items()
                }
                shapes[tuple(sorted(row))].append(row)
            stmt = update(ev).where(
                ev.c.tenant_id == bindparam("b_tenant_id"), ev.c.event_id == bindparam("b_event_id")
            )
            for rows in shapes.values():
                conn.execute(stmt, rows)
            self.event_updates.clear()

    def _flush_lots(self, conn: Connection) -> None:
        """Insert the lots not yet known; for a known one keep the earlier receipt time
        (a back-dated receipt) and the expiry already stored, else the new one."""
        if not self.lots:
            return
        lt = T["lot"]
        stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(lt)
        earlier = stmt.excluded.first_received_at < lt.c.first_received_at
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "item_id", "lot"],
                set_={
                    "first_received_at": case(
                        (earlier, stmt.excluded.first_received_at), else_=lt.c.first_received_at
                    ),
                    "expiry": func.coalesce(lt.c.expiry, stmt.excluded.expiry),
                },
            ),
            sorted(self.lots.values(), key=lambda row: (str(row["item_id"]), row["lot"])),
        )
        self.lots.clear()


@dataclass
class DayTotals:
    """Debits and credits of a batch of journal lines by account and entry date, the
    receivables' by customer and entry date, and the output of the completion moves
    by entry date (m.AccountDay, m.ReceivableDay, m.OutputDay)."""

    accounts: dict[tuple[uuid.UUID, str, date], list[Decimal]]
    receivables: dict[tuple[uuid.UUID, uuid.UUID, date], list[Decimal]]
    output: dict[tuple[uuid.UUID, date], list[Decimal]]  # quantity, value


def day_totals(
    entries: list[dict[str, Any]], lines: list[dict[str, Any]], moves: list[dict[str, Any]]
) -> DayTotals:
    """The day totals of `lines` and of the completion `moves`, whose entries are among
    `entries` (an event's moves, its entry and the entry's lines are buffered together,
    with no flush between them)."""
    dates = {(e["tenant_id"], e["id"]): e["entry_date"] for e in entries}
    totals = DayTotals(*(defaultdict(lambda: [ZERO, ZERO]) for _ in range(3)))
    booked = {
        (e["tenant_id"], e["event_id"]): e["entry_date"]
        for e in entries
        if e["kind"] != "revaluation" and e["event_id"] is not None
    }
    for move in moves:
        day = booked.get((move["tenant_id"], move["event_id"]))
        if move["kind"] != "completion" or day is None:
            continue
        sign = 1 if move["mirrors_move_id"] is None else -1  # a reversal counts back
        sums = totals.output[move["tenant_id"], day]
        sums[0] += sign * move["quantity"]
        sums[1] += sign * move["value"]
    for line in lines:
        tenant_id, day = line["tenant_id"], dates[line["tenant_id"], line["entry_id"]]
        debit, credit = line.get("debit") or ZERO, line.get("credit") or ZERO
        sums = totals.accounts[tenant_id, line["account_code"], day]
        sums[0] += debit
        sums[1] += credit
        if line["account_code"] == RECEIVABLES_ACCOUNT and line.get("customer_id"):
            sums = totals.receivables[tenant_id, line["customer_id"], day]
            sums[0] += debit
            sums[1] += credit
    return totals


def add_to_days(conn: Connection, totals: DayTotals) -> None:
    """Add the totals to the stored days: one upsert per table, rows in key order so
    that two transactions adding to the same days never deadlock."""
    for table, keys, sums in (
        (T["account_day"], ("tenant_id", "account_code", "entry_date"), totals.accounts),
        (T["receivable_day"], ("tenant_id", "customer_id", "entry_date"), totals.receivables),
        (T["output_day"], ("tenant_id", "entry_date"), totals.output),
    ):
        if not sums:
            continue
        added = [c.name for c in table.columns if c.name not in keys]  # debit, credit / …
        rows = [
            {**dict(zip(keys, key, strict=True)), **dict(zip(added, values, strict=True))}
            for key, values in sorted(sums.items(), key=lambda kv: tuple(map(str, kv[0])))
        ]
        stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={name: table.c[name] + stmt.excluded[name] for name in added},
            ),
            rows,
        )


class SqlHistory:
    """The engine's port to the database: pool caches and pool histories."""

    def __init__(
        self, conn: Connection, tenant: TenantContext, md: MasterDataStore, buffer: RowBuffer
    ) -> None:
        self.conn, self.tenant, self.md, self.buffer = conn, tenant, md, buffer
        self.lock = conn.dialect.name == "postgresql"
        # The cost_layer rows as read, per pool: ref -> (seq_no, quantity_left,
        # value_left). `save` writes only the difference.
        # per pool: move id → (seq_no, quantity_in, value_in, quantity_left, value_left)
        self._stored_layers: dict[PoolKey, dict[Any, tuple[Any, ...]]] = {}
        # a pool's lots / a work order's materials as stored: `save` writes only those
        # that changed (a late receipt revalues one material of an order that has used
        # seventy)
        self._stored_lots: dict[PoolKey, dict[str, Decimal]] = defaultdict(dict)
        self._stored_materials: dict[PoolKey, dict[Any, tuple[Decimal, Decimal]]] = defaultdict(
            dict
        )
        self.snapshot_every = get_settings().valuation_snapshot_every
        # snapshots posted late events changed, written by `save`
        self._rewritten: dict[tuple[PoolKey, Position], Snapshot] = {}
        # snapshot rows read ahead of a replay (as stored: `_snapshot` overlays the above)
        self._ahead: dict[tuple[PoolKey, Position], Any] = {}

    # -- caches ----------------------------------------------------------------
    def load_slots(self, keys: list[PoolKey]) -> dict[PoolKey, Slot]:
        """Load (and on PostgreSQL lock) the cached pools of `keys` with a handful of
        statements for all of them; rows are locked in key order, so two batches
        touching the same pools never deadlock on them."""
        stock = sorted({k for k in keys if k[0] == "stock"}, key=str)
        wip = sorted({k for k in keys if k[0] == "wip"}, key=str)
        self.md.prefetch_by_ids({k[1] for k in stock}, {k[1] for k in wip})  # type: ignore[misc]
        slots = self._load_stock(stock) if stock else {}
        if wip:
            slots.update(self._load_wip(wip))
        return slots

    def empty_pool(self, key: PoolKey) -> StockPool | WipPool:
        if key[0] == "stock":
            item = self.md.item_by_id(key[1])  # type: ignore[arg-type]
            location = self.md.location_by_id(key[2])  # type: ignore[arg-type]
            return StockPool(
                item.valuation_method,
                f"{item.code} in {location.code}",
                self.tenant.allow_negative_stock,
            )
        order = self.md.work_order_by_id(key[1])  # type: ignore[arg-type]
        return WipPool(f"work order {order.code}", order.planned_quantity)

    def _locked_rows(
        self, table: Table, columns: list[str], keys: list[tuple[Any, ...]], blank: dict[str, Any]
    ) -> list[Any]:
        """The cache rows of `keys`, locked on PostgreSQL (SELECT ... FOR UPDATE, in key
        order, so two batches never deadlock on them). A key without a row gets a
        blank one first: a pool with history has its row, so the usual batch costs
        one statement here."""
        cols = [table.c[c] for c in columns]
        keys = sorted(keys, key=lambda key: tuple(map(str, key)))  # one order for everyone

        def fetch(wanted: list[tuple[Any, ...]]) -> list[Any]:
            rows: list[Any] = []
            for chunk in _chunks(wanted):
                match = (
                    tuple_(*cols).in_(chunk)
                    if len(cols) > 1
                    else cols[0].in_([k[0] for k in chunk])
                )
                query = select(table).where(table.c.tenant_id == self.tenant.id, match)
                rows += self.conn.execute(self._locked(query.order_by(*cols))).all()
            return rows

        rows = fetch(keys)
        found = {tuple(getattr(row, c) for c in columns) for row in rows}
        missing = [key for key in keys if key not in found]
        if missing:
            dialect_insert = pg_insert if self.lock else sqlite_insert
            self.conn.execute(
                dialect_insert(table).on_conflict_do_nothing(),
                [
                    {"tenant_id": self.tenant.id, **dict(zip(columns, key, strict=True)), **blank}
                    for key in missing
                ],
            )
            rows += fetch(missing)
        return rows

    def _locked(self, query: Any) -> Any:
        return query.with_for_update() if self.lock else query

    def _load_stock(self, keys: list[PoolKey]) -> dict[PoolKey, Slot]:
        tid = self.tenant.id
        vp, sb, cl = T["valuation_pool"], T["stock_balance"], T["cost_layer"]
        pairs = [(k[1], k[2]) for k in keys]
        slots: dict[PoolKey, Slot] = {}
        blank = {"quantity": ZERO, "value": ZERO}
        for row in self._locked_rows(vp, ["item_id", "location_id"], pairs, blank):
            key: PoolKey = ("stock", row.item_id, row.location_id)
            pool = self.empty_pool(key)
            assert isinstance(pool, StockPool)
            pool.quantity, pool.value = row.quantity, row.value
            pool.last_unit_cost = row.last_unit_cost
            slots[key] = Slot(pool, _position(row), since_snapshot=row.records_since_snapshot)
        for chunk in _chunks(pairs):
            for row in self.conn.execute(
                select(sb.c.item_id, sb.c.location_id, sb.c.lot, sb.c.quantity).where(
                    sb.c.tenant_id == tid, tuple_(sb.c.item_id, sb.c.location_id).in_(chunk)
                )
            ):
                key = ("stock", row.item_id, row.location_id)
                pool = slots[key].pool
                assert isinstance(pool, StockPool)
                pool.lots[row.lot] = self._stored_lots[key][row.lot] = row.quantity
        fifo = [k for k, slot in slots.items() if getattr(slot.pool, "method", "") == "fifo"]
        for key in fifo:
            self._stored_layers[key] = {}
        for chunk in _chunks([(k[1], k[2]) for k in fifo]):
            for row in self.conn.execute(
                select(cl)
                .where(cl.c.tenant_id == tid, tuple_(cl.c.item_id, cl.c.location_id).in_(chunk))
                .order_by(cl.c.item_id, cl.c.location_id, cl.c.seq_no)
            ):
                key = ("stock", row.item_id, row.location_id)
                pool = slots[key].pool
                assert isinstance(pool, StockPool)
                pool.layers.append(
                    Layer(
                        row.move_id,
                        row.quantity_in,
                        row.value_in,
                        row.quantity_left,
                        row.value_left,
                    )
                )
                self._stored_layers[key][row.move_id] = (
                    row.seq_no,
                    row.quantity_in,
                    row.value_in,
                    row.quantity_left,
                    row.value_left,
                )
        return slots

    def _load_wip(self, keys: list[PoolKey]) -> dict[PoolKey, Slot]:
        tid = self.tenant.id
        wb, wm = T["wip_balance"], T["wip_material"]
        orders = [k[1] for k in keys]
        slots: dict[PoolKey, Slot] = {}
        blank = {"value": ZERO, "completed_quantity": ZERO}
        for row in self._locked_rows(wb, ["work_order_id"], [(o,) for o in orders], blank):
            key = ("wip", row.work_order_id)
            pool = self.empty_pool(key)
            assert isinstance(pool, WipPool)
            pool.value, pool.completed_quantity = row.value, row.completed_quantity
            pool.good_quantity = row.good_quantity
            slots[key] = Slot(pool, _position(row), since_snapshot=row.records_since_snapshot)
        for chunk in _chunks(orders):
            for row in self.conn.execute(
                select(wm).where(wm.c.tenant_id == tid, wm.c.work_order_id.in_(chunk))
            ):
                key = ("wip", row.work_order_id)
                pool = slots[key].pool
                assert isinstance(pool, WipPool)
                pool.materials[row.item_id] = (row.quantity, row.value)
                self._stored_materials[key][row.item_id] = (row.quantity, row.value)
        return slots

    def save(self, slots: dict[PoolKey, Slot]) -> None:
        self._save_snapshots(slots)
        stock_rows, lot_rows, wip_rows, material_rows = [], [], [], []
        for key, slot in sorted(slots.items(), key=lambda kv: str(kv[0])):
            if not slot.dirty:
                continue
            pos = {
                **_position_columns(slot.position),
                "records_since_snapshot": slot.since_snapshot,
            }
            if isinstance(slot.pool, StockPool):
                base = {"tenant_id": self.tenant.id, "item_id": key[1], "location_id": key[2]}
                stock_rows.append(
                    {
                        **base,
                        "quantity": slot.pool.quantity,
                        "value": slot.pool.value,
                        "last_unit_cost": slot.pool.last_unit_cost,
                        **pos,
                    }
                )
                lots = _changed(self._stored_lots[key], slot.pool.lots)
                lot_rows += [{**base, "lot": lot, "quantity": q} for lot, q in lots.items()]
                if slot.pool.method == "fifo":
                    self._save_layers(key, base, slot.pool.layers)
            else:
                base = {"tenant_id": self.tenant.id, "work_order_id": key[1]}
                wip_rows.append(
                    {
                        **base,
                        "value": slot.pool.value,
                        "completed_quantity": slot.pool.completed_quantity,
                        "good_quantity": slot.pool.good_quantity,
                        **pos,
                    }
                )
                materials = _changed(self._stored_materials[key], slot.pool.materials)
                material_rows += [
                    {**base, "item_id": item_id, "quantity": q, "value": v}
                    for item_id, (q, v) in materials.items()
                ]
            slot.dirty = False
        upsert(self.conn, T["valuation_pool"], stock_rows, ["tenant_id", "item_id", "location_id"])
        upsert(
            self.conn, T["stock_balance"], lot_rows, ["tenant_id", "item_id", "location_id", "lot"]
        )
        upsert(self.conn, T["wip_balance"], wip_rows, ["tenant_id", "work_order_id"])
        upsert(
            self.conn, T["wip_material"], material_rows, ["tenant_id", "work_order_id", "item_id"]
        )

    def _save_layers(self, key: PoolKey, base: dict[str, Any], layers: list[Layer]) -> None:
        """Write the pool's open layers. FIFO takes from the front, receipts append at
        the back and a reversal removes a whole layer, so the layers as read usually
        survive as a subsequence followed by new ones: then only the consumed layers
        are deleted, the changed ones updated and the new ones inserted. Any other
        shape (a rebuild after a late event) rewrites the pool's layers."""
        cl = T["cost_layer"]
        stored = self._stored_layers.get(key, {})
        last_seq, incremental, seen_new = -1, True, False
        for layer in layers:
            if layer.ref in stored:
                seq = stored[layer.ref][0]
                if seen_new or seq <= last_seq:
                    incremental = False
                    break
                last_seq = seq
            else:
                seen_new = True
        where = [cl.c[k] == v for k, v in base.items()]
        if incremental:
            current = {layer.ref for layer in layers}
            gone = [ref for ref in stored if ref not in current]
            for start in range(0, len(gone), 500):
                self.conn.execute(
                    delete(cl).where(*where, cl.c.move_id.in_(gone[start : start + 500]))
                )
            changed = [
                {
                    "b_move_id": layer.ref,
                    "quantity_in": layer.quantity_in,
                    "value_in": layer.value_in,
                    "quantity_left": layer.quantity_left,
                    "value_left": layer.value_left,
                }
                for layer in layers
                if layer.ref in stored and stored[layer.ref][1:] != _layer_state(layer)
            ]
            if changed:
                self.conn.execute(
                    update(cl).where(*where, cl.c.move_id == bindparam("b_move_id")), changed
                )
            next_seq = max((state[0] for state in stored.values()), default=-1) + 1
            fresh = [layer for layer in layers if layer.ref not in stored]
        else:
            self.conn.execute(delete(cl).where(*where))
            next_seq, fresh = 0, layers
        rows = [
            {
                **base,
                "move_id": layer.ref,
                "seq_no": next_seq + n,
                "quantity_in": layer.quantity_in,
                "value_in": layer.value_in,
                "quantity_left": layer.quantity_left,
                "value_left": layer.value_left,
            }
            for n, layer in enumerate(fresh)
        ]
        if rows:
            self.conn.execute(insert(cl), rows)
        seqs = {row["move_id"]: row["seq_no"] for row in rows}
        self._stored_layers[key] = {
            layer.ref: (
                seqs[layer.ref] if layer.ref in seqs else stored[layer.ref][0],
                *_layer_state(layer),
            )
            for layer in layers
        }

    # -- snapshots ---------------------------------------------------------------
    def _save_snapshots(self, slots: dict[PoolKey, Slot]) -> None:
        """Write the snapshots late events changed, and take one of each pool that has
        had `snapshot_every` new records since its last, at its last record."""
        ps = T["pool_snapshot"]
        rewritten = [
            dict(zip(("quantity", "value", "state"), pool_state(snapshot.pool), strict=True))
            | {"b_id": snapshot.id, "taken_at": utc_now()}
            for snapshot in self._rewritten.values()
        ]
        if rewritten:
            where = (ps.c.tenant_id == self.tenant.id, ps.c.id == bindparam("b_id"))
            self.conn.execute(update(ps).where(*where), rewritten)
        self._rewritten.clear()
        rows = []
        for key, slot in sorted(slots.items(), key=lambda kv: str(kv[0])):
            if slot.since_snapshot < self.snapshot_every or slot.position is None:
                continue
            slot.since_snapshot, slot.dirty = 0, True
            rows.append(self._snapshot_of(key, slot))
        self._insert_snapshots(rows)

    def keep_snapshot(self, key: PoolKey, slot: Slot) -> bool:
        """Keep the pool's state as a snapshot at its last record (unless there is one
        there already). Returns whether there was a state to keep."""
        if slot.position is None:
            return False
        self._insert_snapshots([self._snapshot_of(key, slot)])
        return True

    def _snapshot_of(self, key: PoolKey, slot: Slot) -> dict[str, Any]:
        assert slot.position is not None
        quantity, value, state = pool_state(slot.pool)
        return {
            **self._pool_columns(key),
            "tenant_id": self.tenant.id,
            "id": uuid.uuid4(),
            "occurred_at": slot.position[0],
            "event_id": slot.position[1],
            "line_no": slot.position[2],
            "quantity": quantity,
            "value": value,
            "state": state,
            "taken_at": utc_now(),
        }

    def _insert_snapshots(self, rows: list[dict[str, Any]]) -> None:
        """One statement for all; a pool that has a snapshot at that position already
        (the late records since its last all went before it) keeps that one, which
        its replay rewrote."""
        if rows:
            dialect_insert = pg_insert if self.lock else sqlite_insert
            self.conn.execute(dialect_insert(T["pool_snapshot"]).on_conflict_do_nothing(), rows)

    def _pool_columns(self, key: PoolKey) -> dict[str, Any]:
        if key[0] == "stock":
            return {"item_id": key[1], "location_id": key[2], "work_order_id": None}
        return {"item_id": None, "location_id": None, "work_order_id": key[1]}

    def _of_pool(self, key: PoolKey) -> list[Any]:
        ps = T["pool_snapshot"]
        if key[0] == "stock":
            return [
                ps.c.tenant_id == self.tenant.id,
                ps.c.item_id == key[1],
                ps.c.location_id == key[2],
            ]
        return [ps.c.tenant_id == self.tenant.id, ps.c.work_order_id == key[1]]

    def _snapshot_row(self, key: PoolKey, position: Position) -> Any:
        ps = T["pool_snapshot"]
        return self.conn.execute(
            select(ps).where(
                *self._of_pool(key),
                ps.c.occurred_at == position[0],
                ps.c.event_id == position[1],
                ps.c.line_no == position[2],
            )
        ).first()

    def snapshot_before(self, key: PoolKey, position: Position) -> Snapshot | None:
        return self._snapshots_around({key: position})[key][0]

    def _snapshots_around(
        self, wants: Mapping[PoolKey, Position]
    ) -> dict[PoolKey, tuple[Snapshot | None, list[Position]]]:
        """For each pool, the newest snapshot before its position and the positions of
        those at or after it (oldest first): one query for all the pools, a branch
        each (UNION ALL), every branch an index range of one pool."""
        ps = T["pool_snapshot"]
        at = _position_of(ps)
        keys = list(wants)
        number = {key: n for n, key in enumerate(keys)}
        rows_of: dict[int, list[Any]] = defaultdict(list)
        for chunk in _padded(keys, lambda key: key[0]):
            branches = []
            for key in chunk:
                position = wants.get(key, _NOWHERE)
                newest_before = (
                    select(ps.c.occurred_at)
                    .where(
                        *self._of_pool(key),
                        ps.c.occurred_at <= position[0],
                        at < _position_value(ps, position),
                    )
                    .order_by(ps.c.occurred_at.desc(), ps.c.event_id.desc(), ps.c.line_no.desc())
                    .limit(1)
                    .scalar_subquery()
                )
                since = func.coalesce(newest_before, literal(position[0], ps.c.occurred_at.type))
                branches.append(
                    select(ps, literal(number.get(key, -1)).label("want")).where(
                        *self._of_pool(key), ps.c.occurred_at >= since
                    )
                )
            for row in self.conn.execute(_union(branches)):
                rows_of[row.want].append(row)
        out: dict[PoolKey, tuple[Snapshot | None, list[Position]]] = {}
        for n, key in enumerate(keys):
            base, ahead = None, []
            rows = sorted(rows_of[n], key=lambda r: (utc(r.occurred_at), r.event_id, r.line_no))
            for row in rows:
                position = (utc(row.occurred_at), row.event_id, row.line_no)
                if position < wants[key]:
                    base = row
                else:
                    ahead.append(position)
                    self._ahead[(key, position)] = row  # its state, when the replay gets there
            out[key] = (None if base is None else self._snapshot(key, base)), ahead
        return out

    def rewind_reads(
        self, wants: Mapping[PoolKey, Position]
    ) -> dict[PoolKey, tuple[Snapshot | None, list[Position], list[Record]]]:
        """What rewinding each pool to its position reads: its newest snapshot before
        it, the positions of the snapshots at or after it, and its records from the
        snapshot up to the first of those (the end, when there is none). Three
        queries for any number of pools (snapshots, moves, work-order charges)."""
        around = self._snapshots_around(wants)
        spans = {
            key: (None if base is None else base.position, ahead[0] if ahead else None)
            for key, (base, ahead) in around.items()
        }
        records = self._records_many(spans)
        return {key: (*around[key], records[key]) for key in wants}

    def snapshot_at(self, key: PoolKey, position: Position) -> Snapshot:
        row = self._ahead.get((key, position)) or self._snapshot_row(key, position)
        assert row is not None, f"no snapshot of {key} at {position}"
        return self._snapshot(key, row)

    def _snapshot(self, key: PoolKey, row: Any) -> Snapshot:
        position = (utc(row.occurred_at), row.event_id, row.line_no)
        if (key, position) in self._rewritten:
            return self._rewritten[(key, position)]
        pool = self.empty_pool(key)
        restore_pool(pool, row.quantity, row.value, row.state)
        return Snapshot(row.id, position, pool)

    def rewrite_snapshot(self, key: PoolKey, snapshot: Snapshot) -> None:
        self._rewritten[(key, snapshot.position)] = snapshot

    # -- histories -------------------------------------------------------------
    def records(
        self, key: PoolKey, after: Position | None, upto: Position | None = None
    ) -> list[Record]:
        """The pool's records after `after` (None: from its first) up to and including
        `upto` (None: to its last), in position order."""
        return self._records_many({key: (after, upto)})[key]

    def _records_many(
        self, spans: dict[PoolKey, tuple[Position | None, Position | None]]
    ) -> dict[PoolKey, list[Record]]:
        """Each pool's records in its span (after, up to and including), in position
        order, each move with its effective value (as posted plus its revaluations).
        A branch a pool (UNION ALL), read through the pool's index (ix_move_from_pool
        / ix_move_to_pool, or ix_move_work_order) bounded by occurred_at on both sides;
        a work order's charges likewise."""
        self.buffer.flush(self.conn)
        mv, ch = T["stock_move"], T["wip_charge"]
        keys = list(spans)
        number = {key: n for n, key in enumerate(keys)}
        out: dict[PoolKey, list[Record]] = {key: [] for key in keys}

        def shape(key: PoolKey) -> Hashable:
            after, upto = spans[key]
            return (key[0], after is None, upto is None)

        for chunk in _padded(keys, shape):
            moves, charges = [], []
            for key in chunk:
                n = number.get(key, -1)
                after, upto = spans.get(key, spans[chunk[0]])
                if key[0] == "stock":
                    where = [
                        mv.c.item_id == key[1],
                        or_(mv.c.from_location_id == key[2], mv.c.to_location_id == key[2]),
                    ]
                else:
                    where = [mv.c.work_order_id == key[1]]
                    charges.append(
                        select(ch, literal(n).label("want")).where(
                            ch.c.tenant_id == self.tenant.id,
                            ch.c.work_order_id == key[1],
                            *_bounds(ch, after, upto),
                        )
                    )
                moves.append(self._moves_query(n, *where, *_bounds(mv, after, upto)))
            for r in self.conn.execute(_union(moves)):
                if r.want >= 0:
                    out[keys[r.want]].append(self._move_record(r, r.delta))
            if charges:
                for c in self.conn.execute(_union(charges)):
                    position = (c.occurred_at, c.event_id, c.line_no)
                    if c.want >= 0:
                        out[keys[c.want]].append(
                            ChargeRecord(c.id, position, c.work_order_id, c.value)
                        )
        for records in out.values():
            records.sort(key=lambda r: r.position)
        return out

    def _moves_query(self, want: int, *where: Any) -> Any:
        """The tenant's moves `where` says, each with the sum of its revaluations
        (through ix_revaluation_move) and `want` to tell branches apart."""
        mv, rv = T["stock_move"], T["stock_revaluation"]
        delta = (
            select(func.coalesce(func.sum(rv.c.delta_value), 0))
            .where(rv.c.tenant_id == mv.c.tenant_id, rv.c.move_id == mv.c.id)
            .scalar_subquery()
        )
        return select(
            *_replay_columns(mv), delta.label("delta"), literal(want).label("want")
        ).where(mv.c.tenant_id == self.tenant.id, *where)

    def _move_records(self, *where: Any) -> list[Record]:
        return [
            self._move_record(r, r.delta) for r in self.conn.execute(self._moves_query(0, *where))
        ]

    def mirrors_of(self, move_ids: list[uuid.UUID], after: Position) -> list[Record]:
        self.buffer.flush(self.conn)
        mv = T["stock_move"]
        found: list[Record] = []
        for chunk in _chunks(move_ids):
            found += self._move_records(mv.c.mirrors_move_id.in_(chunk), *_bounds(mv, after, None))
        return sorted(found, key=lambda r: r.position)

    def _deltas(self, move_ids: list[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
        if not move_ids:
            return {}
        rv = T["stock_revaluation"]
        out: dict[uuid.UUID, Decimal] = {}
        for start in range(0, len(move_ids), 500):
            chunk = move_ids[start : start + 500]
            for row in self.conn.execute(
                select(rv.c.move_id, func.sum(rv.c.delta_value).label("delta"))
                .where(rv.c.tenant_id == self.tenant.id, rv.c.move_id.in_(chunk))
                .group_by(rv.c.move_id)
            ):
                out[row.move_id] = row.delta
        return out

    def _move_record(self, r: Any, delta: Decimal) -> MoveRecord:
        return MoveRecord(
            id=r.id,
            position=(r.occurred_at, r.event_id, r.line_no),  # UTCDateTime: aware UTC
            kind=r.kind,
            item_id=r.item_id,
            lot=r.lot,
            source=self.md.location_by_id(r.from_location_id),
            destination=self.md.location_by_id(r.to_location_id),
            quantity=r.quantity,
            basis=r.basis,
            work_order_id=r.work_order_id,
            mirrors_move_id=r.mirrors_move_id,
            fixed_value=r.value if r.basis == "fixed" else None,
            scrap_quantity=r.scrap_quantity,
            value=r.value + delta,
        )

    def effective_value(self, move_id: uuid.UUID) -> Decimal:
        self.buffer.flush(self.conn)
        mv = T["stock_move"]
        value = self.conn.scalar(
            select(mv.c.value).where(mv.c.tenant_id == self.tenant.id, mv.c.id == move_id)
        )
        assert value is not None, f"no stock move {move_id}"
        return Decimal(value) + self._deltas([move_id]).get(move_id, ZERO)


def _replay_columns(mv: Any) -> list[Any]:
    """What a replay needs of a stock move."""
    return [
        mv.c.id,
        mv.c.occurred_at,
        mv.c.event_id,
        mv.c.line_no,
        mv.c.kind,
        mv.c.item_id,
        mv.c.lot,
        mv.c.from_location_id,
        mv.c.to_location_id,
        mv.c.quantity,
        mv.c.basis,
        mv.c.work_order_id,
        mv.c.mirrors_move_id,
        mv.c.value,
        mv.c.scrap_quantity,
    ]


# pools a statement, padded to one of these sizes (SQLite allows 500 terms in a
# compound SELECT): a statement is compiled once per shape and cached
_SIZES = (1, 2, 4, 8, 16, 32, 64)
_NIL = uuid.UUID(int=0)  # no item, location or work order has it
_NOWHERE = (datetime.min.replace(tzinfo=UTC), _NIL, 0)


def _padded(keys: list[PoolKey], shape: Callable[[PoolKey], Hashable]) -> Iterator[list[PoolKey]]:
    """`keys` in chunks of one shape each (what their branches' SQL looks like), each
    padded to a size of `_SIZES` with a pool that does not exist, so that a union's
    statement has a few shapes, not one per number of pools."""
    groups: dict[Hashable, list[PoolKey]] = defaultdict(list)
    for key in keys:
        groups[shape(key)].append(key)
    for group in groups.values():
        for start in range(0, len(group), _SIZES[-1]):
            chunk = group[start : start + _SIZES[-1]]
            size = next(size for size in _SIZES if size >= len(chunk))
            nil: PoolKey = ("stock", _NIL, _NIL) if chunk[0][0] == "stock" else ("wip", _NIL)
            yield chunk + [nil] * (size - len(chunk))


def _changed(stored: dict[Any, Any], now: Mapping[Any, Any]) -> dict[Any, Any]:
    """The entries of `now` that differ from `stored`, which takes them. An entry never
    leaves a pool (a rebuilt pool lacks only those that were zero before and after)."""
    changed = {k: v for k, v in now.items() if stored.get(k, _ABSENT) != v}
    stored.update(changed)
    return changed


_ABSENT = object()


def _union(branches: list[Any]) -> Any:
    return branches[0] if len(branches) == 1 else union_all(*branches)


def _position_of(table: Any) -> Any:
    return tuple_(table.c.occurred_at, table.c.event_id, table.c.line_no)


def _position_value(table: Any, position: Position) -> Any:
    """A position as the table stores it (each value bound with its column's type)."""
    columns = (table.c.occurred_at, table.c.event_id, table.c.line_no)
    return tuple_(*(literal(v, c.type) for v, c in zip(position, columns, strict=True)))


def _bounds(table: Any, after: Position | None, upto: Position | None) -> list[Any]:
    """Rows after `after` up to and including `upto`; occurred_at alone as well, so
    the pool's index bounds the scan."""
    at = _position_of(table)
    out = []
    if after is not None:
        out += [table.c.occurred_at >= after[0], at > _position_value(table, after)]
    if upto is not None:
        out += [table.c.occurred_at <= upto[0], at <= _position_value(table, upto)]
    return out


def pool_state(pool: Pool) -> tuple[Decimal, Decimal, str]:
    """A pool as a snapshot row keeps it: quantity, value and the rest as JSON."""
    if isinstance(pool, StockPool):
        state: dict[str, Any] = {
            "last_unit_cost": _text(pool.last_unit_cost),
            "lots": {lot: str(q) for lot, q in sorted(pool.lots.items()) if q},
            "layers": [[str(layer.ref), *map(str, _layer_state(layer))] for layer in pool.layers],
        }
        return pool.quantity, pool.value, json.dumps(state)
    state = {
        "good_quantity": str(pool.good_quantity),
        "materials": {
            str(item): [str(q), str(v)] for item, (q, v) in sorted(pool.materials.items(), key=str)
        },
    }
    return pool.completed_quantity, pool.value, json.dumps(state)


def restore_pool(pool: Pool, quantity: Decimal, value: Decimal, text: str) -> None:
    """Fill an empty pool from a snapshot row (the inverse of `pool_state`)."""
    state = json.loads(text)
    pool.value = value
    if isinstance(pool, StockPool):
        pool.quantity = quantity
        cost = state["last_unit_cost"]
        pool.last_unit_cost = None if cost is None else Decimal(cost)
        pool.lots = {lot: Decimal(q) for lot, q in state["lots"].items()}
        pool.layers = [
            Layer(uuid.UUID(ref), *map(Decimal, numbers)) for ref, *numbers in state["layers"]
        ]
        return
    pool.completed_quantity = quantity
    pool.good_quantity = Decimal(state["good_quantity"])
    pool.materials = {
        uuid.UUID(item): (Decimal(q), Decimal(v)) for item, (q, v) in state["materials"].items()
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _position(row: Any) -> tuple[datetime, uuid.UUID, int] | None:
    if row.last_occurred_at is None:
        return None
    return (row.last_occurred_at, row.last_event_id, row.last_line_no)


def _position_columns(position: tuple[datetime, uuid.UUID, int] | None) -> dict[str, Any]:
    if position is None:
        return {"last_occurred_at": None, "last_event_id": None, "last_line_no": None}
    return {
        "last_occurred_at": position[0],
        "last_event_id": position[1],
        "last_line_no": position[2],
    }


def _layer_state(layer: Layer) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (layer.quantity_in, layer.value_in, layer.quantity_left, layer.value_left)
