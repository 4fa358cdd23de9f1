"""Finance read models: the account sums of a period, the journal's account names,
the receivables per customer and day, the fiscal periods, and from them the income
statement, the balance sheet and the receivables' aging (pure functions on Decimal).

The balance sheet holds because every journal entry balances: over all accounts
Σ(debit − credit) = 0, so

    assets + production cost accounts (work in progress, overhead)   [debit − credit]
  = liabilities + equity                                             [credit − debit]
  + revenue − expenses, not yet closed to equity                     (the profit)

The cost-kind accounts are inventory (work in progress) and the overhead not yet
absorbed, so the sheet shows them with the assets. Which expense accounts are cost of
sales comes from the tenant's item categories (chart.account_roles)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from cloud_api.db import models as m
from cloud_api.domain.money import ZERO
from cloud_api.domain.posting_rules import COST_OF_SALES
from cloud_api.reporting.chart import account_roles

T = m.SQLModel.metadata.tables


def _dec(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(value)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


JOURNAL_PAGE_ENTRIES = 50


@dataclass(frozen=True)
class AccountSums:
    """An account with its debits and credits over some entries."""

    code: str
    name_zh: str
    name_en: str
    kind: str
    debit: Decimal
    credit: Decimal


def account_sums(
    conn: Connection, tenant_id: uuid.UUID, period: str, cumulative: bool
) -> list[AccountSums]:
    """Every account of the chart with the sums of its journal lines in `period`
    (YYYY-MM), or up to and including it when `cumulative`; by code."""
    ad, acc = T["account_day"], T["account"]
    first, after = _period_dates(period)
    in_period = [ad.c.entry_date < after, *([] if cumulative else [ad.c.entry_date >= first])]
    sums = (
        select(
            ad.c.account_code,
            func.sum(ad.c.debit).label("d"),
            func.sum(ad.c.credit).label("c"),
        )
        .where(ad.c.tenant_id == tenant_id, *in_period)
        .group_by(ad.c.account_code)
        .subquery()
    )
    rows = conn.execute(
        select(acc.c.code, acc.c.name_zh, acc.c.name_en, acc.c.kind, sums.c.d, sums.c.c)
        .select_from(acc)
        .outerjoin(sums, sums.c.account_code == acc.c.code)
        .where(acc.c.tenant_id == tenant_id)
        .order_by(acc.c.code)
    ).all()
    return [AccountSums(r.code, r.name_zh, r.name_en, r.kind, _dec(r.d), _dec(r.c)) for r in rows]


def _period_dates(period: str) -> tuple[date, date]:
    """A period's (YYYY-MM) first day and the first day after it (an entry's period is
    its entry date's month)."""
    first = date.fromisoformat(f"{period}-01")
    after = (first + timedelta(days=32)).replace(day=1)
    return first, after


def account_names(conn: Connection, tenant_id: uuid.UUID) -> dict[str, tuple[str, str]]:
    acc = T["account"]
    rows = conn.execute(
        select(acc.c.code, acc.c.name_zh, acc.c.name_en).where(acc.c.tenant_id == tenant_id)
    )
    return {r.code: (r.name_zh, r.name_en) for r in rows}


@dataclass(frozen=True)
class ReceivableLine:
    customer: str
    customer_name: str
    entry_date: date
    debit: Decimal
    credit: Decimal


def receivable_lines(conn: Connection, tenant_id: uuid.UUID) -> list[ReceivableLine]:
    """The receivables account's debits and credits per customer and entry date (the
    day totals kept as entries post: aging needs no finer grain), oldest first."""
    rd, cu = T["receivable_day"], T["customer"]
    rows = conn.execute(
        select(rd.c.entry_date, rd.c.debit.label("d"), rd.c.credit.label("c"), cu.c.code, cu.c.name)
        .select_from(rd)
        .join(cu, and_(cu.c.tenant_id == rd.c.tenant_id, cu.c.id == rd.c.customer_id))
        .where(rd.c.tenant_id == tenant_id)
        .order_by(rd.c.entry_date, cu.c.code)
    ).all()
    return [
        ReceivableLine(r.code or "", r.name or "", _as_date(r.entry_date), _dec(r.d), _dec(r.c))
        for r in rows
    ]


@dataclass(frozen=True)
class PeriodRow:
    code: str
    status: str  # open, closed
    changed_at: datetime | None
    entries: int


def periods(conn: Connection, tenant_id: uuid.UUID, current: str) -> list[PeriodRow]:
    """The months with postings or a status, and the current one; newest first. A
    month with no status row is open."""
    fp, je = T["fiscal_period"], T["journal_entry"]
    status = {
        r.code: (r.status, r.changed_at)
        for r in conn.execute(
            select(fp.c.code, fp.c.status, fp.c.changed_at).where(fp.c.tenant_id == tenant_id)
        )
    }
    counts = {
        r.period: int(r.n)
        for r in conn.execute(
            select(je.c.period, func.count().label("n"))
            .where(je.c.tenant_id == tenant_id)
            .group_by(je.c.period)
        )
    }
    codes = sorted({*status, *counts, current}, reverse=True)
    return [PeriodRow(c, *status.get(c, ("open", None)), counts.get(c, 0)) for c in codes]


PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
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


def income_statement(
    accounts: list[AccountSums], cost_of_sales: frozenset[str] = frozenset({COST_OF_SALES})
) -> IncomeStatement:
    """Revenue, cost of sales (the expense accounts in `cost_of_sales`: the item
    categories' cost-of-sales accounts) and the other expenses."""
    expenses = [a for a in accounts if a.kind == "expense"]
    return IncomeStatement(
        _section(accounts, {"revenue"}),
        _section([a for a in expenses if a.code in cost_of_sales], {"expense"}),
        _section([a for a in expenses if a.code not in cost_of_sales], {"expense"}),
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


# -- sales and the turnover window's movements -----------------------------------


@dataclass
class Sales:
    revenue: Decimal = ZERO
    cost_of_sales: Decimal = ZERO

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost_of_sales

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.revenue:
            return None
        return (self.margin * 100 / self.revenue).quantize(Decimal("0.1"))


def sales_by_day(
    conn: Connection, tenant_id: uuid.UUID, first: date, last: date
) -> dict[date, Sales]:
    """Revenue (the revenue accounts, credit − debit) and cost of sales (the categories'
    cost-of-sales accounts, debit − credit) per entry date of the entries dated
    first..last, from the day totals."""
    acc = T["account"]
    cost_of_sales = account_roles(conn, tenant_id).cost_of_sales
    accounts = select(acc.c.code, acc.c.kind).where(
        acc.c.tenant_id == tenant_id,
        or_(acc.c.kind == "revenue", acc.c.code.in_(sorted(cost_of_sales))),
    )
    kinds: dict[str, str] = {r.code: r.kind for r in conn.execute(accounts)}
    days: dict[date, Sales] = {}
    for r in _movements(conn, tenant_id, sorted(kinds), first, last, by_day=True):
        sales = days.setdefault(_as_date(r.entry_date), Sales())
        if kinds[r.account_code] == "revenue":
            sales.revenue += _dec(r.c) - _dec(r.d)
        else:
            sales.cost_of_sales += _dec(r.d) - _dec(r.c)
    return dict(sorted(days.items()))


def total_sales(days: Iterable[Sales]) -> Sales:
    """The sales of several days (of sales_by_day), added up."""
    total = Sales()
    for day in days:
        total.revenue += day.revenue
        total.cost_of_sales += day.cost_of_sales
    return total


def _movements(
    conn: Connection,
    tenant_id: uuid.UUID,
    codes: list[str],
    first: date,
    last: date,
    by_day: bool = False,
) -> Sequence[Any]:
    """Debits and credits (d, c) per account (and entry date) of the lines of `codes`
    in the entries dated first..last, from the day totals kept as entries post."""
    if not codes:
        return []
    ad = T["account_day"]
    keys = [ad.c.account_code, *([ad.c.entry_date] if by_day else [])]
    return conn.execute(
        select(*keys, func.sum(ad.c.debit).label("d"), func.sum(ad.c.credit).label("c"))
        .where(
            ad.c.tenant_id == tenant_id,
            ad.c.entry_date >= first,
            ad.c.entry_date <= last,
            ad.c.account_code.in_(codes),
        )
        .group_by(*keys)
    ).all()


def stock_accounts(conn: Connection, tenant_id: uuid.UUID) -> set[str]:
    """The accounts stock is booked to: the item categories' and work in progress."""
    roles = account_roles(conn, tenant_id)
    return {*roles.stock_accounts, roles.wip}


def movements_outside_stock(
    conn: Connection, tenant_id: uuid.UUID, first: date, last: date
) -> dict[str, Decimal]:
    """Debit − credit per account, over the entries dated first..last, of every account
    but the stock accounts. Every entry balances, so their sum is minus the change of
    the stock accounts; and the internal moves (issues, completions: most of the
    ledger) have no line here to read."""
    acc = T["account"]
    stock = stock_accounts(conn, tenant_id)
    codes = conn.scalars(select(acc.c.code).where(acc.c.tenant_id == tenant_id))
    outside = sorted(set(codes) - stock)
    rows = _movements(conn, tenant_id, outside, first, last)
    return {r.account_code: _dec(r.d) - _dec(r.c) for r in rows}


# -- the reports, read in one connection -------------------------------------------


def income_statement_of(conn: Connection, tenant_id: uuid.UUID, period: str) -> IncomeStatement:
    """The income statement of `period` (YYYY-MM), cost of sales by the tenant's chart."""
    roles = account_roles(conn, tenant_id)
    movements = account_sums(conn, tenant_id, period, cumulative=False)
    return income_statement(movements, roles.cost_of_sales)


def balance_sheet_of(conn: Connection, tenant_id: uuid.UUID, period: str) -> BalanceSheet:
    """The balance sheet at the end of `period` (YYYY-MM)."""
    return balance_sheet(account_sums(conn, tenant_id, period, cumulative=True))


def aging_of(conn: Connection, tenant_id: uuid.UUID, today: date) -> list[Aging]:
    """The open receivables per customer by age on `today`."""
    return aging(receivable_lines(conn, tenant_id), today)
