"""Password hashing: argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile:
t=3, m=64 MiB, p=4), which exceed OWASP's minimum (m=19 MiB, t=2, p=1).

Passwords are NFKC-normalised before hashing (NIST SP 800-63B), so a password typed with
full-width characters on one input method and half-width on another is the same password.

Login must not reveal whether an account exists: look the user up, then call
`verify_or_dummy(stored_or_None, password)` and answer `LOGIN_FAILED_MESSAGE` on any failure.
"""

import secrets
import unicodedata

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from tenant.security._hmac import utf8

LOGIN_FAILED_MESSAGE = "Incorrect email or password."

_hasher = PasswordHasher()

# OWASP Password Storage Cheat Sheet: argon2id with one of these (memory KiB, iterations)
# pairs, parallelism 1 or more. They trade memory for time at equal strength.
OWASP_ARGON2ID_MINIMUMS: tuple[tuple[int, int], ...] = (
    (47104, 1),
    (19456, 2),
    (12288, 3),
    (9216, 4),
    (7168, 5),
)


def _normalise(password: str) -> bytes:
    return utf8(unicodedata.normalize("NFKC", password))


def hash_password(password: str) -> str:
    """An encoded argon2id hash, `$argon2id$v=19$m=...,t=...,p=...$salt$hash`."""
    return _hasher.hash(_normalise(password))


def verify_password(stored_hash: str, password: str) -> tuple[bool, str | None]:
    """(ok, new_hash): new_hash is set only when the password is right and the stored hash
    used weaker or older parameters; the caller saves it in the same transaction."""
    try:
        _hasher.verify(stored_hash, _normalise(password))
    except (VerificationError, InvalidHashError):
        return False, None
    if _hasher.check_needs_rehash(stored_hash):
        return True, hash_password(password)
    return True, None


# Made with the current parameters at import, so verifying against it costs the same as
# verifying against a real user's hash. Its password is random and thrown away.
DUMMY_HASH = hash_password(secrets.token_urlsafe(32))


def verify_or_dummy(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """Like `verify_password`, but an unknown user (None) spends the same argon2 time and
    gets the same answer as a wrong password."""
    if stored_hash is None:
        verify_password(DUMMY_HASH, password)
        return False, None
    return verify_password(stored_hash, password)


def meets_owasp_minimum(encoded_hash: str) -> bool:
    """True if the hash is argon2id with parameters at or above one of OWASP's pairs."""
    try:
        params = extract_parameters(encoded_hash)
    except InvalidHashError:
        return False
    if params.type is not Type.ID or params.parallelism < 1:
        return False
    return any(
        params.memory_cost >= memory_kib and params.time_cost >= time_cost
        for memory_kib, time_cost in OWASP_ARGON2ID_MINIMUMS
    )
