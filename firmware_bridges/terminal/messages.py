"""Messages of work-reporting terminals (报工终端) on MQTT, and their parser.

A terminal publishes JSON on `{site}/{line}/{device}/up/{type}`, `type` one of
`start`, `pause`, `resume`, `finish`, `count` (see PROTOCOL.md). Invariants of a parsed
message:

- quantities are `Decimal`, never float: JSON carries them as decimal strings or
  integers, and a JSON number with a fraction or exponent is refused (`bad_field`);
- `at` is the terminal's own time and always carries its UTC offset;
- `msg_id` is the terminal's own id, the same on every re-send of one message;
- `count` carries cumulative counters within a `counter_epoch` (counters.py makes deltas).

Every refusal is a `TerminalMessageError` with a stable code: `bad_topic`,
`unknown_type`, `too_large`, `bad_json`, `bad_field`.
"""

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from firmware_bridges.terminal.errors import TerminalMessageError

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MESSAGE_TYPES",
    "SEGMENT",
    "CountMessage",
    "DeviceAddress",
    "FinishMessage",
    "PauseMessage",
    "ResumeMessage",
    "StartMessage",
    "TerminalMessage",
    "TerminalMessageError",
    "msg_id_hint",
    "parse_payload",
    "parse_status_topic",
    "parse_up_topic",
]

MAX_PAYLOAD_BYTES = 16 * 1024
# site, line and device names; a device name is also its MQTT username (dynsec.py)
SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")
_MAX_INT_QUANTITY = 10**15


@dataclass(frozen=True, order=True)
class DeviceAddress:
    """Where a terminal sits, from its topic. The tenant never comes from here: it comes
    from the credential the edge uses."""

    site: str
    line: str
    device: str

    @property
    def device_id(self) -> str:
        return f"{self.site}/{self.line}/{self.device}"

    def up_topic(self, type_: str) -> str:
        return f"{self.device_id}/up/{type_}"

    def down_topic(self, type_: str) -> str:
        return f"{self.device_id}/down/{type_}"

    @property
    def status_topic(self) -> str:
        return f"{self.device_id}/status"


def _address(parts: list[str], topic: str) -> DeviceAddress:
    for part in parts[:3]:
        if not SEGMENT.fullmatch(part):
            raise TerminalMessageError(
                "bad_topic",
                f"topic {topic!r}: site, line and device must be 1-64 of A-Z a-z 0-9 _ . -",
            )
    return DeviceAddress(parts[0], parts[1], parts[2])


def parse_up_topic(topic: str) -> tuple[DeviceAddress, str]:
    """`{site}/{line}/{device}/up/{type}` -> (address, type); the type is not checked."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[3] != "up":
        raise TerminalMessageError(
            "bad_topic", f"topic {topic!r} is not {{site}}/{{line}}/{{device}}/up/{{type}}"
        )
    return _address(parts, topic), parts[4]


def parse_status_topic(topic: str) -> DeviceAddress:
    """`{site}/{line}/{device}/status` -> address."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[3] != "status":
        raise TerminalMessageError(
            "bad_topic", f"topic {topic!r} is not {{site}}/{{line}}/{{device}}/status"
        )
    return _address(parts, topic)


def _quantity(value: object) -> Decimal:
    """A JSON integer or decimal string -> Decimal; floats (JSON numbers with a fraction)
    are refused so no binary rounding ever reaches a quantity."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal string or an integer, not a boolean")
    if isinstance(value, int):
        if not 0 <= value < _MAX_INT_QUANTITY:
            raise ValueError(f"must be between 0 and {_MAX_INT_QUANTITY - 1}")
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    if isinstance(value, float):
        raise ValueError('must be a decimal string like "12.5" or an integer, not a JSON float')
    raise ValueError('must be a non-negative decimal string like "12.5" or an integer')


def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with a UTC offset")
    return value


def _id_text(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[Decimal, BeforeValidator(_quantity)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
MsgId = Annotated[Text, BeforeValidator(_id_text)]
TerminalTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]


class _Message(BaseModel):
    """Fields every terminal message carries. Unknown fields are ignored (newer
    firmware may send more); the raw bytes are kept by the bridge for audit."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: ClassVar[str]

    msg_id: MsgId
    badge: Text
    work_order: Text
    operation: Text | None = None
    at: TerminalTime

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready dict: quantities as decimal strings, times as ISO with offset."""
        return {"type": self.type, **self.model_dump(mode="json", exclude_none=True)}


class StartMessage(_Message):
    type: ClassVar[str] = "start"


class PauseMessage(_Message):
    type: ClassVar[str] = "pause"
    reason: ReasonCode | None = None


class ResumeMessage(_Message):
    type: ClassVar[str] = "resume"


class FinishMessage(_Message):
    type: ClassVar[str] = "finish"


class CountMessage(_Message):
    """Cumulative counters since the start of `counter_epoch` (ISO 22400 good / scrap /
    rework quantities). `scrap` is cumulative per reason code."""

    type: ClassVar[str] = "count"

    counter_epoch: Annotated[int, Field(ge=0, lt=2**63, strict=True)]
    good: Quantity
    rework: Quantity = Decimal(0)
    scrap: dict[ReasonCode, Quantity] = Field(default_factory=dict, max_length=32)
    cycle_time_s: Quantity | None = None

    def counters(self) -> dict[str, Decimal]:
        """The named cumulative counters: `good`, `rework`, `scrap.<reason>`."""
        named = {"good": self.good, "rework": self.rework}
        named.update({f"scrap.{reason}": qty for reason, qty in sorted(self.scrap.items())})
        return named

    @property
    def scrap_total(self) -> Decimal:
        return sum(self.scrap.values(), Decimal(0))


TerminalMessage = StartMessage | PauseMessage | ResumeMessage | FinishMessage | CountMessage
MESSAGE_TYPES: dict[str, type[TerminalMessage]] = {
    cls.type: cls
    for cls in (StartMessage, PauseMessage, ResumeMessage, FinishMessage, CountMessage)
}


def _json_object(payload: bytes | bytearray) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise TerminalMessageError(
            "too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES} bytes"
        )
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise TerminalMessageError("bad_json", f"payload is not UTF-8 JSON: {error}") from None
    if not isinstance(data, dict):
        raise TerminalMessageError("bad_json", "payload must be a JSON object")
    return data


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_payload(type_: str, payload: bytes | bytearray) -> TerminalMessage:
    """The message of topic type `type_` from its raw payload, or TerminalMessageError."""
    model = MESSAGE_TYPES.get(type_)
    if model is None:
        raise TerminalMessageError(
            "unknown_type", f"type {type_[:32]!r} is not one of {', '.join(MESSAGE_TYPES)}"
        )
    data = _json_object(payload)
    if data.get("type", type_) != type_:
        raise TerminalMessageError(
            "bad_field", f"type: payload says {str(data['type'])[:32]!r}, topic says {type_!r}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise TerminalMessageError("bad_field", _describe(error)) from None


def msg_id_hint(payload: bytes | bytearray) -> str | None:
    """Best effort: the msg_id of a payload that failed to parse, so the terminal can
    match the error answer to what it sent and stop re-sending it."""
    try:
        value = _json_object(payload).get("msg_id")
    except TerminalMessageError:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text[:64] or None
