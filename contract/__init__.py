"""The edge ⇄ cloud wire contract: event envelope, typed payloads, per-event results.

A top-level package that imports nothing but pydantic, the standard library and its
strict types (contract.wire_types, pydantic only): the edge agent builds and checks its
envelopes with it (edge_agent.outbox.envelope) and the cloud validates them with it, so
the two cannot drift, and the edge never pulls in the cloud's database code.
Quantities and money travel as plain ASCII decimal strings (JSON integers are accepted;
floats, exponents, signs other than a leading minus, spaces, underscores and non-ASCII
digits are refused), times as ISO 8601 strings with their UTC offset, between 1970 and
2999 (never an epoch number).
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

from contract.wire_types import Day, Instant, exact_decimal

__all__ = ["Day", "Instant", "exact_decimal"]  # re-exported: the contract's own types

MAX_BATCH_EVENTS = 1000
# The edge's measured clock offset (seconds, cloud − edge): transport data, bounded
# only so that no arithmetic on it can overflow (317 years either way).
MAX_CLOCK_OFFSET_S = 1e10


Quantity = Annotated[
    Decimal,
    BeforeValidator(exact_decimal),
    Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
]
NonNegativeQuantity = Annotated[
    Decimal,
    BeforeValidator(exact_decimal),
    Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
]
UnitPrice = Annotated[
    Decimal,
    BeforeValidator(exact_decimal),
    Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
]
Rate = Annotated[
    Decimal,
    BeforeValidator(exact_decimal),
    Field(ge=0, le=1, max_digits=8, decimal_places=6, allow_inf_nan=False),
]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s].*$")]
Lot = Annotated[str, Field(max_length=64)]


def storable_text(data: Any) -> Any:
    """Refuse, anywhere in a body, text no database column can keep: a NUL character
    (PostgreSQL's text cannot hold U+0000) or a lone surrogate (not UTF-8). A model
    validator (mode="before") of every request body, so it answers 422 before any
    write instead of failing in the database. It walks the body with its own stack,
    not by recursion: a deeply nested value (junk a few hundred levels deep) is a
    ValidationError of its event, never a RecursionError that sinks the batch."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            _storable_string(value)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return data


def _storable_string(text: str) -> None:
    if "\x00" in text:
        raise ValueError("text may not contain the NUL character (U+0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("text must be valid Unicode (a lone surrogate)") from error


class RequestBody(BaseModel):
    """The base of every request body: unknown fields refused, text storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return storable_text(data)


class _Strict(RequestBody):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PurchaseReceiptPayload(_Strict):
    supplier: Code
    item: Code
    location: Code
    quantity: Quantity
    unit_price: UnitPrice
    lot: Lot = ""
    purchase_order: Code | None = None
    expiry: Day | None = None  # of the lot (GS1 AI 17); kept from its first receipt


class MaterialIssuePayload(_Strict):
    work_order: Code
    item: Code
    location: Code
    quantity: Quantity
    lot: Lot = ""


class MaterialReturnPayload(MaterialIssuePayload):
    pass


class ProductionCompletionPayload(_Strict):
    work_order: Code
    location: Code
    quantity: Quantity
    scrap_quantity: NonNegativeQuantity = Decimal(0)
    lot: Lot = ""
    # why units were scrapped, per reason code, as the terminal reported it
    scrap_reasons: dict[Annotated[str, Field(max_length=32)], NonNegativeQuantity] | None = None


class LabourPayload(_Strict):
    """Hours worked, given as `hours` or as a `started_at` / `stopped_at` pair (a
    terminal's start and stop scans)."""

    work_order: Code
    work_center: Code
    hours: Quantity | None = None
    started_at: Instant | None = None
    stopped_at: Instant | None = None
    operation: Annotated[str, Field(max_length=32)] | None = None  # routing step, e.g. "20"


class SalesShipmentPayload(_Strict):
    customer: Code
    item: Code
    location: Code
    quantity: Quantity
    unit_price: UnitPrice
    vat_rate: Rate = Decimal("0.13")
    lot: Lot = ""
    sales_order: Code | None = None
    delivery_note: Code | None = None


class StockCountPayload(_Strict):
    item: Code
    location: Code
    counted_quantity: NonNegativeQuantity
    lot: Lot = ""
    unit_cost: UnitPrice | None = None
    reason: Annotated[str, Field(max_length=200)] = ""


class WorkOrderClosePayload(_Strict):
    work_order: Code
    reason: Annotated[str, Field(max_length=200)] = ""


Amount = Annotated[
    Decimal,
    BeforeValidator(exact_decimal),
    Field(ge=0, max_digits=18, decimal_places=2, allow_inf_nan=False),
]


class JournalLine(_Strict):
    account: Annotated[str, Field(min_length=1, max_length=16)]
    debit: Amount = Decimal(0)
    credit: Amount = Decimal(0)
    customer: Code | None = None
    supplier: Code | None = None
    memo: Annotated[str, Field(max_length=200)] = ""


class JournalEntryPayload(_Strict):
    """A manual entry (accruals, bank charges, depreciation...): balanced lines on
    accounts the stock and WIP sub-ledgers do not own."""

    memo: Annotated[str, Field(min_length=1, max_length=200)]
    lines: Annotated[list[JournalLine], Field(min_length=2, max_length=100)]


class ReversalPayload(_Strict):
    reverses_event_id: UUID
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class EventType(StrEnum):
    purchase_receipt = "purchase_receipt"
    material_issue = "material_issue"
    material_return = "material_return"
    production_completion = "production_completion"
    labour = "labour"
    sales_shipment = "sales_shipment"
    stock_count = "stock_count"
    work_order_close = "work_order_close"
    reversal = "reversal"
    journal_entry = "journal_entry"


ShortText = Annotated[str, Field(max_length=64)]


class Envelope(_Strict):
    """What every event carries (all but `type` and `payload`, which each event class
    adds). Public: the edge checks its captures against it before storing them. The
    fields after `replayed` are the edge's transport and audit data (EDGE.md, "Event
    envelope"): all optional, stored with the event, and left out of its payload hash
    (TRANSPORT_FIELDS), like `replayed`."""

    event_id: UUID
    device_id: Annotated[str, Field(min_length=1, max_length=64)]
    seq: Annotated[int, Field(ge=0, lt=2**63)]
    occurred_at: Instant
    operator: ShortText | None = None
    replayed: bool = False
    edge_id: ShortText | None = None
    device_seq: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    device_msg_id: ShortText | None = None
    captured_at: Instant | None = None
    clock_offset_s: (
        Annotated[float, Field(allow_inf_nan=False, ge=-MAX_CLOCK_OFFSET_S, le=MAX_CLOCK_OFFSET_S)]
        | None
    ) = None
    clock_synced: bool | None = None
    raw_scan: Annotated[str, Field(max_length=4096)] | None = None
    agent_version: ShortText | None = None
    reverses_event_id: UUID | None = None  # the edge's note; a reversal's payload rules


TRANSPORT_FIELDS = frozenset(
    {
        "replayed",
        "edge_id",
        "device_seq",
        "device_msg_id",
        "captured_at",
        "clock_offset_s",
        "clock_synced",
        "raw_scan",
        "agent_version",
        "reverses_event_id",
    }
)


class PurchaseReceipt(Envelope):
    type: Literal[EventType.purchase_receipt]
    payload: PurchaseReceiptPayload


class MaterialIssue(Envelope):
    type: Literal[EventType.material_issue]
    payload: MaterialIssuePayload


class MaterialReturn(Envelope):
    type: Literal[EventType.material_return]
    payload: MaterialReturnPayload


class ProductionCompletion(Envelope):
    type: Literal[EventType.production_completion]
    payload: ProductionCompletionPayload


class Labour(Envelope):
    type: Literal[EventType.labour]
    payload: LabourPayload


class SalesShipment(Envelope):
    type: Literal[EventType.sales_shipment]
    payload: SalesShipmentPayload


class StockCount(Envelope):
    type: Literal[EventType.stock_count]
    payload: StockCountPayload


class WorkOrderClose(Envelope):
    """Close a work order: what is left in its WIP is settled (the portal's close
    button posts this event; a terminal may send it too)."""

    type: Literal[EventType.work_order_close]
    payload: WorkOrderClosePayload


class Reversal(Envelope):
    type: Literal[EventType.reversal]
    payload: ReversalPayload


class JournalEntry(Envelope):
    type: Literal[EventType.journal_entry]
    payload: JournalEntryPayload


Event = Annotated[
    PurchaseReceipt
    | MaterialIssue
    | MaterialReturn
    | ProductionCompletion
    | Labour
    | SalesShipment
    | StockCount
    | WorkOrderClose
    | Reversal
    | JournalEntry,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventBatch(BaseModel):
    """A batch as sent by one edge. Events are validated one by one, so that a
    malformed event is `rejected` on its own instead of failing the batch."""

    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class ResultStatus(StrEnum):
    posted = "posted"
    duplicate = "duplicate"
    conflict = "conflict"
    held = "held"
    rejected = "rejected"


class EventResult(BaseModel):
    event_id: str | None
    status: ResultStatus
    code: str | None = None
    message: str | None = None
    journal_entry_id: str | None = None
    move_ids: list[str] = []
    original_status: ResultStatus | None = None


class BatchResult(BaseModel):
    results: list[EventResult]
    posted: int = 0
    duplicate: int = 0
    conflict: int = 0
    held: int = 0
    rejected: int = 0
    received_at: datetime
