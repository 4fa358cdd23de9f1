"""Enrollment codes: single-use, 24 h, scoped by the caller's row to tenant + site, stored
only as HMAC-SHA256(pepper, normalised code).

A code is 16 characters from a 30-letter alphabet without look-alikes (no 0/O, 1/I/L, U),
shown as 4 groups of 4 (`7KQM-X3PD-...`) and later as a QR code: log2(30) * 16 = 78 bits.
Typed input is forgiven for case, spaces, dashes and full-width characters (NFKC).

Single use must be atomic in the database: `UPDATE ... SET used_at = now WHERE code_hash =
:h AND used_at IS NULL AND created_at > now - ttl RETURNING ...`; `enrollment_state` is the
same rule in Python, for messages and tests.
"""

import secrets
import unicodedata
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from tenant.security._hmac import hmac_hex
from tenant.security.errors import BadKey

ENROLLMENT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
ENROLLMENT_GROUPS = 4
ENROLLMENT_GROUP_CHARS = 4
ENROLLMENT_CHARS = ENROLLMENT_GROUPS * ENROLLMENT_GROUP_CHARS
ENROLLMENT_TTL = timedelta(hours=24)
_MAX_INPUT_CHARS = 64
_ALPHABET = frozenset(ENROLLMENT_ALPHABET)

EnrollmentState = Literal["valid", "used", "expired"]


class IssuedCode(NamedTuple):
    code: str  # shown once (text and QR), never stored
    code_hash: str


def new_enrollment_code(pepper: str | bytes) -> IssuedCode:
    raw = "".join(secrets.choice(ENROLLMENT_ALPHABET) for _ in range(ENROLLMENT_CHARS))
    return IssuedCode(format_enrollment_code(raw), enrollment_code_hash(raw, pepper))


def format_enrollment_code(code: str) -> str:
    raw = normalise_enrollment_code(code)
    step = ENROLLMENT_GROUP_CHARS
    return "-".join(raw[i : i + step] for i in range(0, len(raw), step))


def normalise_enrollment_code(text: object) -> str:
    """The 16 canonical characters, or `BadKey("invalid_enrollment_code")`."""
    if not isinstance(text, str) or len(text) > _MAX_INPUT_CHARS:
        raise _bad()
    folded = unicodedata.normalize("NFKC", text).upper()
    raw = "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch) != "Pd")
    if len(raw) != ENROLLMENT_CHARS or not set(raw) <= _ALPHABET:
        raise _bad()
    return raw


def enrollment_code_hash(text: str, pepper: str | bytes) -> str:
    """Normalise typed input and hash it: the value to look the code up by."""
    return hmac_hex(pepper, normalise_enrollment_code(text))


def enrollment_state(
    created_at: datetime, used_at: datetime | None, now: datetime, ttl: timedelta = ENROLLMENT_TTL
) -> EnrollmentState:
    """`used` wins over `expired`; the code expires *at* created_at + ttl."""
    if used_at is not None:
        return "used"
    if now >= created_at + ttl:
        return "expired"
    return "valid"


def _bad() -> BadKey:
    return BadKey("invalid_enrollment_code", "The enrollment code is not valid.")
