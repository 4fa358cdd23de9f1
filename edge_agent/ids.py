"""Event ids made at the edge, at capture, and reused on every retry.

- `uuid7()`: RFC 9562 version 7, 48-bit unix milliseconds, then a 12-bit counter
  (seeded at random each new millisecond), then 62 random bits. Ids from one process
  are strictly increasing even when the wall clock steps back: the generator never
  lets its millisecond go below the last one it used.
- `device_msg_event_id()`: version 5 of tenant identity + device + the terminal's own
  message id, so a terminal's re-send of one message maps to one event id.
"""

import secrets
import threading
import time
import uuid

# Never change: ids of events already captured depend on it.
DEVICE_MSG_NAMESPACE = uuid.UUID("cebe6c3a-8867-55c0-abf4-37de3fb583df")

_COUNTER_BITS = 12
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_COUNTER_SEED_MAX = 1 << (_COUNTER_BITS - 1)  # leaves room to count up within a ms
_lock = threading.Lock()
_last_ms = -1
_counter = 0


def _next_timestamp(unix_ms: int) -> tuple[int, int]:
    """The (ms, counter) pair after the last one handed out; caller holds `_lock`."""
    global _last_ms, _counter
    if unix_ms > _last_ms:
        _last_ms, _counter = unix_ms, secrets.randbelow(_COUNTER_SEED_MAX)
    elif _counter < _COUNTER_MAX:
        _counter += 1
    else:  # 4096 ids in one ms, or the clock went back: borrow the next ms
        _last_ms, _counter = _last_ms + 1, secrets.randbelow(_COUNTER_SEED_MAX)
    return _last_ms, _counter


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A new UUIDv7; `unix_ms` defaults to the wall clock."""
    if unix_ms is None:
        unix_ms = time.time_ns() // 1_000_000
    if not 0 <= unix_ms < 1 << 48:
        raise ValueError(f"unix_ms out of the 48-bit range: {unix_ms}")
    with _lock:
        ms, counter = _next_timestamp(unix_ms)
    value = ms << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | secrets.randbits(62)
    return uuid.UUID(int=value)


def uuid7_unix_ms(value: uuid.UUID) -> int:
    """The millisecond timestamp inside a UUIDv7."""
    return value.int >> 80


def device_msg_event_id(identity: str, device_id: str, device_msg_id: str) -> uuid.UUID:
    """The event id of a terminal message: the same for every re-send of it."""
    return uuid.uuid5(DEVICE_MSG_NAMESPACE, f"{identity}|{device_id}|{device_msg_id}")
