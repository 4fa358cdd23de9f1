"""The dashboard: stock value, this month's sales, margin and output, inventory
turnover and days of stock, receivables by age, what needs attention (held events,
devices, the books-check, items below safety stock) and charts drawn as SVG on the
server (stock value by category, output and gross margin per day, receivables by
age)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from cloud_api.db import tenancy
from cloud_api.domain.clock import local_date, now_utc
from cloud_api.domain.money import ZERO, unit_cost
from cloud_api.domain.posting_rules import COST_OF_SALES
from cloud_api.reporting import devices as device_reads
from cloud_api.reporting import finance, production, queue, stock
from cloud_api.services import reports
from cloud_api.services.store import TenantContext
from web import turnover
from web.charts import Bar, bar_chart, column_chart, line_chart
from web.common import db
from web.i18n import Formats
from web.security import PrincipalDep
from web.templating import language_of, render, translate

BOOKS_CHECK_TTL_S = 60.0


@dataclass(frozen=True)
class BooksCheck:
    differences: int
    checked_at: datetime


class BooksCheckCache:
    """The books-check reads every move, so the dashboard does not run it on every
    view: a tenant's first view (per process) and "check now" run it; after that a
    view shows the last result and, once it is older than a minute, refreshes it in a
    background thread (stale while revalidating), so a view stays cheap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[uuid.UUID, tuple[float, BooksCheck]] = {}
        self._running: set[uuid.UUID] = set()

    def get(self, engine: Engine, tenant: TenantContext, fresh: bool) -> BooksCheck:
        with self._lock:
            hit = self._results.get(tenant.id)
            stale = hit is None or hit[0] <= time.monotonic()
            refresh = hit is not None and stale and not fresh and tenant.id not in self._running
            if refresh:
                self._running.add(tenant.id)
        if hit is None or fresh:
            return self._check(engine, tenant)
        if refresh:
            threading.Thread(target=self._refresh, args=(engine, tenant), daemon=True).start()
        return hit[1]

    def _refresh(self, engine: Engine, tenant: TenantContext) -> None:
        try:
            with tenancy.as_tenant(tenant.id):  # a new thread: bind the tenant again
                self._check(engine, tenant)
        finally:
            with self._lock:
                self._running.discard(tenant.id)

    def _check(self, engine: Engine, tenant: TenantContext) -> BooksCheck:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot, so the figures agree
                conn.execution_options(isolation_level="REPEATABLE READ")
            result = BooksCheck(len(reports.reconcile(conn, tenant)), now_utc())
        with self._lock:
            if len(self._results) > 10_000:
                self._results.clear()
            self._results[tenant.id] = (time.monotonic() + BOOKS_CHECK_TTL_S, result)
        return result


@dataclass(frozen=True)
class Output:
    quantity: Decimal
    value: Decimal

    @property
    def unit_cost(self) -> Decimal | None:
        return unit_cost(self.value, self.quantity) if self.quantity else None


def _output(days: list[production.DayOutput], first: date, last: date) -> Output:
    chosen = [d for d in days if first <= d.day <= last]
    return Output(sum((d.quantity for d in chosen), ZERO), sum((d.value for d in chosen), ZERO))


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _dashboard(r)
    return r


@dataclass(frozen=True)
class Figures:
    """What the dashboard reads, in one connection (one snapshot on PostgreSQL)."""

    value: stock.StockValue
    held: int
    rejected: int
    short_count: int
    short: list[stock.Shortfall]
    devices: device_reads.DeviceCounts
    sales_days: dict[date, finance.Sales]
    output_days: list[production.DayOutput]
    outside_stock: dict[str, Decimal]  # the turnover window's, turnover.turnover's input
    aging: list[finance.Aging]


def _read(conn: Any, tenant: TenantContext, today: date, now: datetime) -> Figures:
    month_start, yesterday = today.replace(day=1), today - timedelta(days=1)
    window_start = today - timedelta(days=turnover.WINDOW_DAYS - 1)
    short_count, short = stock.below_safety_stock(conn, tenant.id)
    waiting = queue.open_exceptions(conn, tenant.id)
    return Figures(
        value=stock.stock_value(conn, tenant.id),
        held=waiting["held"],
        rejected=waiting["rejected"],
        short_count=short_count,
        short=short,
        devices=device_reads.device_counts(conn, tenant.id, now),
        sales_days=finance.sales_by_day(conn, tenant.id, month_start, today),
        output_days=production.output_by_day(conn, tenant.id, min(month_start, yesterday), today),
        outside_stock=finance.movements_outside_stock(conn, tenant.id, window_start, today),
        aging=finance.aging_of(conn, tenant.id, today),
    )


def _dashboard(r: APIRouter) -> None:
    @r.get("/", response_class=HTMLResponse)
    def dashboard(request: Request, who: PrincipalDep, recheck: str = "") -> HTMLResponse:
        tenant, now = who.tenant, now_utc()
        today = local_date(now, tenant.timezone)
        month_start, yesterday = today.replace(day=1), today - timedelta(days=1)
        with db(request).connect() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot: the figures agree
                conn.execution_options(isolation_level="REPEATABLE READ")
            f = _read(conn, tenant, today, now)
        books = request.app.state.books_check.get(db(request), tenant, fresh=bool(recheck))
        fmt = Formats(language_of(request), who.currency, tenant.timezone)
        aging_totals = finance.aging_totals(f.aging)
        return render(
            request,
            "dashboard.html",
            who,
            value=f.value,
            held=f.held,
            rejected=f.rejected,
            short_count=f.short_count,
            short=f.short,
            devices=f.devices,
            sales=finance.total_sales(f.sales_days.values()),
            books=books,
            output_month=_output(f.output_days, month_start, today),
            output_yesterday=_output(f.output_days, yesterday, yesterday),
            turns=turnover.turnover(f.value.total, f.outside_stock, COST_OF_SALES),
            aging=aging_totals,
            value_chart=_value_chart(request, f.value, fmt),
            output_chart=_output_chart(request, f.output_days, month_start, today, fmt),
            margin_chart=_margin_chart(request, f.sales_days, month_start, today, fmt),
            aging_chart=_aging_chart(request, aging_totals, fmt),
        )


def _value_chart(request: Request, value: stock.StockValue, fmt: Formats) -> Any:
    bars = [Bar(c.name, c.value, fmt.money(c.value)) for c in value.by_category]
    wip = translate(request, "Work in progress")
    bars.append(Bar(wip, value.wip, fmt.money(value.wip)))
    return bar_chart(bars, translate(request, "Stock value by category"))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _output_chart(
    request: Request, days: list[production.DayOutput], first: date, last: date, fmt: Formats
) -> Any:
    by_day = {d.day: d.quantity for d in days}
    bars = []
    for day in _days(first, last):
        quantity = by_day.get(day, ZERO)
        bars.append(Bar(day.strftime("%m-%d"), quantity, fmt.qty(quantity)))
    return column_chart(bars, translate(request, "Output per day this month"))


def _margin_chart(
    request: Request, days: dict[date, finance.Sales], first: date, last: date, fmt: Formats
) -> Any:
    points = []
    for day in _days(first, last):
        margin = days[day].margin if day in days else ZERO
        points.append(Bar(day.strftime("%m-%d"), margin, fmt.money(margin)))
    return line_chart(points, translate(request, "Gross margin per day this month"))


def _aging_chart(request: Request, totals: dict[str, Decimal], fmt: Formats) -> Any:
    days = translate(request, "%(days)s days")
    bars = [
        Bar(days % {"days": name}, amount, fmt.money(amount)) for name, amount in totals.items()
    ]
    return bar_chart(bars, translate(request, "Receivables by age"))
