"""Checking a capture, hashing what it says, and the wire envelope the cloud receives
(`POST /api/v1/edge/events`, cloud_api.contract `_Envelope`)."""

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from edge_agent.outbox.model import Capture, OutboxError, OutboxEvent

# An event sent more than this long after its capture is `replayed`.
REPLAY_AFTER_S = 60.0
# Limits of the cloud's envelope: refused at capture (the device gets a negative ack
# at once) rather than parked by the cloud later.
MAX_DEVICE_ID_CHARS = 64
MAX_SHORT_TEXT_CHARS = 64  # device_msg_id, operator


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def payload_sha256(event_type: str, payload: Mapping[str, Any]) -> str:
    """The edge's audit digest of what an event says: sha256 of canonical JSON of
    `{"type", "payload"}`. Two captures with one digest say the same thing."""
    body = canonical_json({"type": event_type, "payload": payload})
    return hashlib.sha256(body.encode()).hexdigest()


def _reject_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise OutboxError(
            f"payload field {where} is a float ({value!r}); send quantities as decimal "
            'strings, e.g. "12.5"',
            code="invalid_payload",
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _reject_floats(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _reject_floats(item, f"{where}[{index}]")


def checked_payload_json(c: Capture) -> str:
    """The capture's payload as canonical JSON, or OutboxError saying what is wrong
    (checked before anything is written, so a bad capture is refused at once instead
    of being parked by the cloud later)."""
    if not c.type:
        raise OutboxError("the event type is empty", code="invalid_capture")
    if not 1 <= len(c.device_id) <= MAX_DEVICE_ID_CHARS:
        raise OutboxError(
            f"device_id must have 1 to {MAX_DEVICE_ID_CHARS} characters", code="invalid_capture"
        )
    if c.occurred_at.utcoffset() is None:
        raise OutboxError(
            "occurred_at has no UTC offset; give an aware time", code="invalid_capture"
        )
    if c.device_msg_id == "":
        raise OutboxError(
            "device_msg_id is empty; give None or the terminal's id", code="invalid_capture"
        )
    for name in ("device_msg_id", "operator"):
        value = getattr(c, name)
        if value is not None and len(value) > MAX_SHORT_TEXT_CHARS:
            raise OutboxError(
                f"{name} has more than {MAX_SHORT_TEXT_CHARS} characters", code="invalid_capture"
            )
    if not isinstance(c.payload, Mapping):
        raise OutboxError("the payload must be a JSON object", code="invalid_payload")
    _reject_floats(c.payload, "payload")
    try:
        return canonical_json(dict(c.payload))
    except (TypeError, ValueError) as exc:
        raise OutboxError(f"the payload is not JSON-ready: {exc}", code="invalid_payload") from exc


def is_replayed(ev: OutboxEvent, now: datetime, replay_after_s: float = REPLAY_AFTER_S) -> bool:
    """Replayed: captured while the last sync had failed (the edge knew it was cut off),
    or sent more than `replay_after_s` after capture by the edge clock. A clock that
    stepped back gives a negative age: not replayed on that account."""
    return ev.captured_offline or (now - ev.captured_at).total_seconds() > replay_after_s


def wire(ev: OutboxEvent, now: datetime, replay_after_s: float = REPLAY_AFTER_S) -> dict[str, Any]:
    """The JSON-ready envelope for the cloud; optional fields that are None are left out.
    Everything but `replayed` is fixed at capture, so every retry says the same."""
    body: dict[str, Any] = {
        "event_id": ev.event_id,
        "device_id": ev.device_id,
        "seq": ev.seq,
        "occurred_at": ev.occurred_at.isoformat(),
        "operator": ev.operator,
        "replayed": is_replayed(ev, now, replay_after_s),
        "type": ev.type,
        "payload": json.loads(canonical_json(dict(ev.payload))),
        "edge_id": ev.edge_id,
        "device_seq": ev.device_seq,
        "device_msg_id": ev.device_msg_id,
        "captured_at": ev.captured_at.isoformat(),
        "clock_offset_s": ev.clock_offset_s,
        "clock_synced": ev.clock_synced,
        "raw_scan": ev.raw_scan,
        "agent_version": ev.agent_version,
        "reverses_event_id": ev.reverses_event_id,
    }
    return {key: value for key, value in body.items() if value is not None}
