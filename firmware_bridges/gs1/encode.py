"""GS1 element strings: building them (the parser lives next door in `parse`).

An element string is what a scanner hands over for a GS1-128 / GS1 DataMatrix symbol
once the symbology identifier is stripped: `AI + value` pairs in the caller's order.
Fields whose AI starts with a predefined-length prefix (00-03, 11-17, 20, 31-36, 41)
are never followed by a separator; every other field ends with GS (0x1D) unless it is
the last one. (422 and 7003 are fixed-length too, yet need the separator: the rule goes
by prefix, not by length.) Put variable-length fields last to save a separator.

Invariant: `element_string` only returns strings a conforming parser splits back into
exactly the fields it was given; anything else raises `Gs1EncodeError`, whose `code` is
stable: unknown_ai, invalid_length, invalid_characters, bad_check_digit, invalid_date,
invalid_gtin, duplicate_ai, empty_message, invalid_quantity, date_out_of_range.

Only the application identifiers the shop floor uses are known (see `AI_SPECS`); an
unknown AI is refused rather than guessed at. Add one line there to support another.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

GS = "\x1d"

# GS1 General Specifications, figure 7.8.5-2: AIs starting with these digits have a
# predefined length and so never need an FNC1/GS after them.
PREDEFINED_LENGTH_PREFIXES = frozenset(
    [
        *("00", "01", "02", "03"),
        *("11", "12", "13", "14", "15", "16", "17", "20"),
        *("31", "32", "33", "34", "35", "36", "41"),
    ]
)

# GS1 AI encodable character set 82 (what "X" means in an AI format).
CSET_82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
_DIGITS = frozenset("0123456789")


class Gs1EncodeError(ValueError):
    """A field cannot be encoded; `code` is stable, `message` says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AiSpec:
    """Format of one application identifier's value."""

    title: str
    charset: str  # "N" digits or "X" (CSET 82)
    min_length: int
    max_length: int
    check_digit: bool = False  # mod-10 over the whole value (GTIN, GLN, SSCC)
    date: bool = False  # YYMMDD, DD may be 00 ("end of month")
    date_time: bool = False  # YYMMDDHHMM, a real date and time

    @property
    def fixed(self) -> bool:
        return self.min_length == self.max_length


def _n(title: str, length: int, **flags: bool) -> AiSpec:
    return AiSpec(title, "N", length, length, **flags)


def _x(title: str, max_length: int) -> AiSpec:
    return AiSpec(title, "X", 1, max_length)


AI_SPECS: dict[str, AiSpec] = {
    "00": _n("SSCC", 18, check_digit=True),
    "01": _n("GTIN", 14, check_digit=True),
    "02": _n("CONTENT", 14, check_digit=True),
    "10": _x("BATCH/LOT", 20),
    "11": _n("PROD DATE", 6, date=True),
    "12": _n("DUE DATE", 6, date=True),
    "13": _n("PACK DATE", 6, date=True),
    "15": _n("BEST BEFORE", 6, date=True),
    "16": _n("SELL BY", 6, date=True),
    "17": _n("USE BY OR EXPIRY", 6, date=True),
    "20": _n("VARIANT", 2),
    "21": _x("SERIAL", 20),
    "240": _x("ADDITIONAL ID", 30),
    "241": _x("CUST. PART No.", 30),
    "250": _x("SECONDARY SERIAL", 30),
    "251": _x("REF. TO SOURCE", 30),
    "30": AiSpec("VAR. COUNT", "N", 1, 8),
    "37": AiSpec("COUNT", "N", 1, 8),
    "400": _x("ORDER NUMBER", 30),
    "422": _n("ORIGIN", 3),
    "7003": _n("EXPIRY TIME", 10, date_time=True),
    "8004": _x("GIAI", 30),
    "90": _x("INTERNAL", 30),
}
AI_SPECS.update({f"310{n}": _n(f"NET WEIGHT (kg) {n} decimals", 6) for n in range(6)})
AI_SPECS.update({f"41{n}": _n("GLN", 13, check_digit=True) for n in range(8)})
AI_SPECS.update({f"9{n}": _x("INTERNAL", 90) for n in range(1, 10)})


def gs1_check_digit(digits: str) -> str:
    """The mod-10 check digit for `digits` (the key without its check digit).

    Weights 3, 1, 3, ... from the rightmost digit, as for GTIN, GLN and SSCC.
    """
    if not digits or not set(digits) <= _DIGITS:
        raise Gs1EncodeError("invalid_characters", f"check digit needs digits only, got {digits!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str(-total % 10)


def _has_valid_check_digit(key: str) -> bool:
    return gs1_check_digit(key[:-1]) == key[-1]


def gtin14(gtin: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits (left zero-padded), after checking its check digit."""
    if len(gtin) not in (8, 12, 13, 14) or not set(gtin) <= _DIGITS:
        raise Gs1EncodeError(
            "invalid_gtin", f"a GTIN has 8, 12, 13 or 14 digits and nothing else, got {gtin!r}"
        )
    if not _has_valid_check_digit(gtin):
        expected = gs1_check_digit(gtin[:-1])
        raise Gs1EncodeError(
            "bad_check_digit", f"GTIN {gtin} has check digit {gtin[-1]}, expected {expected}"
        )
    return gtin.zfill(14)


def _gs1_year(yy: int, today: date) -> int:
    """GS1 GenSpecs 7.12: a two-digit year lies within -49..+50 years of this year."""
    year = today.year - today.year % 100 + yy
    if year - today.year > 50:
        return year - 100
    if today.year - year > 49:
        return year + 100
    return year


def date_yymmdd(value: date, *, today: date | None = None) -> str:
    """`value` as GS1 YYMMDD; refused when a reader would resolve YY to another century."""
    today = today or date.today()
    if _gs1_year(value.year % 100, today) != value.year:
        raise Gs1EncodeError(
            "date_out_of_range",
            f"{value.isoformat()} is outside the GS1 two-digit-year window around {today.year}"
            f" ({today.year - 49}..{today.year + 50})",
        )
    return value.strftime("%y%m%d")


def _check_date(ai: str, value: str, *, day_zero: bool) -> None:
    month, day = int(value[2:4]), int(value[4:6])
    year = _gs1_year(int(value[:2]), date.today())
    first_day = 0 if day_zero else 1
    if not 1 <= month <= 12 or not first_day <= day <= calendar.monthrange(year, month)[1]:
        raise Gs1EncodeError("invalid_date", f"AI ({ai}) {value} is not a valid YYMMDD date")


def _check_date_time(ai: str, value: str) -> None:
    _check_date(ai, value, day_zero=False)
    if int(value[6:8]) > 23 or int(value[8:10]) > 59:
        raise Gs1EncodeError("invalid_date", f"AI ({ai}) {value} is not a valid YYMMDDHHMM")


def _check_field(ai: str, value: str) -> AiSpec:
    spec = AI_SPECS.get(ai)
    if spec is None:
        raise Gs1EncodeError(
            "unknown_ai", f"AI ({ai}) is not supported here; known AIs: {', '.join(AI_SPECS)}"
        )
    if not spec.min_length <= len(value) <= spec.max_length:
        size = str(spec.max_length) if spec.fixed else f"{spec.min_length}..{spec.max_length}"
        raise Gs1EncodeError(
            "invalid_length", f"AI ({ai}) {spec.title} takes {size} characters, got {len(value)}"
        )
    allowed = _DIGITS if spec.charset == "N" else CSET_82
    bad = sorted(set(value) - allowed)
    if bad:
        kind = "digits" if spec.charset == "N" else "GS1 character set 82"
        raise Gs1EncodeError(
            "invalid_characters", f"AI ({ai}) {spec.title} takes {kind} only, not {bad!r}"
        )
    if spec.check_digit and not _has_valid_check_digit(value):
        expected = gs1_check_digit(value[:-1])
        raise Gs1EncodeError(
            "bad_check_digit",
            f"AI ({ai}) {value} has check digit {value[-1]}, expected {expected}",
        )
    if spec.date:
        _check_date(ai, value, day_zero=True)
    if spec.date_time:
        _check_date_time(ai, value)
    return spec


def needs_separator(ai: str) -> bool:
    """Whether a field with this AI must be followed by GS when another field follows."""
    return ai[:2] not in PREDEFINED_LENGTH_PREFIXES


def element_string(fields: Sequence[tuple[str, str]]) -> str:
    """Concatenate `(ai, value)` fields, in order, into one GS1 element string.

    No leading FNC1/symbology identifier; GS (0x1D) after each variable-length field
    that is not last. Raises `Gs1EncodeError` for an invalid field or a repeated AI.
    """
    if not fields:
        raise Gs1EncodeError("empty_message", "a GS1 element string needs at least one field")
    seen: set[str] = set()
    parts: list[str] = []
    for index, (ai, value) in enumerate(fields):
        if ai in seen:
            raise Gs1EncodeError("duplicate_ai", f"AI ({ai}) appears more than once")
        seen.add(ai)
        _check_field(ai, value)
        last = index == len(fields) - 1
        parts.append(ai + value + ("" if last or not needs_separator(ai) else GS))
    return "".join(parts)


def human_readable(fields: Sequence[tuple[str, str]]) -> str:
    """The interpretation line printed under a GS1 symbol: `(01)0703...(10)0329`."""
    return "".join(f"({ai}){value}" for ai, value in fields)


_MAX_DECIMALS = 5


def net_weight_kg(quantity: Decimal) -> tuple[str, str]:
    """AI (310n) for a net weight in kg, with the fewest decimals that keep it exact."""
    if not quantity.is_finite() or quantity < 0:
        raise Gs1EncodeError("invalid_quantity", f"net weight {quantity} must be >= 0")
    exponent = quantity.normalize().as_tuple().exponent
    decimals = max(0, -exponent) if isinstance(exponent, int) else 0
    if decimals > _MAX_DECIMALS:
        raise Gs1EncodeError(
            "invalid_quantity", f"net weight {quantity} kg has more than 5 decimals"
        )
    digits = int(quantity.scaleb(decimals))
    if digits >= 10**6:
        raise Gs1EncodeError(
            "invalid_quantity", f"net weight {quantity} kg does not fit in 6 digits"
        )
    return f"310{decimals}", f"{digits:06d}"


def variable_count(quantity: Decimal) -> tuple[str, str]:
    """AI (30) for a whole count of units (0..99,999,999)."""
    if not quantity.is_finite() or quantity < 0 or quantity != quantity.to_integral_value():
        raise Gs1EncodeError("invalid_quantity", f"count {quantity} must be a whole number >= 0")
    if quantity >= 10**8:
        raise Gs1EncodeError("invalid_quantity", f"count {quantity} does not fit in 8 digits")
    return "30", str(int(quantity))
