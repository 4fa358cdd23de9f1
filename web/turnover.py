"""Inventory turnover and days of stock, from figures the ledger gives: pure
functions on Decimal, no I/O.

Over a window of the last `window_days` days (entry dates, today included):

    turnover       = cost of sales in the window / average stock value
    average stock  = (stock value at the window's start + stock value now) / 2
    days of stock  = stock value now / (cost of sales in the window / window_days)

Stock value is raw materials, finished and semi-finished goods and work in progress
(the stock accounts, which the books-check proves equal to the valuation pools and
WIP balances). The value at the window's start is the value now less the change in
the window, and the change in the window is what came in from outside stock
(receipts, labour and overhead absorbed, count gains) less what left it (cost of
sales, count losses): by double entry, minus the movement of every other account.
Without cost of sales in the window, neither figure means anything: both are None
(the page shows "—")."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cloud_api.domain.money import ZERO

WINDOW_DAYS = 90
TURNS_PLACES = Decimal("0.01")
DAYS_PLACES = Decimal("0.1")


@dataclass(frozen=True)
class Turnover:
    cost_of_sales: Decimal  # in the window
    opening_value: Decimal  # stock value at the window's start
    closing_value: Decimal  # stock value now
    window_days: int = WINDOW_DAYS

    @property
    def average_value(self) -> Decimal:
        return (self.opening_value + self.closing_value) / 2

    @property
    def turns(self) -> Decimal | None:
        """Times the average stock was sold in the window (2 places)."""
        if self.cost_of_sales <= 0 or self.average_value <= 0:
            return None
        return (self.cost_of_sales / self.average_value).quantize(TURNS_PLACES)

    @property
    def days_of_stock(self) -> Decimal | None:
        """Days the stock now lasts at the window's daily cost of sales (1 place)."""
        if self.cost_of_sales <= 0:
            return None
        daily = self.cost_of_sales / self.window_days
        return (max(self.closing_value, ZERO) / daily).quantize(DAYS_PLACES)


def turnover(
    closing_value: Decimal,
    outside_stock: dict[str, Decimal],
    cost_of_sales_account: str,
    window_days: int = WINDOW_DAYS,
) -> Turnover:
    """From the stock value now and the window's debit − credit of every account but
    the stock accounts (their sum is minus the change of stock in the window)."""
    change = -sum(outside_stock.values(), ZERO)
    cost_of_sales = outside_stock.get(cost_of_sales_account, ZERO)
    return Turnover(cost_of_sales, closing_value - change, closing_value, window_days)
