"""Learning what became of the events the cloud holds.

The cloud re-posts a held event by itself once what it waited for has arrived (its
receipt, its work order's release, a reopened period...). The edge learns that by
sending its held events again, now and then, with the same id and payload: an event
the cloud has posted since is answered `duplicate` (→ sent), one still held `held`
with its current reason, one that turned out wrong `rejected` (→ parked). Sending
again is safe (the event id makes it idempotent) and also retries on the cloud what
no trigger woke. Only when nothing is pending: the backlog goes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_agent.outbox import Outbox
from edge_agent.outbox.model import HELD, OutboxEvent

HELD_RECHECK_S = 30.0  # how often the held events are asked about again


@dataclass
class HeldRecheck:
    """When the held events are due to be sent again, and which ones (the oldest
    `limit`; `Outbox.status` lists at most EXCEPTIONS_SHOWN of them)."""

    interval_s: float = HELD_RECHECK_S
    limit: int = 100
    clock: Callable[[], float] = time.monotonic
    next_at: float = field(default=float("-inf"))

    def due_events(self, outbox: Outbox) -> list[OutboxEvent]:
        """The held events to send again now: none until `interval_s` has passed since
        the last time; then the oldest ones, if any."""
        now = self.clock()
        if now < self.next_at:
            return []
        self.next_at = now + self.interval_s
        status = outbox.status()
        if not status.held_count:
            return []
        events = (outbox.event(parked.event_id) for parked in status.held[: self.limit])
        return [ev for ev in events if ev is not None and ev.state == HELD]
