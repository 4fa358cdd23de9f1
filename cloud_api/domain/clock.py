"""Time conventions: the database stores aware UTC timestamps; a journal entry is
dated in the tenant's time zone (an event at 07:30 in Shanghai is that day's)."""

from datetime import UTC, date, datetime
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
