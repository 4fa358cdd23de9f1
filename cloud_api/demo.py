"""`erp demo`: a small furniture workshop's working day, posted through the real API.

The workshop makes oak dining tables from legs it turns itself (a two-level BOM with
routings). During the day the office releases the two work orders once their
materials are in; the floor issues, reports labour and completes; a table is sold,
screws are counted, a return is reversed and an offline handheld delivers a receipt
late; at the end the office closes both orders. The summary shows the books and what
a good unit cost, with its breakdown. The edge issue replaces these scripted calls
with simulated scanners and terminals.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
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
# Two-level bills of materials, per unit made: a table takes four legs made in house.
BOMS: list[dict[str, Any]] = [
    {
        "item": "TABLE-LEG",
        "lines": [
            {"item": "OAK-BOARD", "quantity": "0.5", "scrap_factor": "0.1"},  # timber
            {"item": "SCREW-4X40", "quantity": "4"},  # hardware
            {"item": "GLUE-PVA", "quantity": "0.05"},
        ],
        "operations": [
            {
                "seq": 10,
                "work_center": "CUT",
                "name": "锯切车削 Cut and turn",
                "setup_minutes": "30",
                "minutes_per_unit": "8",
            }
        ],
    },
    {
        "item": "DINING-TABLE",
        "lines": [
            {"item": "TABLE-LEG", "quantity": "4"},
            {"item": "OAK-BOARD", "quantity": "1.2", "scrap_factor": "0.1"},  # the top
            {"item": "SCREW-4X40", "quantity": "16"},
            {"item": "VARNISH", "quantity": "0.3"},
        ],
        "operations": [
            {
                "seq": 10,
                "work_center": "CUT",
                "name": "开料 Cut the top",
                "setup_minutes": "20",
                "minutes_per_unit": "10",
            },
            {
                "seq": 20,
                "work_center": "ASSY",
                "name": "组装上漆 Assemble and varnish",
                "setup_minutes": "30",
                "minutes_per_unit": "45",
            },
        ],
    },
]
# Created as drafts; released during the day once their components are in the store.
# Both draw from the materials store; the legs go back there, the tables to WH-FG.
WORK_ORDERS = [
    {"code": "WO-LEG-001", "item": "TABLE-LEG", "planned_quantity": "40", "warehouse": "WH-RAW"},
    {
        "code": "WO-TBL-001",
        "item": "DINING-TABLE",
        "planned_quantity": "10",
        "warehouse": "WH-RAW",
    },
]


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
        posted, problems = _run_day(client, day, console)
        ok = _summary(client, console, posted, len(day.events), problems)
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
            {"code": "WH-RAW", "name": "材料仓 Materials and parts store", "kind": "warehouse"},
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
        *[("/boms", {**bom, "activate": True}) for bom in BOMS],
        *[("/work-orders", order) for order in WORK_ORDERS],
    ]:
        _ok(client.post(path, json=body))


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


@dataclass
class _Call:
    """A step of the day done in the office through the API, not by a device."""

    label: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)


class _Day:
    """The day's script in order: device events, and office calls between them."""

    def __init__(self, start: datetime) -> None:
        self.start, self.seq = start, 0
        self.steps: list[dict[str, Any] | _Call] = []

    @property
    def events(self) -> list[dict[str, Any]]:
        return [step for step in self.steps if isinstance(step, dict)]

    def add(
        self, device: str, hhmm: str, type_: str, payload: dict[str, Any], replayed: bool = False
    ) -> str:
        hour, minute = map(int, hhmm.split(":"))
        self.seq += 1
        event_id = str(uuid.uuid4())
        self.steps.append(
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

    def release(self, order: str) -> None:
        self.steps.append(_Call(f"release {order}", f"/work-orders/{order}/release"))

    def close(self, order: str, reason: str) -> None:
        self.steps.append(
            _Call(f"close {order}", f"/work-orders/{order}/close", {"reason": reason})
        )


def _working_day(start: datetime) -> _Day:
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
    d.release("WO-LEG-001")  # the opening stock is in: reserve the legs' materials
    _make(
        d,
        "WO-LEG-001",
        issue_at="08:00",
        labour=[("10:30", "CUT", "6")],
        completions=[("11:00", "40", "0", "WH-RAW")],  # the legs go back to the store
    )
    d.release("WO-TBL-001")  # its legs are made
    _make(
        d,
        "WO-TBL-001",
        issue_at="12:00",
        labour=[("13:00", "CUT", "2.5"), ("14:30", "ASSY", "8")],
        # one top split in the press: 9 good tables of the 10 planned
        completions=[("15:00", "6", "0", "WH-FG"), ("16:00", "3", "1", "WH-FG")],
    )
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
            "counted_quantity": "4670",  # 5,000 received, 320 issued: 10 missing
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
    # Closing settles what is left in each order's WIP as a production variance.
    d.close("WO-LEG-001", "all 40 legs made")
    d.close("WO-TBL-001", "9 of 10 made, one top scrapped")
    return d


def _make(
    d: _Day,
    order: str,
    issue_at: str,
    labour: list[tuple[str, str, str]],
    completions: list[tuple[str, str, str, str]],
) -> None:
    """Issue the order's components as its BOM plans them (scrap included), report
    (time, work centre, hours) and complete (time, good, scrap, into which store)."""
    spec = next(o for o in WORK_ORDERS if o["code"] == order)
    bom = next(b for b in BOMS if b["item"] == spec["item"])
    hour = int(issue_at[:2])
    for n, line in enumerate(bom["lines"]):
        planned = (
            Decimal(line["quantity"])
            * Decimal(spec["planned_quantity"])
            * (1 + Decimal(line.get("scrap_factor", "0")))
        )
        payload = {
            "work_order": order,
            "item": line["item"],
            "quantity": str(planned),
            "location": spec["warehouse"],
        }
        if line["item"] == "GLUE-PVA":
            payload["lot"] = "G-2611"
        d.add("WS-01", f"{hour:02d}:{5 + n * 5:02d}", "material_issue", payload)
    for hhmm, center, hours in labour:
        d.add(
            "TERM-01",
            hhmm,
            "labour",
            {"work_order": order, "work_center": center, "hours": hours},
        )
    for hhmm, good, scrap, store in completions:
        d.add(
            "TERM-01",
            hhmm,
            "production_completion",
            {"work_order": order, "location": store, "quantity": good, "scrap_quantity": scrap},
        )


def _run_day(client: httpx.Client, day: _Day, console: Console) -> tuple[int, list[str]]:
    """Post the events in batches of up to four, in script order; an office call
    waits until the events before it have posted."""
    posted, problems = 0, list[str]()
    batch: list[dict[str, Any]] = []
    with Progress(console=console) as progress:
        task = progress.add_task("posting the working day", total=len(day.steps))

        def post_batch() -> None:
            nonlocal posted
            if batch:
                done, failed = _post_batch(client, batch)
                posted += done
                problems.extend(failed)
                progress.advance(task, len(batch))
                batch.clear()

        for step in day.steps:
            if isinstance(step, _Call):
                post_batch()
                response = client.post(step.path, json=step.body)
                if response.status_code >= 400:
                    problems.append(f"{step.label}: {response.status_code} {response.text}")
                progress.advance(task)
            else:
                batch.append(step)
                if len(batch) == 4:
                    post_batch()
        post_batch()
    return posted, problems


def _post_batch(client: httpx.Client, batch: list[dict[str, Any]]) -> tuple[int, list[str]]:
    posted, problems = 0, []
    for result in _ok(client.post("/edge/events", json={"events": batch}))["results"]:
        if result["status"] == "posted":
            posted += 1
        else:
            problems.append(
                f"{result['event_id']}: {result['status']} "
                f"{result.get('code')} {result.get('message')}"
            )
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
        ("trial balance debits", Decimal(tb["total_debit"])),
        ("trial balance credits", Decimal(tb["total_credit"])),
        ("books-check differences", len(recon["differences"])),
    ]:
        table.add_row(label, f"{value:,.2f}" if isinstance(value, Decimal) else str(value))
    console.print(table)
    console.print(_cost_table(client))
    for line in problems:
        console.print(f"[red]not done[/] {line}")
    ok = (
        posted == total
        and not problems
        and recon["ok"]
        and Decimal(tb["total_debit"]) == Decimal(tb["total_credit"])
    )
    if not recon["ok"]:
        console.print("[red]books do NOT reconcile[/]")
    console.print("[green]every step done, books reconcile[/]" if ok else "[red]FAILED[/]")
    return bool(ok)


def _cost_table(client: httpx.Client) -> Table:
    """What each work order made and what a good unit cost (GET /work-orders/{code}/cost)."""
    table = Table(
        title="What was made — cost per work order",
        caption="unit cost = value completed ÷ good units; the variance settled at close "
        "(what was left in WIP) goes to cost of sales 6401",
    )
    table.add_column("work order", no_wrap=True)
    table.add_column("made", justify="right", no_wrap=True)
    for heading in ("material", "labour", "overhead", "variance settled", "unit cost"):
        table.add_column(heading, justify="right")
    for order in WORK_ORDERS:
        report = _ok(client.get(f"/work-orders/{order['code']}/cost"))
        totals = report["totals"]
        made = _figure(report["completed_quantity"])
        if Decimal(report["scrap_quantity"]):
            made += f"\n+{_figure(report['scrap_quantity'])} scrap"
        table.add_row(
            f"{report['code']}\n{report['item']}",
            made,
            *(
                _money(totals[key])
                for key in (
                    "material_cost",
                    "labour_cost",
                    "overhead_cost",
                    "settled_variance",
                    "unit_cost",
                )
            ),
        )
    return table


def _figure(quantity: str) -> str:
    """A quantity without its trailing zeros: "40.000000" → "40"."""
    return f"{Decimal(quantity).normalize():f}"


def _money(value: str | None) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"
