"""Workstation sessions, unit level (no I/O): each step answers at once, a confirmed
transaction gives exactly one draft event, bad scans change nothing."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from edge_agent.masterdata import MasterData
from edge_agent.sessions import Outcome, ScanInput, Session, Workstation

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Label:
    gtin: str | None = None
    lot: str | None = None
    expiry: Any = None
    quantity: Decimal | None = None
    purchase_order: str | None = None


def master_data() -> MasterData:
    md = MasterData()
    md.apply(
        {
            "full": True,
            "cursor": "c1",
            "items": [
                {
                    "code": "RAW",
                    "name": "Board",
                    "lot_tracked": False,
                    "issue_method": "manual",
                    "gtin": "05901234123457",
                    "purchase_price": "2.5",
                },
                {
                    "code": "GLUE",
                    "name": "Glue",
                    "lot_tracked": True,
                    "issue_method": "manual",
                    "gtin": None,
                    "purchase_price": "35",
                },
                {
                    "code": "TBL",
                    "name": "Table",
                    "lot_tracked": False,
                    "issue_method": "manual",
                    "gtin": None,
                    "purchase_price": None,
                    "sale_price": "2800",
                },
                {
                    "code": "SCREW",
                    "name": "Screw",
                    "lot_tracked": False,
                    "issue_method": "backflush",
                    "gtin": None,
                    "purchase_price": None,
                },
            ],
            "locations": [{"code": "WH", "name": "Store", "kind": "warehouse"}],
            "work_centers": [{"code": "WC", "name": "Assembly"}],
            "operators": [{"code": "B-1", "name": "Li", "active": True}],
            "suppliers": [{"code": "SUP", "name": "Supplier"}],
            "customers": [{"code": "CUS", "name": "Customer"}],
            "work_orders": [
                {
                    "code": "WO1",
                    "item": "TBL",
                    "status": "released",
                    "planned_quantity": "10",
                    "warehouse": "WH",
                    "postable": True,
                    "components": [
                        {
                            "item": "RAW",
                            "location": "WH",
                            "planned_quantity": "20",
                            "issue_method": "manual",
                            "lot_tracked": False,
                        }
                    ],
                },
            ],
        }
    )
    return md


STATION = Workstation(id="ws-1", warehouse="WH", work_center="WC", supplier="SUP")


def run(session: Session, *scans: str | ScanInput, at: datetime = T0) -> list[Outcome]:
    out = []
    for scan in scans:
        out.append(session.feed(scan if isinstance(scan, ScanInput) else ScanInput(scan), at))
    return out


def test_issue_by_scan_gives_one_draft_and_stays_on_the_order() -> None:
    s = Session(STATION, master_data())
    outcomes = run(s, "B-1", "WO1", "RAW", "2.5", "#OK")
    assert all(o.answer.ok for o in outcomes)
    drafts = [o.draft for o in outcomes if o.draft]
    assert len(drafts) == 1
    assert drafts[0].type == "material_issue" and drafts[0].operator == "B-1"
    assert drafts[0].payload == {
        "work_order": "WO1",
        "item": "RAW",
        "location": "WH",
        "quantity": "2.5",
        "lot": "",
    }
    (again,) = [o.draft for o in run(s, "RAW", "#BOM", "#OK") if o.draft]
    assert again is not None and again.payload["quantity"] == "20"


def test_lot_tracked_items_ask_for_the_lot() -> None:
    s = Session(STATION, master_data())
    outcomes = run(s, "B-1", "WO1", "GLUE")
    assert "lot" in outcomes[-1].answer.text
    *_, last = run(s, "LOT:G-1", "0.5", "#OK")
    assert last.draft is not None and last.draft.payload["lot"] == "G-1"


@pytest.mark.parametrize(
    "scans, says",
    [
        (["WO1"], "badge"),
        (["B-1", "WO9"], "unknown or not open"),
        (["B-1", "WO1", "NOPE"], "unknown"),
        (["B-1", "WO1", "SCREW"], "backflushed"),
        (["B-1", "WO1", "RAW", "-2"], "not a valid quantity"),
        (["B-1", "WO1", "RAW", "x"], "not a quantity"),
        (["B-1", "WO1", "RAW", "1.0000001"], "6 decimal places"),
        (["B-1", "WO1", "RAW", "1", "#START"], "does not apply"),
    ],
)
def test_bad_scans_are_refused_with_a_reason_and_no_draft(scans: list[str], says: str) -> None:
    s = Session(STATION, master_data())
    outcomes = run(s, *scans)
    assert not outcomes[-1].answer.ok and says in outcomes[-1].answer.text
    assert all(o.draft is None for o in outcomes)


def test_completion_with_and_without_scrap() -> None:
    s = Session(STATION, master_data())
    *_, done = run(s, "B-1", "#COMPLETE", "WO1", "6", "#OK", "#OK")
    assert done.draft is not None and done.draft.type == "production_completion"
    assert done.draft.payload == {
        "work_order": "WO1",
        "location": "WH",
        "quantity": "6",
        "scrap_quantity": "0",
    }
    *_, done = run(s, "WO1", "3", "1", "#OK")
    assert done.draft is not None and done.draft.payload["scrap_quantity"] == "1"


def test_labour_start_stop_survives_a_restart_and_hours_work_too() -> None:
    s = Session(STATION, master_data())
    run(s, "B-1", "#LABOUR", "WO1", "#START")
    saved = s.open_labour()
    restarted = Session(STATION, master_data())
    restarted.restore_labour(saved)
    later = T0 + timedelta(hours=2)
    *_, stop = run(restarted, "B-1", "#LABOUR", "WO1", "#STOP", at=later)
    assert stop.draft is not None
    assert stop.draft.payload["started_at"] == T0.isoformat()
    assert stop.draft.payload["stopped_at"] == later.isoformat()
    assert restarted.open_labour() == {}
    *_, stop_again = run(restarted, "WO1", "#STOP", at=later)
    assert not stop_again.answer.ok and stop_again.draft is None
    *_, hours = run(restarted, "WO1", "1.5", "#OK", at=later)
    assert hours.draft is not None and hours.draft.payload["hours"] == "1.5"


def test_handheld_receipt_from_a_gs1_label() -> None:
    s = Session(Workstation(id="hh", warehouse="WH", supplier="SUP", mode="receive"), master_data())
    label = Label(
        gtin="05901234123457",
        lot="L7",
        expiry=date(2027, 5, 31),
        quantity=Decimal(24),
        purchase_order="PO-9",
    )
    *_, confirm = run(s, "B-1", "WH", ScanInput("]C1...", label))
    assert "#OK" in confirm.answer.text  # the label gave the quantity
    (done,) = run(s, "#OK")
    assert done.draft is not None
    assert done.draft.payload == {
        "supplier": "SUP",
        "item": "RAW",
        "location": "WH",
        "quantity": "24",
        "unit_price": "2.5",
        "lot": "L7",
        "purchase_order": "PO-9",
        "expiry": "2027-05-31",
    }
    unknown = run(s, ScanInput("]C1...", Label(gtin="04006381333931")))[0]
    assert not unknown.answer.ok and "GTIN" in unknown.answer.text


def test_a_half_done_transaction_times_out_and_undo_restores() -> None:
    s = Session(STATION, master_data())
    run(s, "B-1", "WO1", "RAW")
    assert s.tick(T0 + timedelta(seconds=30)) is None
    answer = s.tick(T0 + timedelta(seconds=121))
    assert answer is not None and "timed out" in answer.text
    assert s.state.step == "work_order"
    run(s, "WO1", "RAW", "1")
    (confirm,) = run(s, "#OK")
    assert confirm.draft is not None
    s.undo()  # the commit failed: the operator can confirm again
    (again,) = run(s, "#OK")
    assert again.draft == confirm.draft


def test_shipping_station_ships_at_the_list_price_against_a_delivery_note() -> None:
    s = Session(Workstation(id="ws-3", warehouse="WH-FG", mode="ship"), master_data())
    assert not run(s, "B-1", "NOBODY")[-1].answer.ok
    *_, done = run(s, "CUS", "DN:DN-42", "TBL", "2", "#OK")
    assert done.draft is not None and done.draft.type == "sales_shipment"
    assert done.draft.payload == {
        "customer": "CUS",
        "item": "TBL",
        "location": "WH-FG",
        "quantity": "2",
        "unit_price": "2800",
        "lot": "",
        "delivery_note": "DN-42",
    }
    refused = run(s, "RAW")[0]  # RAW has no list price
    assert not refused.answer.ok and "list price" in refused.answer.text
