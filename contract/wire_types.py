"""Strict wire types: exact decimals and bounded instants, the only spellings the API
takes for a number or a time (issue 15, items 1, 7 and 10).

Pydantic's lax parsing would take `" 12"`, `"+5"`, `"1_000"`, Arabic-Indic or
full-width digits and `"5e2"` for a decimal, and a Unix epoch (as a number or as a
string) for a time. A client relying on that sends something no other consumer of the
contract reads the same way, so each of them is a 422 here. A time must also be one
every clock conversion can take: `9999-12-31T23:59:59-14:00` parses, but its UTC (or
the tenant's local) date is past year 9999 and Python raises OverflowError; bounding
instants to [1970, 3000) UTC, and their local date to the same years, makes every
conversion of an accepted time safe.

Like the rest of the `contract` package, this module imports nothing but pydantic and the standard
library.
"""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# A decimal as the contract spells it: ASCII digits, an optional leading minus (the
# types' own bounds refuse a negative where one makes no sense, with a clearer
# message) and an optional fraction with digits on both sides of the point.
DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
MAX_DECIMAL_TEXT = 64  # far more than max_digits needs; bounds the parsing work
DECIMAL_HINT = (
    'send a decimal number as a string of ASCII digits, e.g. "12.5" or "-3" '
    "(no spaces, plus sign, underscores, exponent or other digits), or as a JSON integer"
)

# ISO 8601 extended format with the offset required: date, "T", hours and minutes,
# optional seconds and fraction, then "Z" or ±HH:MM. Python's isoformat() and
# JavaScript's toISOString() both write this.
ISO_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}"
    r"(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
INSTANT_HINT = (
    "send a time as an ISO 8601 string with its UTC offset, e.g. 2026-03-02T08:30:00+08:00 "
    "or 2026-03-02T00:30:00Z (no epoch numbers)"
)
# Every accepted instant lies in [EARLIEST, LATEST), in UTC and as written: far from
# both ends of what datetime can hold, so no conversion to any zone overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
RANGE_HINT = "a time must lie between 1970-01-01T00:00:00Z and 2999-12-31T23:59:59Z"
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def exact_decimal(value: Any) -> Any:
    """Let through what becomes an exact Decimal: a JSON integer, a Decimal built in
    Python, or a plain ASCII decimal string. Everything else is refused here, before
    pydantic's lax parsing could read it some other way."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, float):
        raise ValueError('send decimal numbers as strings, e.g. "12.5"; floats are not exact')
    if isinstance(value, int | Decimal):
        return value
    if (
        isinstance(value, str)
        and len(value) <= MAX_DECIMAL_TEXT
        and DECIMAL_TEXT.fullmatch(value) is not None
    ):
        return value
    raise ValueError(DECIMAL_HINT)


def iso_instant(value: Any) -> Any:
    """Let through an ISO 8601 string with an offset (or a datetime built in Python);
    an epoch number, an epoch string or a looser spelling is refused."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) <= 40 and ISO_INSTANT.fullmatch(value):
        return value
    raise ValueError(INSTANT_HINT)


def in_range(moment: datetime) -> datetime:
    """Refuse an instant outside [EARLIEST, LATEST). The year as written is checked
    before converting, so the conversion itself cannot overflow."""
    if not EARLIEST.year <= moment.year < LATEST.year:
        raise ValueError(RANGE_HINT)
    if not EARLIEST <= moment.astimezone(UTC) < LATEST:
        raise ValueError(RANGE_HINT)
    return moment


def iso_date(value: Any) -> Any:
    """A calendar date as YYYY-MM-DD text (or a date built in Python), nothing looser."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        return value
    raise ValueError("send a date as YYYY-MM-DD, e.g. 2026-03-02")


def date_in_range(day: date) -> date:
    if not EARLIEST.year <= day.year < LATEST.year:
        raise ValueError("a date must lie between 1970-01-01 and 2999-12-31")
    return day


# An aware instant, strictly spelt and in the representable range: every time the API
# takes (event times, heartbeats, query parameters) is one of these.
Instant = Annotated[AwareDatetime, BeforeValidator(iso_instant), AfterValidator(in_range)]
# A calendar date in the same years (a journal entry's date, a lot's expiry).
Day = Annotated[date, BeforeValidator(iso_date), AfterValidator(date_in_range)]
