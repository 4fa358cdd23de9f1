"""The posting rules, rule by rule, as tables: event → stock moves → Dr/Cr lines.

Each row posts a few setup events and then the event under test on `FakeBooks`, and
checks what the rule plans (the moves, from → to, and how each is valued) and what the
books get (the journal lines of the moves at the values the engine gave them, of the
charges, and the rule's own lines). The figures come from the rules' docstrings and
DESIGN.md §5 worked by hand, never from running the code.

Default chart: 1403 raw materials, 1405 finished goods, 1122 receivables, 1901 pending
losses, 220201 goods received not invoiced, 2211 payroll, 2221 VAT, 5001 WIP, 5101
overhead, 6001 revenue, 6401 cost of sales. Workshop (fakes.workshop): RAW moving
average, BOLT FIFO, GLUE lot-tracked, TBL finished goods; WC labour 40/h, overhead
10/h; WO1 plans 10 TBL, WO2 plans 5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_api.domain import posting_rules as rules
from cloud_api.domain.refs import ItemRef, LocationRef, LotStock
from cloud_api.errors import ErpError, Held, Rejected
from contract import Event
from tests.unit.ledger.fakes import (
    VIRTUAL_KINDS,
    FakeBooks,
    FakeMasterData,
    at,
    close,
    completion,
    count,
    issue,
    labour,
    make_event,
    material_return,
    receipt,
    reversal,
    shipment,
    workshop,
)

Lines = list[tuple[str, D, D]]


@dataclass(frozen=True)
class M:
    """A planned move, as a reader of the table writes it."""

    kind: str
    item: str
    source: str
    destination: str
    quantity: str
    basis: str
    fixed: str | None = None
    work_order: str | None = None
    scrap: str = "0"
    lot: str = ""


def planned(spec: rules.MoveSpec) -> M:
    return M(
        spec.kind,
        spec.item.code,
        spec.source.code,
        spec.destination.code,
        f"{spec.quantity.normalize():f}",
        spec.basis,
        None if spec.fixed_value is None else str(spec.fixed_value),
        spec.work_order.code if spec.work_order else None,
        f"{spec.scrap_quantity.normalize():f}",
        spec.lot,
    )


def dr(account: str, amount: str) -> tuple[str, D, D]:
    return account, D(amount), D(0)


def cr(account: str, amount: str) -> tuple[str, D, D]:
    return account, D(0), D(amount)


@dataclass(frozen=True)
class Row:
    setup: Callable[[], list[Event]]
    event: Callable[[list[Event]], Event]  # given the setup events (a reversal names one)
    moves: list[M]
    lines: Lines
    tweak: Callable[[FakeMasterData], None] | None = None


def none() -> list[Event]:
    return []


def two_raw_receipts() -> list[Event]:
    """RAW: 10 @ 12.50 and 10 @ 13.50, so the moving average is 13.00."""
    return [receipt(0, "RAW", "10", "12.5"), receipt(1, "RAW", "10", "13.5")]


def work_in_progress() -> list[Event]:
    """WO1 collects 140.00: RAW 4 @ 10.00 issued (40.00), 2 h labour (80.00) and
    overhead (20.00)."""
    return [receipt(0, "RAW", "10", "10"), issue(1, "RAW", "4"), labour(2, "2")]


def finished_stock() -> list[Event]:
    return [receipt(0, "TBL", "10", "20")]  # 10 @ 20.00


def closable_order() -> list[Event]:
    """WO2 (plans 5): RAW 4 @ 10.00 issued, all 5 made (the completion takes the
    40.00), then 1 h more (40.00 + 10.00): 50.00 left for the close; 2 shipped."""
    return [
        receipt(0, "RAW", "10", "10"),
        issue(1, "RAW", "4", wo="WO2"),
        completion(2, "5", wo="WO2"),
        labour(3, "1", wo="WO2"),
        shipment(4, "TBL", "2", "60"),
    ]


def backflush_bolts(md: FakeMasterData) -> None:
    md.add_component("WO2", "BOLT", "WH", "10")  # 10 bolts for the 5 tables: 2 a table


def backflush_glue(md: FakeMasterData) -> None:
    md.add_component("WO2", "GLUE", "WH", "5")  # 1 a table
    md.lot_data[("GLUE", "A")] = (date(2026, 9, 1), None)
    md.lot_data[("GLUE", "B")] = (date(2026, 6, 1), None)  # expires first


def finished_goods_policy(md: FakeMasterData) -> None:
    md.policy = "finished_goods"


def labour_times(minutes: float, start: float, stop: float, **extra: Any) -> Event:
    payload = {
        "work_order": "WO1",
        "work_center": "WC",
        "started_at": at(start).isoformat(),
        "stopped_at": at(stop).isoformat(),
        **extra,
    }
    return make_event("labour", minutes, payload)


def journal(minutes: float, *lines: dict[str, Any]) -> Event:
    return make_event("journal_entry", minutes, {"memo": "bank charges", "lines": list(lines)})


RULE_TABLE: dict[str, Row] = {
    # 采购入库: Dr stock / Cr 220201, at the order price.
    "receipt of raw material": Row(
        none,
        lambda _: receipt(5, "RAW", "10", "12.5"),
        [M("receipt", "RAW", "SUPPLIER", "WH", "10", "fixed", "125.00")],
        [dr("1403", "125.00"), cr("220201", "125.00")],
    ),
    "receipt of finished goods, rounded once to the cent": Row(
        none,
        lambda _: receipt(5, "TBL", "3", "0.333333"),  # 0.999999
        [M("receipt", "TBL", "SUPPLIER", "WH", "3", "fixed", "1.00")],
        [dr("1405", "1.00"), cr("220201", "1.00")],
    ),
    # 生产领料: Dr 5001 [WO] / Cr stock, at valuation cost.
    "issue at moving average": Row(
        two_raw_receipts,
        lambda _: issue(5, "RAW", "4"),
        [M("issue", "RAW", "WH", "PRODUCTION", "4", "pool", work_order="WO1")],
        [dr("5001", "52.00"), cr("1403", "52.00")],
    ),
    "issue at FIFO takes the oldest layer first": Row(
        lambda: [receipt(0, "BOLT", "100", "0.12"), receipt(1, "BOLT", "100", "0.13")],
        lambda _: issue(5, "BOLT", "150"),  # 100 × 0.12 + 50 × 0.13
        [M("issue", "BOLT", "WH", "PRODUCTION", "150", "pool", work_order="WO1")],
        [dr("5001", "18.50"), cr("1403", "18.50")],
    ),
    # 退料: Dr stock / Cr 5001, at the average cost the order received the item at.
    "return at the order's average issue cost": Row(
        lambda: [
            receipt(0, "RAW", "10", "10"),
            issue(1, "RAW", "2"),  # 20.00
            receipt(2, "RAW", "10", "13"),  # 8 @ 10 + 10 @ 13 = 210.00 for 18
            issue(3, "RAW", "3"),  # 210 × 3/18 = 35.00
        ],
        lambda _: material_return(5, "RAW", "1"),  # (20 + 35) / 5
        [M("return", "RAW", "PRODUCTION", "WH", "1", "wip_return", work_order="WO1")],
        [dr("1403", "11.00"), cr("5001", "11.00")],
    ),
    # 报工工时: Dr 5001 / Cr 2211 (hours × labour rate); Dr 5001 / Cr 5101 (overhead).
    "labour at the work centre's rates": Row(
        none,
        lambda _: labour(5, "2.5"),
        [],
        [dr("5001", "100.00"), cr("2211", "100.00"), dr("5001", "25.00"), cr("5101", "25.00")],
    ),
    "labour of a graded operator: their rate, the centre's overhead": Row(
        none,
        lambda _: labour(5, "2", operator="SENIOR"),
        [],
        [dr("5001", "110.00"), cr("2211", "110.00"), dr("5001", "20.00"), cr("5101", "20.00")],
    ),
    "labour of an operator without a grade: the centre's rate": Row(
        none,
        lambda _: labour(5, "2", operator="TEMP"),
        [],
        [dr("5001", "80.00"), cr("2211", "80.00"), dr("5001", "20.00"), cr("5101", "20.00")],
    ),
    "labour from a start and a stop scan": Row(
        none,
        lambda _: labour_times(100, 0, 90),  # 1.5 h
        [],
        [dr("5001", "60.00"), cr("2211", "60.00"), dr("5001", "15.00"), cr("5101", "15.00")],
    ),
    # 完工入库: Dr 1405 / Cr 5001, the order's collected cost in proportion.
    "completion takes its share of the WIP": Row(
        work_in_progress,
        lambda _: completion(5, "5"),  # 140.00 × 5/10
        [M("completion", "TBL", "PRODUCTION", "WH", "5", "wip_completion", work_order="WO1")],
        [dr("1405", "70.00"), cr("5001", "70.00")],
    ),
    "completion with scrap: the scrapped units' share goes into the good ones": Row(
        work_in_progress,
        lambda _: completion(5, "4", scrap_quantity="1"),  # 140.00 × (4 + 1)/10
        [
            M(
                "completion",
                "TBL",
                "PRODUCTION",
                "WH",
                "4",
                "wip_completion",
                work_order="WO1",
                scrap="1",
            )
        ],
        [dr("1405", "70.00"), cr("5001", "70.00")],
    ),
    "the completion that reaches the planned quantity takes it all": Row(
        lambda: [*work_in_progress(), completion(3, "3")],  # 42.00 out, 98.00 left
        lambda _: completion(5, "7"),
        [M("completion", "TBL", "PRODUCTION", "WH", "7", "wip_completion", work_order="WO1")],
        [dr("1405", "98.00"), cr("5001", "98.00")],
    ),
    # 倒冲领料: the backflushed components are issued first (lines 1..k), each
    # planned quantity × units / order's planned quantity; the completion takes them.
    "backflush issues the component first, the completion takes it": Row(
        lambda: [receipt(0, "BOLT", "20", "0.5"), labour(1, "1", wo="WO2")],  # 50.00
        lambda _: completion(5, "2", wo="WO2"),  # 4 bolts (2.00); (50 + 2) × 2/5
        [
            M("issue", "BOLT", "WH", "PRODUCTION", "4", "pool", work_order="WO2"),
            M("completion", "TBL", "PRODUCTION", "WH", "2", "wip_completion", work_order="WO2"),
        ],
        [dr("5001", "2.00"), cr("1403", "2.00"), dr("1405", "20.80"), cr("5001", "20.80")],
        tweak=backflush_bolts,
    ),
    "backflush of a lot-tracked component picks the lot expiring first": Row(
        lambda: [
            receipt(0, "GLUE", "5", "1", lot="A"),  # 5.00
            receipt(1, "GLUE", "2", "1.5", lot="B"),  # 3.00: 7 for 8.00
        ],
        lambda _: completion(5, "3", wo="WO2"),  # 3 glue: B 2 (2.29), then A 1 (1.14)
        [
            M("issue", "GLUE", "WH", "PRODUCTION", "2", "pool", work_order="WO2", lot="B"),
            M("issue", "GLUE", "WH", "PRODUCTION", "1", "pool", work_order="WO2", lot="A"),
            M("completion", "TBL", "PRODUCTION", "WH", "3", "wip_completion", work_order="WO2"),
        ],
        [
            dr("5001", "2.29"),  # 8.00 × 2/7
            cr("1403", "2.29"),
            dr("5001", "1.14"),  # 5.71 × 1/5
            cr("1403", "1.14"),
            dr("1405", "2.06"),  # 3.43 × 3/5 = 2.058
            cr("5001", "2.06"),
        ],
        tweak=backflush_glue,
    ),
    # 销售出库: Dr 6401 / Cr 1405 at cost; Dr 1122 / Cr 6001, Cr 2221 output VAT.
    "shipment: cost of sales, and the sale with its VAT": Row(
        finished_stock,
        lambda _: shipment(5, "TBL", "3", "50"),
        [M("shipment", "TBL", "WH", "CUSTOMER", "3", "pool")],
        [
            dr("6401", "60.00"),
            cr("1405", "60.00"),
            dr("1122", "169.50"),
            cr("6001", "150.00"),
            cr("2221", "19.50"),
        ],
    ),
    "shipment: VAT rounded half-up to the cent": Row(
        finished_stock,
        lambda _: shipment(5, "TBL", "1", "0.05"),  # VAT 0.0065
        [M("shipment", "TBL", "WH", "CUSTOMER", "1", "pool")],
        [
            dr("6401", "20.00"),
            cr("1405", "20.00"),
            dr("1122", "0.06"),
            cr("6001", "0.05"),
            cr("2221", "0.01"),
        ],
    ),
    "shipment at another VAT rate": Row(
        finished_stock,
        lambda _: shipment(5, "TBL", "2", "100", vat_rate="0.09"),
        [M("shipment", "TBL", "WH", "CUSTOMER", "2", "pool")],
        [
            dr("6401", "40.00"),
            cr("1405", "40.00"),
            dr("1122", "218.00"),
            cr("6001", "200.00"),
            cr("2221", "18.00"),
        ],
    ),
    # 盘盈 / 盘亏: adjustment ↔ warehouse; 1901 pending losses.
    "count gain at the current unit cost": Row(
        lambda: [receipt(0, "RAW", "10", "12.5")],
        lambda _: count(5, "RAW", "12"),
        [M("count", "RAW", "ADJUSTMENT", "WH", "2", "pool_in")],
        [dr("1403", "25.00"), cr("1901", "25.00")],
    ),
    "count gain at the unit cost given": Row(
        lambda: [receipt(0, "RAW", "10", "12.5")],
        lambda _: count(5, "RAW", "12", unit_cost="11"),
        [M("count", "RAW", "ADJUSTMENT", "WH", "2", "fixed", "22.00")],
        [dr("1403", "22.00"), cr("1901", "22.00")],
    ),
    "count loss at valuation cost": Row(
        lambda: [receipt(0, "RAW", "10", "12.5")],
        lambda _: count(5, "RAW", "7"),
        [M("count", "RAW", "WH", "ADJUSTMENT", "3", "pool")],
        [dr("1901", "37.50"), cr("1403", "37.50")],
    ),
    "count against the stock before it, not after": Row(
        lambda: [receipt(0, "RAW", "10", "12.5"), receipt(9, "RAW", "5", "12.5")],
        lambda _: count(5, "RAW", "10"),  # the later receipt is not yet on hand at 5
        [],
        [],
    ),
    # 关闭工单: what is left in WIP is settled by moves of no quantity.
    "close: residual WIP to cost of sales (default policy)": Row(
        closable_order,
        lambda _: close(10, wo="WO2"),
        [M("settlement", "TBL", "PRODUCTION", "VARIANCE", "0", "wip_residual", work_order="WO2")],
        [dr("6401", "50.00"), cr("5001", "50.00")],
    ),
    "close: the share of the goods on hand to stock (policy finished_goods)": Row(
        closable_order,
        lambda _: close(10, wo="WO2"),  # 3 of 5 on hand: 30.00 to 1405, 20.00 to 6401
        [
            M("settlement", "TBL", "PRODUCTION", "WH", "0", "residual_stock", work_order="WO2"),
            M(
                "settlement",
                "TBL",
                "PRODUCTION",
                "VARIANCE",
                "0",
                "wip_residual",
                work_order="WO2",
            ),
        ],
        [dr("1405", "30.00"), cr("5001", "30.00"), dr("6401", "20.00"), cr("5001", "20.00")],
        tweak=finished_goods_policy,
    ),
    # A manual entry is booked as given.
    "manual journal entry": Row(
        none,
        lambda _: journal(
            5, {"account": "6603", "debit": "12.34"}, {"account": "1002", "credit": "12.34"}
        ),
        [],
        [dr("6603", "12.34"), cr("1002", "12.34")],
    ),
    # Reversals are planned by the service (FakeBooks restates it): each move mirrored
    # at the value of the move it reverses, charges negated, own lines swapped.
    "reversal of a receipt": Row(
        lambda: [receipt(0, "RAW", "10", "12.5")],
        lambda setup: reversal(5, setup[0]),
        [M("receipt", "RAW", "WH", "SUPPLIER", "10", "mirror")],
        [dr("220201", "125.00"), cr("1403", "125.00")],
    ),
    "reversal of labour": Row(
        lambda: [labour(0, "2.5")],
        lambda setup: reversal(5, setup[0]),
        [],
        [dr("2211", "100.00"), cr("5001", "100.00"), dr("5101", "25.00"), cr("5001", "25.00")],
    ),
    "reversal of a shipment": Row(
        lambda: [*finished_stock(), shipment(1, "TBL", "3", "50")],
        lambda setup: reversal(5, setup[1]),
        [M("shipment", "TBL", "CUSTOMER", "WH", "3", "mirror")],
        [
            dr("1405", "60.00"),
            cr("6401", "60.00"),
            cr("1122", "169.50"),
            dr("6001", "150.00"),
            dr("2221", "19.50"),
        ],
    ),
}


@pytest.mark.parametrize("row", RULE_TABLE.values(), ids=RULE_TABLE.keys())
def test_each_rule_plans_its_moves_and_books_its_lines(row: Row) -> None:
    books = FakeBooks()
    if row.tweak:
        row.tweak(books.md)
    setup = row.setup()
    books.post_ok(*setup)
    event = row.event(setup)
    assert [planned(spec) for spec in books.plan(event).moves] == row.moves
    books.post_ok(event)
    assert books.entry(event) == row.lines
    assert sum(line[1] for line in row.lines) == sum(line[2] for line in row.lines)


def test_moves_carry_their_parties_and_the_sale_its_dimensions() -> None:
    md = workshop()
    plan = rules.RULES["purchase_receipt"](receipt(0, "RAW", "1", "1"), md)  # type: ignore[operator]
    assert plan.moves[0].supplier == md.suppliers["SUP"] and plan.moves[0].customer is None
    ship = rules.RULES["sales_shipment"](shipment(0, "TBL", "1", "1"), md)  # type: ignore[operator]
    assert ship.moves[0].customer == md.customers["CUS"]
    assert {(line.customer, line.item) for line in ship.lines} == {
        (md.customers["CUS"], md.items["TBL"])
    }


def test_labour_charges_name_the_order_the_centre_and_the_cost_element() -> None:
    md = workshop()
    plan = rules.RULES["labour"](labour(0, "1.25"), md)  # type: ignore[operator]
    assert [
        (c.line_no, c.work_order.code, c.work_center_id, c.cost_element, c.hours, c.rate, c.value)
        for c in plan.charges
    ] == [
        (1, "WO1", md.work_centers["WC"].id, "labour", D("1.25"), D(40), D("50.00")),
        (2, "WO1", md.work_centers["WC"].id, "overhead", D("1.25"), D(10), D("12.50")),
    ]
    assert [c.credit_account for c in plan.charges] == [rules.PAYROLL, rules.OVERHEAD]


# -- the location-pair rule -----------------------------------------------------------------
RAW = ItemRef(rules.uuid.uuid4(), "RAW", "moving_average", False, "1403", "6401", "6001")
TBL = ItemRef(rules.uuid.uuid4(), "TBL", "moving_average", False, "1405", "6401", "6001")
MAPPED = ItemRef(rules.uuid.uuid4(), "SPARE", "fifo", False, "1411", "6402", "6051")


def loc(kind: str) -> LocationRef:
    return LocationRef(rules.uuid.uuid4(), kind.upper(), kind)


PAIR_TABLE = [
    # source, destination, item, value → Dr, Cr
    ("supplier", "warehouse", RAW, "10.00", "1403", "220201"),
    ("supplier", "bin", TBL, "10.00", "1405", "220201"),
    ("warehouse", "production", RAW, "10.00", "5001", "1403"),
    ("production", "warehouse", TBL, "10.00", "1405", "5001"),
    ("warehouse", "customer", TBL, "10.00", "6401", "1405"),
    ("customer", "warehouse", TBL, "10.00", "1405", "6401"),
    ("adjustment", "warehouse", RAW, "10.00", "1403", "1901"),
    ("warehouse", "adjustment", RAW, "10.00", "1901", "1403"),
    ("warehouse", "scrap", RAW, "10.00", "1901", "1403"),
    ("production", "variance", TBL, "10.00", "6401", "5001"),
    ("warehouse", "bin", RAW, "10.00", "1403", "1403"),  # a transfer nets to nothing
    ("supplier", "warehouse", MAPPED, "10.00", "1411", "220201"),  # a category's own accounts
    ("warehouse", "customer", MAPPED, "10.00", "6402", "1411"),
    # a negative value (a revaluation down) swaps the sides
    ("warehouse", "production", RAW, "-2.50", "1403", "5001"),
    ("production", "variance", TBL, "-0.01", "5001", "6401"),
]


@pytest.mark.parametrize(("source", "destination", "item", "value", "debit", "credit"), PAIR_TABLE)
def test_journal_lines_of_a_move_follow_the_kinds_of_its_locations(
    source: str, destination: str, item: ItemRef, value: str, debit: str, credit: str
) -> None:
    lines = rules.journal_lines_of_move(item, loc(source), loc(destination), D(value))
    amount = abs(D(value))
    assert [(x.account, x.debit, x.credit, x.item) for x in lines] == [
        (debit, amount, D(0), item),
        (credit, D(0), amount, item),
    ]


def test_a_move_of_no_value_books_no_line() -> None:
    assert rules.journal_lines_of_move(RAW, loc("warehouse"), loc("production"), D("0.00")) == []


SIDES = sorted(rules.ACCOUNT_OF_SIDE)


@given(
    source=st.sampled_from(SIDES),
    destination=st.sampled_from(SIDES),
    item=st.sampled_from([RAW, TBL, MAPPED]),
    value=st.decimals(min_value=D("-1e9"), max_value=D("1e9"), places=2),
)
def test_property_the_lines_of_any_move_balance(
    source: str, destination: str, item: ItemRef, value: D
) -> None:
    lines = rules.journal_lines_of_move(item, loc(source), loc(destination), value)
    assert sum(x.debit for x in lines) == sum(x.credit for x in lines) == abs(value)
    assert all((x.debit > 0) != (x.credit > 0) for x in lines)
    assert len(lines) == (0 if value == 0 else 2)


def test_the_lines_of_a_negative_charge_swap_sides() -> None:
    order = workshop().work_orders["WO1"]
    charge = rules.ChargeSpec(1, order, None, "labour", D(-2), D(40), D("-80.00"), rules.PAYROLL)
    assert [(x.account, x.debit, x.credit) for x in rules.journal_lines_of_charge(charge)] == [
        dr("2211", "80.00"),
        cr("5001", "80.00"),
    ]


# -- refusals -------------------------------------------------------------------------------
def bad_journal(*lines: dict[str, Any]) -> Callable[[], Event]:
    return lambda: journal(5, *lines)


REFUSALS: dict[str, tuple[Callable[[], Event], type[ErpError], str]] = {
    "a lot-tracked item without its lot": (
        lambda: receipt(0, "GLUE", "1", "1"),
        Rejected,
        "lot_required",
    ),
    "a lot on an item without lots": (
        lambda: issue(0, "RAW", "1", lot="L1"),
        Rejected,
        "lot_not_tracked",
    ),
    "an expiry without a lot": (
        lambda: receipt(0, "RAW", "1", "1", expiry="2026-12-31"),
        Rejected,
        "expiry_without_lot",
    ),
    "stock held in a virtual location": (
        lambda: receipt(0, "RAW", "1", "1", location="CUSTOMER"),
        Rejected,
        "location_not_internal",
    ),
    "an issue to a draft order": (
        lambda: issue(0, "RAW", "1", wo="WO-DRAFT"),
        Held,
        "work_order_not_released",
    ),
    "labour on a closed order": (lambda: labour(0, "1", wo="WO-DONE"), Held, "work_order_closed"),
    "the close of a closed order": (lambda: close(0, wo="WO-DONE"), Held, "work_order_closed"),
    "a scanned issue of a backflushed component": (
        lambda: issue(0, "BOLT", "1", wo="WO2"),
        Rejected,
        "component_is_backflushed",
    ),
    "labour with hours and times": (
        lambda: labour_times(5, 0, 60, hours="1"),
        Rejected,
        "labour_hours_and_times",
    ),
    "labour with neither": (
        lambda: make_event("labour", 0, {"work_order": "WO1", "work_center": "WC"}),
        Rejected,
        "labour_without_hours",
    ),
    "labour that stops before it starts": (
        lambda: labour_times(5, 60, 30),
        Rejected,
        "labour_stop_before_start",
    ),
    "labour that stops when it starts": (
        lambda: labour_times(5, 30, 30),
        Rejected,
        "labour_stop_before_start",
    ),
    "a journal line with a debit and a credit": (
        bad_journal(
            {"account": "6603", "debit": "1", "credit": "1"}, {"account": "1002", "credit": "0"}
        ),
        Rejected,
        "bad_journal_line",
    ),
    "a journal line with neither": (
        bad_journal({"account": "6603", "debit": "1"}, {"account": "1002"}),
        Rejected,
        "bad_journal_line",
    ),
    "an account not in the chart": (
        bad_journal({"account": "9999", "debit": "1"}, {"account": "1002", "credit": "1"}),
        Rejected,
        "unknown_account",
    ),
    "a stock account by hand": (
        bad_journal({"account": "1403", "debit": "1"}, {"account": "1002", "credit": "1"}),
        Rejected,
        "control_account",
    ),
    "WIP by hand": (
        bad_journal({"account": "5001", "debit": "1"}, {"account": "1002", "credit": "1"}),
        Rejected,
        "control_account",
    ),
    "receivables without a customer": (
        bad_journal({"account": "1122", "debit": "1"}, {"account": "6001", "credit": "1"}),
        Rejected,
        "customer_required",
    ),
    "an unbalanced entry": (
        bad_journal({"account": "6603", "debit": "1.00"}, {"account": "1002", "credit": "0.99"}),
        Rejected,
        "unbalanced_entry",
    ),
}


@pytest.mark.parametrize(("make", "error", "code"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_rule_refuses_with_a_typed_error_and_a_stable_code(
    make: Callable[[], Event], error: type[ErpError], code: str
) -> None:
    md = workshop()
    backflush_bolts(md)
    event = make()
    with pytest.raises(ErpError) as refused:
        rules.RULES[event.type](event, md)  # type: ignore[operator]
    assert (type(refused.value), refused.value.code) == (error, code)
    assert refused.value.message  # says what was wrong


ORDER_STATUSES = [  # every status a work order takes (services/work_orders, ingest)
    ("draft", "work_order_not_released"),
    ("released", None),
    ("in_progress", None),
    ("completed", None),  # late issues, labour and completions still post
    ("closed", "work_order_closed"),
    ("cancelled", "work_order_closed"),
]


@pytest.mark.parametrize(("status", "code"), ORDER_STATUSES)
def test_which_order_statuses_take_postings(status: str, code: str | None) -> None:
    md = workshop()
    md.set_status("WO1", status)
    for event in (issue(0, "RAW", "1"), labour(0, "1"), completion(0, "1"), close(0)):
        if code is None:
            rules.RULES[event.type](event, md)  # type: ignore[operator]
            continue
        with pytest.raises(Held) as held:
            rules.RULES[event.type](event, md)  # type: ignore[operator]
        assert held.value.code == code


def test_a_backflush_short_of_lots_holds_the_completion_and_says_what_is_there() -> None:
    books = FakeBooks()
    backflush_glue(books.md)
    books.post_ok(receipt(0, "GLUE", "1", "1", lot="A"))
    (result,) = books.post(completion(5, "3", wo="WO2"))  # needs 3 glue, 1 on hand
    assert (result.status, result.code) == ("held", "backflush_lot_unavailable")
    assert books.entry(completion(5, "3", wo="WO2")) == []


# -- lot picking (FEFO, then FIFO, then by code) -------------------------------------------
def lot(code: str, quantity: str, expiry: str | None = None, received: float | None = None):
    return LotStock(
        code,
        D(quantity),
        date.fromisoformat(expiry) if expiry else None,
        at(received) if received is not None else None,
    )


PICKS = [
    # lots on hand, needed → picks
    ([lot("A", "5", "2026-09-01"), lot("B", "2", "2026-06-01")], "3", [("B", "2"), ("A", "1")]),
    ([lot("A", "5"), lot("B", "5", "2027-01-01")], "1", [("B", "1")]),  # no expiry: last
    ([lot("A", "5", received=10), lot("B", "5", received=5)], "6", [("B", "5"), ("A", "1")]),
    ([lot("B", "5"), lot("A", "5")], "5", [("A", "5")]),  # then by code
    ([lot("A", "0", "2026-01-01"), lot("B", "4")], "4", [("B", "4")]),  # empty lots skipped
    ([lot("A", "2"), lot("B", "3")], "5", [("A", "2"), ("B", "3")]),  # exactly enough
]


@pytest.mark.parametrize(("lots", "needed", "picks"), PICKS)
def test_pick_lots_fefo_then_fifo_then_code(
    lots: list[LotStock], needed: str, picks: list[tuple[str, str]]
) -> None:
    item, where = workshop().items["GLUE"], workshop().locations["WH"]
    got = rules.pick_lots(item, where, D(needed), lots)
    assert [(code, str(quantity)) for code, quantity in got] == picks


def test_pick_lots_holds_rather_than_drive_a_lot_negative() -> None:
    item, where = workshop().items["GLUE"], workshop().locations["WH"]
    with pytest.raises(Held) as held:
        rules.pick_lots(item, where, D("5.000001"), [lot("A", "2"), lot("B", "3")])
    assert held.value.code == "backflush_lot_unavailable"
    assert held.value.details == {"item": "GLUE", "needed": "5.000001", "available": "5"}


# -- which plans read the ledger --------------------------------------------------------------
def test_which_plans_depend_on_the_ledger() -> None:
    md = workshop()
    assert rules.plan_reads_ledger(count(0, "RAW", "1"), md)
    assert not rules.plan_reads_ledger(receipt(0, "RAW", "1", "1"), md)
    assert not rules.plan_reads_ledger(completion(0, "1", wo="WO2"), md)
    assert not rules.plan_reads_ledger(close(0, wo="WO2"), md)
    backflush_bolts(md)
    finished_goods_policy(md)
    assert rules.plan_reads_ledger(completion(0, "1", wo="WO2"), md)
    assert not rules.plan_reads_ledger(completion(0, "1", wo="WO1"), md)
    assert rules.plan_reads_ledger(close(0, wo="WO2"), md)


# -- labour hours --------------------------------------------------------------------------------
def test_labour_hours_from_times_round_half_up_to_a_micro_hour() -> None:
    event = labour_times(100, 0, 61)  # 61 min = 1.0166666… h
    assert rules.labour_hours(event.payload) == D("1.016667")  # type: ignore[arg-type]


def test_labour_hours_from_times_are_exact_at_a_half_micro_hour() -> None:
    """Hours from two times are exact decimals: a half micro-hour rounds half-even up
    to 0.000001 (through a float it came out 0.000000)."""
    event = labour_times(100, 0, 0.00003)  # 1.8 ms = 0.0000005 h exactly → 0.000001
    assert rules.labour_hours(event.payload) == D("0.000001")  # type: ignore[arg-type]


# -- properties -----------------------------------------------------------------------------------
money_amounts = st.decimals(min_value=D("0"), max_value=D("99999"), places=2)
quantities = st.integers(min_value=1, max_value=50).map(str)
prices = st.decimals(min_value=D("0"), max_value=D("500"), places=6).map(str)
rates = st.decimals(min_value=D("0"), max_value=D("1"), places=6).map(str)


@given(quantity=quantities, price=prices, vat_rate=rates)
def test_property_a_sale_balances_and_its_vat_is_rounded_once(
    quantity: str, price: str, vat_rate: str
) -> None:
    md = workshop()
    plan = rules.RULES["sales_shipment"](  # type: ignore[operator]
        shipment(0, "TBL", quantity, price, vat_rate=vat_rate), md
    )
    receivable, revenue, vat = plan.lines
    expected_revenue = (D(quantity) * D(price)).quantize(D("0.01"), rounding="ROUND_HALF_UP")
    assert revenue.credit == expected_revenue
    assert vat.credit == (expected_revenue * D(vat_rate)).quantize(
        D("0.01"), rounding="ROUND_HALF_UP"
    )
    assert receivable.debit == revenue.credit + vat.credit
    assert [receivable.account, revenue.account, vat.account] == ["1122", "6001", "2221"]


@given(amounts=st.lists(money_amounts.filter(lambda a: a > 0), min_size=1, max_size=6))
def test_property_a_balanced_manual_entry_is_booked_as_given(amounts: list[D]) -> None:
    lines = [{"account": "6602", "debit": str(a)} for a in amounts]
    lines.append({"account": "1002", "credit": str(sum(amounts))})
    if len(lines) < 2:
        return
    plan = rules.RULES["journal_entry"](journal(0, *lines), workshop())  # type: ignore[operator]
    assert [(x.account, x.debit, x.credit) for x in plan.lines] == [
        (line["account"], D(line.get("debit", "0")), D(line.get("credit", "0"))) for line in lines
    ]
    skewed = [*lines[:-1], {"account": "1002", "credit": str(sum(amounts) + D("0.01"))}]
    with pytest.raises(Rejected) as refused:
        rules.RULES["journal_entry"](journal(0, *skewed), workshop())  # type: ignore[operator]
    assert refused.value.code == "unbalanced_entry"


minutes = st.integers(min_value=0, max_value=600)
events = st.one_of(
    st.builds(receipt, minutes, st.sampled_from(["RAW", "BOLT", "TBL"]), quantities, prices),
    st.builds(issue, minutes, st.sampled_from(["RAW", "BOLT"]), quantities, st.just("WO1")),
    st.builds(material_return, minutes, st.sampled_from(["RAW", "BOLT"]), quantities),
    st.builds(labour, minutes, quantities),
    st.builds(completion, minutes, st.integers(1, 4).map(str)),
    st.builds(shipment, minutes, st.just("TBL"), quantities, prices),
    st.builds(count, minutes, st.sampled_from(["RAW", "BOLT"]), quantities),
    st.builds(close, minutes, st.sampled_from(["WO1", "WO2"])),
)


@settings(max_examples=60, deadline=None)
@given(history=st.lists(events, min_size=1, max_size=25))
def test_property_every_posted_entry_balances_and_the_books_agree(history: list[Event]) -> None:
    """Whatever posts, in whatever order it arrives: each event's entry (its own lines
    and the revaluations it caused) balances, and the stock and WIP accounts equal
    what the pools hold, to the cent."""
    books = FakeBooks(snapshot_every=3)
    for event in history:
        (result,) = books.post(event)
        if result.status != "posted":
            assert result.status == "held", result
            continue
        lines = books.entry(event)
        assert sum(x[1] for x in lines) == sum(x[2] for x in lines), lines
        assert all((x[1] > 0) != (x[2] > 0) for x in lines), lines
    balances = books.balances()
    stock = {"1403": D(0), "1405": D(0)}
    wip = D(0)
    for key, (pool, _, _) in books.history.cache.items():
        if key[0] == "stock":
            stock[books.md.item_by_id(key[1]).stock_account] += pool.value  # type: ignore[arg-type,union-attr]
            assert pool.quantity >= 0  # type: ignore[union-attr]
        else:
            wip += pool.value
    assert {a: balances.get(a, D(0)) for a in stock} == stock
    assert balances.get("5001", D(0)) == wip


def test_the_workshop_has_every_virtual_location_a_rule_names() -> None:
    md = workshop()
    assert {md.virtual_location(kind).kind for kind in VIRTUAL_KINDS} == set(VIRTUAL_KINDS)
