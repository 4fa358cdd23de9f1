"""The cost report of a work order, on SQLite and PostgreSQL: every figure of a
hand-worked order, the same figures after a late receipt revalues its issues, and an
open order with an unplanned item and reversals."""

from decimal import Decimal as D
from typing import Any

from sqlalchemy import select

from cloud_api.services.reports import T, _effective_moves
from tests.conftest import Api
from tests.factory import event, issue, labour, receipt, ret, reversal, setup_workshop
from tests.test_ledger import statuses

# 2 RAW (+10 % scrap) and 4 BOLT a table; WC (labour 40/h, overhead 10/h) 30 minutes
# to set up, then 24 minutes a table.
TBL_BOM = {
    "item": "TBL",
    "lines": [
        {"item": "RAW", "quantity": "2", "scrap_factor": "0.1"},
        {"item": "BOLT", "quantity": "4"},
    ],
    "operations": [
        {
            "seq": 10,
            "work_center": "WC",
            "name": "Assemble",
            "setup_minutes": "30",
            "minutes_per_unit": "24",
        }
    ],
    "activate": True,
}


def cost(api: Api, code: str) -> dict[str, Any]:
    response = api.get(f"/work-orders/{code}/cost")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def completion(minutes: float, quantity: str, wo: str, scrap: str = "0") -> dict[str, Any]:
    return event(
        "production_completion",
        minutes,
        {"work_order": wo, "location": "WH", "quantity": quantity, "scrap_quantity": scrap},
    )


def wip_report(api: Api) -> dict[str, D]:
    return {r["work_order"]: D(r["wip_value"]) for r in api.get("/reports/wip").json()}


def post(api: Api, *events: dict[str, Any]) -> list[dict[str, Any]]:
    results = api.events(*events)
    assert statuses(results) == ["posted"] * len(events), results
    return results


def run_hand_worked_order(api: Api) -> None:
    setup_workshop(api)
    api.create("/boms", TBL_BOM)
    post(
        api,
        receipt(0, "RAW", "30", "10"),  # 300.00
        receipt(0, "BOLT", "10", "1"),  # FIFO layers: 10 at 1, then 40 at 1.5
        receipt(1, "BOLT", "40", "1.5"),
    )
    create = {"code": "WO10", "item": "TBL", "planned_quantity": "5"}
    assert api.post("/work-orders", json=create).status_code == 201
    assert api.post("/work-orders/WO10/release", json={}).status_code == 200
    post(
        api,
        issue(10, "RAW", "12", wo="WO10"),  # 12 × 10 = 120.00
        issue(11, "BOLT", "22", wo="WO10"),  # 10 × 1 + 12 × 1.5 = 28.00
        ret(12, "BOLT", "1", wo="WO10"),  # at the issued average: 28 × 1 / 22 = 1.27
        labour(20, "3", wo="WO10"),  # 3 h: labour 120.00, overhead 30.00
        # WIP 120 + 26.73 + 120 + 30 = 296.73; 2 good + 1 scrap of the 5 to make:
        # 296.73 × 3 / 5 = 178.04 into the 2 good tables, the scrapped one's share too
        completion(30, "2", wo="WO10", scrap="1"),
        completion(31, "2", wo="WO10"),  # the last 2 of the 5: all that is left, 118.69
    )
    assert api.post("/work-orders/WO10/close", json={}).status_code == 200


def test_every_figure_of_a_hand_worked_order(api: Api) -> None:
    run_hand_worked_order(api)
    report = cost(api, "WO10")
    assert {k: v for k, v in report.items() if not isinstance(v, list | dict)} == {
        "code": "WO10",
        "item": "TBL",
        "status": "closed",
        "planned_quantity": "5.000000",
        "completed_quantity": "4.000000",
        "scrap_quantity": "1.000000",
    }
    assert report["materials"] == [
        {
            "item": "RAW",
            "planned_quantity": "11.000000",  # 2 × 5 × 1.1
            "standard_unit_cost": "10.000000",  # 18 left at 180.00
            "planned_value": "110.00",
            "actual_quantity": "12.000000",
            "actual_value": "120.00",
            "actual_unit_cost": "10.000000",
            "usage_variance_quantity": "1.000000",
            "usage_variance_value": "10.00",  # 1 × 10
            "price_variance_value": "0.00",  # 120.00 − 110.00 − 10.00
        },
        {
            "item": "BOLT",
            "planned_quantity": "20.000000",  # 4 × 5
            # 28 left at 1.5 = 42.00, and the 1 returned at 1.27: 43.27 / 29
            "standard_unit_cost": "1.492069",
            "planned_value": "29.84",  # 20 × 1.492069 = 29.84138
            "actual_quantity": "21.000000",  # 22 − 1
            "actual_value": "26.73",  # 28.00 − 1.27
            "actual_unit_cost": "1.272857",  # 26.73 / 21
            "usage_variance_quantity": "1.000000",
            "usage_variance_value": "1.27",  # 1 × 1.272857
            # 26.73 − 29.84 − 1.27, i.e. 20 × (1.272857 − 1.492069) = −4.38424
            "price_variance_value": "-4.38",
        },
    ]
    # Planned: 30 + 24 × 5 = 150 minutes = 2.5 h; at 40/h and 10/h.
    assert report["labour"] == [
        {
            "work_center": "WC",
            "planned_hours": "2.500000",
            "planned_cost": "100.00",
            "actual_hours": "3.000000",
            "actual_cost": "120.00",
            "variance_hours": "0.500000",
            "variance_cost": "20.00",
        }
    ]
    assert report["overhead"] == [
        {
            "work_center": "WC",
            "planned_hours": "2.500000",
            "planned_cost": "25.00",
            "actual_hours": "3.000000",
            "actual_cost": "30.00",
            "variance_hours": "0.500000",
            "variance_cost": "5.00",
        }
    ]
    assert report["totals"] == {
        "planned": {
            "material_cost": "139.84",  # 110.00 + 29.84
            "labour_cost": "100.00",
            "overhead_cost": "25.00",
            "total_cost": "264.84",
            "unit_cost": "52.968000",  # 264.84 / 5
        },
        "material_cost": "146.73",  # 120.00 + 26.73
        "labour_cost": "120.00",
        "overhead_cost": "30.00",
        "incurred_cost": "296.73",
        "completed_value": "296.73",  # 178.04 + 118.69: the scrap stayed in the good units
        "settled_variance": "0.00",  # nothing came after the last completion
        "settled_to_finished_goods": "0.00",
        "settled_to_cost_of_sales": "0.00",
        "settled_by_element": {"material": "0.00", "labour": "0.00", "overhead": "0.00"},
        "wip_value": "0.00",
        "unit_cost": "74.182500",  # 296.73 / 4 good
        "unit_cost_with_variance": "74.182500",
    }
    assert wip_report(api)["WO10"] == D(0)
    assert api.balances().get("6401", D(0)) == 0  # nothing settled to cost of sales
    assert api.reconcile() == []


def test_a_late_receipt_revalues_the_material_and_the_settlement(api: Api) -> None:
    run_hand_worked_order(api)
    # Before the issue at 10: RAW (300 + 140) / 40 = 11 a unit, so the issue is 132.00.
    post(api, receipt(5, "RAW", "10", "14"))
    report = cost(api, "WO10")
    raw = report["materials"][0]
    assert (raw["item"], raw["standard_unit_cost"], raw["planned_value"]) == (
        "RAW",
        "11.000000",  # 28 left at 308.00
        "121.00",
    )
    assert (raw["actual_value"], raw["usage_variance_value"]) == ("132.00", "11.00")
    assert raw["price_variance_value"] == "0.00"  # 132.00 − 121.00 − 11.00
    totals = report["totals"]
    # WIP 296.73 + 12 = 308.73; completions 308.73 × 3/5 = 185.24, then the
    # 123.49 left; the settlement stays at nothing.
    assert {k: totals[k] for k in totals if k != "planned"} == {
        "material_cost": "158.73",
        "labour_cost": "120.00",
        "overhead_cost": "30.00",
        "incurred_cost": "308.73",
        "completed_value": "308.73",
        "settled_variance": "0.00",
        "settled_to_finished_goods": "0.00",
        "settled_to_cost_of_sales": "0.00",
        "settled_by_element": {"material": "0.00", "labour": "0.00", "overhead": "0.00"},
        "wip_value": "0.00",
        "unit_cost": "77.182500",
        "unit_cost_with_variance": "77.182500",
    }
    assert totals["planned"]["material_cost"] == "150.84"  # 121.00 + 29.84
    assert wip_report(api)["WO10"] == D(0)
    assert api.balances().get("6401", D(0)) == 0
    assert api.reconcile() == []


def test_an_open_order_with_an_unplanned_item_and_reversals(api: Api) -> None:
    setup_workshop(api)
    api.create("/boms", TBL_BOM)
    post(
        api,
        receipt(0, "RAW", "30", "10"),
        receipt(0, "BOLT", "50", "1"),
        receipt(0, "GLUE", "5", "20", lot="L1"),
    )
    create = {"code": "WO20", "item": "TBL", "planned_quantity": "2", "release": True}
    assert api.post("/work-orders", json=create).status_code == 201
    (raw_issue, _, _, _, one_hour, done) = post(
        api,
        issue(10, "RAW", "3", wo="WO20"),
        issue(12, "GLUE", "1", wo="WO20", lot="L1"),  # not in the BOM: 20.00
        issue(13, "BOLT", "8", wo="WO20"),  # 8.00
        labour(14, "2", wo="WO20"),
        labour(15, "1", wo="WO20"),
        # 1 good + 1 scrap: all of the 2 to make, so all of 30 + 20 + 8 + 150 = 208
        completion(20, "1", wo="WO20", scrap="1"),
    )
    post(
        api,
        reversal(21, raw_issue["event_id"]),  # RAW back to 0
        reversal(22, one_hour["event_id"]),  # 2 h left: labour 80.00, overhead 20.00
        reversal(23, done["event_id"]),  # 208 back into WIP; its scrap no longer counts
        # WIP 20 + 8 + 80 + 20 = 128.00; 1 good + 0.5 scrap of 2: 128 × 1.5 / 2 = 96.00
        completion(24, "1", wo="WO20", scrap="0.5"),
    )
    report = cost(api, "WO20")
    assert (report["status"], report["completed_quantity"], report["scrap_quantity"]) == (
        "in_progress",
        "1.000000",
        "0.500000",
    )
    assert [
        (
            m["item"],
            m["planned_quantity"],
            m["planned_value"],
            m["actual_quantity"],
            m["actual_value"],
            m["actual_unit_cost"],
            m["usage_variance_quantity"],
            m["usage_variance_value"],
        )
        for m in report["materials"]
    ] == [
        # nothing issued net: the variance at the standard cost, −4.4 × 10
        ("RAW", "4.400000", "44.00", "0.000000", "0.00", None, "-4.400000", "-44.00"),
        ("BOLT", "8.000000", "8.00", "8.000000", "8.00", "1.000000", "0.000000", "0.00"),
        ("GLUE", "0.000000", "0.00", "1.000000", "20.00", "20.000000", "1.000000", "20.00"),
    ]
    # Each line adds up: planned + usage + price variance = actual.
    assert [m["price_variance_value"] for m in report["materials"]] == ["0.00"] * 3
    # Planned: 30 + 24 × 2 = 78 minutes = 1.3 h: 52.00 labour, 13.00 overhead.
    labour_line = report["labour"][0]
    assert (labour_line["actual_hours"], labour_line["variance_hours"]) == ("2.000000", "0.700000")
    assert (labour_line["planned_cost"], labour_line["variance_cost"]) == ("52.00", "28.00")
    assert report["overhead"][0]["variance_cost"] == "7.00"  # 20.00 − 13.00
    totals = report["totals"]
    assert totals["incurred_cost"] == "128.00"  # 28 + 80 + 20
    assert (totals["completed_value"], totals["settled_variance"]) == ("96.00", None)
    assert totals["wip_value"] == "32.00"  # 128 − 96
    assert D(totals["wip_value"]) == wip_report(api)["WO20"]
    assert (totals["unit_cost"], totals["unit_cost_with_variance"]) == ("96.000000", None)
    assert api.reconcile() == []


def test_an_order_with_nothing_posted_and_an_unknown_one(api: Api) -> None:
    setup_workshop(api)  # WO1 was released before TBL had a BOM: no plan at all
    report = cost(api, "WO1")
    assert (report["materials"], report["labour"], report["overhead"]) == ([], [], [])
    assert report["totals"]["incurred_cost"] == "0.00"
    assert report["totals"]["wip_value"] == "0.00"
    assert report["totals"]["unit_cost"] is None
    assert report["completed_quantity"] == "0.000000"
    missing = api.get("/work-orders/NOPE/cost")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_work_order")


def test_the_effective_moves_of_one_order_sum_only_its_revaluations(api: Api) -> None:
    """The cost report reads one order's moves, revaluations included, without summing
    every revaluation of the tenant: the same effective values as the whole tenant's
    query gives for that order."""
    setup_workshop(api)
    post(api, receipt(0, "RAW", "20", "10"), issue(10, "RAW", "4"), issue(11, "RAW", "3", wo="WO2"))
    post(api, receipt(5, "RAW", "20", "20"))  # back-dated: revalues both orders' issues
    mv, wo = T["stock_move"], T["work_order"]
    everyone = _effective_moves(api.tenant.id)
    with api.db.connect() as conn:
        for code in ("WO1", "WO2"):
            order_id = conn.scalar(
                select(wo.c.id).where(wo.c.tenant_id == api.tenant.id, wo.c.code == code)
            )
            own = _effective_moves(api.tenant.id, work_order_id=order_id)
            mine = conn.execute(select(own.c.id, own.c.value, own.c.effective)).all()
            assert sorted(mine) == sorted(
                conn.execute(
                    select(everyone.c.id, everyone.c.value, everyone.c.effective).where(
                        everyone.c.work_order_id == order_id
                    )
                ).all()
            )
            assert {r.id for r in mine} == set(
                conn.scalars(
                    select(mv.c.id).where(
                        mv.c.tenant_id == api.tenant.id, mv.c.work_order_id == order_id
                    )
                )
            )
            assert any(D(str(r.effective)) != r.value for r in mine), code  # revalued
            sql = str(select(own).compile(conn))
            revaluation_sums = sql[sql.index("FROM stock_revaluation") : sql.index("GROUP BY")]
            assert "work_order_id" in revaluation_sums  # not the tenant's whole history
    # RAW was (200 + 400) / 40 = 15 a unit before the issues
    assert [cost(api, code)["totals"]["material_cost"] for code in ("WO1", "WO2")] == [
        "60.00",
        "45.00",
    ]
    assert (wip_report(api)["WO1"], wip_report(api)["WO2"]) == (D("60.00"), D("45.00"))
    assert api.reconcile() == []
