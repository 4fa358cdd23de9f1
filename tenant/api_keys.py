"""Per-tenant API keys: shown once, stored only as a keyed hash (HMAC-SHA256 with a
server-side pepper), looked up by that hash. The full identity model (users,
devices with their own keys, rotation, RLS) is the tenancy issue's."""

import hashlib
import hmac
import secrets

PREFIX = "tk_"


def new_api_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
