"""`erp bench edge`: the edge's two figures (the edge issue; docs/benchmarks.md).

capture  Acknowledged scans per second through a workstation session and the durable
         outbox (SQLite WAL, synchronous=FULL), with p50/p99 scan-to-beep latency: the
         time from a confirm scan reaching the agent to its answer, commit included.
         Raw limit in the same run: bare one-row INSERT + COMMIT transactions on a
         file with the same pragmas, on the same disk.
drain    A backlog of N events in the outbox (filled while "offline") sent to a real
         cloud API (its own process) until empty: events/s and the time to drain.
         Raw limit in the same run: the same kind of events posted straight to the API
         in batches of the same size, skipping the edge.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import _free_port, _ok, _prepare_database, _seed, _start_server
from cloud_api.db.engine import make_engine
from cloud_api.services.tenants import create_tenant
from cloud_api.settings import get_settings
from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.outbox import Capture

BENCH_MASTER_DATA: dict[str, Any] = {
    "full": True,
    "cursor": None,
    "items": [{"code": "RAW", "name": "Board", "lot_tracked": False, "issue_method": "manual"}],
    "locations": [{"code": "WH", "name": "Store", "kind": "warehouse"}],
    "work_centers": [{"code": "WC", "name": "Assembly"}],
    "operators": [{"code": "B-1", "name": "Bench", "active": True}],
    "suppliers": [{"code": "SUP", "name": "Supplier"}],
    "work_orders": [
        {
            "code": "WO1",
            "item": "TBL",
            "status": "released",
            "planned_quantity": "1000000",
            "warehouse": "WH",
            "postable": True,
            "components": [],
        }
    ],
}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _agent(tmp: Path, url: str = "http://127.0.0.1:9", api_key: str = "unused") -> Agent:
    config = parse_config(
        {
            "edge": {
                "id": "bench",
                "outbox": str(tmp / "outbox.sqlite3"),
                "masterdata": str(tmp / "md.json"),
                "min_free_mb": 0,
                "disk_cap_mb": 100_000,
            },
            "cloud": {"url": url, "api_key": api_key, "batch_size": 500},
            "workstations": [{"id": "ws", "warehouse": "WH", "work_center": "WC"}],
        }
    )
    return Agent(config)


def capture(scans: int = 5000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir="var" if Path("var").is_dir() else None) as tmp:
        agent = _agent(Path(tmp))
        agent.cache.apply(BENCH_MASTER_DATA)
        for text in ("B-1", "#ISSUE", "WO1"):
            assert agent.scan("ws", text).ok
        confirm_ms: list[float] = []
        start = time.perf_counter()
        for _ in range(scans):
            agent.scan("ws", "RAW")
            agent.scan("ws", "1")
            t0 = time.perf_counter()
            answer = agent.scan("ws", "#OK")
            confirm_ms.append((time.perf_counter() - t0) * 1000)
            if not answer.ok:
                raise RuntimeError(f"a scan was refused: {answer.text}")
        total = time.perf_counter() - start
        backlog = agent.outbox.status().backlog
        agent.stop()
        raw = _raw_commit_rate(Path(tmp) / "raw.sqlite3", min(scans, 3000))
    rate = scans / total
    return {
        "acknowledged_scans": scans,
        "backlog_after": backlog,
        "transactions_per_s": round(rate, 1),
        "scans_per_s_all_three": round(3 * scans / total, 1),
        "scan_to_beep_p50_ms": round(statistics.median(confirm_ms), 2),
        "scan_to_beep_p99_ms": round(_pct(confirm_ms, 99), 2),
        "raw_fsync_commits_per_s": round(raw, 1),
        "ratio_to_raw": round(rate / raw, 3),
    }


def _raw_commit_rate(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    body = "x" * 600  # about an outbox row's size
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - start)
    conn.close()
    return rate


def _backlog_capture(i: int, at: datetime) -> Capture:
    if i % 10 == 0:
        payload = {
            "supplier": "SUP",
            "item": "RAW",
            "location": "WH",
            "quantity": "100",
            "unit_price": "2",
        }
        kind = "purchase_receipt"
    else:
        payload = {
            "work_order": f"WO{1 + i % 20}",
            "item": "RAW",
            "location": "WH",
            "quantity": "1",
        }
        kind = "material_issue"
    return Capture(type=kind, payload=payload, device_id="ws", occurred_at=at, operator="B-1")


def drain(
    events: int = 100_000, database_url: str | None = None, batch: int = 500, warmup: int = 2000
) -> dict[str, Any]:
    backend, url, cleanup = _prepare_database(database_url)
    db = make_engine(url)
    server = None
    try:
        edge_tenant = create_tenant(db, "edge", "Edge", get_settings().api_key_pepper)
        direct_tenant = create_tenant(db, "direct", "Direct", get_settings().api_key_pepper)
        port = _free_port()
        server = _start_server(url, port)
        base = f"http://127.0.0.1:{port}"
        for tenant in (edge_tenant, direct_tenant):
            with httpx.Client(
                base_url=base + "/api/v1",
                timeout=600,
                headers={"Authorization": f"Bearer {tenant.api_key}"},
            ) as c:
                _seed(c)
        start_at = datetime.now(UTC) - timedelta(days=1)
        # A live database, as in bench/ingest.py: some history, then the statistics
        # autovacuum keeps (this machine's PostgreSQL runs with autovacuum off).
        _post_direct(base, direct_tenant.api_key, warmup, start_at - timedelta(days=1), batch)
        with db.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        with tempfile.TemporaryDirectory(dir="var" if Path("var").is_dir() else None) as tmp:
            agent = _agent(Path(tmp), base, edge_tenant.api_key)
            agent.syncer.batch_size = batch
            _fill(agent, events, start_at)
            agent.cache.apply(BENCH_MASTER_DATA)
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            live = _LiveScans(agent)
            live.start()
            t0 = time.perf_counter()
            drained = agent.drain(timeout_s=3600)
            drain_s = time.perf_counter() - t0
            live.stop()
            rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
            agent.drain(timeout_s=600)  # the live scans too
            status = agent.outbox.status()
            agent.stop()
        direct_n = min(events, 20_000)
        direct_s = _post_direct(base, direct_tenant.api_key, direct_n, start_at, batch)
        with httpx.Client(
            base_url=base + "/api/v1",
            timeout=600,
            headers={"Authorization": f"Bearer {edge_tenant.api_key}"},
        ) as c:
            recon = _ok(c.get("/reports/reconciliation"))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        db.dispose()
        cleanup()
    rate = events / drain_s
    direct_rate = direct_n / direct_s
    return {
        "backend": backend,
        "backlog_events": events,
        "drained": drained and status.backlog == 0,
        "parked": status.parked_count,
        "held": status.held_count,
        "drain_s": round(drain_s, 1),
        "live_scans_during_drain": len(live.confirm_ms),
        "live_scan_to_beep_p50_ms": round(statistics.median(live.confirm_ms), 2),
        "live_scan_to_beep_p99_ms": round(_pct(live.confirm_ms, 99), 2),
        "max_rss_growth_during_drain_mb": round(rss_growth_mb, 1),
        "drain_events_per_s": round(rate, 1),
        "direct_post_events_per_s": round(direct_rate, 1),
        "ratio_to_direct": round(rate / direct_rate, 3),
        "reconciliation_differences": len(recon["differences"]),
    }


class _LiveScans(threading.Thread):
    """An operator scanning at a steady pace (10 transactions/s) while the backlog
    drains: how fast do they hear the beep?"""

    def __init__(self, agent: Agent) -> None:
        super().__init__(daemon=True)
        self.agent = agent
        self.confirm_ms: list[float] = []
        self._halt = threading.Event()

    def run(self) -> None:
        for text in ("B-1", "#ISSUE", "WO1"):
            self.agent.scan("ws", text)
        while not self._halt.is_set():
            self.agent.scan("ws", "RAW")
            self.agent.scan("ws", "1")
            t0 = time.perf_counter()
            if not self.agent.scan("ws", "#OK").ok:
                raise RuntimeError("a live scan was refused")
            self.confirm_ms.append((time.perf_counter() - t0) * 1000)
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _fill(agent: Agent, events: int, start_at: datetime) -> None:
    """The backlog an outage leaves: captured one by one as in production, but with
    the file's fsync off while filling (the fill is not what is measured)."""
    agent.outbox._conn.execute("PRAGMA synchronous=OFF")
    for i in range(events):
        agent.outbox.capture(_backlog_capture(i, start_at + timedelta(milliseconds=i)))
    agent.outbox._conn.execute("PRAGMA synchronous=FULL")


def _post_direct(base: str, api_key: str, n: int, start_at: datetime, batch: int) -> float:
    wire = []
    for i in range(n):
        c = _backlog_capture(i, start_at + timedelta(milliseconds=i))
        wire.append(
            {
                "event_id": str(uuid.uuid4()),
                "device_id": "direct",
                "seq": i,
                "type": c.type,
                "occurred_at": c.occurred_at.isoformat(),
                "payload": dict(c.payload),
            }
        )
    with httpx.Client(
        base_url=base + "/api/v1", timeout=600, headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            body = _ok(client.post("/edge/events", json={"events": wire[i : i + batch]}))
            if body["posted"] != len(wire[i : i + batch]):
                raise RuntimeError("a directly posted event did not post")
        return time.perf_counter() - t0


def main(what: str, events: int, database_url: str | None) -> None:
    if what in ("capture", "all"):
        print(json.dumps({"capture": capture(min(events, 20_000))}, indent=2))
    if what in ("drain", "all"):
        print(json.dumps({"drain": drain(events, database_url)}, indent=2))
