"""Tables. Every tenant table has `tenant_id` first in its primary key, and every
unique and foreign key includes it (DESIGN.md §3.7), so rows can never be joined
across tenants and the schema can later be distributed by tenant.

Ledger tables (`stock_move`, `stock_revaluation`, `wip_charge`, `journal_entry`,
`journal_line`) are append-only. `valuation_pool`, `cost_layer`, `stock_balance`,
`wip_balance` and `wip_material` are caches derived from the ledger, updated in the
same transaction and checked by the books-check.
"""

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from cloud_api.db.types import Money, Qty
from cloud_api.domain.clock import now_utc

ZERO = Decimal(0)


def _qty(**kw):  # type: ignore[no-untyped-def]
    return Field(default=ZERO, sa_type=Qty(), nullable=False, **kw)


def _money(**kw):  # type: ignore[no-untyped-def]
    return Field(default=ZERO, sa_type=Money(), nullable=False, **kw)


def _changed_at():  # type: ignore[no-untyped-def]
    """When the row last changed: set on insert and on every Core update (SQLAlchemy's
    column default / onupdate), read by the edge's incremental master-data pull."""
    return Field(
        default_factory=now_utc,
        sa_type=UTCDateTime(),
        nullable=False,
        sa_column_kwargs={"default": now_utc, "onupdate": now_utc},
    )


def _tenant_fk(cols: list[str], table: str, ref_cols: list[str], name: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", *cols], [f"{table}.tenant_id", *(f"{table}.{c}" for c in ref_cols)], name=name
    )


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: uuid.UUID = Field(primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    currency: str = Field(default="CNY", max_length=3)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    allow_negative_stock: bool = False
    # May an issue take stock another work order holds (reserved)?
    allow_issue_from_reserved: bool = Field(
        default=False, sa_column_kwargs={"server_default": false()}
    )
    # How far completions may go beyond a work order's planned quantity (0.05 = 5 %);
    # a completion beyond it is held.
    completion_tolerance: Decimal = Field(
        default=ZERO, sa_type=Qty(), nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    # Where a closed work order's residual WIP goes (posting_rules.work_order_close):
    # "cost_of_sales", or "finished_goods" (the share of its output still on hand is
    # added to that stock's value, the rest to cost of sales).
    variance_policy: str = Field(
        default="cost_of_sales", max_length=16, sa_column_kwargs={"server_default": "cost_of_sales"}
    )
    # Segregation of duties: whoever posted an entry may not reverse it, unless the
    # owner waives it (a one-person company); the waiver is audited.
    reversal_sod_waived: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    api_key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime


class Account(SQLModel, table=True):
    __tablename__ = "account"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    code: str = Field(primary_key=True, max_length=16)
    name_zh: str = Field(max_length=100)
    name_en: str = Field(max_length=100)
    kind: str = Field(max_length=16)  # asset, liability, equity, cost, revenue, expense
    normal_side: str = Field(max_length=6)  # debit or credit


class ItemCategory(SQLModel, table=True):
    __tablename__ = "item_category"
    __table_args__ = (
        _tenant_fk(["stock_account"], "account", ["code"], "fk_category_stock_account"),
        _tenant_fk(["cogs_account"], "account", ["code"], "fk_category_cogs_account"),
        _tenant_fk(["revenue_account"], "account", ["code"], "fk_category_revenue_account"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    stock_account: str = Field(max_length=16)
    cogs_account: str = Field(max_length=16)
    revenue_account: str = Field(max_length=16)


class Item(SQLModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", name="uq_item_code"),
        Index("uq_item_gtin", "tenant_id", "gtin", unique=True),
        _tenant_fk(["category_code"], "item_category", ["code"], "fk_item_category"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    unit: str = Field(max_length=16)
    kind: str = Field(max_length=16)  # raw, semi_finished, finished
    valuation_method: str = Field(max_length=16)  # moving_average, fifo
    category_code: str = Field(max_length=32)
    lot_tracked: bool = False
    safety_stock: Decimal = _qty()
    lead_time_days: int = 0
    # The deepest level at which the item appears in any active BOM (0 = top level),
    # kept by BOM activation for MRP. The server default fills existing rows.
    low_level_code: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # How components reach work orders: "manual" (issued by scan) or "backflush" (issued
    # in the BOM quantities when a completion posts; posting_rules.production_completion).
    issue_method: str = Field(
        default="manual", max_length=16, sa_column_kwargs={"server_default": "manual"}
    )
    # The trade item number on suppliers' GS1 labels (14 digits), so a handheld
    # receipt of a scanned label finds the item.
    gtin: str | None = Field(default=None, max_length=14)
    # What a receipt from the floor (which knows no price) is valued at until the
    # supplier's invoice is matched.
    purchase_price: Decimal | None = Field(default=None, sa_type=Qty())
    # The list price a shipment scanned on the floor is invoiced at.
    sale_price: Decimal | None = Field(default=None, sa_type=Qty())
    changed_at: datetime = _changed_at()


class Location(SQLModel, table=True):
    __tablename__ = "location"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", name="uq_location_code"),
        _tenant_fk(["parent_id"], "location", ["id"], "fk_location_parent"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(
        max_length=16
    )  # warehouse, bin, supplier, customer, production, scrap, adjustment, variance
    parent_id: uuid.UUID | None = None
    # the site a warehouse or bin is at: a device enrolled at a site moves stock there
    # only (the virtual locations belong to every site)
    site: str = Field(default="main", max_length=64)
    changed_at: datetime = _changed_at()


class Lot(SQLModel, table=True):
    """A lot of a lot-tracked item, kept from its first posted receipt: when it first
    came in (event time) and when it expires, for FEFO / FIFO picking by backflush."""

    __tablename__ = "lot"
    __table_args__ = (_tenant_fk(["item_id"], "item", ["id"], "fk_lot_item"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    item_id: uuid.UUID = Field(primary_key=True)
    lot: str = Field(primary_key=True, max_length=64)
    first_received_at: datetime
    expiry: date | None = None


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_customer_code"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)


class Supplier(SQLModel, table=True):
    __tablename__ = "supplier"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_supplier_code"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)


class WorkCenter(SQLModel, table=True):
    __tablename__ = "work_center"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_work_center_code"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    labour_rate: Decimal = _qty()  # per hour, 6 places
    overhead_rate: Decimal = _qty()
    changed_at: datetime = _changed_at()


class OperatorGrade(SQLModel, table=True):
    """A pay grade: labour reported by an operator of the grade is costed at its
    rate instead of the work centre's (overhead stays the work centre's)."""

    __tablename__ = "operator_grade"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    labour_rate: Decimal = _qty()  # per hour, 6 places


class Operator(SQLModel, table=True):
    """A person on the floor, known by the code on their badge."""

    __tablename__ = "operator"
    __table_args__ = (UniqueConstraint("tenant_id", "code", name="uq_operator_code"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)  # the badge
    name: str = Field(max_length=200)
    active: bool = True
    # operator_grade.code; checked by the service (SQLite cannot add a composite
    # foreign key to an existing table)
    grade: str | None = Field(default=None, max_length=32)
    changed_at: datetime = _changed_at()


class WorkOrder(SQLModel, table=True):
    """A production order and its cost collector (生产工单).

    draft → released → in_progress → completed → closed, or cancelled. Release
    snapshots the active BOM into `work_order_component` and reserves the components
    in `warehouse_id`; the first posting makes it in progress, reaching the planned
    quantity completes it, and close settles what is left in WIP."""

    __tablename__ = "work_order"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code", name="uq_work_order_code"),
        _tenant_fk(["item_id"], "item", ["id"], "fk_work_order_item"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(max_length=64)
    item_id: uuid.UUID
    planned_quantity: Decimal = _qty()
    # draft, released, in_progress, completed, closed, cancelled
    status: str = Field(default="draft", max_length=16)
    # Where components come from and output goes to, and the BOM version snapshotted
    # at release. Checked by the service, not by a foreign key: adding a composite
    # foreign key to an existing SQLite table means rebuilding it, which SQLite refuses
    # while other tables' rows reference it.
    warehouse_id: uuid.UUID | None = None
    bom_id: uuid.UUID | None = None
    created_at: datetime
    released_at: datetime | None = None
    closed_at: datetime | None = None
    changed_at: datetime = _changed_at()


class WorkOrderComponent(SQLModel, table=True):
    """A component planned for a work order, snapshotted from its BOM at release."""

    __tablename__ = "work_order_component"
    __table_args__ = (
        _tenant_fk(["work_order_id"], "work_order", ["id"], "fk_component_work_order"),
        _tenant_fk(["item_id"], "item", ["id"], "fk_component_item"),
        _tenant_fk(["location_id"], "location", ["id"], "fk_component_location"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    work_order_id: uuid.UUID = Field(primary_key=True)
    line_no: int = Field(primary_key=True)
    item_id: uuid.UUID
    location_id: uuid.UUID
    planned_quantity: Decimal = _qty()  # for the order's planned quantity, scrap included


class Reservation(SQLModel, table=True):
    """Stock held for a work order's component (try), consumed by its issues
    (confirm) and released by close or cancel (cancel). It resolves exactly once:
    `status` leaves `held` for `consumed` or `released` and never returns, and
    consumed + released never exceeds quantity."""

    __tablename__ = "reservation"
    __table_args__ = (
        _tenant_fk(["work_order_id"], "work_order", ["id"], "fk_reservation_work_order"),
        _tenant_fk(["item_id"], "item", ["id"], "fk_reservation_item"),
        _tenant_fk(["location_id"], "location", ["id"], "fk_reservation_location"),
        Index("ix_reservation_pool", "tenant_id", "item_id", "location_id", "status"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    work_order_id: uuid.UUID
    line_no: int
    item_id: uuid.UUID
    location_id: uuid.UUID
    quantity: Decimal = _qty()  # held at release
    consumed: Decimal = _qty()
    released: Decimal = _qty()
    status: str = Field(max_length=8)  # held, consumed, released
    created_at: datetime
    resolved_at: datetime | None = None


class FiscalPeriod(SQLModel, table=True):
    """A month 'YYYY-MM'. A month without a row is open."""

    __tablename__ = "fiscal_period"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    code: str = Field(primary_key=True, max_length=7)
    status: str = Field(max_length=8)  # open, closed
    changed_at: datetime


class EdgeEvent(SQLModel, table=True):
    """Idempotency record and exception queue: one row per accepted event id."""

    __tablename__ = "edge_event"
    __table_args__ = (
        Index("ix_edge_event_status", "tenant_id", "status"),
        Index("ix_edge_event_device_seq", "tenant_id", "device_id", "seq"),
        # the held events a receipt, release or new item may clear (services/held.py)
        Index("ix_edge_event_waits_on", "tenant_id", "status", "waits_on", "occurred_at"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    event_id: uuid.UUID = Field(primary_key=True)
    device_id: str = Field(max_length=64)
    seq: int
    type: str = Field(max_length=32)
    occurred_at: datetime
    operator: str | None = Field(default=None, max_length=64)
    replayed: bool = False
    payload: str = Field(sa_column=Column(Text, nullable=False))
    payload_sha256: str = Field(max_length=64)
    status: str = Field(max_length=8)  # posted, held, voided
    code: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, sa_column=Column(Text))
    journal_entry_id: uuid.UUID | None = None
    reversed_by: uuid.UUID | None = None
    # who sent it: user:<id>, device:<id> or api_key:tenant (reversals check it)
    posted_by: str | None = Field(default=None, max_length=80)
    attempts: int = 1
    received_at: datetime
    posted_at: datetime | None = None
    # a held event's: what would clear it (services/waits_on.py), e.g. item:<code>
    waits_on: str | None = Field(default=None, max_length=120)


class EdgeAgent(SQLModel, table=True):
    """What the cloud knows of each edge agent, from its heartbeats: when it was last
    seen, its backlog and how old it is, parked events, and its clock's offset."""

    __tablename__ = "edge_agent"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    edge_id: str = Field(primary_key=True, max_length=64)
    agent_version: str | None = Field(default=None, max_length=64)
    last_seen_at: datetime
    backlog: int = 0
    oldest_pending_at: datetime | None = None
    parked: int = 0
    held: int = 0
    clock_offset_s: float | None = None
    last_sync_error: str | None = Field(default=None, sa_column=Column(Text))
    devices: str = Field(default="[]", sa_column=Column(Text, nullable=False))


class StockMove(SQLModel, table=True):
    """Append-only. `value` is the value when posted; revaluations add deltas."""

    __tablename__ = "stock_move"
    __table_args__ = (
        _tenant_fk(["event_id"], "edge_event", ["event_id"], "fk_move_event"),
        _tenant_fk(["item_id"], "item", ["id"], "fk_move_item"),
        _tenant_fk(["from_location_id"], "location", ["id"], "fk_move_from"),
        _tenant_fk(["to_location_id"], "location", ["id"], "fk_move_to"),
        _tenant_fk(["work_order_id"], "work_order", ["id"], "fk_move_work_order"),
        UniqueConstraint("tenant_id", "event_id", "line_no", name="uq_move_event_line"),
        Index("ix_move_from_pool", "tenant_id", "item_id", "from_location_id", "occurred_at"),
        Index("ix_move_to_pool", "tenant_id", "item_id", "to_location_id", "occurred_at"),
        Index("ix_move_work_order", "tenant_id", "work_order_id", "occurred_at"),
        # the reversals of a move (a late event's replay revalues them with it)
        Index(
            "ix_move_mirrors",
            "tenant_id",
            "mirrors_move_id",
            sqlite_where=text("mirrors_move_id IS NOT NULL"),
            postgresql_where=text("mirrors_move_id IS NOT NULL"),
        ),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    event_id: uuid.UUID
    line_no: int
    occurred_at: datetime
    posted_at: datetime
    item_id: uuid.UUID
    lot: str = Field(default="", max_length=64)
    from_location_id: uuid.UUID
    to_location_id: uuid.UUID
    quantity: Decimal = _qty()
    unit_cost: Decimal = _qty()
    value: Decimal = _money()
    # receipt, issue, return, completion, shipment, count, settlement
    kind: str = Field(max_length=16)
    # fixed, pool, pool_in, wip_return, wip_completion, wip_residual, mirror
    basis: str = Field(max_length=16)
    work_order_id: uuid.UUID | None = None
    mirrors_move_id: uuid.UUID | None = None
    # A completion's scrapped units: not moved, but their share of WIP goes with the
    # good ones (pools.WipPool.completion_value).
    scrap_quantity: Decimal = Field(
        default=ZERO, sa_type=Qty(), nullable=False, sa_column_kwargs={"server_default": "0"}
    )


class StockRevaluation(SQLModel, table=True):
    """Append-only change of a posted move's value, caused by a late event."""

    __tablename__ = "stock_revaluation"
    __table_args__ = (
        _tenant_fk(["move_id"], "stock_move", ["id"], "fk_revaluation_move"),
        Index("ix_revaluation_move", "tenant_id", "move_id"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    move_id: uuid.UUID
    delta_value: Decimal = _money()
    cause_event_id: uuid.UUID
    journal_entry_id: uuid.UUID
    posted_at: datetime


class WipCharge(SQLModel, table=True):
    """Append-only labour / overhead charged to a work order."""

    __tablename__ = "wip_charge"
    __table_args__ = (
        _tenant_fk(["work_order_id"], "work_order", ["id"], "fk_charge_work_order"),
        _tenant_fk(["event_id"], "edge_event", ["event_id"], "fk_charge_event"),
        Index("ix_charge_work_order", "tenant_id", "work_order_id", "occurred_at"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    event_id: uuid.UUID
    line_no: int
    occurred_at: datetime
    work_order_id: uuid.UUID
    work_center_id: uuid.UUID | None = None
    cost_element: str = Field(max_length=16)  # labour, overhead
    hours: Decimal = _qty()
    rate: Decimal = _qty()
    value: Decimal = _money()


class JournalEntry(SQLModel, table=True):
    __tablename__ = "journal_entry"
    __table_args__ = (Index("ix_entry_date", "tenant_id", "entry_date"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    event_id: uuid.UUID | None = None
    kind: str = Field(max_length=16)  # event, revaluation, reversal
    entry_date: date
    period: str = Field(max_length=7)
    memo: str = Field(default="", max_length=200)
    reverses_entry_id: uuid.UUID | None = None
    posted_at: datetime


class JournalLine(SQLModel, table=True):
    __tablename__ = "journal_line"
    __table_args__ = (
        _tenant_fk(["entry_id"], "journal_entry", ["id"], "fk_line_entry"),
        _tenant_fk(["account_code"], "account", ["code"], "fk_line_account"),
        Index("ix_line_account", "tenant_id", "account_code"),
        Index("ix_line_work_order", "tenant_id", "work_order_id"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    entry_id: uuid.UUID = Field(primary_key=True)
    line_no: int = Field(primary_key=True)
    account_code: str = Field(max_length=16)
    debit: Decimal = _money()
    credit: Decimal = _money()
    item_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    work_order_id: uuid.UUID | None = None
    work_center_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    supplier_id: uuid.UUID | None = None
    move_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    cost_element: str | None = Field(default=None, max_length=16)
    origin: str = Field(default="move", max_length=8)  # move, charge, event


class AccountDay(SQLModel, table=True):
    """Debits and credits of an account on an entry date, added to in the transaction
    that posts the lines (store.RowBuffer): the journal's figures by day for the
    dashboard, the trial balance and the statements without reading every line. The
    books-check proves them equal to the lines."""

    __tablename__ = "account_day"
    __table_args__ = (_tenant_fk(["account_code"], "account", ["code"], "fk_account_day"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    account_code: str = Field(primary_key=True, max_length=16)
    entry_date: date = Field(primary_key=True)
    debit: Decimal = _money()
    credit: Decimal = _money()


class ReceivableDay(SQLModel, table=True):
    """The receivables account's debits and credits per customer and entry date, kept
    like AccountDay: the receivables aging without reading every line."""

    __tablename__ = "receivable_day"
    __table_args__ = (_tenant_fk(["customer_id"], "customer", ["id"], "fk_receivable_day"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    customer_id: uuid.UUID = Field(primary_key=True)
    entry_date: date = Field(primary_key=True)
    debit: Decimal = _money()
    credit: Decimal = _money()


class OutputDay(SQLModel, table=True):
    """Good units completed on an entry date (a reversed completion counts back) and
    their value when posted: the completion moves of that day's entries, kept like
    AccountDay (the dashboard's output and unit cost without reading the month's
    entries)."""

    __tablename__ = "output_day"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    entry_date: date = Field(primary_key=True)
    quantity: Decimal = _qty()
    value: Decimal = _money()


class IdempotencyRecord(SQLModel, table=True):
    """A write sent with an `Idempotency-Key` header (SAAS.md, device authentication 5):
    the key, a hash of the request (method, path, body) and, once answered, the reply,
    replayed to a repeat of the same request. Kept 24 hours."""

    __tablename__ = "idempotency_record"
    __table_args__ = (Index("ix_idempotency_record_at", "tenant_id", "created_at"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    created_at: datetime
    locked_at: datetime  # when the request being answered took the key
    # who took it (services/key_holders.py): a claim whose holder is gone is taken over
    holder: str | None = Field(default=None, max_length=64)
    status_code: int | None = None  # None while it is being answered
    media_type: str | None = Field(default=None, max_length=100)
    body: str | None = None


class ValuationPool(SQLModel, table=True):
    """Cached cost pool state per item × internal location, up to `last_*` position."""

    __tablename__ = "valuation_pool"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    item_id: uuid.UUID = Field(primary_key=True)
    location_id: uuid.UUID = Field(primary_key=True)
    quantity: Decimal = _qty()
    value: Decimal = _money()
    last_unit_cost: Decimal | None = Field(default=None, sa_type=Qty())
    last_occurred_at: datetime | None = None
    last_event_id: uuid.UUID | None = None
    last_line_no: int | None = None
    # records applied since the pool's last snapshot (PoolSnapshot)
    records_since_snapshot: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class CostLayer(SQLModel, table=True):
    """Cached open FIFO layers of a pool (derived from inbound moves)."""

    __tablename__ = "cost_layer"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    item_id: uuid.UUID = Field(primary_key=True)
    location_id: uuid.UUID = Field(primary_key=True)
    move_id: uuid.UUID = Field(primary_key=True)
    seq_no: int
    quantity_in: Decimal = _qty()
    value_in: Decimal = _money()
    quantity_left: Decimal = _qty()
    value_left: Decimal = _money()


class StockBalance(SQLModel, table=True):
    """Cached on-hand quantity per item × location × lot ('' = no lot)."""

    __tablename__ = "stock_balance"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    item_id: uuid.UUID = Field(primary_key=True)
    location_id: uuid.UUID = Field(primary_key=True)
    lot: str = Field(primary_key=True, max_length=64)
    quantity: Decimal = _qty()


class WipBalance(SQLModel, table=True):
    """Cached work-in-progress of a work order (the production location's value)."""

    __tablename__ = "wip_balance"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    work_order_id: uuid.UUID = Field(primary_key=True)
    value: Decimal = _money()
    completed_quantity: Decimal = _qty()  # good and scrapped units accounted for
    good_quantity: Decimal = Field(
        default=ZERO, sa_type=Qty(), nullable=False, sa_column_kwargs={"server_default": "0"}
    )
    last_occurred_at: datetime | None = None
    last_event_id: uuid.UUID | None = None
    last_line_no: int | None = None
    records_since_snapshot: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class PoolSnapshot(SQLModel, table=True):
    """A cost pool as it stood after the record at (occurred_at, event_id, line_no):
    an item in an internal location (item_id, location_id) or a work order's work in
    progress (work_order_id). Taken every `valuation_snapshot_every` records of a pool
    and at a period's close, so a late event replays the pool from the newest snapshot
    before it instead of from its first move (domain/engine.py). Derived, like the
    caches: a replay that passes a snapshot rewrites it, and the books-check proves
    each one equals the moves it sums up (services/reports.py)."""

    __tablename__ = "pool_snapshot"
    # one snapshot of a pool at a position; the pool's snapshots read in position order
    __table_args__ = (
        Index(
            "uq_snapshot_stock_pool",
            *("tenant_id", "item_id", "location_id", "occurred_at", "event_id", "line_no"),
            unique=True,
            sqlite_where=text("item_id IS NOT NULL"),
            postgresql_where=text("item_id IS NOT NULL"),
        ),
        Index(
            "uq_snapshot_wip_pool",
            *("tenant_id", "work_order_id", "occurred_at", "event_id", "line_no"),
            unique=True,
            sqlite_where=text("work_order_id IS NOT NULL"),
            postgresql_where=text("work_order_id IS NOT NULL"),
        ),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True, default_factory=uuid.uuid4)
    item_id: uuid.UUID | None = None
    location_id: uuid.UUID | None = None
    work_order_id: uuid.UUID | None = None
    occurred_at: datetime
    event_id: uuid.UUID
    line_no: int
    quantity: Decimal = _qty()  # on hand; a work order's units completed (good and scrap)
    value: Decimal = _money()
    # the rest of the pool as JSON: lots, FIFO layers and last unit cost; or the work
    # order's good units and material issued per item (store.pool_state)
    state: str = Field(sa_type=Text(), nullable=False)
    taken_at: datetime = Field(default_factory=now_utc)


class WipMaterial(SQLModel, table=True):
    """Cached net material issued to a work order, per item (for returns)."""

    __tablename__ = "wip_material"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    work_order_id: uuid.UUID = Field(primary_key=True)
    item_id: uuid.UUID = Field(primary_key=True)
    quantity: Decimal = _qty()
    value: Decimal = _money()


class Bom(SQLModel, table=True):
    """A version of an item's bill of materials. Immutable once created (a change is a
    new version): only `status` moves, and at most one version of an item is active,
    so the active BOM of an item is one indexed lookup (`uq_bom_active`)."""

    __tablename__ = "bom"
    __table_args__ = (
        UniqueConstraint("tenant_id", "item_id", "version", name="uq_bom_item_version"),
        _tenant_fk(["item_id"], "item", ["id"], "fk_bom_item"),
        Index(
            "uq_bom_active",
            "tenant_id",
            "item_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    item_id: uuid.UUID
    version: int
    status: str = Field(max_length=8)  # draft, active, obsolete
    # the quantity of the item that the lines make
    output_quantity: Decimal = Field(default=Decimal(1), sa_type=Qty(), nullable=False)
    note: str = Field(default="", max_length=200)
    created_at: datetime


class BomLine(SQLModel, table=True):
    """A component of a BOM: `quantity` per `bom.output_quantity` of the parent, plus
    `scrap_factor` (a fraction, 0 ≤ f < 1) on top for expected loss."""

    __tablename__ = "bom_line"
    __table_args__ = (
        _tenant_fk(["bom_id"], "bom", ["id"], "fk_bom_line_bom"),
        _tenant_fk(["item_id"], "item", ["id"], "fk_bom_line_item"),
        UniqueConstraint("tenant_id", "bom_id", "item_id", name="uq_bom_line_component"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    bom_id: uuid.UUID = Field(primary_key=True)
    line_no: int = Field(primary_key=True)
    item_id: uuid.UUID
    quantity: Decimal = _qty()
    scrap_factor: Decimal = _qty()


class BomOperation(SQLModel, table=True):
    """A step of a BOM's routing: set-up once per batch, then minutes per unit made."""

    __tablename__ = "bom_operation"
    __table_args__ = (
        _tenant_fk(["bom_id"], "bom", ["id"], "fk_bom_operation_bom"),
        _tenant_fk(["work_center_id"], "work_center", ["id"], "fk_bom_operation_work_center"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    bom_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    work_center_id: uuid.UUID
    name: str = Field(max_length=200)
    setup_minutes: Decimal = _qty()
    minutes_per_unit: Decimal = _qty()


def tenant_tables() -> list:  # type: ignore[type-arg]
    """Every table that holds one tenant's rows."""
    return [t for t in SQLModel.metadata.sorted_tables if "tenant_id" in t.c]


# -- tenancy: subscriptions, devices, audit (tenant/ holds the pure rules) --------------


class TenantDirectory(SQLModel, table=True):
    """Which cell (database) serves a tenant; one cell, `default`, for now."""

    __tablename__ = "tenant_directory"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    cell: str = Field(default="default", max_length=32)


class Subscription(SQLModel, table=True):
    """The tenant's subscription as tenant.subscriptions.Subscription describes it."""

    __tablename__ = "subscription"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    state: str = Field(max_length=24)
    plan_code: str = Field(max_length=16)
    state_since: datetime
    has_payment_method: bool = False
    trial_ends_at: datetime | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    past_due_since: datetime | None = None
    canceled_at: datetime | None = None
    suspended_reason: str | None = Field(default=None, max_length=200)
    suspended_from: str | None = Field(default=None, max_length=24)
    locked: bool = False
    purge_due: bool = False


class UsageCounter(SQLModel, table=True):
    """Events posted per tenant and month (UTC). Counted as they post, so a retried or
    duplicate event (the same id) is never counted twice."""

    __tablename__ = "usage_counter"
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM
    events: int = 0


class Device(SQLModel, table=True):
    """An edge agent or device enrolled with the tenant; it posts with its own keys."""

    __tablename__ = "device"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_device_name"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    name: str = Field(max_length=64)
    site: str = Field(default="main", max_length=64)
    scopes: str = Field(max_length=200)  # space-separated (tenant.security.DEVICE_SCOPES)
    created_at: datetime
    revoked_at: datetime | None = None
    last_seen_at: datetime | None = None


class TenantDeletion(SQLModel, table=True):
    """What is left of a purged tenant (SAAS.md: canceled, day 90): a record that it
    existed and was deleted, when, and how many rows went. Global: no tenant_id."""

    __tablename__ = "tenant_deletion"
    tenant: uuid.UUID = Field(primary_key=True)
    slug: str = Field(max_length=64)
    purged_at: datetime
    rows_deleted: int
    users_deleted: int


class ApiToken(SQLModel, table=True):
    """An integration's token: `tk_<keyid>_<secret>`, scoped (tenant/security/keys.py
    API_SCOPES), stored as HMAC(pepper, secret), revocable; looked up by its key id."""

    __tablename__ = "api_token"
    # looked up by key id before the tenant is known; the primary key keeps it unique
    __table_args__ = (Index("ix_api_token_keyid", "keyid"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    keyid: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    scopes: str = Field(max_length=200)  # space-separated
    secret_hash: str = Field(max_length=64)
    created_at: datetime
    created_by: str = Field(max_length=80)  # user:<id> or api_key:tenant
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class DeviceKey(SQLModel, table=True):
    """A device's key: `dk_live_<keyid>_<secret>`, stored as HMAC(pepper, secret) and
    looked up by its random key id. At most two live per device (rotation overlap)."""

    __tablename__ = "device_key"
    __table_args__ = (
        _tenant_fk(["device_id"], "device", ["id"], "fk_device_key_device"),
        Index("ix_device_key_keyid", "keyid"),  # the lookup; the primary key keeps it unique
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    keyid: str = Field(primary_key=True, max_length=32)
    device_id: uuid.UUID
    secret_hash: str = Field(max_length=64)
    created_at: datetime
    rotated_at: datetime | None = None  # replaced by a newer key; lives 7 days more
    revoked_at: datetime | None = None


class EnrollmentCode(SQLModel, table=True):
    """A one-time code the owner hands to an edge to enroll it: single use, 24 h,
    stored only as a keyed hash."""

    __tablename__ = "enrollment_code"
    __table_args__ = (Index("ix_enrollment_code_hash", "code_hash"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    code_hash: str = Field(primary_key=True, max_length=64)
    site: str = Field(default="main", max_length=64)
    # space-separated scopes the device gets (None: DEFAULT_DEVICE_SCOPES)
    scopes: str | None = Field(default=None, max_length=200)
    created_at: datetime
    used_at: datetime | None = None
    device_id: uuid.UUID | None = None


class AuditLog(SQLModel, table=True):
    """Who did what, append-only: user or device, action, object, when, from where."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "tenant_id", "at"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    at: datetime
    actor_kind: str = Field(max_length=16)  # user, device, api_key, system
    actor_id: str = Field(max_length=64)
    action: str = Field(max_length=64)
    object: str = Field(default="", max_length=200)
    source_ip: str | None = Field(default=None, max_length=64)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class AppUser(SQLModel, table=True):
    """A person who signs in to the portal. Global: one login may belong to several
    tenants (memberships); the password is kept only as an argon2id hash."""

    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("email", name="uq_app_user_email"),)
    id: uuid.UUID = Field(primary_key=True)
    email: str = Field(max_length=254)  # lower-cased
    name: str = Field(max_length=200)
    password_hash: str = Field(max_length=200)
    # invited and not yet there: no password anyone knows until a link sets one (a
    # new invitation sends a new link)
    unclaimed: bool = False
    locale: str = Field(default="zh-CN", max_length=16)
    created_at: datetime
    # the TOTP second factor (tenant/security/mfa.py): the confirmed secret, one being
    # set up, and the last 30-second step accepted (no code is accepted twice)
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_pending: str | None = Field(default=None, max_length=64)
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)
    # a pending second factor counts only with the code mailed to the account's address
    # too (whoever holds the password alone cannot enrol their own authenticator)
    mfa_mail_code_hash: str | None = Field(default=None, max_length=64)
    mfa_mail_code_at: datetime | None = None
    # the session that started the pending set-up: only it sees the secret again and
    # confirms it (another session, the password's holder, starts its own)
    mfa_pending_session: str | None = Field(default=None, max_length=64)
    # the unused recovery codes' keyed hashes, space-separated (each works once)
    mfa_recovery_hashes: str | None = None


class Membership(SQLModel, table=True):
    """A user's role in a tenant (SAAS.md's RBAC matrix)."""

    __tablename__ = "membership"
    __table_args__ = (Index("ix_membership_user", "user_id"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    user_id: uuid.UUID = Field(primary_key=True, foreign_key="app_user.id")
    role: str = Field(max_length=16)
    created_at: datetime
    # the site whose devices a member manages (SAAS.md: warehouse and production enroll
    # and revoke devices of their own site); None: every site. An owner has every site.
    site: str | None = Field(default=None, max_length=64)


class UserSession(SQLModel, table=True):
    """A portal session: only the token's hash is stored; idle 30 min, absolute 12 h."""

    __tablename__ = "user_session"
    __table_args__ = (Index("ix_user_session_token", "token_hash"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="app_user.id")
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None = None


class Invitation(SQLModel, table=True):
    """A pending invitation, mailed as a one-time link (7 days, single use, stored only
    as a keyed hash; looked up before the tenant is known, like an enrollment code).
    Nobody is a member until they accept it: a new address by choosing a password, an
    existing account with its own (cloud_api/services/invitations.py). `user_id` is set
    only on rows made before revision 0028 (an account made at invitation time)."""

    __tablename__ = "invitation"
    __table_args__ = (
        Index("ix_invitation_token_hash", "token_hash"),
        Index("uq_invitation_id", "tenant_id", "id", unique=True),
        Index("ix_invitation_email", "tenant_id", "email"),
    )
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    token_hash: str = Field(primary_key=True, max_length=64)
    id: uuid.UUID
    email: str = Field(max_length=254)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16)
    site: str | None = Field(default=None, max_length=64)
    invited_by: uuid.UUID | None = None
    user_id: uuid.UUID | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime
    used_at: datetime | None = None


class SubscriptionInvoice(SQLModel, table=True):
    """What the platform bills a tenant for a period of its subscription."""

    __tablename__ = "subscription_invoice"
    __table_args__ = (UniqueConstraint("tenant_id", "number", name="uq_subscription_invoice"),)
    tenant_id: uuid.UUID = Field(primary_key=True, foreign_key="tenant.id")
    id: uuid.UUID = Field(primary_key=True)
    number: str = Field(max_length=32)
    plan_code: str = Field(max_length=16)
    period_start: datetime
    period_end: datetime
    net: Decimal = _money()
    vat: Decimal = _money()
    currency: str = Field(default="CNY", max_length=3)
    status: str = Field(default="open", max_length=8)  # open, paid, void
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None = None
    payment_reference: str | None = Field(default=None, max_length=64)
