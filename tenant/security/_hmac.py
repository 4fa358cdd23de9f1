"""Keyed hashing and constant-time comparison shared by keys, codes and CSRF tokens."""

import hashlib
import hmac


def key_bytes(key: str | bytes) -> bytes:
    """A pepper or secret as bytes; an empty one is a configuration error, never a default."""
    raw = utf8(key) if isinstance(key, str) else key
    if not raw:
        raise ValueError("an empty pepper/secret is not allowed")
    return raw


def utf8(text: str) -> bytes:
    """UTF-8 that never raises: a lone surrogate (JSON "\\ud800" decodes to one) is kept
    as its own bytes instead of turning untrusted input into a 500."""
    return text.encode("utf-8", "surrogatepass")


def hmac_hex(key: str | bytes, message: str) -> str:
    return hmac.new(key_bytes(key), utf8(message), hashlib.sha256).hexdigest()


def same_text(expected: str, given: object) -> bool:
    """Constant-time equality; anything that is not an ASCII str is simply unequal.

    (`hmac.compare_digest` raises TypeError on non-ASCII str, so compare bytes.)
    """
    if not isinstance(given, str) or not given.isascii():
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
