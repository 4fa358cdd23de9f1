"""`erp bench ingest`: post N events through the real HTTP API and time it.

Prints throughput (events/s), batch latency (p50/p99), the books-check result and,
for comparison, the raw insert rate of the same number of rows into a scratch table
on the same database (the "raw limit"). See docs/benchmarks.md.

Also the CPU time the API server and the database's backends spent per event while
timed (Linux, database on this machine): on a shared box wall time swings with the
neighbours' load, CPU time much less, so it is what tells two runs apart.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url

from cloud_api.db import models as m
from cloud_api.db.engine import make_engine, normalize_url
from cloud_api.db.migrate import upgrade
from cloud_api.services.store import bulk_insert
from cloud_api.services.tenants import create_tenant
from cloud_api.settings import get_settings

SQLITE_PATH = Path("var/bench.sqlite3")
WORK_ORDERS = 20
LEDGER_TABLES = ["edge_event", "stock_move", "wip_charge", "journal_entry", "journal_line"]
# Event mix (weights in %): receipts, issues, labour, completions, shipments.
MIX = [
    ("purchase_receipt", 20),
    ("material_issue", 45),
    ("labour", 15),
    ("production_completion", 10),
    ("sales_shipment", 10),
]


# ----------------------------------------------------------------------------- database


def _prepare_database(database_url: str | None) -> tuple[str, str, Any]:
    """Return (backend, url, cleanup)."""
    if database_url is None:
        SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{SQLITE_PATH}"
        upgrade(url)
        return "sqlite", url, lambda: None
    if database_url.startswith("sqlite"):
        upgrade(database_url)
        return "sqlite", database_url, lambda: None
    url, cleanup = throwaway_postgres(database_url)
    return "postgresql", url, cleanup


def throwaway_postgres(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the PostgreSQL server of `server_url`, migrated: (its URL, a
    function that drops it)."""
    name = f"erp_bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = (
        make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)
    )

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    try:
        upgrade(url)
    except BaseException:
        drop()
        raise
    return url, drop


def _start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    """`erp serve` (one worker) in its own process, as in production: the client's
    JSON work then does not share the server's interpreter."""
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(
        [sys.executable, "-m", "erp.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the API server exited at start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("the API server did not start within 60 s")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a local process has used so far (Linux /proc); None
    where that cannot be read (another OS, a process of another machine or user)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _database_cpu(db: Engine) -> dict[int, float] | None:
    """CPU seconds so far of each PostgreSQL backend connected to the bench database,
    by process id; None when they cannot be read (SQLite, a remote server)."""
    if db.dialect.name != "postgresql":
        return None
    with db.connect() as conn:
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).all()
    used = {int(pid): _cpu_seconds(int(pid)) for pid in pids}
    if not used or any(seconds is None for seconds in used.values()):
        return None
    return {pid: seconds for pid, seconds in used.items() if seconds is not None}


def _cpu_spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds the backends spent between two readings; a backend that started in
    between counts from zero (one that ended in between is lost, so this is a floor)."""
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _per_event_ms(seconds: float | None, events: int) -> float | None:
    return None if seconds is None or not events else round(seconds * 1000 / events, 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- data


def _ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        )
    return resp.json()


def _seed(client: httpx.Client) -> None:
    """Master data as in tests/factory.py::setup_workshop, with more work orders."""
    for body in [
        {"code": "RAW", "name": "Board", "kind": "raw"},
        {"code": "BOLT", "name": "Bolt", "kind": "raw", "valuation_method": "fifo"},
        {"code": "TBL", "name": "Table", "kind": "finished"},
    ]:
        _ok(client.post("/items", json=body))
    _ok(client.post("/suppliers", json={"code": "SUP", "name": "Supplier"}))
    _ok(client.post("/customers", json={"code": "CUS", "name": "Customer"}))
    _ok(
        client.post(
            "/work-centers",
            json={"code": "WC", "name": "Assembly", "labour_rate": "40", "overhead_rate": "10"},
        )
    )
    for i in range(1, WORK_ORDERS + 1):
        _ok(
            client.post(
                "/work-orders",
                json={
                    "code": f"WO{i}",
                    "item": "TBL",
                    "planned_quantity": "1000000",
                    "release": True,
                },
            )
        )


def _events(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """N events in time order; substitutes a receipt/completion whenever the chosen
    event would need stock that is not there, so every event can post."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    stock = {"RAW": 0, "BOLT": 0, "TBL": 0}
    issued: set[str] = set()
    types = [t for t, _ in MIX]
    weights = [w for _, w in MIX]
    out: list[dict[str, Any]] = []
    for i in range(n):
        # Start with receipts of both raw items.
        kind = "purchase_receipt" if i < 4 else rng.choices(types, weights)[0]
        wo = f"WO{rng.randint(1, WORK_ORDERS)}"
        item = rng.choice(["RAW", "BOLT"])
        if kind == "material_issue" and stock[item] < 1:
            kind = "purchase_receipt"
        if kind == "sales_shipment" and stock["TBL"] < 1:
            kind = "production_completion"
        if kind == "production_completion" and not issued:
            kind = "material_issue" if stock[item] >= 1 else "purchase_receipt"
        if kind == "production_completion":
            wo = rng.choice(sorted(issued))
        if i < 4:
            item = ["RAW", "BOLT"][i % 2]
        if kind == "purchase_receipt":
            payload = {
                "supplier": "SUP",
                "item": item,
                "location": "WH",
                "quantity": "100",
                "unit_price": "10.5",
            }
            stock[item] += 100
        elif kind == "material_issue":
            payload = {"work_order": wo, "item": item, "location": "WH", "quantity": "1"}
            stock[item] -= 1
            issued.add(wo)
        elif kind == "labour":
            payload = {"work_order": wo, "work_center": "WC", "hours": "0.5"}
        elif kind == "production_completion":
            payload = {"work_order": wo, "location": "WH", "quantity": "1"}
            stock["TBL"] += 1
        else:
            payload = {
                "customer": "CUS",
                "item": "TBL",
                "location": "WH",
                "quantity": "1",
                "unit_price": "99",
            }
            stock["TBL"] -= 1
        out.append(
            {
                "event_id": str(uuid.uuid4()),
                "device_id": "bench-1",
                "seq": i + 1,
                "type": kind,
                "occurred_at": (start + timedelta(seconds=i)).isoformat(),
                "payload": payload,
            }
        )
    return out


# ----------------------------------------------------------------------------- measure


def _late_receipt(
    client: httpx.Client, db: Engine, tenant_id: uuid.UUID, first: dict[str, Any]
) -> tuple[float, int]:
    """The worst back-dated event: a RAW receipt at another price, dated before the
    whole history, so every later RAW issue, the work orders it fed, their
    completions and the shipments of what they made are revalued. Returns its
    latency and the number of moves revalued."""
    at = datetime.fromisoformat(first["occurred_at"]) - timedelta(seconds=1)
    late = {
        "event_id": str(uuid.uuid4()),
        "device_id": "bench-late",
        "seq": 1,
        "type": "purchase_receipt",
        "occurred_at": at.isoformat(),
        "payload": {
            "supplier": "SUP",
            "item": "RAW",
            "location": "WH",
            "quantity": "100",
            "unit_price": "12.25",
        },
    }
    t0 = time.perf_counter()
    body = _ok(client.post("/edge/events", json={"events": [late]}))
    elapsed = (time.perf_counter() - t0) * 1000
    if body["results"][0]["status"] != "posted":
        raise RuntimeError(f"the late receipt did not post: {body}")
    rv = m.SQLModel.metadata.tables["stock_revaluation"]
    with db.connect() as conn:
        revalued = conn.scalar(
            select(func.count(func.distinct(rv.c.move_id))).where(rv.c.tenant_id == tenant_id)
        )
    return elapsed, int(revalued or 0)


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def _ledger_rows(db: Engine, tenant_id: uuid.UUID) -> dict[str, int]:
    T = m.SQLModel.metadata.tables
    with db.connect() as conn:
        return {
            name: int(
                conn.scalar(
                    select(func.count())
                    .select_from(T[name])
                    .where(T[name].c.tenant_id == tenant_id)
                )
                or 0
            )
            for name in LEDGER_TABLES
        }


def _raw_insert_rate(backend: str, url: str, rows: int, per_txn: int) -> float:
    """Insert `rows` comparable rows into a scratch table (a plain, logged table
    with a primary key), `per_txn` rows per transaction, by the same bulk path the
    ingest uses (COPY on PostgreSQL, executemany on SQLite), and return rows/s."""
    md = MetaData()
    scratch = Table(
        "bench_scratch",
        md,
        Column("tenant_id", String(36), nullable=False),
        Column("id", String(36), primary_key=True),
        Column("event_id", String(36), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("item", String(64), nullable=False),
        Column("account", String(16), nullable=False),
        Column("quantity", Numeric(24, 6), nullable=False),
        Column("value", Numeric(24, 6), nullable=False),
    )
    tenant = str(uuid.uuid4())
    now = datetime.now(UTC)
    data = [
        {
            "tenant_id": tenant,
            "id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "occurred_at": now + timedelta(seconds=i),
            "item": "RAW",
            "account": "1403",
            "quantity": "1",
            "value": "10.5",
        }
        for i in range(rows)
    ]
    db = make_engine(url)
    try:
        with db.connect() as conn:
            with conn.begin():
                scratch.drop(conn, checkfirst=True)
            with conn.begin():
                scratch.create(conn)
            t0 = time.perf_counter()
            for i in range(0, rows, per_txn):
                with conn.begin():
                    bulk_insert(conn, scratch, data[i : i + per_txn])
            elapsed = time.perf_counter() - t0
            with conn.begin():
                scratch.drop(conn)
    finally:
        db.dispose()
    return rows / elapsed if elapsed > 0 else 0.0


# ----------------------------------------------------------------------------- main


def main(
    events: int = 20000, batch: int = 500, database_url: str | None = None, warmup: int = 2000
) -> None:
    backend, url, cleanup = _prepare_database(database_url)
    db = make_engine(url)
    server: subprocess.Popen[bytes] | None = None
    try:
        tenant = create_tenant(db, "bench", "Bench Workshop", get_settings().api_key_pepper)
        port = _free_port()
        server = _start_server(url, port)

        every = _events(warmup + events)
        warm, evs = every[:warmup], every[warmup:]
        mix: dict[str, int] = {}
        for e in evs:
            mix[e["type"]] = mix.get(e["type"], 0) + 1
        latencies: list[float] = []
        not_posted: list[dict[str, Any]] = []
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v1",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
            timeout=600,
        ) as client:
            _seed(client)
            for i in range(0, len(warm), batch):
                body = _ok(client.post("/edge/events", json={"events": warm[i : i + batch]}))
                if any(res["status"] != "posted" for res in body["results"]):
                    raise RuntimeError("a warm-up event did not post")
            if warm:
                # What autovacuum does within a minute on a live database: fresh
                # statistics, so cached plans (foreign-key checks included) fit the
                # tables' real size rather than the empty tables of a new install.
                with db.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()
            before = _ledger_rows(db, tenant.id)
            server_cpu_start = _cpu_seconds(server.pid)
            db_cpu_start = _database_cpu(db)
            t_start = time.perf_counter()
            for i in range(0, len(evs), batch):
                chunk = evs[i : i + batch]
                t0 = time.perf_counter()
                resp = client.post("/edge/events", json={"events": chunk})
                latencies.append(time.perf_counter() - t0)
                body = _ok(resp)
                for ev, res in zip(chunk, body["results"], strict=True):
                    if res["status"] != "posted":
                        not_posted.append({"event": ev, "result": res})
            total = time.perf_counter() - t_start
            server_cpu_end = _cpu_seconds(server.pid)
            db_cpu = _cpu_spent(db_cpu_start, _database_cpu(db))
            after = _ledger_rows(db, tenant.id)
            late_ms, late_revaluations = _late_receipt(client, db, tenant.id, every[0])
            recon = _ok(client.get("/reports/reconciliation"))

        rows = {name: after[name] - before.get(name, 0) for name in after}
        total_rows = sum(rows.values())
        n_batches = len(latencies)
        per_txn = max(1, round(total_rows / n_batches)) if n_batches else 1
        raw_rate = _raw_insert_rate(backend, url, total_rows, per_txn)
        lat = sorted(x * 1000 for x in latencies)
        ev_rate = events / total if total else 0.0
        server_cpu = (
            server_cpu_end - server_cpu_start
            if server_cpu_start is not None and server_cpu_end is not None
            else None
        )
        ingest_rows_rate = total_rows / total if total else 0.0
        result = {
            "backend": backend,
            "events": events,
            "warmup": warmup,
            "batch": batch,
            "batches": n_batches,
            "total_s": round(total, 3),
            "events_per_s": round(ev_rate, 1),
            "batch_p50_ms": round(_pct(lat, 50), 1),
            "batch_p99_ms": round(_pct(lat, 99), 1),
            "server_cpu_ms_per_event": _per_event_ms(server_cpu, events),
            "db_cpu_ms_per_event": _per_event_ms(db_cpu, events),
            "not_posted": len(not_posted),
            "late_receipt_ms": round(late_ms, 1),
            "late_receipt_revalued_moves": late_revaluations,
            "reconciliation_differences": len(recon["differences"]),
            "ledger_rows": rows,
            "ledger_rows_total": total_rows,
            "ingest_rows_per_s": round(ingest_rows_rate, 1),
            "raw_rows_per_txn": per_txn,
            "raw_insert_rows_per_s": round(raw_rate, 1),
            "ingest_to_raw_ratio": round(ingest_rows_rate / raw_rate, 4) if raw_rate else None,
            "mix": mix,
        }

        for item in not_posted[:20]:
            print("NOT POSTED:", json.dumps(item))
        if len(not_posted) > 20:
            print(f"... and {len(not_posted) - 20} more not posted")
        table = [
            ("backend", backend),
            ("events", f"{events}"),
            ("warm-up events (then ANALYZE)", f"{warmup}"),
            ("batch size", f"{batch}"),
            ("batches", f"{n_batches}"),
            ("total seconds", f"{total:.2f}"),
            ("events/s", f"{ev_rate:,.0f}"),
            ("batch latency p50 (ms)", f"{result['batch_p50_ms']:,.1f}"),
            ("batch latency p99 (ms)", f"{result['batch_p99_ms']:,.1f}"),
            ("API server CPU per event (ms)", f"{result['server_cpu_ms_per_event']}"),
            ("database CPU per event (ms)", f"{result['db_cpu_ms_per_event']}"),
            ("not posted", f"{len(not_posted)}"),
            ("late receipt before all history (ms)", f"{late_ms:,.1f}"),
            ("  moves it revalued", f"{late_revaluations:,}"),
            ("reconciliation differences", f"{len(recon['differences'])}"),
            ("ledger rows written", f"{total_rows:,}"),
            ("ingest rows/s", f"{ingest_rows_rate:,.0f}"),
            (f"raw insert rows/s ({per_txn} rows/txn)", f"{raw_rate:,.0f}"),
            ("ingest rows/s ÷ raw rows/s", f"{result['ingest_to_raw_ratio']}"),
        ]
        width = max(len(k) for k, _ in table)
        print()
        for k, v in table:
            print(f"{k:<{width}}  {v:>14}")
        print("rows: " + ", ".join(f"{k}={v}" for k, v in rows.items()))
        print("mix: " + ", ".join(f"{k}={v}" for k, v in mix.items()))
        print(json.dumps(result, sort_keys=True))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        db.dispose()
        cleanup()
