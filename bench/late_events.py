"""`erp bench late`: what a late event costs as the history it lands before grows
(issue 16: late events in a time that does not grow with history).

One tenant's floor (bench.portal's Floor: ~90 days up to now of receipts, issues to
work orders, completions, closes and shipments) is grown through the real ingest
service, in-process, as the tenant, 1,000 events a transaction, with ANALYZE each time
it doubles (as bench.portal.build). At ledger size 0 and at each of `sizes`:

- ingest: the wall time of posting the next `ingest_sample` floor events (part of the
  growth), beside bench.ingest's raw insert rate of as many rows, as many a transaction;
- a late receipt before all history: a fresh item gets a scripted segment right after
  the last floor event (receipts, issues to the orders on the floor, a completion of
  each order and a shipment of what it made), then one receipt of it at another price
  dated before the ledger's first event. It revalues the same moves at every size; its
  time is set beside the raw limit of reading that many moves by primary key and
  COPYing as many rows.

After the largest size, one busy item whose late receipt revalues `busy_moves`
shipments in one transaction. Ends with the books-check, which must be empty.
PostgreSQL only; the bench makes its own database and drops it.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    Table,
    Uuid,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from bench.ingest import _cpu_spent, _database_cpu, _ledger_rows, _raw_insert_rate
from bench.portal import (
    ACTIVE_ORDERS,
    BATCH_EVENTS,
    HISTORY_DAYS,
    PLANNED_UNITS,
    Floor,
    OrderSpec,
    _batches,
    _fresh_database,
    analyze,
    catalogue,
    seed_master_data,
)
from cloud_api.api import schemas
from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.db.engine import make_engine
from cloud_api.domain.clock import now_utc
from cloud_api.services import masterdata
from cloud_api.services.ingest import IngestService
from cloud_api.services.reports import reconcile
from cloud_api.services.store import TenantContext, bulk_insert
from cloud_api.services.tenants import create_tenant, tenant_by_id
from cloud_api.settings import get_settings
from contract import ResultStatus

T = m.SQLModel.metadata.tables
SIZES = (10_000, 100_000, 1_000_000)
INGEST_SAMPLE = 5_000
BUSY_MOVES = 100_000
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TICK = timedelta(milliseconds=1)  # between two scripted events
DEVICE = "bench-late"
WAREHOUSE, SUPPLIER, CUSTOMER = "WH", "S01", "C01"
# The late item's segment: each receipt followed by its share of the issues, round
# robin over the orders on the floor. All in one warehouse, so the one late receipt
# revalues every issue.
SEGMENT_RECEIPTS, SEGMENT_ISSUES, RECEIPT_UNITS = 20, 600, 50
SEGMENT_PRICE = Decimal("2.50")
# receipts, issues, then a completion and a shipment per order on the floor
SEGMENT_EVENTS = SEGMENT_RECEIPTS + SEGMENT_ISSUES + 2 * ACTIVE_ORDERS
# The late receipt is big and dear, so every move it revalues changes by a cent or
# more: a completion's change is spread over its product's stock on hand (thousands of
# units at 1,000,000 events), and the one-unit shipment after it must still change.
LATE_UNITS, LATE_PRICE = 10_000, Decimal("2500.00")
BUSY_PRICE, BUSY_LATE_UNITS, BUSY_LATE_PRICE = Decimal("5.00"), 1_000_000, Decimal("9.00")
BUSY_SALE_PRICE = Decimal("12.00")
# The raw limit's table: a stock_revaluation row's shape, its primary key, nothing else.
SCRATCH = Table(
    "bench_late_scratch",
    MetaData(),
    Column("tenant_id", Uuid, primary_key=True),
    Column("id", Uuid, primary_key=True),
    Column("move_id", Uuid, nullable=False),
    Column("delta_value", Numeric(24, 6), nullable=False),
    Column("cause_event_id", Uuid, nullable=False),
    Column("journal_entry_id", Uuid, nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
)


# ----------------------------------------------------------------------------- the ledger


@dataclass
class Ledger:
    """The bench's tenant and its floor. Every event goes through `post`, which checks
    that it posted and keeps the ledger's first and last event times (where a late
    event and the next scripted segment go)."""

    db: Engine
    tenant: TenantContext
    floor: Floor
    stream: Iterator[dict[str, Any]]
    report_every: int
    service: IngestService = field(init=False)
    floor_events: int = 0  # the ledger's size: floor events posted
    analyze_at: int = BATCH_EVENTS
    first_at: datetime | None = None
    last_at: datetime | None = None
    seq: int = 0  # of the scripted device
    cpu: list[float] = field(default_factory=lambda: [0.0, 0.0])  # ingest's, the database's

    def __post_init__(self) -> None:
        self.service = IngestService(self.db)

    def post(self, batch: list[dict[str, Any]]) -> float:
        """One batch, one transaction; each event must post. Returns the wall time of
        the ingest call (s); `cpu` adds up the CPU time it took in this process and in
        the database's backends (less sensitive to a busy machine than the wall time)."""
        db0 = _database_cpu(self.db)  # read before the clocks start
        t0, cpu0 = time.perf_counter(), time.process_time()
        results = self.service.ingest(self.tenant, batch)
        seconds = time.perf_counter() - t0
        self.cpu[0] += time.process_time() - cpu0
        self.cpu[1] += _cpu_spent(db0, _database_cpu(self.db)) or 0.0
        bad = [r for r in results if r.status != ResultStatus.posted]
        if bad:
            raise RuntimeError(f"{len(bad)} of {len(batch)} events did not post, e.g. {bad[0]}")
        times = [datetime.fromisoformat(e["occurred_at"]) for e in batch]
        self.first_at = min(times if self.first_at is None else [*times, self.first_at])
        self.last_at = max(times if self.last_at is None else [*times, self.last_at])
        return seconds

    def grow(self, events: int) -> tuple[float, int]:
        """Post the floor's next `events` events, BATCH_EVENTS a transaction, with
        ANALYZE each time the floor has doubled (as bench.portal.build: autovacuum's
        work on a live database). Returns the time spent in ingest, ANALYZE left out,
        and the number of batches."""
        seconds, batches = 0.0, 0
        for batch in _batches(islice(self.stream, events), BATCH_EVENTS):
            seconds += self.post(batch)
            batches += 1
            before, self.floor_events = self.floor_events, self.floor_events + len(batch)
            if self.floor_events // self.report_every > before // self.report_every:
                print(f"  floor: {self.floor_events:,} events posted", flush=True)
            if self.floor_events >= self.analyze_at:
                analyze(self.db)
                self.analyze_at *= 2
        return seconds, batches

    def script(self, steps: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Envelopes of the scripted device for `steps` (type, payload), TICK apart
        from just after the last event posted."""
        assert self.last_at is not None, "the floor comes first"
        return [
            self.envelope(kind, self.last_at + TICK * (n + 1), payload)
            for n, (kind, payload) in enumerate(steps)
        ]

    def envelope(self, kind: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        return {
            "event_id": str(uuid.uuid4()),
            "device_id": DEVICE,
            "seq": self.seq,
            "type": kind,
            "occurred_at": at.isoformat(),
            "payload": payload,
        }

    def create_item(self, code: str) -> None:
        body = schemas.ItemCreate(code=code, name=f"Bench {code}", kind="raw")
        with self.db.begin() as conn:
            masterdata.create_item(conn, self.tenant, body)


def _receipt(item: str, quantity: int, price: Decimal) -> tuple[str, dict[str, Any]]:
    payload = {
        "supplier": SUPPLIER,
        "item": item,
        "location": WAREHOUSE,
        "quantity": str(quantity),
        "unit_price": str(price),
    }
    return "purchase_receipt", payload


def _shipment(item: str, location: str, price: Decimal) -> tuple[str, dict[str, Any]]:
    payload = {
        "customer": CUSTOMER,
        "item": item,
        "location": location,
        "quantity": "1",
        "unit_price": str(price),
    }
    return "sales_shipment", payload


# ----------------------------------------------------------------------------- ingest


def ingest_sample(ledger: Ledger, url: str, events: int) -> dict[str, Any]:
    """The ingest rate of the floor's next `events` events at the ledger's size, and
    the raw limit: as many rows, as many a transaction, into a scratch table."""
    size = ledger.floor_events
    print(f"ingest: timing the next {events:,} floor events at size {size:,}", flush=True)
    before = sum(_ledger_rows(ledger.db, ledger.tenant.id).values())
    ledger.cpu = [0.0, 0.0]
    seconds, batches = ledger.grow(events)
    cpu = ledger.cpu
    rows = sum(_ledger_rows(ledger.db, ledger.tenant.id).values()) - before
    per_txn = max(1, round(rows / batches))
    raw_rate = _raw_insert_rate("postgresql", url, rows, per_txn)
    rows_rate = rows / seconds
    return {
        "size": size,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "cpu_ms_per_event": round(cpu[0] * 1000 / events, 3),
        "db_cpu_ms_per_event": round(cpu[1] * 1000 / events, 3),
        "rows": rows,
        "rows_per_txn": per_txn,
        "rows_per_s": round(rows_rate, 1),
        "raw_rows_per_s": round(raw_rate, 1),
        "to_raw": round(rows_rate / raw_rate, 4),
    }


# ----------------------------------------------------------------------------- late events


def active_orders(floor: Floor) -> list[OrderSpec]:
    """The orders on the floor after the last event it made (its sliding window:
    those before `closed` are closed)."""
    return floor.cat.orders[floor.closed : floor.closed + ACTIVE_ORDERS]


def segment(code: str, floor: Floor) -> list[tuple[str, dict[str, Any]]]:
    """The late item's recent history: its receipts, each followed by its share of the
    issues to the orders on the floor (round robin), then a completion of one unit of
    each order and a shipment of that unit. Every step can post: the issues never
    outrun the receipts, and a shipment takes the unit just completed."""
    orders = active_orders(floor)
    per_receipt = SEGMENT_ISSUES // SEGMENT_RECEIPTS
    steps: list[tuple[str, dict[str, Any]]] = []
    for r in range(SEGMENT_RECEIPTS):
        steps.append(_receipt(code, RECEIPT_UNITS, SEGMENT_PRICE))
        for i in range(r * per_receipt, (r + 1) * per_receipt):
            order = orders[i % len(orders)]
            issue = {"work_order": order.code, "item": code, "location": WAREHOUSE, "quantity": "1"}
            steps.append(("material_issue", issue))
    prices = {item.code: item.price for item in floor.cat.finished}
    for order in orders:
        done = {"work_order": order.code, "location": order.warehouse, "quantity": "1"}
        steps.append(("production_completion", done))
        steps.append(_shipment(order.item, order.warehouse, prices[order.item]))
    return steps


def _tell_floor(floor: Floor, orders: list[OrderSpec]) -> None:
    """The floor learns what the segment did to its orders, so that it never completes
    beyond their plan on its own (the units completed and shipped cancel out in its
    stock)."""
    for order in orders:
        floor.issued.add(order.code)
        floor.completed[order.code] = floor.completed.get(order.code, 0) + 1


def late_receipt_stage(ledger: Ledger, size: int) -> dict[str, Any]:
    """A fresh item's segment, then one receipt of it at another price dated 1 s
    before the ledger's first event, timed."""
    code = f"LATE{size}"
    ledger.create_item(code)
    steps = segment(code, ledger.floor)
    for batch in _batches(iter(ledger.script(steps)), BATCH_EVENTS):
        ledger.post(batch)
    _tell_floor(ledger.floor, active_orders(ledger.floor))
    assert ledger.first_at is not None
    kind, payload = _receipt(code, LATE_UNITS, LATE_PRICE)
    late = ledger.envelope(kind, ledger.first_at - timedelta(seconds=1), payload)
    print(f"late: {len(steps)} events of {code} posted; its late receipt ...", flush=True)
    figures = time_late(ledger, late)
    print(f"  {figures['ms']:,.1f} ms, {figures['revalued']:,} moves revalued", flush=True)
    return {"size": size, "segment_events": len(steps), **figures}


def busy_stage(ledger: Ledger, moves: int) -> dict[str, Any]:
    """One item received once and shipped `moves` times, one unit each, to customers
    (nothing downstream to cascade to); then a late receipt at another price before
    it all changes the value of every shipment, in one transaction."""
    ledger.create_item("BUSY")
    steps = [_receipt("BUSY", moves, BUSY_PRICE)]
    steps += [_shipment("BUSY", WAREHOUSE, BUSY_SALE_PRICE) for _ in range(moves)]
    events = ledger.script(steps)
    print(f"busy: posting {len(events):,} events of BUSY", flush=True)
    for n, batch in enumerate(_batches(iter(events), BATCH_EVENTS), start=1):
        ledger.post(batch)
        if n % 20 == 0:
            print(f"  busy: {n * BATCH_EVENTS:,} events posted", flush=True)
    analyze(ledger.db)  # the item's moves are a tenth of the stock moves: autovacuum would
    first = datetime.fromisoformat(events[0]["occurred_at"])
    kind, payload = _receipt("BUSY", BUSY_LATE_UNITS, BUSY_LATE_PRICE)
    late = ledger.envelope(kind, first - timedelta(seconds=1), payload)
    print("busy: the late receipt ...", flush=True)
    figures = time_late(ledger, late)
    print(f"  {figures['ms']:,.1f} ms, {figures['revalued']:,} moves revalued", flush=True)
    return {"moves": moves, **figures}


def time_late(ledger: Ledger, late: dict[str, Any]) -> dict[str, Any]:
    """Post the one late event, timed (one ingest call, one transaction); the moves it
    revalued (by kind) and the raw limit of as many rows."""
    ledger.cpu = [0.0, 0.0]
    seconds = ledger.post([late])
    cpu = ledger.cpu
    cause = uuid.UUID(late["event_id"])
    by_kind = revalued_moves(ledger.db, ledger.tenant.id, cause)
    revalued = sum(by_kind.values())
    raw = raw_limit(ledger.db, ledger.tenant.id, cause)
    return {
        "ms": round(seconds * 1000, 1),
        "cpu_ms": round(cpu[0] * 1000, 1),
        "db_cpu_ms": round(cpu[1] * 1000, 1),
        "revalued": revalued,
        "revalued_by_kind": by_kind,
        "us_per_move": round(seconds * 1e6 / revalued, 1) if revalued else None,
        "raw_ms": round(raw * 1000, 1),
        "to_raw": round(seconds / raw, 1) if raw else None,
    }


def revalued_moves(db: Engine, tenant_id: uuid.UUID, cause: uuid.UUID) -> dict[str, int]:
    """The stock_revaluation rows the event caused (one per revalued move), by the
    kind of the move."""
    rv, mv = T["stock_revaluation"], T["stock_move"]
    query = (
        select(mv.c.kind, func.count())
        .select_from(rv)
        .join(mv, (mv.c.tenant_id == rv.c.tenant_id) & (mv.c.id == rv.c.move_id))
        .where(rv.c.tenant_id == tenant_id, rv.c.cause_event_id == cause)
        .group_by(mv.c.kind)
        .order_by(mv.c.kind)
    )
    with db.connect() as conn:
        return {kind: int(count) for kind, count in conn.execute(query)}


def raw_limit(db: Engine, tenant_id: uuid.UUID, cause: uuid.UUID) -> float:
    """Seconds to read the moves `cause` revalued by primary key and COPY as many
    revaluation-shaped rows into a scratch table, in one transaction: the least a
    revaluation of them has to do."""
    rv, mv = T["stock_revaluation"], T["stock_move"]
    with db.begin() as conn:
        ids = list(
            conn.scalars(
                select(rv.c.move_id).where(
                    rv.c.tenant_id == tenant_id, rv.c.cause_event_id == cause
                )
            )
        )
        SCRATCH.drop(conn, checkfirst=True)
        SCRATCH.create(conn)
    entry, now = uuid.uuid4(), now_utc()
    rows = [
        {
            "tenant_id": tenant_id,
            "id": uuid.uuid4(),
            "move_id": move_id,
            "delta_value": Decimal("0.01"),
            "cause_event_id": cause,
            "journal_entry_id": entry,
            "posted_at": now,
        }
        for move_id in ids
    ]
    by_key = select(mv).where(
        mv.c.tenant_id == tenant_id,
        mv.c.id == any_(bindparam("ids", ids, type_=ARRAY(Uuid))),
    )
    try:
        with db.connect() as conn:
            t0 = time.perf_counter()
            with conn.begin():
                read = len(conn.execute(by_key).all())
                bulk_insert(conn, SCRATCH, rows)
            seconds = time.perf_counter() - t0
    finally:
        with db.begin() as conn:
            SCRATCH.drop(conn)
    if read != len(ids):
        raise RuntimeError(f"the raw limit read {read} of the {len(ids)} moves revalued")
    return seconds


# ----------------------------------------------------------------------------- main


def check_sizes(sizes: Sequence[int], sample: int) -> None:
    """Each size must lie beyond the previous one's ingest sample (size 0's first)."""
    previous = 0
    for size in sizes:
        if size < previous + sample:
            raise ValueError(
                f"--sizes must ascend by at least --ingest-sample ({sample:,}): "
                f"{size:,} comes after {previous:,}"
            )
        previous = size


def _new_tenant(db: Engine, stages: int) -> TenantContext:
    """A tenant whose orders may complete one unit beyond plan per stage: each late
    receipt's segment completes one more unit of every order on the floor, whether or
    not the floor has completed it (set as PATCH /settings does)."""
    tenant_id = create_tenant(
        db, "bench-late", "Late Events Bench", get_settings().api_key_pepper
    ).id
    t = T["tenant"]
    tolerance = Decimal(stages) / PLANNED_UNITS
    with tenancy.as_tenant(tenant_id), db.begin() as conn:
        conn.execute(update(t).where(t.c.id == tenant_id).values(completion_tolerance=tolerance))
        return tenant_by_id(conn, tenant_id)


def main(
    sizes: Sequence[int] = SIZES,
    ingest_sample: int = INGEST_SAMPLE,
    busy_moves: int = BUSY_MOVES,
    skip_busy: bool = False,
    database_url: str = DATABASE_URL,
    seed: int = 42,
) -> dict[str, Any]:
    """Grow, time and check (see the module's docstring); print the figures and return
    them; exit non-zero when a check fails. The throwaway database is dropped at the
    end, whatever happens."""
    check_sizes(sizes, ingest_sample)
    url, drop = _fresh_database(database_url)
    db = tenancy.install(make_engine(url))
    try:
        tenant = _new_tenant(db, len(sizes))
        with tenancy.as_tenant(tenant.id):
            result = _run(
                db, url, tenant, sizes, ingest_sample, None if skip_busy else busy_moves, seed
            )
    finally:
        db.dispose()
        drop()
    _print(result)
    print(json.dumps(result, sort_keys=True))
    if result["problems"]:
        raise SystemExit(1)
    return result


def _run(
    db: Engine,
    url: str,
    tenant: TenantContext,
    sizes: Sequence[int],
    sample: int,
    busy_moves: int | None,
    seed: int,
) -> dict[str, Any]:
    total = sizes[-1] + sample
    rng = random.Random(seed)
    cat = catalogue(total, rng)
    seed_master_data(db, tenant, cat)
    floor = Floor(cat, total, now_utc() - timedelta(minutes=5), rng, days=HISTORY_DAYS)
    step = timedelta(days=HISTORY_DAYS) / total
    if step <= TICK * (SEGMENT_EVENTS + 1):
        raise ValueError(f"{total:,} floor events leave no room for a segment between two")
    ledger = Ledger(db, tenant, floor, floor.stream(), max(BATCH_EVENTS, total // 20))
    print(f"floor of {total:,} events over {HISTORY_DAYS} days for tenant {tenant.id}", flush=True)
    t0 = time.perf_counter()
    ingest, late = [ingest_sample(ledger, url, sample)], []
    for size in sizes:
        print(f"growing the floor to {size:,} events", flush=True)
        ledger.grow(size - ledger.floor_events)
        late.append(late_receipt_stage(ledger, size))
        ingest.append(ingest_sample(ledger, url, sample))
    busy = busy_stage(ledger, busy_moves) if busy_moves is not None else None
    wall = time.perf_counter() - t0
    with db.connect() as conn:
        differences = [str(d) for d in reconcile(conn, tenant)]
    base = ingest[0]["events_per_s"]
    for row in ingest:
        row["to_size_0"] = round(row["events_per_s"] / base, 3)
    return {
        "sizes": list(sizes),
        "ingest_sample": sample,
        "floor_events": ledger.floor_events,
        "run_s": round(wall, 1),
        "ingest": ingest,
        "late": late,
        "busy": busy,
        "books_check_differences": differences,
        "problems": _problems(late, busy, differences),
    }


def _problems(
    late: list[dict[str, Any]], busy: dict[str, Any] | None, differences: list[str]
) -> list[str]:
    counts = {row["size"]: row["revalued"] for row in late}
    problems = [f"the books-check found {len(differences)} differences"] if differences else []
    if len(set(counts.values())) != 1 or not all(counts.values()):
        problems.append(f"the late receipts revalued {counts} moves: not the same, above 0")
    if busy is not None and busy["revalued"] != busy["moves"]:
        problems.append(f"the busy late receipt revalued {busy['revalued']} of {busy['moves']}")
    return problems


def _print(result: dict[str, Any]) -> None:
    print(f"\ningest: the next {result['ingest_sample']:,} floor events at each ledger size")
    print(
        f"{'size':>10}{'events/s':>10}{'÷ size 0':>10}{'rows/s':>10}"
        f"{'raw rows/s':>12}{'rows/txn':>10}{'÷ raw':>8}{'cpu ms/ev':>11}{'db ms/ev':>10}"
    )
    for r in result["ingest"]:
        print(
            f"{r['size']:>10,}{r['events_per_s']:>10,.0f}{r['to_size_0']:>10.2f}"
            f"{r['rows_per_s']:>10,.0f}{r['raw_rows_per_s']:>12,.0f}{r['rows_per_txn']:>10}"
            f"{r['to_raw']:>8.3f}{r['cpu_ms_per_event']:>11.3f}{r['db_cpu_ms_per_event']:>10.3f}"
        )
    print("\nlate receipt before all history (one event, one transaction)")
    print(
        f"{'size':>10}{'ms':>10}{'cpu ms':>9}{'db ms':>8}{'revalued':>10}{'µs/move':>10}"
        f"{'raw ms':>10}{'÷ raw':>8}  by kind"
    )
    rows = [(f"{r['size']:,}", r) for r in result["late"]]
    if result["busy"] is not None:
        rows.append(("busy", result["busy"]))
    for label, r in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in r["revalued_by_kind"].items())
        print(
            f"{label:>10}{r['ms']:>10,.1f}{r['cpu_ms']:>9,.1f}{r['db_cpu_ms']:>8,.1f}"
            f"{r['revalued']:>10,}{r['us_per_move'] or 0:>10,.1f}"
            f"{r['raw_ms']:>10,.1f}{r['to_raw'] or 0:>8,.1f}  {kinds}"
        )
    differences = result["books_check_differences"]
    print(f"\nbooks-check: {len(differences)} differences")
    for difference in differences[:20]:
        print(f"  {difference}")
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}")
