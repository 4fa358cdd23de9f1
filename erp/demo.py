"""`erp demo`: a small furniture workshop's working day, through its shop floor.

The workshop makes oak dining tables from legs it turns itself (a two-level BOM with
routings). The cloud API runs on SQLite; an edge agent runs beside it with simulated
devices (edge_agent/demo_floor.py): handhelds receive the suppliers' GS1-labelled
deliveries, an operator scans materials out to the work orders at a workstation, and
work-reporting terminals on MQTT time the labour and count good and scrapped units.
Dispatch scans the tables out to the customer. The office releases the orders, counts
screws, books a receipt a handheld delivered late, and closes the orders. The summary
shows what the floor acknowledged and the cloud posted, the books, and what a good unit
cost.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from rich.console import Console
from rich.table import Table

from cloud_api.db.engine import make_engine
from cloud_api.db.migrate import upgrade
from cloud_api.settings import get_settings
from edge_agent.cli import enroll_device
from edge_agent.demo_floor import ShopFloor, shop_floor
from erp.app import create_app
from firmware_bridges.gs1.encode import date_yymmdd, element_string, gtin14

SHANGHAI = ZoneInfo("Asia/Shanghai")

ITEMS: list[dict[str, Any]] = [
    {
        "code": "OAK-BOARD",
        "name": "橡木板 Oak board",
        "unit": "m",
        "kind": "raw",
        "gtin": "6901234560015",
        "purchase_price": "68",
    },
    {
        "code": "SCREW-4X40",
        "name": "木螺丝 Wood screw 4×40",
        "unit": "pcs",
        "kind": "raw",
        "valuation_method": "fifo",
        "gtin": "6901234560022",
        "purchase_price": "0.12",
    },
    {
        "code": "GLUE-PVA",
        "name": "白乳胶 PVA glue",
        "unit": "kg",
        "kind": "raw",
        "lot_tracked": True,
        "gtin": "6901234560039",
        "purchase_price": "35",
    },
    {
        "code": "VARNISH",
        "name": "清漆 Varnish",
        "unit": "L",
        "kind": "raw",
        "gtin": "6901234560046",
        "purchase_price": "52",
    },
    {"code": "TABLE-LEG", "name": "桌腿 Table leg", "unit": "pcs", "kind": "semi_finished"},
    {
        "code": "DINING-TABLE",
        "name": "餐桌 Oak dining table",
        "unit": "pcs",
        "kind": "finished",
        "sale_price": "2800",
    },
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
OPERATORS = [("B-01", "王芳 Wang Fang"), ("B-02", "李强 Li Qiang"), ("B-03", "张伟 Zhang Wei")]
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
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    day = datetime.now(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=1
    )
    api_key = _sign_up(base, console)
    with httpx.Client(
        base_url=base + "/api/v1",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
        transport=_Patient(),
    ) as client:
        _seed_master_data(client)
        office = _Office(client, day)
        code = _ok(client.post("/devices/enrollment-codes", json={"site": "main"}))["code"]
        device_id, device_key = enroll_device(base, code, "edge-oak-1")  # `erp edge enroll`
        console.print(f"edge-oak-1 enrolled with a one-time code: device {device_id}")
        with shop_floor(base, device_key, day) as floor:
            _play_day(floor, office, console)
            drained = floor.drain()
            figures = floor.edge_figures()
            problems = floor.floor.refused + office.problems
        ok = _summary(client, console, figures, drained, problems)
    if serve_after:
        console.print(
            f"\nPortal: {base}/ — sign in as [bold]{OWNER_EMAIL}[/] with [bold]{OWNER_PASSWORD}[/]"
            f"\nAPI: {base}/docs — API key: [bold]{api_key}[/] — Ctrl-C to stop."
        )
        try:
            thread.join()
        except KeyboardInterrupt:
            server.should_exit = True
    else:
        server.should_exit = True
        thread.join(timeout=10)
    return 0 if ok else 1


OWNER_EMAIL = "li.wei@oak-and-pine.example"
OWNER_PASSWORD = "walnut dovetail joinery 42"


def _sign_up(base: str, console: Console) -> str:
    """The owner signs the company up in the portal (a 14-day trial); the office's
    scripts use the tenant API key sign-up hands out once."""
    body = {
        "company": "橡松家具 Oak & Pine Furniture Workshop",
        "email": OWNER_EMAIL,
        "name": "李伟 Li Wei",
        "password": OWNER_PASSWORD,
    }
    signed = _ok(httpx.post(base + "/api/v1/signup", json=body, timeout=60))
    console.print(f"signed up: tenant {signed['slug']} on a 14-day trial, owner {OWNER_EMAIL}")
    return str(signed["api_key"])


class _Patient(httpx.HTTPTransport):
    """A well-behaved client: on 429 it waits as long as Retry-After says (a trial's
    API rate is 5 requests a second) and tries again."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(30):
            response = super().handle_request(request)
            if response.status_code != 429:
                return response
            response.read()
            time.sleep(float(response.headers.get("retry-after", "1")))
        return response


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
        *[("/operators", {"code": code, "name": name}) for code, name in OPERATORS],
        *[("/boms", {**bom, "activate": True}) for bom in BOMS],
        *[("/work-orders", order) for order in WORK_ORDERS],
    ]:
        _ok(client.post(path, json=body))


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


class _Office:
    """What the office does through the API: releases and closes orders, and books the
    events that come from no floor device (a shipment, a count, a late receipt)."""

    def __init__(self, client: httpx.Client, day: datetime) -> None:
        self.client, self.day, self.problems = client, day, list[str]()
        self.seq = 0

    def call(self, label: str, path: str, body: dict[str, Any] | None = None) -> None:
        response = self.client.post(path, json=body or {})
        if response.status_code >= 400:
            self.problems.append(f"{label}: {response.status_code} {response.text}")

    def event(
        self, device: str, hhmm: str, type_: str, payload: dict[str, Any], replayed: bool = False
    ) -> None:
        hour, minute = map(int, hhmm.split(":"))
        self.seq += 1
        event = {
            "event_id": str(uuid.uuid4()),
            "device_id": device,
            "seq": self.seq,
            "type": type_,
            "occurred_at": self.day.replace(hour=hour, minute=minute).isoformat(),
            "replayed": replayed,
            "payload": payload,
        }
        (result,) = _ok(self.client.post("/edge/events", json={"events": [event]}))["results"]
        if result["status"] != "posted":
            self.problems.append(f"{type_} at {hhmm}: {result['status']} {result.get('message')}")


def _label(
    item: str, count: str | None = None, lot: str = "", expiry: date | None = None
) -> tuple[str, str]:
    """A supplier's GS1-128 label: GTIN, expiry, lot and count, as the handheld reads it."""
    gtin = next(i["gtin"] for i in ITEMS if i["code"] == item)
    fields = [("01", gtin14(gtin))]
    if expiry is not None:
        fields.append(("17", date_yymmdd(expiry)))
    if lot:
        fields.append(("10", lot))
    if count is not None:
        fields.append(("30", count))
    return element_string(fields), "]C1"


def _play_day(f: ShopFloor, office: _Office, console: Console) -> None:
    def say(hhmm: str, what: str) -> None:
        f.clock.at(hhmm)
        console.print(f"[dim]{hhmm}[/] {what}")

    glue_expiry = (f.clock.day + timedelta(days=180)).date()
    say("07:30", "HH-01 receives 200 m of oak board from East China Timber (GS1 label)")
    f.scan("HH-01", "B-02", "WH-RAW", _label("OAK-BOARD", "200"), "#OK")
    say("07:35", "HH-02 receives screws, glue (lot G-2611) and varnish from Yonggu Hardware")
    f.scan("HH-02", "B-02", "WH-RAW", _label("SCREW-4X40", "3000"), "#OK")
    f.scan("HH-02", _label("SCREW-4X40", "2000"), "#OK")
    f.scan("HH-02", _label("GLUE-PVA", lot="G-2611", expiry=glue_expiry), "20", "#OK")
    f.scan("HH-02", _label("VARNISH", "40"), "#OK")
    _release(f, office, "WO-LEG-001", console)
    say("08:05", "WS-01: Wang Fang scans the legs' materials out to WO-LEG-001")
    f.scan("WS-01", "B-01", "#ISSUE", "WO-LEG-001")
    f.scan("WS-01", _label("OAK-BOARD"), "#BOM", "#OK")
    f.scan("WS-01", _label("SCREW-4X40"), "#BOM", "#OK")
    f.scan("WS-01", "GLUE-PVA", "LOT:G-2611", "#BOM", "#OK")
    cut, assy = f.terminal("TERM-CUT"), f.terminal("TERM-ASSY")
    say("08:10", "TERM-CUT: Zhang Wei starts cutting and turning the legs")
    f.report("TERM-CUT", cut.start_job("WO-LEG-001", "10"), makes_event=False)
    say("10:50", "TERM-CUT: stops the clock (2 h 40 min) ...")
    f.report("TERM-CUT", cut.pause())
    say("11:00", "... counts 40 good legs and finishes the job")
    f.report("TERM-CUT", cut.report_count(good=40))
    f.report("TERM-CUT", cut.finish(), makes_event=False)
    _release(f, office, "WO-TBL-001", console)
    say("12:05", "WS-01: the tables' legs, top boards, screws and varnish to WO-TBL-001")
    f.scan("WS-01", "WO-TBL-001", "TABLE-LEG", "#BOM", "#OK")
    for item in ("OAK-BOARD", "SCREW-4X40", "VARNISH"):
        f.scan("WS-01", _label(item), "#BOM", "#OK")
    say("12:30", "TERM-CUT: the table tops are cut (till 13:00)")
    f.report("TERM-CUT", cut.start_job("WO-TBL-001", "10"), makes_event=False)
    f.clock.at("13:00")
    f.report("TERM-CUT", cut.pause())
    f.report("TERM-CUT", cut.finish(), makes_event=False)
    say("13:00", "TERM-ASSY: assembly and varnish start")
    f.report("TERM-ASSY", assy.start_job("WO-TBL-001", "20"), makes_event=False)
    say("14:55", "TERM-ASSY: pause for the count ...")
    f.report("TERM-ASSY", assy.pause())
    say("15:00", "... 6 good tables; work resumes")
    f.report("TERM-ASSY", assy.report_count(good=6))
    f.report("TERM-ASSY", assy.resume(), makes_event=False)
    say("16:25", "TERM-ASSY: the clock stops ...")
    f.report("TERM-ASSY", assy.pause())
    say("16:30", "... 3 more good and 1 scrapped (a top split in the press); job finished")
    f.report("TERM-ASSY", assy.report_count(good=3, scrap=1, scrap_reason="split_top"))
    f.report("TERM-ASSY", assy.finish(), makes_event=False)
    f.drain()
    say("16:40", "WS-03: dispatch scans 6 tables out to Home Living (delivery note DN-0427)")
    f.scan("WS-03", "B-01", "C-HOME", "DN:DN-0427", "DINING-TABLE", "6", "#OK")
    say("17:00", "office: screws counted, 10 missing")
    office.event(
        "OFFICE",
        "17:00",
        "stock_count",
        {
            "item": "SCREW-4X40",
            "location": "WH-RAW",
            "counted_quantity": "4670",
            "reason": "cycle count",
        },  # 5,000 received, 320 issued
    )
    say("17:10", "a handheld offline since 07:20 delivers its receipt late")
    office.event(
        "HH-03",
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
    say("17:30", "office: both orders closed (what is left in WIP is settled)")
    office.call("close WO-LEG-001", "/work-orders/WO-LEG-001/close", {"reason": "all made"})
    office.call(
        "close WO-TBL-001", "/work-orders/WO-TBL-001/close", {"reason": "9 of 10, one scrapped"}
    )


def _release(f: ShopFloor, office: _Office, order: str, console: Console) -> None:
    """The office releases an order once the floor's postings are in (release reserves
    what is on hand); the edge pulls the order and its components at once."""
    if not f.drain():
        office.problems.append(f"the edge did not drain before releasing {order}")
    office.call(f"release {order}", f"/work-orders/{order}/release")
    f.agent.pull_master_data()
    console.print(f"[dim]{f.clock.now():%H:%M}[/] office: {order} released")


def _summary(
    client: httpx.Client,
    console: Console,
    edge: dict[str, int],
    drained: bool,
    problems: list[str],
) -> bool:
    tb = _ok(client.get("/reports/trial-balance"))
    recon = _ok(client.get("/reports/reconciliation"))
    held = _ok(client.get("/exceptions"))
    balance = {a["code"]: Decimal(a["balance"]) for a in tb["accounts"]}
    table = Table(title="橡松家具 Oak & Pine — yesterday, from the floor to the books")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in [
        ("events the floor's devices got a good beep / ack for", edge["acknowledged"]),
        ("events in the edge's outbox", edge["captured"]),
        ("delivered to the cloud (posted once)", edge["delivered"]),
        ("held or parked at the edge", edge["held"] + edge["parked"]),
        ("held in the cloud's exception queue", len(held)),
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
        drained
        and edge["acknowledged"] == edge["captured"] == edge["delivered"]
        and edge["held"] == edge["parked"] == edge["backlog"] == 0
        and not held
        and not problems
        and recon["ok"]
        and Decimal(tb["total_debit"]) == Decimal(tb["total_credit"])
    )
    if not recon["ok"]:
        console.print("[red]books do NOT reconcile[/]")
    console.print(
        "[green]every acknowledged scan posted once, books reconcile[/]" if ok else "[red]FAILED[/]"
    )
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
