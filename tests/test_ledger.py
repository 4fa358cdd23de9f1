"""Posting through the ingest API, on SQLite and PostgreSQL: journal lines, idempotency,
held events, late events, reversals, closed periods."""

import uuid
from decimal import Decimal as D
from typing import Any

from sqlalchemy import func, select

from cloud_api.db import models as m
from tests.conftest import Api
from tests.factory import (
    completion,
    count,
    issue,
    labour,
    receipt,
    reversal,
    setup_workshop,
    shipment,
)


def lines_of(api: Api, entry_id: str) -> list[tuple[str, D, D]]:
    journal = api.get("/reports/journal", params={"limit": 1000}).json()
    (entry,) = [e for e in journal if e["id"] == entry_id]
    return sorted((ln["account_code"], D(ln["debit"]), D(ln["credit"])) for ln in entry["lines"])


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["status"] for r in results]


def test_full_work_order_books_every_line(api: Api) -> None:
    setup_workshop(api)
    r = api.events(receipt(0, "RAW", "10", "10"), receipt(1, "RAW", "20", "13"))
    assert statuses(r) == ["posted", "posted"]
    assert lines_of(api, r[0]["journal_entry_id"]) == [
        ("1403", D("100.00"), D("0")),
        ("220201", D("0"), D("100.00")),
    ]
    (iss,) = api.events(issue(10, "RAW", "15"))
    assert lines_of(api, iss["journal_entry_id"]) == [
        ("1403", D("0"), D("180.00")),
        ("5001", D("180.00"), D("0")),
    ]
    (lab,) = api.events(labour(20, "2.5"))
    assert lines_of(api, lab["journal_entry_id"]) == [
        ("2211", D("0"), D("100.00")),
        ("5001", D("25.00"), D("0")),
        ("5001", D("100.00"), D("0")),
        ("5101", D("0"), D("25.00")),
    ]
    (c1,) = api.events(completion(30, "4"))  # 305 × 4/10
    assert lines_of(api, c1["journal_entry_id"]) == [
        ("1405", D("122.00"), D("0")),
        ("5001", D("0"), D("122.00")),
    ]
    (c2,) = api.events(completion(40, "6"))  # the rest: 183.00
    assert lines_of(api, c2["journal_entry_id"]) == [
        ("1405", D("183.00"), D("0")),
        ("5001", D("0"), D("183.00")),
    ]
    (sale,) = api.events(shipment(50, "TBL", "5", "100"))  # cost 305 × 5/10
    assert lines_of(api, sale["journal_entry_id"]) == [
        ("1122", D("565.00"), D("0")),
        ("1405", D("0"), D("152.50")),
        ("2221", D("0"), D("65.00")),
        ("6001", D("0"), D("500.00")),
        ("6401", D("152.50"), D("0")),
    ]
    balances = api.balances()
    assert balances["1403"] == D("180.00") and balances["5001"] == D("0.00")
    assert balances["1405"] == D("152.50")
    assert api.reconcile() == []


def test_same_event_twice_is_a_duplicate_and_posts_once(api: Api) -> None:
    setup_workshop(api)
    ev = receipt(0, "RAW", "10", "10")
    (first,) = api.events(ev)
    (again,) = api.events(ev)
    assert again["status"] == "duplicate"
    assert again["journal_entry_id"] == first["journal_entry_id"]
    assert again["move_ids"] == first["move_ids"]
    assert api.balances()["1403"] == D("100.00")


def test_same_id_other_payload_is_a_conflict_and_writes_nothing(api: Api) -> None:
    setup_workshop(api)
    ev = receipt(0, "RAW", "10", "10")
    api.events(ev)
    other = {**ev, "payload": {**ev["payload"], "quantity": "11"}}
    (result,) = api.events(other)
    assert (result["status"], result["code"]) == ("conflict", "idempotency_key_reused")
    assert api.balances()["1403"] == D("100.00")


def test_a_bad_event_does_not_sink_its_neighbours(api: Api) -> None:
    setup_workshop(api)
    results = api.events(
        receipt(0, "RAW", "10", "10"),
        issue(5, "RAW", "1", wo="NOPE"),
        {"event_id": "x"},
        issue(6, "RAW", "2"),
    )
    assert statuses(results) == ["posted", "held", "rejected", "posted"]
    assert results[1]["code"] == "unknown_work_order"
    assert results[2]["code"] == "invalid_event"
    assert api.balances()["5001"] == D("20.00")
    assert api.reconcile() == []


def test_held_event_is_listed_and_posts_after_the_fix_keeping_its_id(api: Api) -> None:
    setup_workshop(api)
    ev = issue(5, "RAW", "4")
    (held,) = api.events(ev)
    assert (held["status"], held["code"]) == ("held", "insufficient_stock")
    listed = api.get("/exceptions").json()
    assert [row["event_id"] for row in listed] == [ev["event_id"]]
    # the missing receipt, dated before: the held issue re-posts itself right after it
    api.events(receipt(0, "RAW", "10", "10"))
    assert api.get("/exceptions").json() == []
    (again,) = api.events(ev)
    assert again["status"] == "duplicate"
    assert api.balances()["5001"] == D("40.00")
    # Once posted it is no longer an exception: neither re-posted nor voided again.
    for action in ("repost", "void"):
        answer = api.post(f"/exceptions/{ev['event_id']}/{action}", json={"reason": "typo"})
        assert (answer.status_code, answer.json()["code"]) == (409, "not_held")
        unknown = api.post(f"/exceptions/{uuid.uuid4()}/{action}", json={"reason": "typo"})
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_event")
    assert api.balances()["5001"] == D("40.00")


def test_edge_retry_of_a_held_event_posts_it_once_the_cause_is_fixed(api: Api) -> None:
    setup_workshop(api)
    ev = issue(5, "RAW", "1", wo="WO9")
    assert api.events(ev)[0]["status"] == "held"
    api.create(
        "/work-orders", {"code": "WO9", "item": "TBL", "planned_quantity": "1", "release": True}
    )
    api.events(receipt(0, "RAW", "1", "7"))  # the held issue re-posts itself with it
    (retried,) = api.events(ev)  # the edge's retry learns it posted
    assert (retried["status"], retried["original_status"]) == ("duplicate", "posted")
    assert api.balances()["5001"] == D("7.00")


def test_late_receipt_revalues_later_issues_with_adjustment_entries(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "RAW", "10", "10"))
    (iss,) = api.events(issue(60, "RAW", "10"))  # 100.00 at the time
    moves_before = _count(api, m.StockMove)
    (late,) = api.events(receipt(30, "RAW", "10", "20", replayed=True))
    assert late["status"] == "posted"
    # As if on time: at minute 60 the average is (100 + 200) / 20 = 15 → issue 150.
    ledger = api.get("/reports/stock-ledger/RAW").json()
    issued = [row for row in ledger if row["event_id"] == iss["event_id"]]
    assert D(issued[0]["value"]) == D("150.00") and D(issued[0]["booked_value"]) == D("100.00")
    assert _count(api, m.StockMove) == moves_before + 1  # posted moves are never edited
    assert _count(api, m.StockRevaluation) == 1
    balances = api.balances()
    assert balances["1403"] == D("150.00") and balances["5001"] == D("150.00")
    assert api.reconcile() == []


def test_late_issue_is_held_if_it_would_break_the_later_timeline(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "RAW", "10", "10"), issue(60, "RAW", "8"))
    (late,) = api.events(issue(30, "RAW", "5"))  # now fine, but at 60 only 5 would be left
    assert (late["status"], late["code"]) == ("held", "insufficient_stock")
    assert api.balances()["5001"] == D("80.00")
    assert api.reconcile() == []


def test_late_issue_cascades_into_completions_and_shipments(api: Api) -> None:
    setup_workshop(api)
    api.events(
        receipt(0, "RAW", "10", "10"),
        receipt(1, "RAW", "10", "20"),
        issue(10, "RAW", "5"),
        completion(20, "10"),
        shipment(30, "TBL", "10", "9"),
    )
    assert api.balances()["6401"] == D("75.00")  # 5 at the average of 15.00
    # A late issue to WO1: the completion (all of WO1) and so the sale cost more.
    (late,) = api.events(issue(5, "RAW", "5"))
    assert late["status"] == "posted"
    balances = api.balances()
    assert balances["6401"] == D("150.00")  # 10 at 15.00: the order cost 150
    assert balances["1403"] == D("150.00")
    assert api.reconcile() == []


def test_reversal_mirrors_the_original_and_cannot_repeat(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "RAW", "10", "10"))
    (sale_src,) = api.events(issue(5, "RAW", "2"))
    (rev,) = api.events(reversal(10, sale_src["event_id"]))
    assert rev["status"] == "posted"
    assert lines_of(api, rev["journal_entry_id"]) == [
        ("1403", D("20.00"), D("0")),
        ("5001", D("0"), D("20.00")),
    ]
    (twice,) = api.events(reversal(11, sale_src["event_id"]))
    assert (twice["status"], twice["code"]) == ("rejected", "already_reversed")
    assert api.balances()["5001"] == D("0.00")
    assert api.reconcile() == []


def test_shipment_reversal_also_reverses_revenue_and_vat(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "TBL", "2", "50"))
    (sale,) = api.events(shipment(5, "TBL", "1", "100"))
    (rev,) = api.events(reversal(6, sale["event_id"]))
    assert rev["status"] == "posted"
    balances = api.balances()
    for code in ("1122", "6001", "2221", "6401"):
        assert balances[code] == D("0.00"), code
    assert api.reconcile() == []


def test_stock_count_books_the_difference(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "BOLT", "100", "0.12"))
    (loss,) = api.events(count(10, "BOLT", "97"))
    assert lines_of(api, loss["journal_entry_id"]) == [
        ("1403", D("0"), D("0.36")),
        ("1901", D("0.36"), D("0")),
    ]
    (gain,) = api.events(count(20, "BOLT", "99"))
    assert lines_of(api, gain["journal_entry_id"]) == [
        ("1403", D("0.24"), D("0")),
        ("1901", D("0"), D("0.24")),
    ]
    assert api.reconcile() == []


def test_closed_period_holds_the_event_and_reopen_lets_it_post(api: Api) -> None:
    setup_workshop(api)
    assert api.post("/periods/2026-03/close").status_code == 200
    ev = receipt(0, "RAW", "1", "1")
    (held,) = api.events(ev)
    assert (held["status"], held["code"]) == ("held", "period_locked")
    assert api.balances() == {}
    assert api.post("/periods/2026-03/reopen", json={"reason": "late invoice"}).status_code == 200
    assert api.get("/exceptions").json() == []  # the reopen re-posted it
    assert api.balances()["1403"] == D("1.00")


def test_revaluation_of_a_closed_period_is_booked_in_the_first_open_one(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "RAW", "10", "10"), issue(60 * 24 * 31, "RAW", "10"))  # in April
    api.post("/periods/2026-04/close")
    (late,) = api.events(receipt(30, "RAW", "10", "20"))  # March: open
    assert late["status"] == "posted"
    journal = api.get("/reports/journal", params={"limit": 1000}).json()
    (reval,) = [e for e in journal if e["kind"] == "revaluation"]
    assert reval["period"] == "2026-05"
    assert api.reconcile() == []


def test_negative_stock_allowed_by_tenant_setting(db: Any) -> None:
    api = Api(db, allow_negative_stock=True)
    setup_workshop(api)
    api.events(receipt(0, "RAW", "1", "10"))
    assert api.events(issue(5, "RAW", "3"))[0]["status"] == "posted"
    assert api.reconcile() == []


def test_lot_tracked_item_needs_its_lot(api: Api) -> None:
    setup_workshop(api)
    (bad,) = api.events(receipt(0, "GLUE", "1", "1"))
    assert (bad["status"], bad["code"]) == ("rejected", "lot_required")
    (good,) = api.events(receipt(0, "GLUE", "1", "1", lot="L1"))
    assert good["status"] == "posted"
    (wrong_lot,) = api.events(issue(5, "GLUE", "1", lot="L2"))
    assert (wrong_lot["status"], wrong_lot["code"]) == ("held", "insufficient_stock")


def _count(api: Api, model: Any) -> int:
    table = model.__table__
    with api.db.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).select_from(table).where(table.c.tenant_id == api.tenant.id)
            )
        )


def stored_layers(api: Api) -> list[tuple[D, D, D]]:
    """The cached FIFO layers of BOLT, in the order they will be consumed."""
    cl, item = m.CostLayer.__table__, m.Item.__table__  # type: ignore[attr-defined]
    with api.db.connect() as conn:
        rows = conn.execute(
            select(cl.c.quantity_in, cl.c.quantity_left, cl.c.value_left)
            .join(item, (item.c.tenant_id == cl.c.tenant_id) & (item.c.id == cl.c.item_id))
            .where(cl.c.tenant_id == api.tenant.id, item.c.code == "BOLT")
            .order_by(cl.c.seq_no)
        )
        return [(r.quantity_in, r.quantity_left, r.value_left) for r in rows]


def test_fifo_layers_stored_across_batches(api: Api) -> None:
    """Each batch writes only the layers that changed; after a late receipt the pool's
    layers are rebuilt. Either way the stored layers are the pool's, in FIFO order."""
    setup_workshop(api)
    r3 = receipt(2, "BOLT", "13", "3")
    api.events(
        receipt(0, "BOLT", "10", "1"),
        receipt(1, "BOLT", "12", "2"),
        r3,
        receipt(3, "BOLT", "14", "4"),
    )
    assert stored_layers(api) == [
        (D(10), D(10), D("10.00")),
        (D(12), D(12), D("24.00")),
        (D(13), D(13), D("39.00")),
        (D(14), D(14), D("56.00")),
    ]
    api.events(issue(10, "BOLT", "5"))  # the first layer is updated
    assert stored_layers(api)[0] == (D(10), D(5), D("5.00"))
    api.events(issue(11, "BOLT", "8"))  # the first layer goes, the second is updated
    assert stored_layers(api)[:2] == [(D(12), D(9), D("18.00")), (D(13), D(13), D("39.00"))]
    assert statuses(api.events(reversal(12, r3["event_id"]))) == ["posted"]  # a middle layer
    api.events(receipt(13, "BOLT", "15", "5"))  # appended after the survivors
    assert stored_layers(api) == [
        (D(12), D(9), D("18.00")),
        (D(14), D(14), D("56.00")),
        (D(15), D(15), D("75.00")),
    ]
    # A late receipt before everything: the issues now consume it first.
    assert statuses(api.events(receipt(-1, "BOLT", "11", "0.5"))) == ["posted"]
    assert stored_layers(api) == [
        (D(10), D(8), D("8.00")),
        (D(12), D(12), D("24.00")),
        (D(14), D(14), D("56.00")),
        (D(15), D(15), D("75.00")),
    ]
    assert api.reconcile() == []
