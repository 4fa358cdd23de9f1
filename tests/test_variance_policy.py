"""The variance policy "finished_goods": at close, the share of a work order's residual
WIP that belongs to its goods still on hand goes into that stock's value, the rest to
cost of sales (posting_rules.work_order_close). Hand-worked, every line asserted."""

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from tests.conftest import Api
from tests.factory import (
    BASE_TIME,
    completion,
    event,
    issue,
    labour,
    receipt,
    setup_workshop,
    shipment,
)
from tests.test_ledger import lines_of


def _after_now() -> float:
    """Minutes from BASE_TIME to a moment just after now (the close is dated now): far
    ahead of the server's clock would be outside the window the cloud takes."""
    return (datetime.now(UTC) - BASE_TIME).total_seconds() / 60 + 5


def _fg_policy(api: Api) -> None:
    response = api.patch("/settings", json={"variance_policy": "finished_goods"})
    assert response.status_code == 200 and response.json()["variance_policy"] == "finished_goods"


def _stock(api: Api, item: str) -> tuple[D, D]:
    rows = [r for r in api.get("/reports/stock").json() if r["item"] == item]
    return (
        sum((D(r["quantity"]) for r in rows), D(0)),
        sum((D(r["value"]) for r in rows), D(0)),
    )


def _close(api: Api, order: str = "WO1") -> dict[str, Any]:
    response = api.post(f"/work-orders/{order}/close", json={"reason": "done"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _wip(api: Api, order: str = "WO1") -> D:
    rows = api.get("/reports/wip").json()
    return sum((D(r["wip_value"]) for r in rows if r["work_order"] == order), D(0))


def test_residual_split_between_goods_on_hand_and_cost_of_sales(api: Api) -> None:
    setup_workshop(api)
    _fg_policy(api)
    results = api.events(
        receipt(0, "RAW", "100", "2"),
        issue(1, "RAW", "10"),  # WIP 20
        labour(2, "1"),  # + 40 labour + 10 overhead = 70
        completion(3, "10"),  # all 10 planned: takes all 70, 7.00 a table
        labour(4, "0.5"),  # after the last completion: 20 + 5 = 25 left in WIP
        shipment(5, "TBL", "4", "99"),  # 6 tables still on hand
    )
    assert [r["status"] for r in results] == ["posted"] * 6
    assert _wip(api) == D("25.00")
    closed = _close(api)
    # 6 of the 10 tables made are still on hand: 6/10 of 25 = 15 into their value,
    # the other 10 to cost of sales
    assert lines_of(api, closed["journal_entry_id"]) == [
        ("1405", D("15.00"), D("0")),
        ("5001", D("0"), D("10.00")),
        ("5001", D("0"), D("15.00")),
        ("6401", D("10.00"), D("0")),
    ]
    assert _wip(api) == 0
    assert _stock(api, "TBL") == (D(6), D("57.00"))  # 42 at 7.00 + 15
    totals = api.get("/work-orders/WO1/cost").json()["totals"]
    assert totals["settled_variance"] == "25.00"
    assert (totals["settled_to_finished_goods"], totals["settled_to_cost_of_sales"]) == (
        "15.00",
        "10.00",
    )
    # 95 incurred: 20 material, 60 labour, 15 overhead; 25 left, split in that mix
    assert totals["settled_by_element"] == {
        "material": "5.26",
        "labour": "15.79",
        "overhead": "3.95",
    }
    (sold,) = api.events(shipment(_after_now(), "TBL", "6", "99"))  # after the close
    assert sold["status"] == "posted"
    assert ("6401", D("57.00"), D("0")) in lines_of(api, sold["journal_entry_id"])
    assert _stock(api, "TBL") == (D(0), D(0))
    assert api.reconcile() == []


def test_fifo_goods_take_the_residual_over_their_open_layers(api: Api) -> None:
    setup_workshop(api)
    api.create(
        "/items", {"code": "CHAIR", "name": "Chair", "kind": "finished", "valuation_method": "fifo"}
    )
    api.create(
        "/work-orders", {"code": "WO7", "item": "CHAIR", "planned_quantity": "10", "release": True}
    )
    _fg_policy(api)
    chair = {"customer": "CUS", "item": "CHAIR", "location": "WH", "unit_price": "50"}
    results = api.events(
        receipt(0, "RAW", "100", "3"),
        issue(1, "RAW", "10", wo="WO7"),  # 30
        completion(2, "4", wo="WO7"),  # 4/10 of 30 = 12, 3.00 a chair
        labour(3, "1", wo="WO7"),  # + 50: WIP 68
        completion(4, "6", wo="WO7"),  # the last 6 take 68: 11.333… a chair
        labour(5, "0.2", wo="WO7"),  # 8 + 2 = 10 left
        event("sales_shipment", 6, {**chair, "quantity": "5"}),  # 4 @ 3 + 1 @ 11.33
    )
    assert [r["status"] for r in results] == ["posted"] * 7
    closed = _close(api, "WO7")
    # 5 of 10 on hand: half of the residual, 5.00, spread over the open layer (5 chairs)
    assert ("1405", D("5.00"), D("0")) in lines_of(api, closed["journal_entry_id"])
    assert ("6401", D("5.00"), D("0")) in lines_of(api, closed["journal_entry_id"])
    quantity, value = _stock(api, "CHAIR")
    assert quantity == 5 and value == D("68.00") - D("11.33") + D("5.00")
    assert api.reconcile() == []  # the layers still hold exactly the pool's value
    (rest,) = api.events(event("sales_shipment", _after_now(), {**chair, "quantity": "5"}))
    assert rest["status"] == "posted"
    assert _stock(api, "CHAIR") == (D(0), D(0))  # the last chair takes what was left
    assert api.reconcile() == []


def test_a_late_event_that_revalues_the_order_resettles_the_split(api: Api) -> None:
    setup_workshop(api)
    _fg_policy(api)
    api.events(
        receipt(0, "RAW", "100", "2"),
        issue(1, "RAW", "10"),  # 20
        completion(3, "8"),  # 8 of 10 planned: 16, 2.00 a table; 4 left
        labour(4, "0.5"),  # + 25: 29 left
        shipment(5, "TBL", "4", "99"),  # 4 of the 8 made still on hand
    )
    closed = _close(api)  # half of 29: 14.50 to the tables, 14.50 to cost of sales
    assert ("1405", D("14.50"), D("0")) in lines_of(api, closed["journal_entry_id"])
    assert _stock(api, "TBL") == (D(4), D("22.50"))
    before = api.balances()
    # a receipt from before the issue, at another price, delivered late: the issue
    # now costs 3.00 a unit (30), the completion 24 (3.00 a table), the shipment 12,
    # and what was left at close 6 + 25 = 31, half of it 15.50 each way
    (late,) = api.events(receipt(0.5, "RAW", "100", "4"))
    assert late["status"] == "posted"
    after = api.balances()
    assert _wip(api) == 0  # re-settled: WIP stays zero after close
    assert _stock(api, "TBL") == (D(4), D("12.00") + D("15.50"))
    assert after["1405"] - before["1405"] == D("5.00")
    assert after["6401"] - before["6401"] == D("4.00") + D("1.00")
    assert api.reconcile() == []


def test_nothing_on_hand_sends_it_all_to_cost_of_sales(api: Api) -> None:
    setup_workshop(api)
    _fg_policy(api)
    api.events(
        receipt(0, "RAW", "100", "2"),
        issue(1, "RAW", "10"),
        completion(3, "10"),
        labour(4, "0.5"),
        shipment(5, "TBL", "10", "99"),
    )
    closed = _close(api)
    assert lines_of(api, closed["journal_entry_id"]) == [
        ("5001", D("0"), D("25.00")),
        ("6401", D("25.00"), D("0")),
    ]
    assert _stock(api, "TBL") == (D(0), D(0))
    assert api.reconcile() == []
