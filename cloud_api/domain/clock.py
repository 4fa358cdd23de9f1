"""Time conventions: the database stores aware UTC timestamps; a journal entry is
dated in the tenant's time zone (an event at 07:30 in Shanghai is that day's)."""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


def local_date(moment: datetime, timezone: str) -> date:
    return utc(moment).astimezone(ZoneInfo(timezone)).date()


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def first_day_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


@dataclass(frozen=True)
class EventWindow:
    """How far from the server's clock an event may be dated (issue 15): a terminal
    whose clock reset to 1970 or jumped years ahead would otherwise post into long-gone
    or far-future periods and re-value everything in between. An event outside is
    rejected on its own (`occurred_at_out_of_range`), kept in the exception queue, and
    its neighbours post. The edge's measured offset to the cloud (envelope
    `clock_offset_s`, cloud − edge, from its heartbeats) widens the side its clock errs
    to, by at most `max_future`: a clock known to run ahead may date events that much
    further ahead, never arbitrarily far."""

    max_past: timedelta
    max_future: timedelta

    def bounds(self, now: datetime, clock_offset_s: float | None) -> tuple[datetime, datetime]:
        slack = timedelta(0)
        if clock_offset_s is not None and math.isfinite(clock_offset_s):
            cap = self.max_future.total_seconds()
            slack = timedelta(seconds=max(-cap, min(cap, clock_offset_s)))
        earliest = now - self.max_past - max(slack, timedelta(0))
        latest = now + self.max_future + max(-slack, timedelta(0))
        return earliest, latest

    def refusal(self, moment: datetime, now: datetime, clock_offset_s: float | None) -> str | None:
        """Why `moment` is outside the window, or None when it is inside."""
        earliest, latest = self.bounds(now, clock_offset_s)
        moment = utc(moment)
        if earliest <= moment <= latest:
            return None
        measured = (
            f"; the edge measured its clock {clock_offset_s:+.0f} s off the cloud's"
            if clock_offset_s is not None
            else ""
        )
        side = "before" if moment < earliest else "after"
        return (
            f"occurred_at {moment.isoformat()} is {side} the window the cloud takes "
            f"({earliest.isoformat(timespec='seconds')} to {latest.isoformat(timespec='seconds')}: "
            f"{self.max_past.days} days back, {self.max_future.total_seconds() / 3600:g} h ahead "
            f"of the server's clock{measured}); check the device's clock, then void this "
            "event or send it again with the right time"
        )

    def describe(self) -> dict[str, float | int]:
        """What GET /settings shows the tenant."""
        return {
            "max_past_days": self.max_past.days,
            "max_future_hours": self.max_future.total_seconds() / 3600,
        }


def event_window(max_past_days: int, max_future_hours: float) -> EventWindow:
    return EventWindow(timedelta(days=max_past_days), timedelta(hours=max_future_hours))


def event_window_of(settings: Any) -> EventWindow:
    """The window the platform's settings (cloud_api.settings) give."""
    return event_window(settings.event_max_past_days, settings.event_max_future_hours)
