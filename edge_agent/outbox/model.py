"""What goes into the outbox and what comes out: plain frozen dataclasses and the
outbox's small error hierarchy (each error has a stable snake_case `code`)."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# States of an outbox row. Every captured event is in exactly one of them.
PENDING = "pending"  # to be sent; next_batch hands these out in seq order
SENT = "sent"  # the cloud answered posted or duplicate: delivered, final
HELD = "held"  # the cloud holds it in its exception queue; `retry` resends it
PARKED = "parked"  # rejected or conflict: dead-lettered with code + message
STATES = (PENDING, SENT, HELD, PARKED)

# Cloud result statuses (contract.ResultStatus) and the state each leads to.
# A status not listed here leaves the event where it is (pending: sent again later).
STATE_AFTER_RESULT = {
    "posted": SENT,
    "duplicate": SENT,
    "held": HELD,
    "rejected": PARKED,
    "conflict": PARKED,
}


class OutboxError(Exception):
    """An outbox refusal; `code` is stable, the message says what to do."""

    code = "outbox_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])


class OutboxFull(OutboxError):
    """The disk cap or the free-space floor is reached: the scan is refused, nothing
    was written, nothing unsent was evicted."""

    code = "outbox_full"


@dataclass(frozen=True)
class Capture:
    """One scan or terminal message, as the device layer hands it over."""

    type: str
    payload: Mapping[str, Any]  # JSON-ready; quantities already decimal strings
    device_id: str
    occurred_at: datetime  # aware; the operator/device time
    operator: str | None = None
    device_seq: int | None = None
    device_msg_id: str | None = None  # the terminal's own message id, if it has one
    raw_scan: str | None = None  # symbology identifier + data, for audit
    reverses_event_id: str | None = None


@dataclass(frozen=True)
class Captured:
    """The answer to `capture`: durable (committed) when returned."""

    event_id: str
    seq: int
    duplicate: bool  # a re-send of a device_msg_id already stored; nothing written


@dataclass(frozen=True)
class OutboxEvent:
    """One outbox row. The capture columns never change; `state` and the last cloud
    result do."""

    seq: int
    event_id: str
    edge_id: str
    device_id: str
    type: str
    payload: Mapping[str, Any]
    payload_sha256: str
    occurred_at: datetime
    captured_at: datetime
    agent_version: str
    state: str
    operator: str | None = None
    device_seq: int | None = None
    device_msg_id: str | None = None
    raw_scan: str | None = None
    reverses_event_id: str | None = None
    clock_offset_s: float | None = None
    clock_synced: bool | None = None  # None: captured by schema v1, not recorded
    clock_skew: bool = False
    captured_offline: bool = False  # the last sync before capture had failed
    result_code: str | None = None
    result_message: str | None = None
    result_at: datetime | None = None


@dataclass(frozen=True)
class SendResult:
    """The cloud's answer for one event (contract.EventResult, trimmed)."""

    event_id: str
    status: str
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ParkedEvent:
    event_id: str
    seq: int
    type: str
    state: str  # parked or held
    code: str | None
    message: str | None
    at: datetime | None  # when the cloud answered


@dataclass(frozen=True)
class OutboxStatus:
    """What `erp edge status` shows. `parked` and `held` list at most
    `Outbox.EXCEPTIONS_SHOWN` events each, oldest first; the counts count them all."""

    backlog: int  # pending events
    oldest_pending_captured_at: datetime | None
    oldest_pending_age_s: float | None
    held_count: int
    parked_count: int
    parked: tuple[ParkedEvent, ...]
    held: tuple[ParkedEvent, ...]
    sent_count: int  # delivered rows still kept (until purge_sent)
    clock_skew_count: int  # rows kept whose occurred_at is far from captured_at
    last_sync_at: datetime | None
    last_sync_ok_at: datetime | None
    last_sync_error: str | None
    bytes_used: int
    disk_cap_bytes: int
    free_bytes: int
    full: bool
