"""The cloud's side of the edge: master data pulled incrementally, heartbeats, and the
envelope's audit fields (kept with the event, left out of its idempotency hash)."""

from datetime import UTC, datetime, timedelta

from tests.bom_factory import bom, create_bom, line
from tests.conftest import Api
from tests.factory import event, issue, receipt, setup_workshop


def _pull(api: Api, since: str | None = None) -> dict:
    response = api.get("/edge/masterdata", params={"since": since} if since else {})
    assert response.status_code == 200, response.text
    return response.json()


def test_full_pull_has_what_the_floor_validates_against(api: Api) -> None:
    setup_workshop(api)
    api.create("/operators", {"code": "B-007", "name": "Li Wei"})
    api.create(
        "/items",
        {
            "code": "SCREW",
            "name": "Screw",
            "kind": "raw",
            "gtin": "5901234123457",
            "purchase_price": "0.05",
            "sale_price": "0.2",
        },
    )
    body = _pull(api)
    assert body["full"] is True
    items = {i["code"]: i for i in body["items"]}
    assert items["SCREW"]["gtin"] == "05901234123457"  # kept as GTIN-14
    assert items["SCREW"]["purchase_price"] == "0.050000"
    assert items["SCREW"]["sale_price"] == "0.200000"
    assert "CUS" in {c["code"] for c in body["customers"]}
    assert items["GLUE"]["lot_tracked"] is True
    assert [o["code"] for o in body["operators"]] == ["B-007"]
    assert {"WO1", "WO2"} <= {w["code"] for w in body["work_orders"]}
    assert all(w["postable"] for w in body["work_orders"])
    assert "SUP" in {s["code"] for s in body["suppliers"]}
    # virtual locations (supplier, production, ...) are not for scanning
    assert {loc["kind"] for loc in body["locations"]} <= {"warehouse", "bin"}


def test_work_orders_carry_their_snapshotted_components(api: Api) -> None:
    setup_workshop(api)
    create_bom(api, bom("TBL", line("RAW", "2"), line("BOLT", "4")))
    api.create(
        "/work-orders",
        {
            "code": "WO9",
            "item": "TBL",
            "planned_quantity": "3",
            "release": True,
            "allow_shortages": True,
        },
    )
    order = next(w for w in _pull(api)["work_orders"] if w["code"] == "WO9")
    assert order["item"] == "TBL" and order["planned_quantity"] == "3.000000"
    parts = {c["item"]: c for c in order["components"]}
    assert parts["RAW"]["planned_quantity"] == "6.000000"
    assert parts["BOLT"]["planned_quantity"] == "12.000000"


def test_incremental_pull_sends_only_what_changed_and_closed_orders(api: Api) -> None:
    setup_workshop(api)
    first = _pull(api)
    nothing = _pull(api, first["server_time"])
    assert nothing["full"] is False
    assert nothing["items"] == [] and nothing["work_orders"] == []
    api.create("/operators", {"code": "B-8", "name": "Wang"})
    api.create("/items", {"code": "NEW", "name": "New", "kind": "raw"})
    assert api.post("/work-orders/WO2/cancel").status_code == 200
    changed = _pull(api, first["server_time"])
    assert [i["code"] for i in changed["items"]] == ["NEW"]
    assert [o["code"] for o in changed["operators"]] == ["B-8"]
    assert [(w["code"], w["postable"]) for w in changed["work_orders"]] == [("WO2", False)]
    # the cursor overlaps the pull (a late commit is re-sent, never missed)
    assert datetime.fromisoformat(first["cursor"]) < datetime.fromisoformat(first["server_time"])


def test_a_posting_that_changes_an_orders_status_reaches_the_edge(api: Api) -> None:
    setup_workshop(api)
    mark = _pull(api)["server_time"]
    api.events(receipt(1, "RAW", "10", "2"), issue(2, "RAW", "1"))
    changed = _pull(api, mark)
    assert [(w["code"], w["status"]) for w in changed["work_orders"]] == [("WO1", "in_progress")]


def test_bad_gtin_is_refused_with_nothing_written(api: Api) -> None:
    response = api.post(
        "/items", json={"code": "X", "name": "X", "kind": "raw", "gtin": "5901234123450"}
    )
    assert response.status_code == 422
    assert "check digit" in response.text
    assert all(i["code"] != "X" for i in _pull(api)["items"])


def test_heartbeat_keeps_the_edges_state_and_measures_its_clock(api: Api) -> None:
    ahead = datetime.now(UTC) + timedelta(hours=2)
    response = api.post(
        "/edge/heartbeat",
        json={
            "edge_id": "edge-1",
            "agent_version": "0.1.0",
            "sent_at": ahead.isoformat(),
            "backlog": 42,
            "oldest_pending_at": (ahead - timedelta(minutes=5)).isoformat(),
            "parked": 1,
            "devices": [{"device_id": "scanner-1", "connected": True}],
        },
    )
    assert response.status_code == 200, response.text
    assert 7100 < response.json()["clock_offset_s"] < 7300
    (agent,) = api.get("/edge/agents").json()
    assert agent["edge_id"] == "edge-1" and agent["backlog"] == 42 and agent["parked"] == 1
    assert agent["devices"] == [{"device_id": "scanner-1", "connected": True}]
    assert agent["seconds_since_seen"] < 60
    api.post(
        "/edge/heartbeat",
        json={"edge_id": "edge-1", "sent_at": datetime.now(UTC).isoformat(), "backlog": 0},
    )
    (agent,) = api.get("/edge/agents").json()
    assert agent["backlog"] == 0 and abs(agent["clock_offset_s"]) < 60


def test_envelope_audit_fields_are_kept_and_do_not_change_the_hash(api: Api) -> None:
    setup_workshop(api)
    plain = receipt(1, "RAW", "5", "2")
    (first,) = api.events(plain)
    assert first["status"] == "posted"
    resent = {
        **plain,
        "replayed": True,
        "edge_id": "edge-1",
        "device_seq": 17,
        "device_msg_id": "m-17",
        "captured_at": datetime.now(UTC).isoformat(),
        "clock_offset_s": 0.25,
        "clock_synced": True,
        "raw_scan": "]C1010590123412345710LOT1",
        "agent_version": "0.1.0",
    }
    (again,) = api.events(resent)
    assert again["status"] == "duplicate"
    fresh = event(
        "purchase_receipt",
        2,
        {"supplier": "SUP", "item": "RAW", "location": "WH", "quantity": "1", "unit_price": "2"},
        raw_scan="]C0RAW",
        edge_id="edge-1",
    )
    (posted,) = api.events(fresh)
    assert posted["status"] == "posted"
    ledger = api.get("/reports/stock-ledger/RAW").json()
    assert len(ledger) == 2
