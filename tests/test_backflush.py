"""Backflush on completion, on SQLite and PostgreSQL: the components whose item is
issued by backflush are issued with the completion, in its share of the order,
lot-tracked ones picked FEFO then FIFO; lots that cannot cover it hold the completion.
Also the item setting, the lots kept from receipts, and reversal."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import and_, func, select

from cloud_api.db import models as m
from cloud_api.domain.posting_rules import backflush_issues, pick_lots
from cloud_api.domain.refs import ComponentRef, ItemRef, LocationRef, LotStock, WorkOrderRef
from cloud_api.errors import Held
from cloud_api.services.ingest import payload_hash
from contract import EVENT_ADAPTER
from tests.conftest import Api
from tests.factory import BASE_TIME, event, issue, labour, receipt, reversal, setup_workshop
from tests.test_bad_input import assert_problem
from tests.test_ledger import lines_of, statuses
from tests.test_work_orders import create_order, held_by, order

# TBL: RAW issued by scan (manual), SCREW (no lots) and RESIN (lots) by backflush.
TBL_BOM = {
    "item": "TBL",
    "lines": [
        {"item": "RAW", "quantity": "2"},
        {"item": "SCREW", "quantity": "4"},
        {"item": "RESIN", "quantity": "0.5"},
    ],
    "activate": True,
}

Move = tuple[int, str, str, str, str, str, D, D]


def backflush_workshop(api: Api) -> None:
    setup_workshop(api)
    api.create(
        "/items", {"code": "SCREW", "name": "Screw", "kind": "raw", "issue_method": "backflush"}
    )
    api.create(
        "/items",
        {
            "code": "RESIN",
            "name": "Resin",
            "kind": "raw",
            "lot_tracked": True,
            "issue_method": "backflush",
        },
    )
    api.create("/boms", TBL_BOM)


def completion(minutes: float, good: str, scrap: str = "0", wo: str = "WO10") -> dict[str, Any]:
    return event(
        "production_completion",
        minutes,
        {"work_order": wo, "location": "WH", "quantity": good, "scrap_quantity": scrap},
    )


def moves_of(api: Api, event_id: str) -> list[Move]:
    """(line, kind, item, lot, from, to, quantity, value) of one event, in line order."""
    mv, item = m.StockMove.__table__, m.Item.__table__  # type: ignore[attr-defined]
    src, dst = m.Location.__table__.alias(), m.Location.__table__.alias()  # type: ignore[attr-defined]
    tid = api.tenant.id
    with api.db.connect() as conn:
        rows = conn.execute(
            select(
                mv.c.line_no,
                mv.c.kind,
                item.c.code,
                mv.c.lot,
                src.c.code,
                dst.c.code,
                mv.c.quantity,
                mv.c.value,
            )
            .join(item, and_(item.c.tenant_id == tid, item.c.id == mv.c.item_id))
            .join(src, and_(src.c.tenant_id == tid, src.c.id == mv.c.from_location_id))
            .join(dst, and_(dst.c.tenant_id == tid, dst.c.id == mv.c.to_location_id))
            .where(mv.c.tenant_id == tid, mv.c.event_id == uuid.UUID(event_id))
            .order_by(mv.c.line_no)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def lots_of(api: Api, item: str) -> dict[str, D]:
    """On hand per lot in WH, from the moves (lots at zero left out)."""
    rows = api.get("/reports/stock").json()
    return {
        r["lot"]: D(r["quantity"])
        for r in rows
        if r["item"] == item and r["location"] == "WH" and D(r["quantity"]) != 0
    }


def on_hand(api: Api, item: str) -> D:
    return sum(lots_of(api, item).values(), D(0))


def count_rows(api: Api, model: Any) -> int:
    table = model.__table__
    with api.db.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).select_from(table).where(table.c.tenant_id == api.tenant.id)
            )
            or 0
        )


def ledger_rows(api: Api) -> tuple[int, int, int]:
    return (count_rows(api, m.StockMove), count_rows(api, m.JournalLine), count_rows(api, m.Lot))


def wip_of(api: Api, code: str) -> D:
    rows = api.get("/reports/wip").json()
    return next(D(r["wip_value"]) for r in rows if r["work_order"] == code)


def stored_lots(api: Api) -> dict[str, tuple[datetime, date | None]]:
    lot = m.Lot.__table__  # type: ignore[attr-defined]
    with api.db.connect() as conn:
        rows = conn.execute(
            select(lot.c.lot, lot.c.first_received_at, lot.c.expiry).where(
                lot.c.tenant_id == api.tenant.id
            )
        )
        return {r.lot: (r.first_received_at, r.expiry) for r in rows}


# -- the item setting -------------------------------------------------------------------


def test_issue_method_is_manual_by_default_and_backflush_on_request(api: Api) -> None:
    api.create("/items", {"code": "A", "name": "A", "kind": "raw"})
    api.create("/items", {"code": "B", "name": "B", "kind": "raw", "issue_method": "backflush"})
    methods = {i["code"]: i["issue_method"] for i in api.get("/items").json()}
    assert methods == {"A": "manual", "B": "backflush"}


def test_unknown_issue_method_is_422_and_writes_nothing(api: Api) -> None:
    response = api.post(
        "/items", json={"code": "X", "name": "X", "kind": "raw", "issue_method": "sometimes"}
    )
    body = assert_problem(response, 422, "invalid_request")
    assert "issue_method" in body["detail"], body
    assert api.get("/items").json() == []


# -- backflush on completion ------------------------------------------------------------


def test_completion_backflushes_its_share_picking_lots_by_expiry(api: Api) -> None:
    backflush_workshop(api)
    received = api.events(
        receipt(0, "RAW", "30", "10"),
        receipt(0, "SCREW", "100", "0.5"),
        # First received and first by code, but no expiry: FEFO takes it last.
        receipt(0, "RESIN", "10", "10", lot="R1"),
        receipt(1, "RESIN", "4", "20", lot="R2", expiry="2026-09-30"),
        receipt(2, "RESIN", "2", "30", lot="R3", expiry="2026-06-30"),
    )
    assert statuses(received) == ["posted"] * 5
    # RESIN: 16 on hand worth 240 (moving average 15 across its lots).
    create_order(api, "WO10", "10", release=True)  # RAW 20, SCREW 40, RESIN 5 held
    assert held_by(api, "WO10") == {
        "RAW": (D(20), "held"),
        "SCREW": (D(40), "held"),
        "RESIN": (D(5), "held"),
    }
    assert statuses(api.events(issue(10, "RAW", "20", wo="WO10"))) == ["posted"]  # WIP 200

    # 5 good + 1 scrap = 6 of 10: SCREW 40 × 6/10 = 24, RESIN 5 × 6/10 = 3, split over
    # the lot that expires first (2) and the next (1).
    (first,) = api.events(completion(20, "5", scrap="1"))
    assert first["status"] == "posted", first
    assert moves_of(api, first["event_id"]) == [
        (1, "issue", "SCREW", "", "WH", "PRODUCTION", D(24), D("12.00")),
        (2, "issue", "RESIN", "R3", "WH", "PRODUCTION", D(2), D("30.00")),
        (3, "issue", "RESIN", "R2", "WH", "PRODUCTION", D(1), D("15.00")),
        # WIP 200 + 12 + 30 + 15 = 257; 6 of the 10 to make take 257 × 6/10.
        (4, "completion", "TBL", "", "PRODUCTION", "WH", D(5), D("154.20")),
    ]
    assert len(first["move_ids"]) == 4
    assert lines_of(api, first["journal_entry_id"]) == [
        ("1403", D(0), D("12.00")),
        ("1403", D(0), D("15.00")),
        ("1403", D(0), D("30.00")),
        ("1405", D("154.20"), D(0)),
        ("5001", D(0), D("154.20")),
        ("5001", D("12.00"), D(0)),
        ("5001", D("15.00"), D(0)),
        ("5001", D("30.00"), D(0)),
    ]
    assert lots_of(api, "RESIN") == {"R1": D(10), "R2": D(3)}
    assert held_by(api, "WO10") == {
        "RAW": (D(0), "consumed"),
        "SCREW": (D(16), "held"),
        "RESIN": (D(2), "held"),
    }

    # The last 4: SCREW 16 (8.00 of the 76 left worth 38), RESIN 2 from R2 alone
    # (30.00: 13 left worth 195); the completion takes all the WIP left.
    (last,) = api.events(completion(30, "4"))
    assert moves_of(api, last["event_id"]) == [
        (1, "issue", "SCREW", "", "WH", "PRODUCTION", D(16), D("8.00")),
        (2, "issue", "RESIN", "R2", "WH", "PRODUCTION", D(2), D("30.00")),
        (3, "completion", "TBL", "", "PRODUCTION", "WH", D(4), D("140.80")),
    ]
    assert lots_of(api, "RESIN") == {"R1": D(10), "R2": D(1)}
    assert held_by(api, "WO10") == {
        "RAW": (D(0), "consumed"),
        "SCREW": (D(0), "consumed"),
        "RESIN": (D(0), "consumed"),
    }
    # The manual component was issued by its scan only, never backflushed.
    assert (on_hand(api, "RAW"), on_hand(api, "SCREW")) == (D(10), D(60))
    assert order(api, "WO10")["status"] == "completed"
    assert wip_of(api, "WO10") == 0
    assert api.balances()["1405"] == D("295.00")  # RAW 200 + SCREW 20 + RESIN 75
    assert api.reconcile() == []


def test_unbackflushable_completion_is_held_then_posts_after_receipts(api: Api) -> None:
    backflush_workshop(api)
    api.events(
        receipt(0, "SCREW", "10", "0.5"),
        receipt(0, "RESIN", "1", "20", lot="R-A", expiry="2026-05-31"),
    )
    create_order(api, "WO10", "10", release=True, allow_shortages=True)
    done = completion(20, "10")
    before = ledger_rows(api)
    (held,) = api.events(done)
    assert (held["status"], held["code"]) == ("held", "backflush_lot_unavailable")
    assert "RESIN needs 5.000000" in held["message"], held["message"]
    assert "only 1.000000" in held["message"], held["message"]
    assert ledger_rows(api) == before
    assert [e["event_id"] for e in api.get("/exceptions").json()] == [done["event_id"]]

    # The lot comes in; now the screws (no lots) are short: the engine holds that.
    # (the receipt re-posts the held completion itself)
    before = ledger_rows(api)
    api.events(receipt(5, "RESIN", "6", "20", lot="R-B", expiry="2026-12-31"))
    (short,) = api.get("/exceptions").json()
    assert (short["event_id"], short["code"]) == (done["event_id"], "insufficient_stock")
    assert ledger_rows(api)[0] == before[0] + 1  # the receipt's move only

    api.events(receipt(6, "SCREW", "30", "0.5"))
    assert api.get("/exceptions").json() == []
    assert [mv[:4] + mv[6:7] for mv in moves_of(api, done["event_id"])] == [
        (1, "issue", "SCREW", "", D(40)),
        (2, "issue", "RESIN", "R-A", D(1)),
        (3, "issue", "RESIN", "R-B", D(4)),
        (4, "completion", "TBL", "", D(10)),
    ]
    assert lots_of(api, "RESIN") == {"R-B": D(2)}
    assert api.get("/exceptions").json() == []
    assert api.reconcile() == []


def test_lots_received_in_the_same_batch_are_picked_by_their_expiry(api: Api) -> None:
    backflush_workshop(api)
    api.events(
        receipt(0, "SCREW", "100", "0.5"),
        receipt(0, "RESIN", "5", "20", lot="R-OLD", expiry="2026-12-31"),
    )
    create_order(api, "WO10", "2", release=True, allow_shortages=True)  # RESIN 1, no RAW
    # One batch: a lot expiring sooner arrives, then two completions of one each.
    results = api.events(
        receipt(10, "RESIN", "1", "20", lot="R-SOON", expiry="2026-04-30"),
        completion(20, "1"),
        completion(21, "1"),
    )
    assert statuses(results) == ["posted"] * 3
    picked = [
        [(mv[2], mv[3], mv[6]) for mv in moves_of(api, r["event_id"]) if mv[2] == "RESIN"]
        for r in results[1:]
    ]
    assert picked == [[("RESIN", "R-SOON", D("0.5"))], [("RESIN", "R-SOON", D("0.5"))]]
    assert lots_of(api, "RESIN") == {"R-OLD": D(5)}
    # SCREW 4 + 4 at 0.5, RESIN 0.5 + 0.5 at 20: the two completions made 24.00.
    assert (api.balances()["1405"], wip_of(api, "WO10")) == (D("24.00"), D(0))

    # A late receipt makes SCREW cost 1 on average: each backflush of 4 screws is
    # revalued +2.00 and so are the completions that took them; nothing left in WIP.
    assert statuses(api.events(receipt(5, "SCREW", "100", "1.5"))) == ["posted"]
    assert (api.balances()["1405"], wip_of(api, "WO10")) == (D("28.00"), D(0))
    assert api.reconcile() == []


def test_reversal_of_a_backflushed_completion_restores_stock_and_wip(api: Api) -> None:
    backflush_workshop(api)
    api.events(
        receipt(0, "SCREW", "100", "0.5"),
        receipt(0, "RESIN", "3", "20", lot="R-A", expiry="2026-05-31"),
        receipt(1, "RESIN", "5", "12", lot="R-B", expiry="2026-08-31"),
    )
    create_order(api, "WO10", "10", release=True, allow_shortages=True)  # RAW not on hand
    api.events(labour(10, "1", wo="WO10"))  # WIP 50
    (done,) = api.events(completion(20, "8"))
    # SCREW 32 → 16.00; RESIN 4 at 15: R-A 3 → 45.00, R-B 1 → 15.00; WIP 126 × 8/10.
    assert lines_of(api, done["journal_entry_id"])[3] == ("1405", D("100.80"), D(0))
    assert lots_of(api, "RESIN") == {"R-B": D(4)}

    (undo,) = api.events(reversal(30, done["event_id"]))
    assert undo["status"] == "posted", undo
    mirrored = sorted(
        (acc, credit, debit) for acc, debit, credit in lines_of(api, done["journal_entry_id"])
    )
    assert lines_of(api, undo["journal_entry_id"]) == mirrored
    assert [mv[:7] for mv in moves_of(api, undo["event_id"])] == [
        (1, "issue", "SCREW", "", "PRODUCTION", "WH", D(32)),
        (2, "issue", "RESIN", "R-A", "PRODUCTION", "WH", D(3)),
        (3, "issue", "RESIN", "R-B", "PRODUCTION", "WH", D(1)),
        (4, "completion", "TBL", "", "WH", "PRODUCTION", D(8)),
    ]
    assert lots_of(api, "RESIN") == {"R-A": D(3), "R-B": D(5)}
    assert (on_hand(api, "SCREW"), on_hand(api, "TBL")) == (D(100), D(0))
    assert wip_of(api, "WO10") == D("50.00")
    balances = api.balances()
    assert (balances["1403"], balances["1405"], balances["5001"]) == (
        D("170.00"),
        D("0.00"),
        D("50.00"),
    )

    # The restored lots are picked again, the earliest expiry first.
    (again,) = api.events(completion(40, "10"))
    assert [(mv[3], mv[6]) for mv in moves_of(api, again["event_id"]) if mv[2] == "RESIN"] == [
        ("R-A", D(3)),
        ("R-B", D(2)),
    ]
    # WIP 50 + SCREW 20.00 + RESIN 45.00 + 30.00, all of it to the 10 made.
    assert ("1405", D("145.00"), D(0)) in lines_of(api, again["journal_entry_id"])
    assert wip_of(api, "WO10") == 0
    assert api.reconcile() == []


def test_an_order_without_backflush_components_completes_as_before(api: Api) -> None:
    setup_workshop(api)  # GLUE is lot-tracked but issued by scan
    api.create(
        "/boms",
        {"item": "TBL", "lines": [{"item": "GLUE", "quantity": "1"}], "activate": True},
    )
    api.events(receipt(0, "GLUE", "5", "2", lot="G1", expiry="2026-04-01"))
    create_order(api, "WO10", "5", release=True)
    api.events(issue(5, "GLUE", "5", wo="WO10", lot="G1"))
    (done,) = api.events(completion(10, "5"))
    assert moves_of(api, done["event_id"]) == [
        (1, "completion", "TBL", "", "PRODUCTION", "WH", D(5), D("10.00")),
    ]
    assert lots_of(api, "GLUE") == {}
    assert api.reconcile() == []


# -- lots kept from receipts ------------------------------------------------------------


def test_lot_keeps_its_first_receipt_time_and_expiry(api: Api) -> None:
    backflush_workshop(api)
    api.events(receipt(10, "RESIN", "1", "20", lot="R-1", expiry="2026-07-01"))
    api.events(
        receipt(5, "RESIN", "1", "20", lot="R-1", expiry="2026-12-31"),  # back-dated
        receipt(20, "RESIN", "1", "20", lot="R-2"),
    )
    (unknown,) = api.events(receipt(30, "RESIN", "1", "20", lot="R-3", supplier="NOPE"))
    assert (unknown["status"], unknown["code"]) == ("held", "unknown_supplier")
    (no_lot,) = api.events(receipt(40, "SCREW", "1", "1", expiry="2026-07-01"))
    assert (no_lot["status"], no_lot["code"]) == ("rejected", "expiry_without_lot")
    minute = BASE_TIME.replace(second=0)
    assert stored_lots(api) == {
        "R-1": (minute.replace(minute=5), date(2026, 7, 1)),
        "R-2": (minute.replace(minute=20), None),
    }
    assert api.reconcile() == []


def test_a_receipt_without_expiry_hashes_as_before_expiry_existed() -> None:
    body = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "device_id": "dev-1",
        "seq": 7,
        "type": "purchase_receipt",
        "occurred_at": "2026-03-02T00:00:00+00:00",
        "payload": {
            "supplier": "SUP",
            "item": "RESIN",
            "location": "WH",
            "quantity": "4",
            "unit_price": "20",
            "lot": "R-1",
        },
    }
    # The hash the previous release stored for this event: its retry stays a duplicate.
    before = "b76e17fc2435179642be471cc1a1a91f00483e0842b42061453b496841f8039a"
    assert payload_hash(EVENT_ADAPTER.validate_python(body)) == before
    dated = {**body, "payload": {**body["payload"], "expiry": "2026-09-30"}}
    assert payload_hash(EVENT_ADAPTER.validate_python(dated)) != before


# -- picking, as a unit -----------------------------------------------------------------

RESIN = ItemRef(uuid.uuid4(), "RESIN", "moving_average", True, "1403", "6401", "6001")
WH = LocationRef(uuid.uuid4(), "WH", "warehouse")


def _lot(code: str, quantity: str, expiry: date | None, day: int | None) -> LotStock:
    received = None if day is None else datetime(2026, 3, day, tzinfo=UTC)
    return LotStock(code, D(quantity), expiry, received)


def test_picking_is_fefo_then_fifo_then_lot_code() -> None:
    lots = [
        _lot("N2", "1", None, 2),
        _lot("N1", "1", None, 1),
        _lot("UNKNOWN", "1", None, None),
        _lot("E-LATE", "1", date(2026, 9, 1), 1),
        _lot("E-SOON-B", "1", date(2026, 5, 1), 3),
        _lot("E-SOON-A", "1", date(2026, 5, 1), 3),
        _lot("E-SOON-FIRST", "1", date(2026, 5, 1), 2),
        _lot("EMPTY", "0", date(2026, 1, 1), 1),
    ]
    picks = pick_lots(RESIN, WH, D("6.5"), lots)
    assert picks == [
        ("E-SOON-FIRST", D(1)),
        ("E-SOON-A", D(1)),
        ("E-SOON-B", D(1)),
        ("E-LATE", D(1)),
        ("N1", D(1)),
        ("N2", D(1)),
        ("UNKNOWN", D("0.5")),
    ]


def test_picking_more_than_the_lots_hold_is_held() -> None:
    with pytest.raises(Held) as caught:
        pick_lots(RESIN, WH, D("2.5"), [_lot("A", "2", None, 1), _lot("B", "0", None, 1)])
    assert caught.value.code == "backflush_lot_unavailable"
    assert caught.value.details == {"item": "RESIN", "needed": "2.5", "available": "2"}
    assert pick_lots(RESIN, WH, D(2), [_lot("A", "2", None, 1)]) == [("A", D(2))]


class FakeMasterData:
    """Just what backflush_issues reads."""

    def __init__(self, components: list[ComponentRef], lots: list[LotStock]) -> None:
        self.components, self.lots = components, lots

    def production_location(self) -> LocationRef:
        return PRODUCTION

    def backflush_components(self, order: WorkOrderRef) -> list[ComponentRef]:
        return self.components

    def lots_on_hand(self, item: ItemRef, location: LocationRef) -> list[LotStock]:
        return self.lots


PRODUCTION = LocationRef(uuid.uuid4(), "PRODUCTION", "production")
SCREW = ItemRef(uuid.uuid4(), "SCREW", "moving_average", False, "1403", "6401", "6001")


def test_backflush_quantity_is_the_share_rounded_half_up_to_6_places() -> None:
    order = WorkOrderRef(uuid.uuid4(), "WO", uuid.uuid4(), D(4), "released")
    md = FakeMasterData(
        [
            ComponentRef(1, SCREW, WH, D("0.000002")),  # × 1/4 = 0.0000005 → 0.000001
            ComponentRef(2, RESIN, WH, D("6")),  # × 1/4 = 1.5, from the lot expiring first
            ComponentRef(3, SCREW, WH, D("0.000001")),  # × 1/4 rounds to nothing: no move
        ],
        [_lot("B", "1", date(2026, 6, 1), 1), _lot("A", "5", date(2026, 5, 1), 2)],
    )
    moves = backflush_issues(md, order, D(1))  # type: ignore[arg-type]
    assert [(mv.line_no, mv.item.code, mv.lot, mv.quantity) for mv in moves] == [
        (1, "SCREW", "", D("0.000001")),
        (2, "RESIN", "A", D("1.5")),
    ]
    assert {(mv.kind, mv.basis, mv.source, mv.destination, mv.work_order) for mv in moves} == {
        ("issue", "pool", WH, PRODUCTION, order)
    }


def test_a_backflushed_component_is_not_scanned_to_its_order(api: Api) -> None:
    """Its completions issue it: a scan too would consume it twice."""
    backflush_workshop(api)
    api.events(receipt(0, "SCREW", "100", "0.5"), receipt(0, "RAW", "30", "10"))
    create_order(api, "WO10", "10", release=True, allow_shortages=True)  # no RESIN yet
    (scan,) = api.events(issue(10, "SCREW", "4", wo="WO10"))
    assert (scan["status"], scan["code"]) == ("rejected", "component_is_backflushed")
    # A manual component of the same order, and the same item for an order without
    # that BOM, are issued as usual.
    assert statuses(api.events(issue(11, "RAW", "2", wo="WO10"))) == ["posted"]
    assert statuses(api.events(issue(12, "SCREW", "4", wo="WO1"))) == ["posted"]
    assert api.reconcile() == []
