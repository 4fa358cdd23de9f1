"""Reports and the audit log: the answers. Field order is the wire order; `None`
where the answer holds null. Money and quantities are exact decimals, written as JSON
strings."""

import uuid
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class AccountBalance(BaseModel):
    """An account that moved: its debits, credits and balance (debit − credit)."""

    code: str
    name_zh: str
    name_en: str
    debit: Decimal
    credit: Decimal
    balance: Decimal


class TrialBalance(BaseModel):
    accounts: list[AccountBalance]
    total_debit: Decimal
    total_credit: Decimal


class JournalLinePublic(BaseModel):
    """A line of a journal entry. A reference the line does not carry is left out of
    the answer (never null): the route answers with `response_model_exclude_unset`."""

    line_no: int
    account_code: str
    debit: Decimal
    credit: Decimal
    item_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    work_order_id: uuid.UUID | None = None
    work_center_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    supplier_id: uuid.UUID | None = None
    move_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    cost_element: str | None = None
    origin: str


class JournalEntryPublic(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID | None
    kind: str
    entry_date: date
    period: str
    memo: str
    reverses_entry_id: uuid.UUID | None
    posted_at: datetime
    lines: list[JournalLinePublic]


class StockPosition(BaseModel):
    """What is on hand of an item, at a location, in a lot ("" without lots)."""

    item: str
    name: str
    location: str
    lot: str
    quantity: Decimal
    value: Decimal
    unit: str


class StockLedgerMove(BaseModel):
    """One move of the item: `value` is its effective value (booked + revaluations),
    `booked_value` what it was booked at."""

    move_id: uuid.UUID
    occurred_at: datetime
    event_id: uuid.UUID
    event_type: str
    device_id: str
    operator: str | None
    from_location: str = Field(alias="from")
    to: str
    lot: str
    quantity: Decimal
    value: Decimal
    booked_value: Decimal


class WipPosition(BaseModel):
    work_order: str
    item: str
    status: str
    planned_quantity: Decimal
    wip_value: Decimal


class AuditRecord(BaseModel):
    """One line of the audit log (services/listing.audit_log)."""

    id: uuid.UUID
    at: datetime
    actor_kind: str
    actor_id: str
    action: str
    object: str
    source_ip: str | None
    detail: str


# -- the read models the portal shows too (cloud_api/reporting) ----------------------


class CategoryValuePublic(BaseModel):
    code: str
    name: str
    stock_account: str
    value: Decimal


class StockValuePublic(BaseModel):
    """Stock at value; raw materials are the categories booked to a raw-material stock
    account of the tenant's chart, finished the others."""

    raw: Decimal
    wip: Decimal
    finished: Decimal
    total: Decimal
    by_category: list[CategoryValuePublic]


class ExceptionCounts(BaseModel):
    held: int
    rejected: int


class SalesPublic(BaseModel):
    """This month's revenue and cost of sales (the categories' accounts), to today."""

    revenue: Decimal
    cost_of_sales: Decimal
    margin: Decimal


class DashboardPublic(BaseModel):
    """The dashboard's figures, as the portal's first page shows them."""

    stock_value: StockValuePublic
    sales_this_month: SalesPublic
    exceptions: ExceptionCounts
    below_safety_stock: int
    receivables_by_age: dict[str, Decimal]  # bucket ("0-30", ...) → open amount


class AgingRowPublic(BaseModel):
    customer: str
    name: str
    buckets: dict[str, Decimal]
    total: Decimal


class AgingReport(BaseModel):
    """Open receivables per customer by days since the entry date, on `today` (the
    tenant's local date)."""

    today: date
    customers: list[AgingRowPublic]
    totals: dict[str, Decimal]


class StatementLinePublic(BaseModel):
    code: str
    name_zh: str
    name_en: str
    amount: Decimal


class StatementSection(BaseModel):
    lines: list[StatementLinePublic]
    total: Decimal


class IncomeStatementPublic(BaseModel):
    period: str
    revenue: StatementSection
    cost_of_sales: StatementSection
    expenses: StatementSection
    gross_profit: Decimal
    profit: Decimal


class BalanceSheetPublic(BaseModel):
    """As at the end of `period`; the profit is revenue − expenses not closed to equity."""

    period: str
    assets: StatementSection
    production: StatementSection
    liabilities: StatementSection
    equity: StatementSection
    profit: Decimal
    total_assets: Decimal
    total_liabilities_and_equity: Decimal
    balances: bool
