"""The books and the exception queue: the answers."""

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class EventTimeWindow(BaseModel):
    """How far from the server's clock an event may be dated (the platform's)."""

    max_past_days: int
    max_future_hours: float


class TenantSettingsPublic(BaseModel):
    allow_negative_stock: bool
    allow_issue_from_reserved: bool
    completion_tolerance: Decimal
    variance_policy: str
    reversal_sod_waived: bool
    timezone: str
    event_time_window: EventTimeWindow


class PeriodStatus(BaseModel):
    period: str
    status: str


class PeriodReopened(PeriodStatus):
    reason: str


class EventVoided(BaseModel):
    event_id: str
    status: str


class Difference(BaseModel):
    """One invariant of the books that does not hold (services/reports.Difference)."""

    check: str
    key: str
    expected: Decimal
    actual: Decimal
    difference: Decimal


class Reconciliation(BaseModel):
    ok: bool
    differences: list[Difference]


class ProgressPosted(BaseModel):
    """Work-order progress posted: the order's code, then the event's result (the
    fields of contract.EventResult, in its order; tests/test_response_models.py keeps
    them the same)."""

    work_order: str
    event_id: str | None
    status: str
    code: str | None = None
    message: str | None = None
    journal_entry_id: str | None = None
    move_ids: list[str] = []
    original_status: str | None = None


class AccountRow(BaseModel):
    """An account of the chart (its columns, without the tenant)."""

    code: str
    name_zh: str
    name_en: str
    kind: str
    normal_side: str


class QueuedEvent(BaseModel):
    """An event in the exception queue: held, rejected or voided, with why (`code`,
    `message`) and the payload as it was sent (JSON text)."""

    event_id: uuid.UUID
    device_id: str
    seq: int
    type: str
    occurred_at: datetime
    operator: str | None
    code: str | None
    message: str | None
    attempts: int
    received_at: datetime
    payload: str
