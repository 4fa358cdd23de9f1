"""The read models the portal and the API share (cloud_api/reporting): account roles
come from the tenant's chart and item categories, never from literal account codes,
and the API's report figures equal the portal's for the same tenant."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from cloud_api.db import models as m
from cloud_api.reporting.chart import raw_material_accounts
from tests.factory import setup_workshop
from tests.portal_helpers import Portal
from tests.test_portal import (
    _Setup,
    card,
    month_of_work,
    owner,
    post_events,
    receipt,
    row_text,
    shipment,
    text_of,
    this_month,
)

__all__ = ["owner"]  # the fixture, imported for pytest

T = m.SQLModel.metadata.tables


def money(amount: Any) -> str:
    """An API decimal as the portal shows it in English (CN¥1,234.50, -CN¥10.00)."""
    value = Decimal(amount)
    return f"{'-' if value < 0 else ''}CN¥{abs(value):,.2f}"


def _category(
    db: Engine, portal: Portal, category: str, account: tuple[str, str, str], stock: str, cogs: str
) -> None:
    """A new account (code, English name, kind) and an item category booked to the
    stock and cost-of-sales accounts given, written as the tenant's chart would hold them."""
    tenant_id = uuid.UUID(portal.api("GET", "/me").json()["tenant_id"])
    code, name, kind = account
    side = "credit" if kind in ("liability", "equity", "revenue") else "debit"
    with db.begin() as conn:
        conn.execute(
            T["account"].insert(),
            {"tenant_id": tenant_id, "code": code, "name_zh": name, "name_en": name}
            | {"kind": kind, "normal_side": side},
        )
        conn.execute(
            T["item_category"].insert(),
            {"tenant_id": tenant_id, "code": category, "name": category, "stock_account": stock}
            | {"cogs_account": cogs, "revenue_account": "6001"},
        )


def _raw_materials_on_1404(db: Engine, portal: Portal) -> None:
    """The tenant books a new raw-material category, MAT, to its own stock account 1404
    (not the default chart's 1403), and buys a raw item of it and a finished one."""
    _category(db, portal, "MAT", ("1404", "Materials", "asset"), stock="1404", cogs="6401")
    setup = _Setup(portal)
    setup.create("/items", {"code": "OAK", "name": "Oak", "kind": "raw", "category_code": "MAT"})
    setup.create("/items", {"code": "CHAIR", "name": "Chair", "kind": "finished"})
    setup.create("/suppliers", {"code": "SUP", "name": "Supplier"})
    results = post_events(portal, receipt("OAK", "10", "10"), receipt("CHAIR", "2", "7"))
    assert [r["status"] for r in results] == ["posted", "posted"], results


def test_raw_materials_on_another_stock_account_count_as_raw(db: Engine, owner: Portal) -> None:
    _raw_materials_on_1404(db, owner)
    page = owner.get("/").text
    assert "CN¥100.00" in card(page, "stock-raw"), card(page, "stock-raw")
    assert "CN¥14.00" in card(page, "stock-finished"), card(page, "stock-finished")
    assert "CN¥100.00" not in card(page, "stock-finished")
    assert "CN¥114.00" in card(page, "stock-total")
    assert "CN¥114.00" in text_of(owner.get("/inventory").text, "inventory-total")
    api = owner.api("GET", "/reports/dashboard")
    assert api.status_code == 200, api.text
    value = api.json()["stock_value"]
    assert (money(value["raw"]), money(value["finished"])) == ("CN¥100.00", "CN¥14.00")
    assert money(value["total"]) == "CN¥114.00" and money(value["wip"]) == "CN¥0.00"
    by_category = {
        c["code"]: (c["stock_account"], Decimal(c["value"])) for c in value["by_category"]
    }
    assert by_category == {"MAT": ("1404", Decimal(100)), "FG": ("1405", Decimal(14))}


def test_an_account_is_raw_material_when_its_categories_hold_only_raw_items() -> None:
    kinds = {"1404": {"raw"}, "1405": {"finished", "semi_finished"}, "1403": set()}
    kinds |= {"1406": set(), "1408": {"raw", "finished"}}
    # 1403 holds no items yet: the default chart's role; 1406 likewise, not raw
    assert raw_material_accounts(kinds) == {"1404", "1403"}


def test_the_api_dashboard_equals_the_portals(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    _Setup(owner).create(
        "/items", {"code": "SCREW", "name": "Screw", "kind": "raw"} | {"safety_stock": "50"}
    )
    results = post_events(owner, *month_of_work(), _late_receipt())
    assert [r["status"] for r in results] == ["posted"] * 5 + ["held"], results
    page = owner.get("/").text
    api = owner.api("GET", "/reports/dashboard").json()
    value = api["stock_value"]
    for card_id, key in [("stock-raw", "raw"), ("stock-wip", "wip")]:
        assert money(value[key]) in card(page, card_id), (key, value[key])
    assert money(value["finished"]) in card(page, "stock-finished")
    assert (
        money(value["total"]) in card(page, "stock-total") and money(value["total"]) == "CN¥105.00"
    )
    sales = api["sales_this_month"]
    assert money(sales["revenue"]) == "CN¥100.00" and money(sales["margin"]) == "CN¥55.00"
    assert money(sales["revenue"]) in card(page, "revenue")
    assert money(sales["margin"]) in card(page, "margin")
    assert api["below_safety_stock"] == 1 and "SCREW" in card(page, "below-safety")
    assert api["exceptions"] == {"held": 1, "rejected": 0}
    assert api["receivables_by_age"] == {
        "0-30": "113.00",
        "31-60": "0",
        "61-90": "0",
        "90+": "0",
    } or (
        {k: Decimal(v) for k, v in api["receivables_by_age"].items()}
        == {"0-30": Decimal(113), "31-60": 0, "61-90": 0, "90+": 0}
    )


def _late_receipt() -> dict[str, Any]:
    """A receipt of an item nobody created: held in the exception queue."""
    return receipt("NOSUCH", "1", "1")


def test_the_api_statements_equal_the_portals(db: Engine, owner: Portal) -> None:
    """Cost of sales is every category's cost-of-sales account, not one literal code."""
    setup_workshop(_Setup(owner))
    _category(db, owner, "GOODS", ("6402", "Cost of goods", "expense"), stock="1405", cogs="6402")
    _Setup(owner).create(
        "/items", {"code": "VASE", "name": "Vase", "kind": "finished"} | {"category_code": "GOODS"}
    )
    vase = receipt("VASE", "2", "30")
    sold = shipment("CUS", "1", "80", days_ago=0)
    sold["payload"] = sold["payload"] | {"item": "VASE"}
    results = post_events(owner, *month_of_work(), vase, sold)
    assert [r["status"] for r in results] == ["posted"] * 7, results
    month = this_month()
    page = owner.get(f"/finance/statements?period={month}").text
    income = owner.api("GET", "/reports/income-statement", params={"period": month}).json()
    assert income["period"] == month
    assert {ln["code"] for ln in income["cost_of_sales"]["lines"]} == {"6401", "6402"}
    assert money(income["cost_of_sales"]["total"]) == "CN¥75.00"  # 45 tables + 30 vase
    assert row_text(page, "is-cost-of-sales").endswith(money(income["cost_of_sales"]["total"]))
    assert row_text(page, "is-revenue").endswith(money(income["revenue"]["total"]))
    assert row_text(page, "is-gross-profit").endswith(money(income["gross_profit"]))
    assert money(income["gross_profit"]) == "CN¥105.00"  # 180 − 75
    assert row_text(page, "is-profit").endswith(money(income["profit"]))
    sheet = owner.api("GET", "/reports/balance-sheet", params={"period": month}).json()
    assert sheet["balances"] is True
    for row, key in [("bs-assets", "assets"), ("bs-production", "production")]:
        assert row_text(page, row).endswith(money(sheet[key]["total"])), (row, sheet[key])
    assert row_text(page, "bs-liabilities").endswith(money(sheet["liabilities"]["total"]))
    assert row_text(page, "bs-total-assets").endswith(money(sheet["total_assets"]))
    refused = owner.api("GET", "/reports/balance-sheet", params={"period": "2026-13"})
    assert refused.status_code == 422


def test_the_api_aging_equals_the_portals(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    stock = receipt("TBL", "10", "50", minutes_ago=130 * 1440)
    shipped = [shipment("CUS", "1", "100", days) for days in (10, 45, 75, 100)]
    results = post_events(owner, stock, *shipped)
    assert [r["status"] for r in results] == ["posted"] * 5, results
    page = owner.get("/finance/receivables").text
    api = owner.api("GET", "/reports/aging").json()
    (row,) = api["customers"]
    figures = [money(row["buckets"][b]) for b in ("0-30", "31-60", "61-90", "90+")]
    assert figures == ["CN¥113.00"] * 4 and money(row["total"]) == "CN¥452.00"
    assert row_text(page, "customer-CUS") == " ".join(["CUS · Customer", *figures, "CN¥452.00"])
    assert [money(v) for v in api["totals"].values()] == figures
