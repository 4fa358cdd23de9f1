"""Request and response bodies of the master-data endpoints (Create / Public)."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from biip import ParseError
from biip.gtin import Gtin
from pydantic import BaseModel, BeforeValidator, Field

from contract import (
    Code,
    Day,
    Instant,
    JournalLine,
    NonNegativeQuantity,
    Quantity,
    Rate,
    RequestBody,
    exact_decimal,
)


class _In(RequestBody):
    """A request body (contract.RequestBody: unknown fields refused, text storable)."""


Name = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]  # what a 32-bit column holds


def _gtin14(value: object) -> object:
    """A GTIN-8/12/13/14 with a valid check digit, stored as its 14-digit form."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError("a GTIN is 8, 12, 13 or 14 digits")
    try:
        return Gtin.parse(value).as_gtin_14()
    except ParseError as error:
        raise ValueError(str(error)) from error


class ItemCreate(_In):
    code: Code
    name: Name
    unit: Annotated[str, Field(min_length=1, max_length=16)] = "pcs"
    kind: Literal["raw", "semi_finished", "finished"]
    valuation_method: Literal["moving_average", "fifo"] = "moving_average"
    category_code: Code | None = None
    lot_tracked: bool = False
    safety_stock: NonNegativeQuantity = Decimal(0)
    lead_time_days: Annotated[int, Field(ge=0, le=3650)] = 0
    # backflush: issued in the BOM quantities when a completion of the order posts
    issue_method: Literal["manual", "backflush"] = "manual"
    gtin: Annotated[str | None, BeforeValidator(_gtin14)] = None
    purchase_price: NonNegativeQuantity | None = None
    sale_price: NonNegativeQuantity | None = None


class LocationCreate(_In):
    code: Code
    name: Name
    kind: Literal["warehouse", "bin"]
    parent_code: Code | None = None
    # the site it is at (default: its parent's, else "main"); devices enrolled at a
    # site move stock at its locations only
    site: Code | None = None


class PartyCreate(_In):
    code: Code
    name: Name


class OperatorGradeCreate(_In):
    code: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\s].*$")]
    name: Name
    labour_rate: NonNegativeQuantity  # per hour


class OperatorCreate(_In):
    code: Code  # what the badge says
    name: Name
    active: bool = True
    grade: Annotated[str, Field(max_length=32)] | None = None  # an operator grade's code


class EdgeHeartbeat(_In):
    """What an edge agent reports of itself every minute or so."""

    edge_id: Annotated[str, Field(min_length=1, max_length=64)]
    agent_version: Annotated[str, Field(max_length=64)] | None = None
    sent_at: Instant  # the edge's clock, to measure its offset
    backlog: Count = 0
    oldest_pending_at: Instant | None = None
    parked: Count = 0
    held: Count = 0
    last_sync_error: Annotated[str, Field(max_length=2000)] | None = None
    devices: Annotated[list[dict[str, str | int | float | bool | None]], Field(max_length=200)] = (
        Field(default_factory=list)
    )


class WorkCenterCreate(_In):
    code: Code
    name: Name
    labour_rate: NonNegativeQuantity
    overhead_rate: NonNegativeQuantity = Decimal(0)


class WorkOrderCreate(_In):
    code: Code
    item: Code
    planned_quantity: Quantity
    warehouse: Code | None = None  # components come from and output goes to; default WH
    release: bool = False  # release (snapshot the BOM, reserve) at once
    allow_shortages: bool = False


class TenantSettings(_In):
    """Production settings of the tenant; a field left out keeps its value."""

    allow_issue_from_reserved: bool | None = None
    completion_tolerance: Rate | None = None  # 0.05 = completions may reach 105 %
    # where a closed order's residual WIP goes (posting_rules.work_order_close)
    variance_policy: Literal["cost_of_sales", "finished_goods"] | None = None
    # the owner lets a poster reverse their own entries (a one-person company); audited
    reversal_sod_waived: bool | None = None


class SubscriptionCancel(_In):
    """The owner types the company's slug to confirm: a cancellation ends writes, device
    ingest and, after 90 days, the data."""

    confirm: Annotated[str, Field(min_length=1, max_length=64)]


class ApiTokenCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[
        list[Annotated[str, Field(max_length=32)]], Field(min_length=1, max_length=10)
    ]


class JournalEntryCreate(_In):
    entry_date: Day
    memo: Annotated[str, Field(min_length=1, max_length=200)]
    lines: Annotated[list[JournalLine], Field(min_length=2, max_length=100)]
    entry_id: uuid.UUID | None = None  # send one to make a retry idempotent


class ReverseEvent(_In):
    reason: Annotated[str, Field(min_length=1, max_length=200)]
    occurred_at: Instant | None = None  # default: now (the reversal's posting date)
    reversal_id: uuid.UUID | None = None  # send one to make a retry idempotent


class WorkOrderRelease(_In):
    allow_shortages: bool = False


class WorkOrderClose(_In):
    reason: Annotated[str, Field(max_length=200)] = ""


class WorkOrderProgress(_In):
    """Progress on the order the path names: the `payload` of a production_completion
    (location, quantity, scrap_quantity, lot) or a labour event (work_center, hours or
    started_at/stopped_at, operation), without its work_order. The event id is the
    idempotency key: sent again, it posts nothing more."""

    type: Literal["production_completion", "labour"]
    payload: dict[str, Any]
    event_id: uuid.UUID | None = None
    occurred_at: Instant | None = None


class Created(BaseModel):
    id: uuid.UUID | None = None
    code: str


class VoidRequest(_In):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


# -- bills of materials -------------------------------------------------------------

MAX_BOM_LINES = 500
MAX_BOM_OPERATIONS = 100

# An exact 6-place decimal whose range the BOM domain checks (cloud_api.domain.bom),
# so that each bad figure answers its own code rather than `invalid_request`.
BomFigure = Annotated[
    Decimal,
    BeforeValidator(exact_decimal),
    Field(max_digits=18, decimal_places=6, allow_inf_nan=False),
]


class BomLineCreate(_In):
    item: Code
    quantity: BomFigure
    scrap_factor: BomFigure = Decimal(0)


class BomOperationCreate(_In):
    seq: Annotated[int, Field(ge=1, le=99_999)]
    work_center: Code
    name: Name
    setup_minutes: NonNegativeQuantity = Decimal(0)
    minutes_per_unit: NonNegativeQuantity


class BomCreate(_In):
    item: Code
    output_quantity: BomFigure = Decimal(1)
    note: Annotated[str, Field(max_length=200)] = ""
    lines: Annotated[list[BomLineCreate], Field(max_length=MAX_BOM_LINES)]
    operations: Annotated[
        list[BomOperationCreate], Field(default_factory=list, max_length=MAX_BOM_OPERATIONS)
    ]
    activate: bool = False


class BomLinePublic(BaseModel):
    line_no: int
    item: str
    quantity: Decimal
    scrap_factor: Decimal


class BomOperationPublic(BaseModel):
    seq: int
    work_center: str
    name: str
    setup_minutes: Decimal
    minutes_per_unit: Decimal


class BomSummary(BaseModel):
    id: uuid.UUID
    item: str
    version: int
    status: Literal["draft", "active", "obsolete"]
    output_quantity: Decimal
    note: str
    created_at: datetime


class BomPublic(BomSummary):
    lines: list[BomLinePublic]
    operations: list[BomOperationPublic]


class RequirementSource(BaseModel):
    level: int  # 1 = a direct component of the exploded item
    path: list[str]  # item codes from the exploded item down to the component
    quantity: Decimal


class ComponentRequirement(BaseModel):
    item: str
    low_level_code: int
    exploded: bool  # it has an active BOM, so its own components are listed too
    quantity: Decimal  # the sum of its sources
    sources: list[RequirementSource]


class WorkCenterLoadPublic(BaseModel):
    work_center: str
    minutes: Decimal
    hours: Decimal
    labour_rate: Decimal
    overhead_rate: Decimal
    labour_cost: Decimal
    overhead_cost: Decimal


class BomExplosion(BaseModel):
    """Gross requirements of the active BOMs, all levels down, for `quantity` of
    `item`; and the planned load and cost of the item's own routing (a component
    made in house carries its routing on its own work order)."""

    item: str
    version: int
    quantity: Decimal
    components: list[ComponentRequirement]
    routing: list[WorkCenterLoadPublic]
    labour_cost: Decimal
    overhead_cost: Decimal


class EnrollmentCodeCreate(_In):
    # default: the member's own site, else "main"
    site: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # what the station posts: stock:post (receiving, issuing, shipping, counting) and/or
    # progress:post (completions, labour); both when left out
    scopes: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=8)] | None = None


class DeviceEnroll(_In):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s].*$")]


class PeriodReopen(_In):
    reason: Annotated[str, Field(min_length=1, max_length=500)]
