"""Finance: the trial balance, the journal (each line to its source event), the
balance sheet and income statement of a period, the receivables by age, and the
periods: closed by the owner or a finance manager, reopened by the owner with a
reason; both audited as the JSON routes audit them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud_api.domain.clock import local_date, now_utc
from cloud_api.reporting import finance
from cloud_api.services import audit, masterdata, reports
from web.common import db, notice, service_call
from web.security import PageError, PrincipalDep, Write, writer
from web.templating import render

REOPEN_REASON_MIN = 3
REOPEN_REASON_MAX = 500
PeriodClose = Annotated[Write, Depends(writer("period.close"))]
PeriodReopen = Annotated[Write, Depends(writer("period.reopen"))]


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


FINANCE_NAV = [
    ("/finance/trial-balance", _("Trial balance")),
    ("/finance/journal", _("Journal")),
    ("/finance/statements", _("Statements")),
    ("/finance/receivables", _("Receivables")),
    ("/finance/periods", _("Periods")),
]
PERIOD_STATUSES = {"open": _("Open for posting"), "closed": _("Closed for posting")}


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _ledger_pages(r)
    _report_pages(r)
    _period_pages(r)
    return r


def _page_number(text: str) -> int:
    return int(text) if text.isdigit() and len(text) < 7 else 0


def _ledger_pages(r: APIRouter) -> None:
    @r.get("/finance/trial-balance", response_class=HTMLResponse)
    def trial_balance(request: Request, who: PrincipalDep) -> HTMLResponse:
        with db(request).connect() as conn:
            tb = reports.trial_balance(conn, who.tenant)
        return render(request, "trial_balance.html", who, tb=tb, FINANCE_NAV=FINANCE_NAV)

    @r.get("/finance/journal", response_class=HTMLResponse)
    def journal(request: Request, who: PrincipalDep, page: str = "0") -> HTMLResponse:
        number = _page_number(page)
        size = finance.JOURNAL_PAGE_ENTRIES
        with db(request).connect() as conn:
            entries = reports.journal(conn, who.tenant, size + 1, number * size)
            names = finance.account_names(conn, who.tenant.id)
        return render(
            request,
            "journal.html",
            who,
            entries=entries[:size],
            names=names,
            page=number,
            more=len(entries) > size,
            FINANCE_NAV=FINANCE_NAV,
        )


def _report_pages(r: APIRouter) -> None:
    @r.get("/finance/statements", response_class=HTMLResponse)
    def statement_page(request: Request, who: PrincipalDep, period: str = "") -> HTMLResponse:
        today = local_date(now_utc(), who.tenant.timezone)
        chosen = period.strip() or today.strftime("%Y-%m")
        if not finance.valid_period(chosen):
            raise PageError(404, "No such period", chosen[:16])
        with db(request).connect() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot: both statements agree
                conn.execution_options(isolation_level="REPEATABLE READ")
            income = finance.income_statement_of(conn, who.tenant.id, chosen)
            sheet = finance.balance_sheet_of(conn, who.tenant.id, chosen)
        return render(
            request,
            "statements.html",
            who,
            period=chosen,
            income=income,
            sheet=sheet,
            FINANCE_NAV=FINANCE_NAV,
        )

    @r.get("/finance/receivables", response_class=HTMLResponse)
    def receivables(request: Request, who: PrincipalDep) -> HTMLResponse:
        today = local_date(now_utc(), who.tenant.timezone)
        with db(request).connect() as conn:
            rows = finance.aging_of(conn, who.tenant.id, today)
        totals = finance.aging_totals(rows)
        return render(
            request,
            "receivables.html",
            who,
            rows=rows,
            totals=totals,
            buckets=[name for _, name in finance.BUCKETS],
            today=today,
            FINANCE_NAV=FINANCE_NAV,
        )


def _period_pages(r: APIRouter) -> None:
    @r.get("/finance/periods", response_class=HTMLResponse)
    def period_list(request: Request, who: PrincipalDep) -> HTMLResponse:
        current = local_date(now_utc(), who.tenant.timezone).strftime("%Y-%m")
        with db(request).connect() as conn:
            rows = finance.periods(conn, who.tenant.id, current)
        return render(
            request,
            "periods.html",
            who,
            periods=rows,
            notice=notice(request),
            PERIOD_STATUSES=PERIOD_STATUSES,
            FINANCE_NAV=FINANCE_NAV,
        )

    @r.post("/finance/periods/{code}/close")
    def close_period(request: Request, code: str, write: PeriodClose) -> Response:
        _set_status(request, write, code, "closed", "period.close", "")
        return RedirectResponse("/finance/periods?notice=period_closed", status_code=303)

    @r.post("/finance/periods/{code}/reopen")
    def reopen_period(request: Request, code: str, write: PeriodReopen) -> Response:
        reason = write.field("reason", REOPEN_REASON_MAX)
        if len(reason) < REOPEN_REASON_MIN:
            raise PageError(422, "Give a reason to reopen the period", "")
        _set_status(request, write, code, "open", "period.reopen", reason)
        return RedirectResponse("/finance/periods?notice=period_reopened", status_code=303)


def _set_status(
    request: Request, write: Write, code: str, status: str, action: str, reason: str
) -> None:
    """The period's status and the audit row in one transaction (a bad code: 422)."""
    if not finance.valid_period(code):
        raise PageError(404, "No such period", code[:16])
    who = write.who

    def call() -> None:
        with db(request).begin() as conn:
            masterdata.set_period_status(conn, who.tenant, code, status)
            actor = ("user", str(who.user_id))
            audit.audit(conn, who.tenant.id, now_utc(), actor, action, code, detail=reason)

    service_call(call)
