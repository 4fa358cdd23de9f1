"""Devices → edge agent → cloud, with real parts: a serial scanner on a pty pair (real
pyserial), a work-reporting terminal on a real Mosquitto, the cloud over HTTP. Each
test ends by asking the cloud's ledger what was posted."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.devices import DeviceHub
from firmware_bridges.gs1.encode import element_string
from firmware_bridges.scanner.simulator import PtyScanner
from firmware_bridges.terminal import DeviceAddress
from firmware_bridges.terminal.simulator import TerminalSimulator
from tests.conftest import Api
from tests.edge_harness import cloud, edge_config, on_hand, posted_events
from tests.factory import issue, receipt, setup_workshop
from tests.mosquitto import mosquitto_broker  # noqa: F401  (fixture)

ACK, NAK = b"\x06", b"\x15"


@pytest.fixture
def shop(api: Api) -> Api:
    setup_workshop(api)
    api.create("/operators", {"code": "B-1", "name": "Li Wei"})
    api.create(
        "/items",
        {
            "code": "SCREW",
            "name": "Screw",
            "kind": "raw",
            "lot_tracked": True,
            "gtin": "5901234123457",
            "purchase_price": "0.05",
        },
    )
    results = api.events(receipt(1, "RAW", "1000", "2"), issue(2, "RAW", "10"))
    assert [r["status"] for r in results] == ["posted", "posted"]
    return api


def _wait(predicate: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _scan(sim: PtyScanner, text: str, symbology: str = "]C0") -> bytes:
    sim.scan(text.encode("latin-1"), symbology=symbology)
    return sim.read_answers(timeout_s=15.0, min_bytes=1)[:1]


def test_scanner_issue_and_handheld_gs1_receipt_survive_a_replug(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    (tmp_path / "by-id").mkdir()
    with (
        cloud(db) as server,
        PtyScanner(tmp_path / "by-id", "ws1") as ws,
        PtyScanner(tmp_path / "by-id", "hh1") as hh,
    ):
        raw = edge_config(tmp_path, server.url, shop.tenant.api_key)
        raw["workstations"][0]["scanner"] = {"port": str(ws.path), "answers": "ack"}
        raw["workstations"][1]["scanner"] = {"port": str(hh.path), "answers": "ack"}
        agent = Agent(parse_config(raw))
        agent.pull_master_data(full=True)
        hub = DeviceHub(agent)
        hub.start()
        try:
            for station in hub.scanners:
                _wait(lambda s=station: s.scanner.stats().connected, "scanner open")
            assert _scan(ws, "WO1") == NAK  # no badge yet: refused, nothing captured
            for text in ("B-1", "#ISSUE", "WO1", "RAW", "3", "#OK"):
                assert _scan(ws, text) == ACK, text
            # half a frame, then the scanner is pulled and comes back under a new name
            ws.send_raw(b"]C0RA")
            _wait(lambda: hub.scanners[0].scanner.stats().partial_bytes > 0, "partial frame")
            ws.unplug()
            ws.replug()
            _wait(lambda: hub.scanners[0].scanner.stats().reconnects == 1, "reconnect")
            for text in ("RAW", "2", "#OK"):
                assert _scan(ws, text) == ACK, text
            assert hub.scanners[0].scanner.stats().framing.dropped_partial == 1
            # a supplier's GS1-128 label on the handheld: GTIN, expiry, lot, count
            label = element_string(
                [("01", "05901234123457"), ("17", "271130"), ("10", "L7"), ("30", "24")]
            )
            for text, symbology in (("B-1", "]C0"), ("WH", "]C0"), (label, "]C1")):
                assert _scan(hh, text, symbology) == ACK, text
            assert _scan(hh, "#OK") == ACK
            assert _scan(hh, "0107032069804980", "]C1") == NAK  # bad check digit
            assert agent.drain(timeout_s=30)
        finally:
            hub.stop()
            agent.stop()
    issued = [r for r in posted_events(db, shop.tenant.id, "scanner-ws-1")]
    assert [r.status for r in issued] == ["posted", "posted"]
    assert on_hand(shop, "RAW") == Decimal(1000 - 10 - 3 - 2)
    stock = [r for r in shop.get("/reports/stock").json() if r["item"] == "SCREW"]
    assert [(r["lot"], Decimal(r["quantity"])) for r in stock] == [("L7", Decimal(24))]
    assert Decimal(stock[0]["value"]) == Decimal("1.20")
    assert shop.reconcile() == []


def test_terminal_reports_become_labour_and_completions_once(
    shop: Api,
    db: Engine,
    tmp_path: Path,
    mosquitto_broker: Any,  # noqa: F811
) -> None:
    broker = mosquitto_broker
    with cloud(db) as server:
        raw = edge_config(tmp_path, server.url, shop.tenant.api_key)
        raw["mqtt"] = {
            "url": f"mqtt://{broker.host}:{broker.port}",
            "site": "plant1",
            "client_id": f"edge-test-{tmp_path.name}",
            "terminals": {"TERM-01": "ws-1"},
        }
        agent = Agent(parse_config(raw))
        agent.pull_master_data(full=True)
        hub = DeviceHub(agent)
        hub.start()
        assert hub.terminals is not None
        assert hub.terminals.bridge.wait_connected(10)
        sim = TerminalSimulator(
            broker.host, broker.port, DeviceAddress("plant1", "line1", "TERM-01"), badge="B-1"
        ).start()
        try:
            assert sim.start_job("WO1").ok
            assert sim.report_count(good=3).ok
            second = sim.report_count(good=2, scrap=1, scrap_reason="crack")
            assert second.ok
            for _ in range(3):  # the terminal did not see the ack and sends again
                assert sim.resend(second.msg_id).ok  # type: ignore[arg-type]
            assert len(sim.acks_for(second.msg_id)) == 4
            assert sim.finish().ok
            assert agent.drain(timeout_s=30)
        finally:
            sim.stop()
            hub.stop()
            agent.stop()
    rows = posted_events(db, shop.tenant.id, "plant1/line1/TERM-01")
    assert [r.status for r in rows] == ["posted"] * 3  # two counts and one labour
    assert on_hand(shop, "TBL") == Decimal(5)
    cost = shop.get("/work-orders/WO1/cost").json()
    assert Decimal(cost["scrap_quantity"]) == Decimal(1)
    assert shop.reconcile() == []
