"""How long delivered events stay in the outbox, and the purge step that applies it.

Without a purge the outbox only grows: at the disk cap every scan is refused, even after
the cloud took the whole backlog. The agent's purge loop (agent.py) runs `purge` every
`purge_every_s`, and a capture refused at the cap runs one bounded `purge` before it
gives up (Agent._capture).

What stays, and why (EDGE.md guarantees 2 and 4):
- Unsent events (pending, held, parked) are never purged: nothing unsent is evicted.
- A delivered event stays `keep_sent` after the cloud confirmed it, so a terminal's
  re-send of the same message id is answered from the outbox (same event, same seq,
  `duplicate`) and `erp edge status` / the file still show what went out.
- When space is short (the outbox past `pressure` of its cap, or the disk's free space
  near its floor) delivered events go sooner, the longest-delivered first, until the
  outbox is back under `pressure - HYSTERESIS` of its cap: no more of the audit trail
  goes than the space needs. Never one captured less than `dedup_window` ago, though: a
  terminal re-sends within seconds of its message, so its re-send still dedups at the
  edge.
- A re-send later than that is captured again, under the same event id (uuid5 of the
  message id) but a new seq. The cloud keeps every event id and hashes the seq with the
  content, so it answers `conflict`: the copy is parked, in sight, and stock moves once.
  The retention bounds how late a re-send may come and still be answered `duplicate`
  at the edge.
- seq is never reused: AUTOINCREMENT keeps its high mark however much is purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from edge_agent.outbox.store import Outbox

PRESSURE = 0.8  # of the disk cap: past this, delivered events go before keep_sent
HYSTERESIS = 0.2  # ... until the outbox is this much under PRESSURE again
INLINE_PURGE_ROWS = 5000  # what a capture refused at the cap purges before retrying


@dataclass(frozen=True)
class Retention:
    keep_sent: timedelta = timedelta(hours=24)
    dedup_window: timedelta = timedelta(minutes=15)
    pressure: float = PRESSURE


@dataclass(frozen=True)
class PurgeReport:
    purged: int
    short_of_space: bool


def short_of_space(outbox: Outbox, pressure: float = PRESSURE) -> bool:
    """True when the outbox holds `pressure` of its cap or more, or the disk's free
    space is within the same headroom of the outbox's free-space floor."""
    used, free = outbox.space()
    headroom = (1 - pressure) * outbox.disk_cap_bytes
    return used >= pressure * outbox.disk_cap_bytes or free < outbox.min_free_bytes + headroom


def purge(outbox: Outbox, retention: Retention, *, max_rows: int | None = None) -> PurgeReport:
    """One purge step: delivered events past `keep_sent`; then, when space is short,
    more of them, a chunk at a time, until it no longer is (see the module doc).
    At most `max_rows` in all, when given."""
    window = retention.dedup_window
    purged = outbox.purge_sent(retention.keep_sent, captured_before=window, max_rows=max_rows)
    short = short_of_space(outbox, retention.pressure)
    target = max(0.0, retention.pressure - HYSTERESIS)
    while short and short_of_space(outbox, target):
        chunk = (
            outbox.purge_chunk if max_rows is None else min(outbox.purge_chunk, max_rows - purged)
        )
        if chunk <= 0:
            break
        deleted = outbox.purge_sent(timedelta(0), captured_before=window, max_rows=chunk)
        purged += deleted
        if deleted < chunk:  # nothing more may go yet
            break
    return PurgeReport(purged=purged, short_of_space=short)
