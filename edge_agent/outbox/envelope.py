"""Checking a capture, hashing what it says, and the wire envelope the cloud receives
(`POST /api/v1/edge/events`). The envelope's fields and limits are the wire contract's
(`contract.Envelope`), not a copy of them: a capture is checked against that model and
`wire` takes its field list from it, so the edge cannot store what the cloud's envelope
refuses, nor send a field the contract does not know."""

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from contract import Envelope
from edge_agent.outbox.model import Capture, OutboxError, OutboxEvent

# An event sent more than this long after its capture is `replayed`.
REPLAY_AFTER_S = 60.0
# The envelope fields, in the contract's order; `type` and `payload` follow them.
ENVELOPE_FIELDS = tuple(Envelope.model_fields)
# Fields the outbox assigns itself when it stores a capture, in range by construction
# (a UUID, a SQLite rowid): a capture is checked with stand-ins for them.
_ASSIGNED_AT_STORE = {"event_id": uuid.UUID(int=0), "seq": 1}


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


def _wire_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def check_envelope(c: Capture) -> None:
    """Refuse (OutboxError `invalid_capture`) a capture whose envelope fields the
    contract's `Envelope` refuses, with the contract's own message: checked at capture
    (the device gets a negative ack at once) rather than parked by the cloud later."""
    fields = {
        name: _wire_value(getattr(c, name))
        for name in ENVELOPE_FIELDS
        if hasattr(c, name) and getattr(c, name) is not None
    }
    try:
        Envelope.model_validate({**fields, **_ASSIGNED_AT_STORE})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "envelope"
        raise OutboxError(f"{where}: {error['msg']}", code="invalid_capture") from exc


def checked_payload_json(c: Capture) -> str:
    """The capture's payload as canonical JSON, or OutboxError saying what is wrong
    (checked before anything is written, so a bad capture is refused at once instead
    of being parked by the cloud later). The envelope is the contract's to check; the
    edge adds one rule of its own: an empty `device_msg_id` (the contract takes it) is
    no terminal id to deduplicate by."""
    if not c.type:
        raise OutboxError("the event type is empty", code="invalid_capture")
    if c.device_msg_id == "":
        raise OutboxError(
            "device_msg_id is empty; give None or the terminal's id", code="invalid_capture"
        )
    check_envelope(c)
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
    Its fields are the contract's (`ENVELOPE_FIELDS`), read from the outbox row by name.
    Everything but `replayed` is fixed at capture, so every retry says the same."""
    body: dict[str, Any] = {
        name: _wire_value(getattr(ev, name)) for name in ENVELOPE_FIELDS if name != "replayed"
    }
    body["replayed"] = is_replayed(ev, now, replay_after_s)
    body["type"] = ev.type
    body["payload"] = json.loads(canonical_json(dict(ev.payload)))
    return {key: value for key, value in body.items() if value is not None}
