"""`erp bench portal`: the owner portal's pages over a big ledger.

The owner signs up (users.sign_up: a new tenant and a session). The tenant then gets
N stock moves posted through the real ingest service, in-process, 1,000 events a
transaction, as the schema owner like `erp serve` in `bench ingest`: ~90 days up to
now of purchase receipts of 200 items into 3 warehouses, material issues to work
orders, completions, work orders closed, and shipments to customers. ANALYZE runs
each time the ledger doubles and VACUUM (ANALYZE) at the end, as autovacuum would on
a live database (it is off on this machine).

Then the real app serves (uvicorn in a thread, built on erp_app and erp_platform
engines, so row-level security applies) and, after a warm-up, one client times
sequential GETs of the dashboard (`/`), the stock page (`/inventory`) and `/healthz`,
the raw limit of the server stack. Checks that every page answered 200 with the
figures the ledger holds, that the books agree, and that the books-check never ran
inside a timed request. PostgreSQL only.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from bench.ingest import throwaway_postgres
from cloud_api.api import schemas
from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.db.engine import make_engine, normalize_url
from cloud_api.domain.clock import local_date, now_utc
from cloud_api.services import masterdata, users, work_orders
from cloud_api.services.ingest import IngestService
from cloud_api.services.store import TenantContext
from cloud_api.services.tenants import tenant_by_id
from cloud_api.settings import Settings, get_settings
from contract import ResultStatus
from erp.app import create_app
from tenant.security import SESSION_COOKIE
from web.dashboard import BooksCheck, BooksCheckCache

T = m.SQLModel.metadata.tables
CENT = Decimal("0.01")
PASSWORD = "walnut mortise 1970 tenon joinery"
BATCH_EVENTS = 1000
HISTORY_DAYS = 90
WAREHOUSES = ("WH", "WH-2", "WH-3")  # WH comes with every tenant's chart
RAW_ITEMS, FINISHED_ITEMS = 160, 40
SUPPLIERS, CUSTOMERS, DEVICES = 12, 30, 12
ACTIVE_ORDERS = 12  # work orders on the floor at any time
# Moves per work order. Each completion reads its order's whole history
# (ingest.Batch._most_made_from), so this bounds the cost of a completion.
ORDER_MOVES = 100
PLANNED_UNITS = 100  # per work order: about what ORDER_MOVES moves complete
WARMUP_REQUESTS = 10
# Event mix (weights in %). Every event makes one stock move (a close: the settlement
# of the order's residual WIP). An event that could not post (too little stock,
# nothing issued yet) is replaced by the one that makes it possible, so the real
# shares lean a little to receipts and issues.
MIX = [
    ("purchase_receipt", 6),
    ("material_issue", 70),
    ("production_completion", 8),
    ("sales_shipment", 16),
]
KINDS = [kind for kind, _ in MIX] + ["work_order_close"]


# ----------------------------------------------------------------------------- database


def _fresh_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A throwaway database on `server_url`, migrated; (its URL, drop it)."""
    if not normalize_url(server_url).startswith("postgresql"):
        raise ValueError("bench portal needs a PostgreSQL server URL (row-level security)")
    return throwaway_postgres(server_url)


def _as_role(url: str, role: str) -> Engine:
    """The same database as `role` (as tests/roles.py builds the app's engines)."""
    role_url = make_url(url).set(username=role).render_as_string(hide_password=False)
    return tenancy.install(make_engine(role_url))


# ----------------------------------------------------------------------------- master data


@dataclass(frozen=True)
class ItemSpec:
    code: str
    kind: str  # raw, finished
    price: Decimal  # purchase price of a raw item, sale price of a finished one
    valuation_method: str = "moving_average"
    safety_stock: Decimal = Decimal(0)


@dataclass(frozen=True)
class OrderSpec:
    code: str
    item: str
    warehouse: str


@dataclass(frozen=True)
class Catalogue:
    raw: list[ItemSpec]
    finished: list[ItemSpec]
    orders: list[OrderSpec]


def catalogue(moves: int, rng: random.Random) -> Catalogue:
    """200 items (a fifth of the raw ones FIFO, a quarter with a safety stock) and a
    work order per ORDER_MOVES moves, each making one finished item in one warehouse."""
    raw = [
        ItemSpec(
            f"M{i:03d}",
            "raw",
            Decimal(rng.randint(50, 20000)) / 100,
            "fifo" if i % 5 == 0 else "moving_average",
            Decimal(300) if i % 4 == 0 else Decimal(0),
        )
        for i in range(1, RAW_ITEMS + 1)
    ]
    finished = [
        ItemSpec(f"P{i:02d}", "finished", Decimal(rng.randint(300, 3000)))
        for i in range(1, FINISHED_ITEMS + 1)
    ]
    count = max(ACTIVE_ORDERS, moves // ORDER_MOVES)
    orders = [
        OrderSpec(f"WO-{i:04d}", rng.choice(finished).code, WAREHOUSES[i % len(WAREHOUSES)])
        for i in range(1, count + 1)
    ]
    return Catalogue(raw, finished, orders)


def seed_master_data(db: Engine, tenant: TenantContext, cat: Catalogue) -> None:
    """Through the services the API's routes call, as the tenant."""
    with tenancy.as_tenant(tenant.id), db.begin() as conn:
        for code in WAREHOUSES[1:]:
            place = schemas.LocationCreate(code=code, name=f"Warehouse {code}", kind="warehouse")
            masterdata.create_location(conn, tenant, place)
        for spec in cat.raw + cat.finished:
            masterdata.create_item(conn, tenant, _item(spec))
        for table, prefix, count in (("supplier", "S", SUPPLIERS), ("customer", "C", CUSTOMERS)):
            for i in range(1, count + 1):
                party = schemas.PartyCreate(code=f"{prefix}{i:02d}", name=f"{table} {i}")
                masterdata.create_party(conn, tenant, table, party)
        for order in cat.orders:
            body = schemas.WorkOrderCreate(
                code=order.code,
                item=order.item,
                planned_quantity=Decimal(PLANNED_UNITS),
                warehouse=order.warehouse,
                release=True,
            )
            work_orders.create_work_order(conn, tenant, body)


def _item(spec: ItemSpec) -> schemas.ItemCreate:
    return schemas.ItemCreate.model_validate(
        {
            "code": spec.code,
            "name": f"{'Material' if spec.kind == 'raw' else 'Product'} {spec.code}",
            "kind": spec.kind,
            "valuation_method": spec.valuation_method,
            "safety_stock": spec.safety_stock,
        }
    )


# ----------------------------------------------------------------------------- events


@dataclass
class Floor:
    """A seeded stream of events in time order over `days` up to `end`; every
    event can post (it never takes stock that is not there, nor completes more than
    an order plans). An order is closed when it leaves the floor: its residual WIP
    goes to cost of sales."""

    cat: Catalogue
    events: int
    end: datetime
    rng: random.Random
    stock: dict[tuple[str, str], int] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)
    completed: dict[str, int] = field(default_factory=dict)
    closed: int = 0  # orders[:closed] are closed
    seq: dict[str, int] = field(default_factory=dict)
    days: float = HISTORY_DAYS  # the span of the history, up to `end`

    def stream(self) -> Iterator[dict[str, Any]]:
        start = self.end - timedelta(days=self.days)
        step = (self.end - start) / max(1, self.events)
        kinds, weights = [k for k, _ in MIX], [w for _, w in MIX]
        orders = self.cat.orders
        for i in range(self.events):
            at = start + step * i
            # The orders on the floor: a window sliding through all of them.
            first = max(0, min(len(orders) - ACTIVE_ORDERS, i * len(orders) // self.events))
            while self.closed < first:
                close = {"work_order": orders[self.closed].code, "reason": "done"}
                yield self._envelope("work_order_close", at, close)
                self.closed += 1
            active = orders[first : first + ACTIVE_ORDERS]
            kind, payload = self._event(self.rng.choices(kinds, weights)[0], active)
            yield self._envelope(kind, at, payload)

    def _event(self, kind: str, active: list[OrderSpec]) -> tuple[str, dict[str, Any]]:
        order = self.rng.choice(active)
        if kind == "sales_shipment":
            return self._shipment(order)
        if kind == "production_completion":
            return self._completion(order)
        if kind == "material_issue":
            return self._issue(order)
        item = self.rng.choice(self.cat.raw)
        return self._receipt(item, self.rng.choice(WAREHOUSES))

    def _receipt(self, item: ItemSpec, warehouse: str) -> tuple[str, dict[str, Any]]:
        quantity = self.rng.randint(50, 200)
        self._add(item.code, warehouse, quantity)
        price = (item.price * Decimal(self.rng.randint(95, 105)) / 100).quantize(CENT)
        supplier = f"S{self.rng.randint(1, SUPPLIERS):02d}"
        return "purchase_receipt", {
            "supplier": supplier,
            "item": item.code,
            "location": warehouse,
            "quantity": str(quantity),
            "unit_price": str(price),
        }

    def _issue(self, order: OrderSpec) -> tuple[str, dict[str, Any]]:
        item, quantity = self.rng.choice(self.cat.raw), self.rng.randint(1, 10)
        if self.stock.get((item.code, order.warehouse), 0) < quantity:
            return self._receipt(item, order.warehouse)  # the store reorders
        self._add(item.code, order.warehouse, -quantity)
        self.issued.add(order.code)
        return "material_issue", {
            "work_order": order.code,
            "item": item.code,
            "location": order.warehouse,
            "quantity": str(quantity),
        }

    def _completion(self, order: OrderSpec) -> tuple[str, dict[str, Any]]:
        left = PLANNED_UNITS - self.completed.get(order.code, 0)
        if order.code not in self.issued or left < 1:
            return self._issue(order)  # after the last completion: a variance at close
        quantity = min(left, self.rng.randint(5, 20))
        self.completed[order.code] = PLANNED_UNITS - left + quantity
        self._add(order.item, order.warehouse, quantity)
        payload = {"work_order": order.code, "location": order.warehouse, "quantity": str(quantity)}
        return "production_completion", payload

    def _shipment(self, order: OrderSpec) -> tuple[str, dict[str, Any]]:
        """Ships what the floor has been making lately (the order's item)."""
        on_hand = self.stock.get((order.item, order.warehouse), 0)
        if on_hand < 1:
            return self._completion(order)
        quantity = min(on_hand, self.rng.randint(1, 5))
        self._add(order.item, order.warehouse, -quantity)
        price = next(f.price for f in self.cat.finished if f.code == order.item)
        return "sales_shipment", {
            "customer": f"C{self.rng.randint(1, CUSTOMERS):02d}",
            "item": order.item,
            "location": order.warehouse,
            "quantity": str(quantity),
            "unit_price": str(price),
        }

    def _add(self, item: str, warehouse: str, quantity: int) -> None:
        self.stock[(item, warehouse)] = self.stock.get((item, warehouse), 0) + quantity

    def _envelope(self, kind: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
        device = f"hh-{self.rng.randint(1, DEVICES)}"
        self.seq[device] = self.seq.get(device, 0) + 1
        return {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "device_id": device,
            "seq": self.seq[device],
            "type": kind,
            "occurred_at": at.isoformat(),
            "operator": f"OP-{self.rng.randint(1, 20):02d}",
            "payload": payload,
        }


def _batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ----------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Built:
    events: int
    seconds: float
    mix: dict[str, int]


def build(db: Engine, tenant: TenantContext, floor: Floor) -> Built:
    """Post the floor's events through IngestService in batches; each must post.
    ANALYZE each time the ledger has doubled, as autovacuum would on a live database
    (it is off on this machine): plans made on the empty tables of a new database
    (foreign-key checks included) get slower with every batch (docs/benchmarks.md,
    "Cold start")."""
    service, mix, posted = IngestService(db), dict.fromkeys(KINDS, 0), 0
    report_every, analyze_at = max(BATCH_EVENTS, floor.events // 10), BATCH_EVENTS
    t0 = time.perf_counter()
    with tenancy.as_tenant(tenant.id):
        for batch in _batches(floor.stream(), BATCH_EVENTS):
            results = service.ingest(tenant, batch)
            bad = [r for r in results if r.status != ResultStatus.posted]
            if bad:
                raise RuntimeError(f"{len(bad)} events did not post, e.g. {bad[0]}")
            for event in batch:
                mix[event["type"]] += 1
            if (posted + len(batch)) // report_every > posted // report_every:
                rate = (posted + len(batch)) / (time.perf_counter() - t0)
                print(f"  posted {posted + len(batch):,} events ({rate:,.0f}/s)", flush=True)
            posted += len(batch)
            if posted >= analyze_at:
                analyze(db)
                analyze_at *= 2
    return Built(posted, time.perf_counter() - t0, mix)


def analyze(db: Engine) -> None:
    with db.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def vacuum_analyze(db: Engine) -> None:
    """What autovacuum does to insert-only tables (PostgreSQL 13+) as well as ANALYZE:
    it sets the visibility map, without which an index-only scan reads the heap."""
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")


# ----------------------------------------------------------------------------- serve


class WatchedBooksCheck(BooksCheckCache):
    """The dashboard's books-check cache, noting when each check ran and whether a
    request ran it (synchronously) or a background refresh did."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[tuple[float, float, bool]] = []  # (start, end, background)
        self.last_differences: int | None = None
        self._where = threading.local()

    def _refresh(self, engine: Engine, tenant: TenantContext) -> None:
        self._where.background = True
        super()._refresh(engine, tenant)

    def _check(self, engine: Engine, tenant: TenantContext) -> BooksCheck:
        t0 = time.perf_counter()
        result = super()._check(engine, tenant)
        background = getattr(self._where, "background", False)
        self.runs.append((t0, time.perf_counter(), background))
        self.last_differences = result.differences
        return result

    def overlapping(self, spans: list[tuple[float, float]], background: bool) -> int:
        """How many of the requests (start, end) overlapped a check of that kind."""
        runs = [(a, b) for a, b, bg in self.runs if bg == background]
        return sum(1 for t0, t1 in spans if any(a < t1 and b > t0 for a, b in runs))


class Server:
    """The real app on a loopback port, in a thread of this process."""

    def __init__(self, settings: Settings, app_db: Engine, platform_db: Engine) -> None:
        self.app = create_app(settings, app_db, platform_db)
        self.books_check = WatchedBooksCheck()
        self.app.state.books_check = self.books_check
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the app did not start within 30 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


# ----------------------------------------------------------------------------- measure


@dataclass
class Timing:
    path: str
    spans: list[tuple[float, float]]  # each request's start and end (perf_counter, s)
    statuses: dict[int, int]
    last_body: str

    @property
    def ms(self) -> list[float]:
        return [(t1 - t0) * 1000 for t0, t1 in self.spans]

    def pct(self, p: float) -> float:
        """Nearest-rank percentile."""
        ordered = sorted(self.ms)
        rank = max(1, -(-len(ordered) * p // 100))
        return ordered[int(rank) - 1]


def time_gets(client: httpx.Client, path: str, count: int) -> Timing:
    spans: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    body = ""
    for _ in range(count):
        t0 = time.perf_counter()
        response = client.get(path)
        spans.append((t0, time.perf_counter()))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        body = response.text
    return Timing(path, spans, statuses, body)


def _figure(html: str, element_id: str) -> Decimal:
    """The amount shown in the element `element_id` (an English-formatted money)."""
    found = re.search(
        rf'id="{element_id}"[^>]*>(?:<h3>.*?</h3>)?(.*?)</(?:div|strong)>', html, re.S
    )
    if found is None:
        raise AssertionError(f"the page has no {element_id}")
    digits = re.sub(r"<[^>]+>|[^\d.\-]", "", found.group(1))
    return Decimal(digits or "0")


@dataclass(frozen=True)
class Expected:
    """What the pages must show, read from the ledger's cached balances directly."""

    stock_value: Decimal  # valuation pools and WIP
    positions: int  # pools with stock
    listed_value: Decimal  # of the positions /inventory lists (its first LISTED)
    moves: int
    month_share: float  # of the journal entries, those dated this month
    revenue_month: Decimal  # of the entries dated this month


LISTED = 500  # cloud_api.reporting.stock.positions' limit


def expected_figures(db: Engine, tenant_id: uuid.UUID, month_start: date) -> Expected:
    vp, wb, mv, je = T["valuation_pool"], T["wip_balance"], T["stock_move"], T["journal_entry"]
    jl, acc, item, loc = T["journal_line"], T["account"], T["item"], T["location"]
    held = (vp.c.tenant_id == tenant_id) & ((vp.c.quantity != 0) | (vp.c.value != 0))
    listed = (
        select(vp.c.value)
        .join(item, (item.c.tenant_id == vp.c.tenant_id) & (item.c.id == vp.c.item_id))
        .join(loc, (loc.c.tenant_id == vp.c.tenant_id) & (loc.c.id == vp.c.location_id))
        .where(held)
        .order_by(item.c.code, loc.c.code)
        .limit(LISTED)
        .subquery()
    )
    with db.connect() as conn:
        positions, pools = conn.execute(
            select(func.count(), func.sum(vp.c.value)).where(held)
        ).one()
        wip = conn.scalar(select(func.sum(wb.c.value)).where(wb.c.tenant_id == tenant_id))
        listed_value = conn.scalar(select(func.sum(listed.c.value)))
        moves = conn.scalar(select(func.count()).where(mv.c.tenant_id == tenant_id))
        entries, this_month = conn.execute(
            select(func.count(), func.count().filter(je.c.entry_date >= month_start)).where(
                je.c.tenant_id == tenant_id
            )
        ).one()
        revenue = conn.scalar(
            select(func.sum(jl.c.credit - jl.c.debit))
            .join(je, (je.c.tenant_id == jl.c.tenant_id) & (je.c.id == jl.c.entry_id))
            .join(acc, (acc.c.tenant_id == jl.c.tenant_id) & (acc.c.code == jl.c.account_code))
            .where(jl.c.tenant_id == tenant_id, acc.c.kind == "revenue")
            .where(je.c.entry_date >= month_start)
        )
    return Expected(
        (Decimal(pools or 0) + Decimal(wip or 0)).quantize(CENT),
        int(positions),
        Decimal(listed_value or 0).quantize(CENT),
        int(moves or 0),
        this_month / entries if entries else 0.0,
        Decimal(revenue or 0).quantize(CENT),
    )


def check_pages(dashboard: Timing, inventory: Timing, expected: Expected) -> dict[str, str]:
    """The pages answered 200 every time and show the ledger's real figures."""
    for timing in (dashboard, inventory):
        if set(timing.statuses) != {200}:
            raise AssertionError(f"{timing.path} answered {timing.statuses}")
    shown = {
        name: _figure(dashboard.last_body, name)
        for name in ("stock-total", "revenue", "margin", "output-month")
    }
    rows = inventory.last_body.count("<tr>") - 1  # less the header row
    listed = _figure(inventory.last_body, "inventory-total")
    problems = [
        f"the dashboard shows a stock value of {shown['stock-total']}, "
        f"the ledger holds {expected.stock_value}"
        if shown["stock-total"] != expected.stock_value or expected.stock_value <= 0
        else "",
        f"the dashboard shows a revenue of {shown['revenue']} this month, the ledger "
        f"holds {expected.revenue_month}"
        if shown["revenue"] != expected.revenue_month
        else "",
        f"/inventory lists {rows} positions, {listed} in value; the ledger holds "
        f"{expected.positions}, the first {LISTED} worth {expected.listed_value}"
        if rows != min(LISTED, expected.positions) or listed != expected.listed_value
        else "",
    ]
    if any(problems):
        raise AssertionError("; ".join(p for p in problems if p))
    return {**{name: str(value) for name, value in shown.items()}, "inventory-rows": str(rows)}


# ----------------------------------------------------------------------------- main


def sign_up(platform_db: Engine, pepper: str) -> tuple[uuid.UUID, str]:
    """The owner signs up (a new tenant on a trial); (tenant id, session token)."""
    email = f"owner-{uuid.uuid4().hex[:8]}@bench.example"
    tenant, token = users.sign_up(
        platform_db, "Bench Works", email, "Owner", PASSWORD, pepper, now_utc()
    )
    return tenant.id, token


def _context(db: Engine, tenant_id: uuid.UUID) -> TenantContext:
    with tenancy.as_tenant(tenant_id), db.connect() as conn:
        return tenant_by_id(conn, tenant_id)


def measure(server: Server, token: str, requests: int) -> dict[str, Timing]:
    """Warm up, the dashboard last (its first view runs the books-check, untimed),
    then time the dashboard while that check's result is fresh (a minute: then a view
    starts a refresh in the background), then /inventory and /healthz."""
    headers = {"Cookie": f"{SESSION_COOKIE}={token}"}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=3600
    ) as client:
        for path in ("/healthz", "/inventory", "/"):
            time_gets(client, path, WARMUP_REQUESTS)
        return {
            "/": time_gets(client, "/", requests),
            "/inventory": time_gets(client, "/inventory", requests),
            "/healthz": time_gets(client, "/healthz", requests),
        }


def main(
    moves: int = 1_000_000,
    requests: int = 200,
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres",
    seed: int = 42,
    days: float = HISTORY_DAYS,
) -> dict[str, Any]:
    """Build, serve, time and check (see the module's docstring); print the figures
    and return them. The throwaway database is dropped at the end, whatever happens."""
    url, drop = _fresh_database(database_url)
    owner = tenancy.install(make_engine(url))
    app_db, platform_db = _as_role(url, rls.APP), _as_role(url, rls.PLATFORM)
    settings = get_settings()
    try:
        tenant_id, token = sign_up(platform_db, settings.api_key_pepper)
        tenant = _context(app_db, tenant_id)
        rng = random.Random(seed)
        cat = catalogue(moves, rng)
        t0 = time.perf_counter()
        seed_master_data(app_db, tenant, cat)
        print(f"master data: {len(cat.orders):,} work orders ({time.perf_counter() - t0:.1f} s)")
        floor = Floor(cat, moves, now_utc() - timedelta(minutes=5), rng, days=days)
        print(f"building {moves:,} moves for tenant {tenant_id} ...", flush=True)
        built = build(owner, tenant, floor)
        t0 = time.perf_counter()
        vacuum_analyze(owner)
        analyze_s = time.perf_counter() - t0
        month_start = local_date(now_utc(), tenant.timezone).replace(day=1)
        expected = expected_figures(owner, tenant_id, month_start)
        with Server(settings, app_db, platform_db) as server:
            timings = measure(server, token, requests)
        result = _report(built, analyze_s, expected, timings, server.books_check)
        _print_table(result)
        print(json.dumps(result, sort_keys=True))
        return result
    finally:
        for engine in (owner, app_db, platform_db):
            engine.dispose()
        drop()


def _report(
    built: Built,
    analyze_s: float,
    expected: Expected,
    timings: dict[str, Timing],
    books: WatchedBooksCheck,
) -> dict[str, Any]:
    figures = check_pages(timings["/"], timings["/inventory"], expected)
    in_requests = books.overlapping(timings["/"].spans, background=False)
    if in_requests:
        raise AssertionError(f"the books-check ran inside {in_requests} timed dashboard views")
    if books.last_differences != 0:
        raise AssertionError(f"the books-check found {books.last_differences} differences")
    healthz_p95 = timings["/healthz"].pct(95)
    return {
        "moves": expected.moves,
        "events": built.events,
        "build_s": round(built.seconds, 1),
        "build_moves_per_s": round(expected.moves / built.seconds, 1),
        "analyze_s": round(analyze_s, 1),
        "mix": built.mix,
        "month_share": round(expected.month_share, 3),
        "requests": len(timings["/"].ms),
        "pages": {path: _summary(t, healthz_p95) for path, t in timings.items()},
        "figures": figures,
        "books_check_differences": books.last_differences,
        "books_check_first_s": round(books.runs[0][1] - books.runs[0][0], 2),
        "books_check_overlaps": {
            "in_request": in_requests,  # a timed view that ran the check itself
            "background": {  # timed requests during a background refresh
                path: books.overlapping(t.spans, background=True) for path, t in timings.items()
            },
        },
    }


def _summary(timing: Timing, healthz_p95: float) -> dict[str, float]:
    return {
        "p50_ms": round(timing.pct(50), 1),
        "p95_ms": round(timing.pct(95), 1),
        "p99_ms": round(timing.pct(99), 1),
        "max_ms": round(max(timing.ms), 1),
        "p95_to_healthz": round(timing.pct(95) / healthz_p95, 1) if healthz_p95 else 0.0,
    }


def _print_table(result: dict[str, Any]) -> None:
    rate, share = result["build_moves_per_s"], result["month_share"]
    print()
    print(f"moves posted             {result['moves']:>12,}  ({result['events']:,} events)")
    print(f"build                    {result['build_s']:>12,.1f} s  ({rate:,.0f} moves/s)")
    print(f"VACUUM (ANALYZE)         {result['analyze_s']:>12,.1f} s")
    print(f"books-check, first view  {result['books_check_first_s']:>12,.2f} s  (untimed)")
    print(f"entries dated this month {share:>12.1%}  (what the dashboard's month reads)")
    print("mix: " + ", ".join(f"{k}={v:,}" for k, v in result["mix"].items()))
    print(
        f"\n{'GET':<12}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p95/healthz':>13}"
    )
    for path, s in result["pages"].items():
        print(
            f"{path:<12}{s['p50_ms']:>10.1f}{s['p95_ms']:>10.1f}{s['p99_ms']:>10.1f}"
            f"{s['max_ms']:>10.1f}{s['p95_to_healthz']:>13.1f}"
        )
    print("\nshown: " + ", ".join(f"{k} {v}" for k, v in result["figures"].items()))
    overlaps = result["books_check_overlaps"]
    print(
        f"books-check: {result['books_check_differences']} differences; timed views that "
        f"ran it: {overlaps['in_request']}; timed requests during a background refresh: "
        f"{overlaps['background']}"
    )
