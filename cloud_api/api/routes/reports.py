"""Reports: trial balance, journal, stock on hand, an item's stock ledger, WIP, the
books-check (the sub-ledgers against the general ledger), and the read models the
portal shows too (cloud_api/reporting): the dashboard's figures, the receivables'
aging, the income statement and the balance sheet, the same figures as its pages."""

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api import params
from cloud_api.api.deps import DbDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.ledger import Reconciliation
from cloud_api.api.schemas.reports import (
    AgingReport,
    BalanceSheetPublic,
    DashboardPublic,
    IncomeStatementPublic,
    JournalEntryPublic,
    StockLedgerMove,
    StockPosition,
    TrialBalance,
    WipPosition,
)
from cloud_api.domain.clock import local_date, now_utc, utc
from cloud_api.reporting import finance, queue
from cloud_api.reporting import stock as stock_reads
from cloud_api.services import reports
from cloud_api.services.store import TenantContext

router = APIRouter(route_class=IdempotentRoute)

REPORTS = Requires("read", token_scope="reports:read")
STOCK = Requires("read", token_scope="stock:read")


@router.get("/reports/trial-balance", response_model=TrialBalance, dependencies=[REPORTS])
def trial_balance(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    with db.connect() as conn:
        return reports.trial_balance(conn, tenant)


@router.get(
    "/reports/journal",
    response_model=list[JournalEntryPublic],
    response_model_exclude_unset=True,  # a line's references: only those it carries
    dependencies=[REPORTS],
)
def journal(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = reports.journal(conn, tenant, page.limit, page.offset)
        total = reports.journal_count(conn, tenant)
    return paged(request, response, page, rows, total)


@router.get("/reports/stock", response_model=list[StockPosition], dependencies=[STOCK])
def stock(tenant: TenantDep, db: DbDep, at: params.QueryInstant = None) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return reports.stock_on_hand(conn, tenant, utc(at) if at else None)


@router.get(
    "/reports/stock-ledger/{item_code}",
    response_model=list[StockLedgerMove],
    dependencies=[STOCK],
)
def stock_ledger(
    item_code: params.PathCode,
    tenant: TenantDep,
    db: DbDep,
    page: PageDep,
    request: Request,
    response: Response,
) -> list[dict[str, Any]]:
    """The item's moves, oldest first, a page at a time; 404 unknown_item."""
    with db.connect() as conn:
        rows, total = reports.stock_ledger(conn, tenant, item_code, page.limit, page.offset)
    return paged(request, response, page, rows, total)


@router.get("/reports/wip", response_model=list[WipPosition], dependencies=[STOCK])
def wip(tenant: TenantDep, db: DbDep) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return reports.wip_report(conn, tenant)


@router.get("/reports/reconciliation", response_model=Reconciliation, dependencies=[REPORTS])
def reconciliation(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    with db.connect() as conn:
        diffs = reports.reconcile(conn, tenant)
    return {"ok": not diffs, "differences": [d.as_dict() for d in diffs]}


def _section(section: finance.Section) -> dict[str, Any]:
    return {"lines": [asdict(line) for line in section.lines], "total": section.total}


def _period(tenant: TenantContext, period: str | None) -> str:
    """The period asked for, or the current month in the tenant's time zone."""
    return period or local_date(now_utc(), tenant.timezone).strftime("%Y-%m")


@router.get("/reports/dashboard", response_model=DashboardPublic, dependencies=[REPORTS])
def dashboard(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    """The portal dashboard's stock value, sales, queue counts, shortfalls and aging."""
    today = local_date(now_utc(), tenant.timezone)
    with db.connect() as conn:
        value = stock_reads.stock_value(conn, tenant.id)
        short_count, _ = stock_reads.below_safety_stock(conn, tenant.id, limit=0)
        waiting = queue.open_exceptions(conn, tenant.id)
        aging = finance.aging_of(conn, tenant.id, today)
        days = finance.sales_by_day(conn, tenant.id, today.replace(day=1), today)
    sales = finance.total_sales(days.values())
    return {
        "stock_value": {**asdict(value), "total": value.total},
        "sales_this_month": {**asdict(sales), "margin": sales.margin},
        "exceptions": waiting,
        "below_safety_stock": short_count,
        "receivables_by_age": finance.aging_totals(aging),
    }


@router.get("/reports/aging", response_model=AgingReport, dependencies=[REPORTS])
def aging(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    """Open receivables per customer by age, on the tenant's local date."""
    today = local_date(now_utc(), tenant.timezone)
    with db.connect() as conn:
        rows = finance.aging_of(conn, tenant.id, today)
    customers = [{**asdict(row), "total": row.total} for row in rows]
    return {"today": today, "customers": customers, "totals": finance.aging_totals(rows)}


@router.get(
    "/reports/income-statement", response_model=IncomeStatementPublic, dependencies=[REPORTS]
)
def income_statement(
    tenant: TenantDep, db: DbDep, period: params.QueryPeriod = None
) -> dict[str, Any]:
    """The period's (YYYY-MM; default this month) revenue, cost of sales and expenses."""
    chosen = _period(tenant, period)
    with db.connect() as conn:
        found = finance.income_statement_of(conn, tenant.id, chosen)
    return {
        "period": chosen,
        "revenue": _section(found.revenue),
        "cost_of_sales": _section(found.cost_of_sales),
        "expenses": _section(found.expenses),
        "gross_profit": found.gross_profit,
        "profit": found.profit,
    }


@router.get("/reports/balance-sheet", response_model=BalanceSheetPublic, dependencies=[REPORTS])
def balance_sheet(
    tenant: TenantDep, db: DbDep, period: params.QueryPeriod = None
) -> dict[str, Any]:
    """As at the end of the period (YYYY-MM; default this month)."""
    chosen = _period(tenant, period)
    with db.connect() as conn:
        found = finance.balance_sheet_of(conn, tenant.id, chosen)
    return {
        "period": chosen,
        "assets": _section(found.assets),
        "production": _section(found.production),
        "liabilities": _section(found.liabilities),
        "equity": _section(found.equity),
        "profit": found.profit,
        "total_assets": found.total_assets,
        "total_liabilities_and_equity": found.total_liabilities_and_equity,
        "balances": found.balances,
    }
