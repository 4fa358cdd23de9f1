"""`erp demo`: a small furniture workshop's working day, posted through the real API.

The edge issue replaces these scripted calls with simulated scanners and terminals.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cloud_api.api.app import create_app
from cloud_api.db.engine import make_engine
from cloud_api.db.migrate import upgrade
from cloud_api.services.tenants import create_tenant
from cloud_api.settings import get_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")

ITEMS = [
    {"code": "OAK-BOARD", "name": "橡木板 Oak board", "unit": "m", "kind": "raw"},
    {
        "code": "SCREW-4X40",
        "name": "木螺丝 Wood screw 4×40",
        "unit": "pcs",
        "kind": "raw",
        "valuation_method": "fifo",
    },
    {
        "code": "GLUE-PVA",
        "name": "白乳胶 PVA glue",
        "unit": "kg",
        "kind": "raw",
        "lot_tracked": True,
    },
    {"code": "VARNISH", "name": "清漆 Varnish", "unit": "L", "kind": "raw"},
    {"code": "TABLE-LEG", "name": "桌腿 Table leg", "unit": "pcs", "kind": "semi_finished"},
    {"code": "DINING-TABLE", "name": "餐桌 Oak dining table", "unit": "pcs", "kind": "finished"},
]
# Two-level bill of materials (per unit); BOM records come with the production issue.
BOM = {
    "TABLE-LEG": [("OAK-BOARD", "0.5"), ("GLUE-PVA", "0.05")],
    "DINING-TABLE": [
        ("TABLE-LEG", "4"),
        ("OAK-BOARD", "1.2"),
        ("SCREW-4X40", "16"),
        ("VARNISH", "0.3"),
    ],
}


def run_demo(database_url: str, port: int, serve_after: bool) -> int:
    console = Console()
    _fresh_database(database_url)
    settings = get_settings().model_copy(update={"database_url": database_url})
    db = make_engine(database_url)
    tenant = create_tenant(
        db, "oak-and-pine", "橡松家具 Oak & Pine Furniture Workshop", settings.api_key_pepper
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/api/v1"
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {tenant.api_key}"}, timeout=60
    ) as client:
        _seed_master_data(client)
        day = _working_day(
            datetime.now(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
            - timedelta(days=1)
        )
        posted, problems = _post_day(client, day, console)
        ok = _summary(client, console, posted, len(day), problems)
    if serve_after:
        console.print(
            f"\nAPI serving at http://127.0.0.1:{port}/docs — API key: "
            f"[bold]{tenant.api_key}[/] — Ctrl-C to stop."
        )
        try:
            thread.join()
        except KeyboardInterrupt:
            server.should_exit = True
    else:
        server.should_exit = True
        thread.join(timeout=10)
    return 0 if ok else 1


def _fresh_database(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    upgrade(url)


def _seed_master_data(client: httpx.Client) -> None:
    for item in ITEMS:
        _ok(client.post("/items", json=item))
    for path, body in [
        (
            "/locations",
            {"code": "WH-RAW", "name": "原料仓 Raw material store", "kind": "warehouse"},
        ),
        (
            "/locations",
            {"code": "WH-FG", "name": "成品仓 Finished goods store", "kind": "warehouse"},
        ),
        ("/suppliers", {"code": "S-TIMBER", "name": "华东木业 East China Timber"}),
        ("/suppliers", {"code": "S-HARDWARE", "name": "永固五金 Yonggu Hardware"}),
        ("/customers", {"code": "C-HOME", "name": "家居生活 Home Living Co."}),
        (
            "/work-centers",
            {"code": "CUT", "name": "开料 Cutting", "labour_rate": "45", "overhead_rate": "20"},
        ),
        (
            "/work-centers",
            {"code": "ASSY", "name": "组装 Assembly", "labour_rate": "50", "overhead_rate": "25"},
        ),
        (
            "/work-orders",
            {"code": "WO-LEG-001", "item": "TABLE-LEG", "planned_quantity": "40", "release": True},
        ),
        (
            "/work-orders",
            {
                "code": "WO-TBL-001",
                "item": "DINING-TABLE",
                "planned_quantity": "10",
                "release": True,
            },
        ),
    ]:
        _ok(client.post(path, json=body))


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


class _Day:
    def __init__(self, start: datetime) -> None:
        self.start, self.events, self.seq = start, [], 0

    def add(
        self, device: str, hhmm: str, type_: str, payload: dict[str, Any], replayed: bool = False
    ) -> str:
        hour, minute = map(int, hhmm.split(":"))
        self.seq += 1
        event_id = str(uuid.uuid4())
        self.events.append(
            {
                "event_id": event_id,
                "device_id": device,
                "seq": self.seq,
                "type": type_,
                "occurred_at": self.start.replace(hour=hour, minute=minute).isoformat(),
                "operator": "E0" + str(self.seq % 7),
                "replayed": replayed,
                "payload": payload,
            }
        )
        return event_id


def _working_day(start: datetime) -> list[dict[str, Any]]:
    d = _Day(start)
    for hhmm, sup, item, qty, price, lot in [
        ("07:30", "S-TIMBER", "OAK-BOARD", "200", "68", ""),
        ("07:35", "S-HARDWARE", "SCREW-4X40", "3000", "0.12", ""),
        ("07:40", "S-HARDWARE", "SCREW-4X40", "2000", "0.13", ""),
        ("07:45", "S-HARDWARE", "GLUE-PVA", "20", "35", "G-2611"),
        ("07:50", "S-HARDWARE", "VARNISH", "40", "52", ""),
    ]:
        d.add(
            "HH-01",
            hhmm,
            "purchase_receipt",
            {
                "supplier": sup,
                "item": item,
                "location": "WH-RAW",
                "quantity": qty,
                "unit_price": price,
                "lot": lot,
            },
        )
    _make(d, "WO-LEG-001", "TABLE-LEG", 40, "08:00", "CUT", "6", [40])
    _make(d, "WO-TBL-001", "DINING-TABLE", 10, "11:00", "ASSY", "8", [6, 4])
    d.add(
        "WS-03",
        "16:30",
        "sales_shipment",
        {
            "customer": "C-HOME",
            "item": "DINING-TABLE",
            "location": "WH-FG",
            "quantity": "6",
            "unit_price": "2800",
        },
    )
    ret = d.add(
        "WS-02",
        "16:40",
        "material_return",
        {"work_order": "WO-TBL-001", "item": "OAK-BOARD", "location": "WH-RAW", "quantity": "1"},
    )
    d.add(
        "HH-01",
        "17:00",
        "stock_count",
        {
            "item": "SCREW-4X40",
            "location": "WH-RAW",
            "counted_quantity": "4830",
            "reason": "cycle count",
        },
    )
    d.add(
        "WS-02",
        "17:10",
        "reversal",
        {"reverses_event_id": ret, "reason": "board was damaged, kept on the order"},
    )
    # A handheld that was offline since early morning delivers its receipt late.
    d.add(
        "HH-02",
        "07:20",
        "purchase_receipt",
        {
            "supplier": "S-TIMBER",
            "item": "OAK-BOARD",
            "location": "WH-RAW",
            "quantity": "50",
            "unit_price": "74",
        },
        replayed=True,
    )
    return d.events


def _make(
    d: _Day,
    order: str,
    item: str,
    qty: int,
    start: str,
    center: str,
    hours: str,
    completions: list[int],
) -> None:
    hour = int(start[:2])
    for n, (component, per_unit) in enumerate(BOM[item]):
        payload = {
            "work_order": order,
            "item": component,
            "quantity": str(Decimal(per_unit) * qty),
            "location": "WH-FG" if component == "TABLE-LEG" else "WH-RAW",
        }
        if component == "GLUE-PVA":
            payload["lot"] = "G-2611"
        d.add("WS-01", f"{hour:02d}:{5 + n * 5:02d}", "material_issue", payload)
    d.add(
        "TERM-01",
        f"{hour + 2:02d}:30",
        "labour",
        {"work_order": order, "work_center": center, "hours": hours},
    )
    for n, good in enumerate(completions):
        d.add(
            "TERM-01",
            f"{hour + 3 + n:02d}:00",
            "production_completion",
            {"work_order": order, "location": "WH-FG", "quantity": str(good)},
        )


def _post_day(
    client: httpx.Client, day: list[dict[str, Any]], console: Console
) -> tuple[int, list[str]]:
    posted, problems = 0, []
    with Progress(console=console) as progress:
        task = progress.add_task("posting the working day", total=len(day))
        for start in range(0, len(day), 4):
            batch = day[start : start + 4]
            for result in _ok(client.post("/edge/events", json={"events": batch}))["results"]:
                if result["status"] == "posted":
                    posted += 1
                else:
                    problems.append(
                        f"{result['event_id']}: {result['status']} "
                        f"{result.get('code')} {result.get('message')}"
                    )
            progress.advance(task, len(batch))
    return posted, problems


def _summary(
    client: httpx.Client, console: Console, posted: int, total: int, problems: list[str]
) -> bool:
    tb = _ok(client.get("/reports/trial-balance"))
    recon = _ok(client.get("/reports/reconciliation"))
    balance = {a["code"]: Decimal(a["balance"]) for a in tb["accounts"]}
    table = Table(title="橡松家具 Oak & Pine — yesterday's books")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in [
        ("events posted", f"{posted} / {total}"),
        ("raw materials 1403", balance.get("1403", Decimal(0))),
        ("finished & semi-finished goods 1405", balance.get("1405", Decimal(0))),
        ("work in progress 5001", balance.get("5001", Decimal(0))),
        ("revenue 6001", -balance.get("6001", Decimal(0))),
        ("cost of sales 6401", balance.get("6401", Decimal(0))),
        ("trial balance debits", tb["total_debit"]),
        ("trial balance credits", tb["total_credit"]),
        ("books-check differences", len(recon["differences"])),
    ]:
        table.add_row(label, f"{value:,.2f}" if isinstance(value, Decimal) else str(value))
    console.print(table)
    for line in problems:
        console.print(f"[red]not posted[/] {line}")
    ok = posted == total and recon["ok"] and tb["total_debit"] == tb["total_credit"]
    console.print("[green]books reconcile[/]" if ok else "[red]books do NOT reconcile[/]")
    return bool(ok)
