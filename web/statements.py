"""The financial statements and the receivables' aging, computed from account sums
and ledger lines: pure functions on Decimal, no I/O.

The balance sheet holds because every journal entry balances: over all accounts
Σ(debit − credit) = 0, so

    assets + production cost accounts (5001 WIP, 5101 overhead)      [debit − credit]
  = liabilities + equity                                             [credit − debit]
  + revenue − expenses, not yet closed to equity                     (the profit)

The cost-kind accounts are inventory (work in progress) and the overhead not yet
absorbed, so the sheet shows them with the assets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from cloud_api.domain.money import ZERO
from web.queries import AccountSums, ReceivableLine

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
COST_OF_SALES = "6401"
DEBIT_KINDS = frozenset({"asset", "cost", "expense"})
BUCKETS = ((30, "0-30"), (60, "31-60"), (90, "61-90"), (None, "90+"))


def valid_period(text: str) -> bool:
    return bool(PERIOD.match(text)) and 1900 < int(text[:4]) < 3000


def balance(a: AccountSums) -> Decimal:
    """The balance on the account's natural side for its kind: debit − credit for
    assets, costs and expenses; credit − debit for the rest."""
    return a.debit - a.credit if a.kind in DEBIT_KINDS else a.credit - a.debit


@dataclass(frozen=True)
class Line:
    code: str
    name_zh: str
    name_en: str
    amount: Decimal


@dataclass
class Section:
    lines: list[Line] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def _section(accounts: Iterable[AccountSums], kinds: set[str]) -> Section:
    return Section(
        [
            Line(a.code, a.name_zh, a.name_en, balance(a))
            for a in accounts
            if a.kind in kinds and (a.debit or a.credit)
        ]
    )


@dataclass(frozen=True)
class IncomeStatement:
    revenue: Section
    cost_of_sales: Section
    expenses: Section  # the other expenses

    @property
    def gross_profit(self) -> Decimal:
        return self.revenue.total - self.cost_of_sales.total

    @property
    def profit(self) -> Decimal:
        return self.gross_profit - self.expenses.total


def income_statement(accounts: list[AccountSums]) -> IncomeStatement:
    expenses = [a for a in accounts if a.kind == "expense"]
    return IncomeStatement(
        _section(accounts, {"revenue"}),
        _section([a for a in expenses if a.code == COST_OF_SALES], {"expense"}),
        _section([a for a in expenses if a.code != COST_OF_SALES], {"expense"}),
    )


@dataclass(frozen=True)
class BalanceSheet:
    assets: Section
    production: Section  # the cost-kind accounts: WIP and unabsorbed overhead
    liabilities: Section
    equity: Section
    profit: Decimal  # revenue − expenses to the period's end, not closed to equity

    @property
    def total_assets(self) -> Decimal:
        return self.assets.total + self.production.total

    @property
    def total_liabilities_and_equity(self) -> Decimal:
        return self.liabilities.total + self.equity.total + self.profit

    @property
    def balances(self) -> bool:
        return self.total_assets == self.total_liabilities_and_equity


def balance_sheet(cumulative: list[AccountSums]) -> BalanceSheet:
    """As at the end of a period, from the sums of every entry up to it."""
    return BalanceSheet(
        _section(cumulative, {"asset"}),
        _section(cumulative, {"cost"}),
        _section(cumulative, {"liability"}),
        _section(cumulative, {"equity"}),
        income_statement(cumulative).profit,
    )


@dataclass
class Aging:
    """A customer's open receivable by age: days since the entry date."""

    customer: str
    name: str
    buckets: dict[str, Decimal] = field(default_factory=lambda: {b: ZERO for _, b in BUCKETS})

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)


def bucket_of(days: int) -> str:
    for limit, name in BUCKETS:
        if limit is None or days <= limit:
            return name
    return BUCKETS[-1][1]


def aging(lines: list[ReceivableLine], today: date) -> list[Aging]:
    """Per customer, the debits still open once the credits (receipts, reversals) are
    applied to the oldest first, bucketed by the age of their entry date. A credit
    beyond every debit is shown as a negative amount in the newest bucket."""
    by_customer: dict[str, list[ReceivableLine]] = {}
    for line in lines:
        by_customer.setdefault(line.customer, []).append(line)
    out = []
    for customer, own in sorted(by_customer.items()):
        own.sort(key=lambda ln: ln.entry_date)
        credit = sum((ln.credit for ln in own), ZERO)
        still_open: list[tuple[date, Decimal]] = []
        for ln in (ln for ln in own if ln.debit > 0):
            applied = min(ln.debit, credit)
            credit -= applied
            still_open.append((ln.entry_date, ln.debit - applied))
        row = Aging(customer, own[0].customer_name)
        for entry_date, amount in still_open:
            if amount:
                row.buckets[bucket_of((today - entry_date).days)] += amount
        if credit:
            row.buckets[BUCKETS[0][1]] -= credit
        if row.total or any(row.buckets.values()):
            out.append(row)
    return out


def aging_totals(rows: list[Aging]) -> dict[str, Decimal]:
    """The open receivables of all customers per age bucket, in the buckets' order."""
    return {name: sum((row.buckets[name] for row in rows), ZERO) for _, name in BUCKETS}
