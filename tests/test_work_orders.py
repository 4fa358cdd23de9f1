"""Work-order lifecycle on SQLite and PostgreSQL: release with the BOM snapshot and
reservations (try / confirm / cancel), postings moving the status, close settling the
residual WIP, cancel, and the refusals."""

from decimal import Decimal as D
from typing import Any

from sqlalchemy import func, select

from cloud_api.db import models as m
from tests.conftest import Api
from tests.factory import completion, issue, labour, receipt, reversal, setup_workshop, shipment
from tests.test_ledger import lines_of, statuses

TBL_BOM = {
    "item": "TBL",
    "lines": [
        {"item": "RAW", "quantity": "2", "scrap_factor": "0.1"},
        {"item": "BOLT", "quantity": "4"},
    ],
    "activate": True,
}


def order(api: Api, code: str) -> dict[str, Any]:
    response = api.get(f"/work-orders/{code}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def create_order(api: Api, code: str, planned: str, **kw: Any) -> dict[str, Any]:
    response = api.post(
        "/work-orders", json={"code": code, "item": "TBL", "planned_quantity": planned, **kw}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def held_by(api: Api, code: str) -> dict[str, tuple[D, str]]:
    return {r["item"]: (D(r["held"]), r["status"]) for r in order(api, code)["reservations"]}


def count_rows(api: Api, table: Any) -> int:
    with api.db.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).select_from(table).where(table.c.tenant_id == api.tenant.id)
            )
            or 0
        )


def test_full_work_order_from_release_to_close(api: Api) -> None:
    setup_workshop(api)
    api.create("/boms", TBL_BOM)
    api.events(receipt(0, "RAW", "30", "10"), receipt(0, "BOLT", "50", "1"))
    assert create_order(api, "WO10", "5")["status"] == "draft"
    (early,) = api.events(issue(5, "RAW", "1", wo="WO10"))
    assert (early["status"], early["code"]) == ("held", "work_order_not_released")
    # (left held, it would post itself on the release: tests/test_held_repost.py)
    voided = api.post(f"/exceptions/{early['event_id']}/void", json={"reason": "mis-scan"})
    assert voided.status_code == 200

    released = api.post("/work-orders/WO10/release", json={}).json()
    assert released["status"] == "released"
    # RAW: 2 per table × 5 × 1.1 scrap = 11; BOLT: 4 × 5 = 20.
    assert [(c["item"], D(c["planned_quantity"])) for c in released["components"]] == [
        ("RAW", D(11)),
        ("BOLT", D(20)),
    ]
    assert held_by(api, "WO10") == {"RAW": (D(11), "held"), "BOLT": (D(20), "held")}

    (i1,) = api.events(issue(10, "RAW", "6", wo="WO10"))
    assert lines_of(api, i1["journal_entry_id"]) == [
        ("1403", D(0), D("60.00")),
        ("5001", D("60.00"), D(0)),
    ]
    assert order(api, "WO10")["status"] == "in_progress"
    assert held_by(api, "WO10")["RAW"] == (D(5), "held")  # a partial issue confirms part
    i2, i3 = api.events(issue(11, "RAW", "5", wo="WO10"), issue(12, "BOLT", "20", wo="WO10"))
    assert lines_of(api, i2["journal_entry_id"]) == [
        ("1403", D(0), D("50.00")),
        ("5001", D("50.00"), D(0)),
    ]
    assert lines_of(api, i3["journal_entry_id"]) == [
        ("1403", D(0), D("20.00")),
        ("5001", D("20.00"), D(0)),
    ]
    assert held_by(api, "WO10") == {"RAW": (D(0), "consumed"), "BOLT": (D(0), "consumed")}
    (lab,) = api.events(labour(20, "1", wo="WO10"))
    assert lines_of(api, lab["journal_entry_id"]) == [
        ("2211", D(0), D("40.00")),  # labour 1 h × 40
        ("5001", D("10.00"), D(0)),  # overhead 1 h × 10
        ("5001", D("40.00"), D(0)),
        ("5101", D(0), D("10.00")),
    ]
    # WIP: 60 + 50 + 20 + 50 = 180.
    (c1,) = api.events(completion(30, "2", wo="WO10"))  # 180 × 2 / 5
    assert lines_of(api, c1["journal_entry_id"]) == [
        ("1405", D("72.00"), D(0)),
        ("5001", D(0), D("72.00")),
    ]
    second = completion(31, "2", wo="WO10")
    second["payload"]["scrap_quantity"] = "1"
    (c2,) = api.events(second)  # 2 good + 1 scrap: the last 3 of the 5 take all 108
    assert lines_of(api, c2["journal_entry_id"]) == [
        ("1405", D("108.00"), D(0)),
        ("5001", D(0), D("108.00")),
    ]
    assert order(api, "WO10")["status"] == "completed"
    api.events(labour(40, "0.5", wo="WO10"))  # cleaning up after the last completion: 25

    closed = api.post("/work-orders/WO10/close", json={"reason": "done"})
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "closed" and body["closed_at"]
    assert lines_of(api, body["journal_entry_id"]) == [
        ("5001", D(0), D("25.00")),
        ("6401", D("25.00"), D(0)),
    ]
    wip = {row["work_order"]: D(row["wip_value"]) for row in api.get("/reports/wip").json()}
    assert wip["WO10"] == 0
    (late,) = api.events(issue(40, "RAW", "1", wo="WO10"))
    assert (late["status"], late["code"]) == ("held", "work_order_closed")
    assert api.post("/work-orders/WO10/close", json={}).status_code == 409
    assert api.reconcile() == []


def test_reservations_keep_stock_for_their_order(api: Api) -> None:
    setup_workshop(api)
    api.create("/boms", TBL_BOM)
    api.events(receipt(0, "RAW", "15", "10"), receipt(0, "BOLT", "100", "1"))
    create_order(api, "WO10", "5", release=True)  # holds RAW 11 of 15
    (taken,) = api.events(issue(10, "RAW", "5", wo="WO1"))
    assert (taken["status"], taken["code"]) == ("held", "reserved_for_other_orders")
    assert "only 4" in taken["message"]
    assert statuses(api.events(issue(11, "RAW", "4", wo="WO1"))) == ["posted"]
    (sold,) = api.events(shipment(12, "RAW", "1", "20"))
    assert (sold["status"], sold["code"]) == ("held", "reserved_for_other_orders")
    # The order's own issues may take what it holds.
    assert statuses(api.events(issue(13, "RAW", "3", wo="WO10"))) == ["posted"]

    create_order(api, "WO11", "1")
    reservations_before = count_rows(api, m.Reservation.__table__)  # type: ignore[attr-defined]
    short = api.post("/work-orders/WO11/release", json={})
    assert (short.status_code, short.json()["code"]) == (409, "components_short")
    assert short.json()["shortages"][0] == {
        "item": "RAW",
        "required": "2.200000",
        "available": "0.000000",
        "short": "2.200000",
    }
    assert order(api, "WO11")["status"] == "draft"
    assert count_rows(api, m.Reservation.__table__) == reservations_before  # type: ignore[attr-defined]
    anyway = api.post("/work-orders/WO11/release", json={"allow_shortages": True}).json()
    assert anyway["status"] == "released"
    raw = next(c for c in anyway["components"] if c["item"] == "RAW")
    assert (D(raw["reserved_quantity"]), D(raw["short_quantity"])) == (D(0), D("2.2"))
    assert held_by(api, "WO11") == {"BOLT": (D(4), "held")}

    # Closing WO10 gives back what it still holds (8 of RAW): WO1 may take it.
    assert api.post("/work-orders/WO10/close", json={}).status_code == 200
    assert held_by(api, "WO10")["RAW"] == (D(0), "released")
    raw_line = next(r for r in order(api, "WO10")["reservations"] if r["item"] == "RAW")
    assert (D(raw_line["consumed"]), D(raw_line["released"])) == (D(3), D(8))
    # what was held for WO10's reservation re-posted itself on the close: 8 - 5 - 1 left
    assert api.get("/exceptions").json() == []
    assert statuses(api.events(issue(20, "RAW", "2", wo="WO1"))) == ["posted"]
    assert api.reconcile() == []


def test_cancel_and_the_refusals(api: Api) -> None:
    setup_workshop(api)
    api.create("/boms", TBL_BOM)
    api.events(receipt(0, "RAW", "30", "10"), receipt(0, "BOLT", "50", "1"))
    create_order(api, "WO10", "1")
    events_before = count_rows(api, m.EdgeEvent.__table__)  # type: ignore[attr-defined]
    not_open = api.post("/work-orders/WO10/close", json={})
    assert (not_open.status_code, not_open.json()["code"]) == (409, "work_order_not_open")
    assert count_rows(api, m.EdgeEvent.__table__) == events_before  # type: ignore[attr-defined]
    assert api.post("/work-orders/WO10/cancel").json()["status"] == "cancelled"

    create_order(api, "WO11", "1", release=True)
    assert held_by(api, "WO11")["RAW"] == (D("2.2"), "held")
    assert api.post("/work-orders/WO11/cancel").json()["status"] == "cancelled"
    assert held_by(api, "WO11") == {"RAW": (D(0), "released"), "BOLT": (D(0), "released")}
    again = api.post("/work-orders/WO11/release", json={})
    assert (again.status_code, again.json()["code"]) == (409, "work_order_not_draft")

    create_order(api, "WO12", "1", release=True)
    api.events(issue(5, "RAW", "1", wo="WO12"))
    busy = api.post("/work-orders/WO12/cancel")
    assert (busy.status_code, busy.json()["code"]) == (409, "work_order_not_cancellable")
    for path, code in [
        ("/work-orders/NOPE", "unknown_work_order"),
        ("/work-orders/NOPE/release", "unknown_work_order"),
    ]:
        response = api.post(path, json={}) if path.endswith("release") else api.get(path)
        assert (response.status_code, response.json()["code"]) == (404, code)
    bad = api.post(
        "/work-orders",
        json={"code": "WO13", "item": "TBL", "planned_quantity": "1", "warehouse": "CUSTOMER"},
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "location_not_internal")
    dup = api.post("/work-orders", json={"code": "WO10", "item": "TBL", "planned_quantity": "1"})
    assert (dup.status_code, dup.json()["code"]) == (409, "work_order_exists")
    assert api.reconcile() == []


def test_close_settlement_follows_a_late_revaluation(api: Api) -> None:
    """WIP stays zero after close: a back-dated receipt that changes what the order
    consumed re-settles the close instead of leaving WIP behind."""
    setup_workshop(api)
    api.events(receipt(0, "RAW", "10", "10"))
    (iss,) = api.events(issue(10, "RAW", "4"))  # 40 into WO1 (planned 10)
    api.events(completion(20, "1"))  # 40 × 1 / 10 = 4
    body = api.post("/work-orders/WO1/close", json={}).json()
    assert lines_of(api, body["journal_entry_id"]) == [
        ("5001", D(0), D("36.00")),
        ("6401", D("36.00"), D(0)),
    ]
    # The issue is now at (100 + 200) / 20 = 15 a unit: 60; completion 6; settlement 54.
    assert statuses(api.events(receipt(5, "RAW", "10", "20"))) == ["posted"]
    wip = {row["work_order"]: D(row["wip_value"]) for row in api.get("/reports/wip").json()}
    assert wip["WO1"] == 0
    balances = api.balances()
    assert balances["5001"] == 0
    assert balances["6401"] == D("54.00")
    assert api.reconcile() == []

    (undo,) = api.events(reversal(30, iss["event_id"]))
    assert (undo["status"], undo["code"]) == ("held", "work_order_closed")
    close_id = _close_event_id(api)
    (undo_close,) = api.events(reversal(31, close_id))
    assert (undo_close["status"], undo_close["code"]) == ("rejected", "cannot_reverse_close")


def _close_event_id(api: Api) -> str:
    ev = m.EdgeEvent.__table__  # type: ignore[attr-defined]
    with api.db.connect() as conn:
        return str(
            conn.scalar(
                select(ev.c.event_id).where(
                    ev.c.tenant_id == api.tenant.id, ev.c.type == "work_order_close"
                )
            )
        )


def test_labour_from_start_and_stop_times(api: Api) -> None:
    setup_workshop(api)
    start = "2026-03-02T08:00:00+00:00"

    def report(**times: str) -> dict[str, Any]:
        ev = labour(30, "1")
        ev["payload"] = {"work_order": "WO1", "work_center": "WC", **times}
        (result,) = api.events(ev)
        return result

    done = report(started_at=start, stopped_at="2026-03-02T09:45:00+00:00")  # 1.75 h
    assert done["status"] == "posted", done
    assert lines_of(api, done["journal_entry_id"]) == [
        ("2211", D(0), D("70.00")),  # 1.75 × 40
        ("5001", D("17.50"), D(0)),  # 1.75 × 10
        ("5001", D("70.00"), D(0)),
        ("5101", D(0), D("17.50")),
    ]
    for times, code in [
        (
            {"started_at": start, "stopped_at": "2026-03-02T07:59:00+00:00"},
            "labour_stop_before_start",
        ),
        ({"started_at": start, "stopped_at": start}, "labour_stop_before_start"),
        ({"started_at": start}, "labour_without_hours"),
        ({}, "labour_without_hours"),
        ({"hours": "1", "started_at": start, "stopped_at": start}, "labour_hours_and_times"),
    ]:
        result = report(**times)
        assert (result["status"], result["code"]) == ("rejected", code), times
    assert api.balances()["5001"] == D("87.50")
    assert api.reconcile() == []


def test_completion_beyond_the_order_is_held_unless_within_tolerance(api: Api) -> None:
    setup_workshop(api)  # WO2 plans 5
    api.events(receipt(0, "RAW", "10", "10"), issue(1, "RAW", "10", wo="WO2"))
    assert statuses(api.events(completion(2, "5", wo="WO2"))) == ["posted"]
    assert order(api, "WO2")["status"] == "completed"
    (over,) = api.events(completion(3, "1", wo="WO2"))
    assert (over["status"], over["code"]) == ("held", "completion_exceeds_order")

    assert api.get("/settings").json()["completion_tolerance"] == "0.000000"
    bad = api.patch("/settings", json={"completion_tolerance": "1.5"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_request")
    changed = api.patch("/settings", json={"completion_tolerance": "0.2"})
    assert changed.status_code == 200, changed.text
    assert D(changed.json()["completion_tolerance"]) == D("0.2")
    # 6 of 5 is within 20 %: the held completion posts when re-posted; a 7th is not.
    assert api.post(f"/exceptions/{over['event_id']}/repost").json()["status"] == "posted"
    (seventh,) = api.events(completion(4, "1", wo="WO2"))
    assert (seventh["status"], seventh["code"]) == ("held", "completion_exceeds_order")
    assert api.reconcile() == []


def test_scrapped_units_leave_their_cost_in_the_good_ones(api: Api) -> None:
    setup_workshop(api)  # WO2 plans 5
    api.events(receipt(0, "RAW", "10", "10"), issue(1, "RAW", "10", wo="WO2"))  # WIP 100
    first = completion(2, "2", wo="WO2")
    first["payload"]["scrap_quantity"] = "1"
    (c1,) = api.events(first)  # 2 good + 1 scrap of the 5: 100 × 3 / 5 = 60 into 2 units
    assert ("1405", D("60.00"), D(0)) in lines_of(api, c1["journal_entry_id"])
    assert order(api, "WO2")["status"] == "in_progress"  # 3 of 5 accounted for
    (c2,) = api.events(completion(3, "2", wo="WO2"))  # the last 2: all that is left
    assert ("1405", D("40.00"), D(0)) in lines_of(api, c2["journal_entry_id"])
    assert order(api, "WO2")["status"] == "completed"
    stock = {(r["item"], r["location"]): r for r in api.get("/reports/stock").json()}
    assert (D(stock[("TBL", "WH")]["quantity"]), D(stock[("TBL", "WH")]["value"])) == (
        D(4),
        D("100.00"),
    )
    # Reversing the scrapped completion puts its units and value back into WIP.
    assert statuses(api.events(reversal(4, c1["event_id"]))) == ["posted"]
    wip = {row["work_order"]: D(row["wip_value"]) for row in api.get("/reports/wip").json()}
    assert wip["WO2"] == D("60.00")
    assert api.reconcile() == []


def test_issued_quantity_nets_out_returns_and_reversals(api: Api) -> None:
    """Issued is the net of the order's material moves into its WIP, by direction: a
    reversal keeps its original's kind with the locations swapped, so it nets its
    original out (the rule of the cost report). Every quantity reads 6 places, zeros
    included."""
    import re

    from tests.factory import ret

    setup_workshop(api)
    api.create("/boms", TBL_BOM)
    api.events(receipt(0, "RAW", "30", "10"), receipt(0, "BOLT", "50", "1"))
    create_order(api, "WO10", "5", release=True)  # RAW 11, BOLT 20 planned and held
    given, back = api.events(issue(10, "RAW", "3", wo="WO10"), ret(11, "RAW", "1", wo="WO10"))
    assert statuses([given, back]) == ["posted", "posted"]
    assert order(api, "WO10")["components"][0]["issued_quantity"] == "2.000000"

    undone = api.events(reversal(20, given["event_id"]), reversal(21, back["event_id"]))
    assert statuses(undone) == ["posted", "posted"]
    body = order(api, "WO10")
    raw, bolt = body["components"]
    assert (raw["item"], raw["issued_quantity"]) == ("RAW", "0.000000")  # not 4
    assert D(raw["short_quantity"]) == D(raw["planned_quantity"]) - D(raw["reserved_quantity"])
    assert (bolt["item"], bolt["issued_quantity"]) == ("BOLT", "0.000000")  # not "0"
    cost = api.get("/work-orders/WO10/cost").json()
    assert [(m["item"], m["actual_quantity"]) for m in cost["materials"]] == [
        ("RAW", raw["issued_quantity"]),
        ("BOLT", bolt["issued_quantity"]),
    ]

    quantities = [body["planned_quantity"]]
    for c in body["components"]:
        quantities += [c[k] for k in ("planned_quantity", "issued_quantity")]
        quantities += [c[k] for k in ("reserved_quantity", "short_quantity")]
    for r in body["reservations"]:
        quantities += [r[k] for k in ("quantity", "consumed", "released", "held")]
    assert len(quantities) == 1 + 4 * 2 + 4 * 2
    assert [q for q in quantities if not re.fullmatch(r"-?\d+\.\d{6}", q)] == []
    assert api.reconcile() == []


def test_a_labour_report_in_hours_hashes_as_before_start_and_stop_existed() -> None:
    """An edge retry of a labour event stored before `started_at`/`stopped_at` existed
    stays a duplicate, not an idempotency conflict."""
    from cloud_api.services.ingest import payload_hash
    from contract import EVENT_ADAPTER

    body = {
        "event_id": "00000000-0000-4000-8000-000000000002",
        "device_id": "dev-1",
        "seq": 8,
        "type": "labour",
        "occurred_at": "2026-03-02T00:00:00+00:00",
        "payload": {"work_order": "WO1", "work_center": "WC", "hours": "1.5"},
    }
    # Computed with the code of commit 5469074, before the start/stop fields.
    before = "8ac4f87241c9c54c97e627c1f79a63a31d07304d0acd4cc0a95c745af4f1ecb1"
    assert payload_hash(EVENT_ADAPTER.validate_python(body)) == before


def test_labour_is_costed_at_the_operators_grade_rate(api: Api) -> None:
    setup_workshop(api)  # WC: labour 40/h, overhead 10/h
    api.create("/operator-grades", {"code": "SENIOR", "name": "Senior", "labour_rate": "55"})
    api.create("/operators", {"code": "B-9", "name": "Chen", "grade": "SENIOR"})
    api.create("/operators", {"code": "B-2", "name": "Zhao"})
    refused = api.post("/operators", json={"code": "B-3", "name": "X", "grade": "NOPE"})
    assert refused.status_code == 422 and refused.json()["code"] == "unknown_operator_grade"
    graded, plain, unknown = api.events(
        labour(1, "2") | {"operator": "B-9"},  # the grade's rate
        labour(2, "2") | {"operator": "B-2"},  # no grade: the work centre's
        labour(3, "1") | {"operator": "NOT-ON-FILE"},
    )
    assert lines_of(api, graded["journal_entry_id"]) == [
        ("2211", D("0"), D("110.00")),
        ("5001", D("20.00"), D("0")),
        ("5001", D("110.00"), D("0")),
        ("5101", D("0"), D("20.00")),  # overhead stays the work centre's
    ]
    assert ("2211", D("0"), D("80.00")) in lines_of(api, plain["journal_entry_id"])
    assert ("2211", D("0"), D("40.00")) in lines_of(api, unknown["journal_entry_id"])
    labour_lines = api.get("/work-orders/WO1/cost").json()["labour"]
    assert [(line["actual_hours"], line["actual_cost"]) for line in labour_lines] == [
        ("5.000000", "230.00")
    ]


def test_a_late_completion_is_judged_over_the_timeline_after_it(api: Api) -> None:
    """WO2 plans 5. 3 made at minute 20 and 2 at 30, the 2 reversed at 35: 3 in the
    end. One more back-dated to minute 10 would make 6 by minute 30, though only 4 in
    the end: held. With the 3 of minute 20 reversed, no point from it on goes beyond
    5: it posts. A completion in time order is judged by the total made (the order's
    WIP pool keeps it: nothing of the order's history is read)."""
    setup_workshop(api)
    first, second = completion(20, "3", wo="WO2"), completion(30, "2", wo="WO2")
    assert statuses(api.events(first, second)) == ["posted", "posted"]
    assert statuses(api.events(reversal(35, second["event_id"]))) == ["posted"]
    (held,) = api.events(completion(10, "1", wo="WO2"))
    assert (held["status"], held["code"]) == ("held", "completion_exceeds_order")
    assert "would make 6" in held["message"]
    assert statuses(api.events(reversal(25, first["event_id"]))) == ["posted"]
    assert api.post(f"/exceptions/{held['event_id']}/repost").json()["status"] == "posted"
    # 1 + 3 - 3 + 2 - 2 = 1 made: 4 more fit, a fifth does not
    assert statuses(api.events(completion(40, "4", wo="WO2"))) == ["posted"]
    (over,) = api.events(completion(41, "1", wo="WO2"))
    assert (over["status"], over["code"]) == ("held", "completion_exceeds_order")
    assert api.reconcile() == []
