"""Valuation math with hand-computed examples (no database)."""

from decimal import Decimal as D

import pytest

from cloud_api.domain.money import share
from cloud_api.domain.pools import StockPool, WipPool
from cloud_api.errors import Held


def test_moving_average_hand_example() -> None:
    pool = StockPool("moving_average", "RAW in WH")
    pool.receive(D("10"), D("100.00"), "", "r1")  # 10 @ 10.00
    pool.receive(D("20"), D("260.00"), "", "r2")  # 20 @ 13.00 → average 12.00
    assert pool.issue(D("15"), "") == D("180.00")
    assert (pool.quantity, pool.value) == (D("15"), D("180.00"))
    pool.receive(D("5"), D("70.00"), "", "r3")  # (180 + 70) / 20 = 12.50
    assert pool.current_unit_cost() == D("12.500000")


def test_moving_average_rounding_residue_is_carried() -> None:
    pool = StockPool("moving_average", "RAW in WH")
    pool.receive(D("3"), D("10.00"), "", "r1")  # 3.333… each
    taken = [pool.issue(D("1"), "") for _ in range(3)]
    assert taken == [D("3.33"), D("3.34"), D("3.33")]  # the last takes all that is left
    assert sum(taken) == D("10.00")
    assert (pool.quantity, pool.value) == (D("0"), D("0.00"))


def test_fifo_takes_oldest_layers_first() -> None:
    pool = StockPool("fifo", "BOLT in WH")
    pool.receive(D("100"), D("12.00"), "", "r1")  # 0.12
    pool.receive(D("100"), D("13.00"), "", "r2")  # 0.13
    assert pool.issue(D("150"), "") == D("18.50")  # 12.00 + 50 × 0.13
    assert pool.value == D("6.50")
    assert [(layer.ref, layer.quantity_left) for layer in pool.layers] == [("r2", D("50"))]


def test_fifo_layer_residue_never_accumulates() -> None:
    pool = StockPool("fifo", "BOLT in WH")
    pool.receive(D("3"), D("1.00"), "", "r1")
    assert [pool.issue(D("1"), "") for _ in range(3)] == [D("0.33"), D("0.34"), D("0.33")]
    assert pool.value == D("0.00") and not pool.layers


def test_issue_more_than_on_hand_is_refused_and_changes_nothing() -> None:
    pool = StockPool("moving_average", "RAW in WH")
    pool.receive(D("2"), D("20.00"), "", "r1")
    with pytest.raises(Held) as info:
        pool.issue(D("3"), "")
    assert info.value.code == "insufficient_stock"
    assert (pool.quantity, pool.value) == (D("2"), D("20.00"))


def test_lot_must_hold_enough_even_if_the_item_does() -> None:
    pool = StockPool("moving_average", "GLUE in WH")
    pool.receive(D("5"), D("50.00"), "A", "r1")
    pool.receive(D("5"), D("50.00"), "B", "r2")
    with pytest.raises(Held):
        pool.issue(D("6"), "A")


def test_fifo_reversal_of_a_consumed_receipt_is_refused() -> None:
    pool = StockPool("fifo", "BOLT in WH")
    pool.receive(D("10"), D("10.00"), "", "r1")
    pool.receive(D("10"), D("12.00"), "", "r2")
    pool.issue(D("1"), "")  # from r1
    with pytest.raises(Held) as info:
        pool.remove(D("10"), D("10.00"), "", "r1")
    assert info.value.code == "reversal_not_possible"


def test_wip_completion_rule_and_returns() -> None:
    wip = WipPool("WO1", planned_quantity=D("10"))
    wip.add_material("RAW", D("4"), D("40.00"))
    wip.charge(D("60.00"))
    assert wip.return_value("RAW", D("1")) == D("10.00")
    first = wip.completion_value(D("4"))  # 100 × 4/10
    assert first == D("40.00")
    wip.complete(D("4"), first, D("4"))
    assert wip.completion_value(D("6")) == D("60.00")  # the last takes all
    with pytest.raises(Held):
        wip.return_value("RAW", D("5"))


@pytest.mark.parametrize(
    ("total", "part", "whole", "expected"),
    [
        (D("10.00"), D("1"), D("3"), D("3.33")),
        (D("10.00"), D("2"), D("3"), D("6.67")),
        (D("10.00"), D("3"), D("3"), D("10.00")),
        (D("0.05"), D("1"), D("2"), D("0.03")),
    ],
)
def test_share_rounds_half_up_and_the_whole_takes_all(
    total: D, part: D, whole: D, expected: D
) -> None:
    assert share(total, part, whole) == expected
