"""The edge's durable outbox (EDGE.md, guarantees 1-6).

A scan becomes an event row in SQLite and is committed before the device is
acknowledged; the sync loop reads pending events in `seq` order (`next_batch`), sends
their envelopes (`wire`) and records the cloud's per-event answers (`record_results`):

    posted, duplicate -> sent (delivered, kept until purge_sent)
    held              -> held (the cloud's exception queue; `retry` resends, same id)
    rejected, conflict-> parked (dead letter with code + message; `retry` resends)
    anything else     -> unchanged (sent again later)

Rules chosen here:
- Event id: UUIDv7 at capture; with a terminal message id, uuid5 of identity + device +
  message id. The same message again with the same type+payload returns the stored event
  (`duplicate=True`, nothing written); with another type or payload it is refused with
  `device_msg_conflict`, so the terminal gets a negative ack, and nothing is written.
- replayed: captured while the last sync had failed, or sent more than 60 s after
  capture (edge clock).
- clock_skew: occurred_at more than 300 s away from captured_at.
- Disk cap: live pages + WAL >= disk_cap_bytes, or free disk < min_free_bytes, refuses
  the capture with OutboxFull before anything is written. Delivered events are purged
  by the agent (retention.py: kept `keep_sent`, never within `dedup_window` of their
  capture); the pages they leave are reused, so capture resumes.
"""

from edge_agent.outbox.envelope import REPLAY_AFTER_S, payload_sha256
from edge_agent.outbox.model import (
    HELD,
    PARKED,
    PENDING,
    SENT,
    STATES,
    Capture,
    Captured,
    OutboxError,
    OutboxEvent,
    OutboxFull,
    OutboxStatus,
    ParkedEvent,
    SendResult,
)
from edge_agent.outbox.retention import PurgeReport, Retention, purge
from edge_agent.outbox.schema import CLOCK_SKEW_THRESHOLD_S, CURRENT_VERSION
from edge_agent.outbox.store import Outbox, utc_now

__all__ = [
    "CLOCK_SKEW_THRESHOLD_S",
    "CURRENT_VERSION",
    "HELD",
    "PARKED",
    "PENDING",
    "REPLAY_AFTER_S",
    "SENT",
    "STATES",
    "Capture",
    "Captured",
    "Outbox",
    "OutboxError",
    "OutboxEvent",
    "OutboxFull",
    "OutboxStatus",
    "ParkedEvent",
    "PurgeReport",
    "Retention",
    "SendResult",
    "payload_sha256",
    "purge",
    "utc_now",
]
