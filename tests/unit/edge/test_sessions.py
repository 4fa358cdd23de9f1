"""Workstation sessions, unit level (no I/O): each step answers at once, a confirmed
transaction gives exactly one draft event, bad scans change nothing."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.masterdata import MasterData
from edge_agent.sessions import Outcome, ScanInput, ScanProblem, Session, Workstation
from firmware_bridges.gs1.parse import Gs1Error
from firmware_bridges.gs1.reading import read_gs1

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
    md.apply(MASTER_DATA)
    return md


MASTER_DATA: dict[str, Any] = {
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
    "operators": [
        {"code": "B-1", "name": "Li", "active": True},
        # numeric, GTIN-8-shaped, wrong GS1 check digit: a badge all the same
        {"code": "20250012", "name": "Ana", "active": True},
    ],
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


# --- issue 15: a product code is never a quantity -------------------------------------

GS = "\x1d"


def frame(data: str, symbology: str | None = None) -> ScanInput:
    """A scan as the scanner path hands it to the session (edge_agent/devices.py): the
    GS1 reading's content or its refusal, and the AIM identifier."""
    try:
        gs1 = read_gs1(data, symbology)
    except Gs1Error as error:
        return ScanInput(data, None, symbology, ScanProblem(error.code, error.message))
    return ScanInput(data, gs1, symbology)


# (transaction scans up to a quantity prompt, the step, the state key it fills)
QUANTITY_PROMPTS = [
    (["B-1", "WO1", "RAW"], "quantity", "quantity"),
    (["B-1", "#COMPLETE", "WO1"], "good", "good"),
    (["B-1", "#COMPLETE", "WO1", "6"], "scrap", "scrap"),
    (["B-1", "#LABOUR", "WO1"], "labour", "hours"),
    (["B-1", "#RECEIVE", "WH", "RAW"], "quantity", "quantity"),
    (["B-1", "#SHIP", "CUS", "TBL"], "quantity", "quantity"),
]

PRODUCT_SCANS = [
    # the issue's example: an EAN-8 read without AIM identifier
    (frame("96385074"), "not_a_quantity"),
    (ScanInput("96385074"), "not_a_quantity"),  # bare text, no scanner path
    (frame("96385075"), "gs1_check_digit"),  # the same with a wrong check digit
    (ScanInput("96385075"), "gs1_check_digit"),
    (frame("5901234123458"), "gs1_check_digit"),
    (frame("1234567890123"), "gs1_check_digit"),  # not "(12) bad date", not plain
    (frame("17211200"), "not_a_quantity"),  # (17) expiry: fixed-length GS1
    (frame("5901234123457", "]E0"), "not_a_quantity"),
    (frame("96385074", "]E4"), "not_a_quantity"),
    (frame("590123412345712", "]E3"), "not_a_quantity"),  # EAN-13 + add-on
    (frame("12", "]E1"), "not_a_quantity"),  # an add-on alone
    (frame("0105901234123457", "]C1"), "not_a_quantity"),
    (frame(f"010590123412345710L7{GS}3024", "]C1"), "not_a_quantity"),  # a label's count
    (frame("0105901234123457", "]e0"), "not_a_quantity"),
    (frame("0105901234123457", "]d2"), "not_a_quantity"),
    (frame("https://id.gs1.org/01/05901234123457", "]Q3"), "not_a_quantity"),
    (frame("https://id.gs1.org/01/05901234123457", "]Q1"), "not_a_quantity"),
    (frame("05901234123457", "]I1"), "not_a_quantity"),  # ITF-14 on a carton
    (frame("0105901234123458", "]C1"), "gs1_check_digit"),
]


@pytest.mark.parametrize("prompt", QUANTITY_PROMPTS, ids=lambda p: f"{p[0][-2]}-{p[1]}")
@pytest.mark.parametrize("scan, code", PRODUCT_SCANS, ids=lambda v: getattr(v, "text", v))
def test_a_product_code_at_a_quantity_prompt_is_refused_with_a_code(
    prompt: tuple[list[str], str, str], scan: ScanInput, code: str
) -> None:
    scans, step, key = prompt
    s = Session(STATION, master_data())
    run(s, *scans)
    assert s.state.step == step
    before = dict(s.state.data)
    (refused,) = run(s, scan)
    assert not refused.answer.ok and refused.draft is None
    assert refused.answer.text.startswith(f"{code}: ")
    assert refused.answer.text.endswith(s._prompt())  # what to do instead
    assert s.state.step == step and s.state.data == before and key not in s.state.data
    (keyed,) = run(s, "2")  # the operator keys it instead
    assert keyed.answer.ok and s.state.data[key] == Decimal(2)


@pytest.mark.parametrize(
    "scan, quantity",
    [
        (ScanInput("24"), "24"),  # keyed
        (ScanInput("2,5"), "2.5"),
        (frame("24"), "24"),
        (frame("1000"), "1000"),  # would be lot "00" read as GS1
        (frame("24", "]C0"), "24"),  # a quantity barcode
        (frame("96385074", "]C0"), "96385074"),  # Code 128 says: not a product
        (frame("Q:96385074"), "96385074"),  # explicit, no identifier
        (frame("3024", "]C1"), "24"),  # GS1 count barcode, AI (30)
        (frame("3700000024", "]C1"), "24"),  # AI (37)
        (frame(f"3024{GS}3724", "]C1"), "24"),
    ],
    ids=lambda v: getattr(v, "text", v),
)
def test_what_a_quantity_scan_legitimately_looks_like(scan: ScanInput, quantity: str) -> None:
    s = Session(STATION, master_data())
    run(s, "B-1", "WO1", "RAW")
    (answer,) = run(s, scan)
    assert answer.answer.ok, answer.answer.text
    assert s.state.data["quantity"] == Decimal(quantity)


def test_labour_hours_take_no_count_barcode() -> None:
    s = Session(STATION, master_data())
    (refused,) = run(s, "B-1", "#LABOUR", "WO1", frame("302", "]C1"))[-1:]
    assert refused.answer.text.startswith("not_a_quantity: ")
    assert "hours" not in s.state.data


def test_count_barcodes_that_disagree_are_not_a_quantity() -> None:
    s = Session(STATION, master_data())
    (refused,) = run(s, "B-1", "WO1", "RAW", frame(f"3024{GS}3712", "]C1"))[-1:]
    assert not refused.answer.ok and "quantity" not in s.state.data


@given(
    st.sampled_from([8, 12, 13, 14]).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n)
    ),
    st.sampled_from([None, "]E0", "]E4"]),
)
def test_property_gtin_shaped_digits_without_identifier_are_never_a_quantity(
    digits: str, symbology: str | None
) -> None:
    s = Session(STATION, master_data())
    run(s, "B-1", "WO1", "RAW")
    for scan in (frame(digits, symbology), ScanInput(digits, symbology=symbology)):
        (answer,) = run(s, scan)
        assert not answer.answer.ok and answer.draft is None
        code = answer.answer.text.split(":")[0]
        assert code in ("not_a_quantity", "gs1_check_digit", "gs1_bad_date", "gs1_malformed")
        assert "quantity" not in s.state.data


def test_a_refused_gs1_reading_is_answered_with_its_code_but_a_known_code_wins() -> None:
    s = Session(STATION, master_data())
    badge = frame("20250012")  # numeric badge, not a valid GTIN-8
    assert badge.problem is not None and badge.problem.code == "gs1_check_digit"
    (hello,) = run(s, badge)
    assert hello.answer.ok and s.state.operator == "20250012"
    (refused,) = run(s, frame("96385075"))  # at the work-order step
    assert refused.answer.text.startswith("gs1_check_digit: ")
    assert s.state.step == "work_order"
    (refused,) = run(s, frame("0105901234123458", "]C1"))
    assert refused.answer.text.startswith("gs1_check_digit: ")
    # before the badge too: the code, not "scan your badge first"
    fresh = Session(STATION, master_data())
    assert run(fresh, frame("96385075"))[0].answer.text.startswith("gs1_check_digit: ")


@pytest.mark.parametrize("prompt", QUANTITY_PROMPTS, ids=lambda p: f"{p[0][-2]}-{p[1]}")
@pytest.mark.parametrize("typed", ["5e2", "+5", "1_000", "١٢", "１２", "0x10", "Infinity"])
def test_a_quantity_the_contract_would_refuse_is_asked_again(
    prompt: tuple[list[str], str, str], typed: str
) -> None:
    """What the cloud refuses as a lenient number (issue 15, item 10) never leaves the
    station: the operator is asked again, instead of the event being parked later."""
    scans, step, key = prompt
    s = Session(STATION, master_data())
    run(s, *scans)
    (refused,) = run(s, typed)
    assert not refused.answer.ok and refused.draft is None, refused
    assert "not a quantity" in refused.answer.text and s.state.step == step
    (keyed,) = run(s, "12")
    assert keyed.answer.ok and s.state.data[key] == Decimal(12)
