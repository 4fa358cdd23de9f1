"""What a held event waits for, as one key stored with it (edge_event.waits_on), so
the held events a receipt, a release or a new item may clear are found by an indexed
query (services/held.py) instead of reading and decoding every held row.

The key is written whenever an event is kept (or kept again) held, from its hold code
and its own payload: `item:<code>` for a missing item or missing stock of an item,
`location:`, `work_center:`, `work_order:` for missing master data or an order not
released, `event:<id>` for a reversal waiting for its original, `period:<YYYY-MM>` for
a closed period, and `*` (anything of that code may clear it) for a completion held
for stock: the components it backflushes are not in its payload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloud_api.domain.clock import local_date, period_of, utc

ANY = "*"

# hold codes that a posting may clear, keyed by the item whose stock was missing
STOCK_CODES = frozenset(
    {"insufficient_stock", "reserved_for_other_orders", "backflush_lot_unavailable"}
)

# hold code -> the payload field that names what it waits for
_FIELD = {
    "unknown_item": ("item", "item"),
    "unknown_location": ("location", "location"),
    "unknown_work_center": ("work_center", "work_center"),
    "unknown_work_order": ("work_order", "work_order"),
    "work_order_not_released": ("work_order", "work_order"),
    "event_not_posted": ("event", "reverses_event_id"),
}


def wait_key(
    code: str | None,
    event_type: str,
    field: Callable[[str], Any],
    occurred_at: datetime,
    timezone: str,
) -> str | None:
    """The key of what would clear an event held with `code` (None: nothing a trigger
    wakes; a person must act). `field(name)` reads the event's payload."""
    if code is None:
        return None
    if code in STOCK_CODES:
        if event_type == "production_completion":
            return ANY
        return f"item:{field('item')}"
    if code in _FIELD:
        prefix, name = _FIELD[code]
        return f"{prefix}:{field(name)}"
    if code == "period_locked":
        return f"period:{period_of(local_date(utc(occurred_at), timezone))}"
    return None


def of_event(code: str | None, event: Any, timezone: str) -> str | None:
    """wait_key of a parsed event (contract.Event)."""

    def field(name: str) -> Any:
        value = getattr(event.payload, name, None)
        return None if value is None else str(value)

    return wait_key(code, event.type.value, field, event.occurred_at, timezone)
