"""The password policy for portal users (NIST SP 800-63B style: length and a blocklist,
no composition rules).

Rules, in order, each with a stable `reason`:
  too_short (< 12 characters), too_long (> 256), repeated (one short unit repeated, e.g.
  "aaaaaaaaaaaa" or "abababababab"), sequence (a run of the alphabet, the digits or a
  keyboard row, either direction), common (in the bundled list, also after stripping
  leading/trailing digits and symbols and undoing simple leetspeak: "P@ssw0rd2024!"),
  contains_email (the email's local part), contains_company (the company name or its first
  word).
"""

import re
import unicodedata
from functools import cache
from importlib import resources

from tenant.security.errors import WeakPassword

PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_CHARS = 256
_MAX_REPEATED_UNIT = 4
_MIN_PERSONAL_TERM = 3
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
    "!@#$%^&*()_+",
)
_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
_LEET_I = str.maketrans({**_LEET, "1": "i", "!": "i"})
_LEET_L = str.maketrans({**_LEET, "1": "l", "!": "l"})
_NOT_ALNUM = re.compile(r"[\W_]+")
_EDGE_NOISE = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list `tenant/common_passwords.txt`, lowercased; missing file = error,
    never a silently empty blocklist."""
    text = resources.files("tenant").joinpath("common_passwords.txt").read_text("utf-8")
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_password_policy(
    password: str, *, email: str | None = None, company: str | None = None
) -> None:
    """Raise `WeakPassword` if the password breaks a rule; return None if it is acceptable."""
    pw = unicodedata.normalize("NFKC", password)
    if len(pw) < PASSWORD_MIN_CHARS:
        _fail("too_short", f"Use at least {PASSWORD_MIN_CHARS} characters.")
    if len(pw) > PASSWORD_MAX_CHARS:
        _fail("too_long", f"Use at most {PASSWORD_MAX_CHARS} characters.")
    folded = pw.casefold()
    squashed = _NOT_ALNUM.sub("", folded)
    if _is_repetition(folded) or (squashed and _is_repetition(squashed)):
        _fail("repeated", "Do not repeat the same character or short pattern.")
    if _is_sequence(folded) or _is_sequence(squashed):
        _fail("sequence", "Do not use a run of letters, digits or keyboard keys.")
    if _is_common(folded, squashed):
        _fail("common", "This password is too common; choose a longer, less predictable one.")
    if email and _contains_any(squashed, _email_terms(email)):
        _fail("contains_email", "Do not use your email address in the password.")
    if company and _contains_any(squashed, _company_terms(company)):
        _fail("contains_company", "Do not use the company name in the password.")


def _fail(reason: str, message: str) -> None:
    raise WeakPassword(reason, message)


def _is_repetition(text: str) -> bool:
    for unit in range(1, _MAX_REPEATED_UNIT + 1):
        if len(text) > unit and text == (text[:unit] * (len(text) // unit + 1))[: len(text)]:
            return True
    return False


def _is_sequence(text: str) -> bool:
    if len(text) < 3:
        return False
    for seq in _SEQUENCES:
        cycle = seq * (len(text) // len(seq) + 2)
        if text in cycle or text in cycle[::-1]:
            return True
    return False


def _is_common(folded: str, squashed: str) -> bool:
    common = common_passwords()
    candidates: set[str] = set()
    for text in (folded, squashed):
        core = _EDGE_NOISE.sub("", text)
        candidates |= {text, core, core.translate(_LEET_I), core.translate(_LEET_L)}
    return any(c in common for c in candidates if c)


def _email_terms(email: str) -> set[str]:
    local = email.casefold().split("@", 1)[0]
    parts = {p for p in re.split(r"[._+\-]", local) if len(p) >= 4}
    return {_NOT_ALNUM.sub("", local), *parts}


def _company_terms(company: str) -> set[str]:
    words = [w for w in _NOT_ALNUM.split(company.casefold()) if w]
    terms = {"".join(words)}
    if words and len(words[0]) >= 4:
        terms.add(words[0])
    return terms


def _contains_any(squashed: str, terms: set[str]) -> bool:
    return any(len(t) >= _MIN_PERSONAL_TERM and t in squashed for t in terms)
