"""Device keys and integration API tokens: `<prefix><keyid>_<secret>`.

* keyid: 16 lower-case hex characters, public, unique, used to find the row.
* secret: 256 random bits, `secrets.token_urlsafe(32)` (43 characters), shown once.
* the row stores `HMAC-SHA256(pepper, secret)` hex; verification is constant time.

Lifecycle (the caller's rows): a device has at most 2 live keys. Rotating issues a new key,
sets `rotated_at` on the current one, which stays valid until `rotated_at + 7 days`, and
revokes any key already in its overlap window (`rotation_plan`). Revocation is immediate:
a key with `revoked_at` set is dead; anything caching key lookups must hold them for
at most `REVOCATION_CACHE_MAX_S`.

The older per-tenant keys (`tk_` + 43 characters, `tenant.api_keys`) are still looked up
by `hash_api_key`; `is_legacy_tenant_key` tells them apart from the new tokens.
"""

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from tenant.security._hmac import hmac_hex, same_text
from tenant.security.errors import BadKey, BadScope

DEVICE_KEY_PREFIX = "dk_live_"
API_TOKEN_PREFIX = "tk_"
KEYID_CHARS = 16
SECRET_CHARS = 43  # token_urlsafe(32)
KEY_OVERLAP = timedelta(days=7)
MAX_LIVE_KEYS = 2
REVOCATION_CACHE_MAX_S = 60

API_SCOPES = frozenset(
    {"events:post", "work_orders:read", "items:read", "stock:read", "reports:read", "export:read"}
)
# What a device may do. A station posts stock movements (receiving, issuing, shipping,
# counting: stock:post), work-order progress (completions, labour: progress:post), or
# both; "events:post", which devices enrolled before got, is every kind.
DEVICE_SCOPES = frozenset(
    {"events:post", "stock:post", "progress:post", "work_orders:read", "items:read"}
)
DEFAULT_DEVICE_SCOPES = frozenset({"stock:post", "progress:post", "work_orders:read", "items:read"})
READ_SCOPES = frozenset({"work_orders:read", "items:read"})


def device_scopes(chosen: Iterable[str] | None) -> frozenset[str]:
    """The scopes of a new device: DEFAULT_DEVICE_SCOPES, or what posts were chosen for
    it (the reads always come with them); `BadScope` for an unknown or an empty choice."""
    if chosen is None:
        return DEFAULT_DEVICE_SCOPES
    picked = frozenset(chosen)
    unknown = picked - (DEVICE_SCOPES - {"events:post"})
    if unknown or not picked - READ_SCOPES:
        posts = sorted(DEFAULT_DEVICE_SCOPES - READ_SCOPES)
        raise BadScope(f"a device posts one or more of {posts}; not {sorted(unknown) or 'none'}")
    return picked | READ_SCOPES


_BODY = rf"([0-9a-f]{{{KEYID_CHARS}}})_([A-Za-z0-9_-]{{{SECRET_CHARS}}})"
_DEVICE_KEY = re.compile(re.escape(DEVICE_KEY_PREFIX) + _BODY, re.ASCII)
_API_TOKEN = re.compile(re.escape(API_TOKEN_PREFIX) + _BODY, re.ASCII)
_LEGACY_TENANT_KEY = re.compile(r"tk_[A-Za-z0-9_-]{43}", re.ASCII)


class IssuedKey(NamedTuple):
    full_key: str  # shown once, never stored
    keyid: str
    secret_hash: str


def hash_secret(secret: str, pepper: str | bytes) -> str:
    return hmac_hex(pepper, secret)


def verify_secret(secret: str, stored_hash: str, pepper: str | bytes) -> bool:
    return same_text(hash_secret(secret, pepper), stored_hash)


def _issue(prefix: str, pepper: str | bytes) -> IssuedKey:
    keyid = secrets.token_hex(KEYID_CHARS // 2)
    secret = secrets.token_urlsafe(32)
    return IssuedKey(f"{prefix}{keyid}_{secret}", keyid, hash_secret(secret, pepper))


def _parse(pattern: re.Pattern[str], prefix: str, key: object, code: str) -> tuple[str, str]:
    expected_chars = len(prefix) + KEYID_CHARS + 1 + SECRET_CHARS
    match = pattern.fullmatch(key) if isinstance(key, str) and len(key) == expected_chars else None
    if match is None:
        raise BadKey(code, "The key is not valid.")
    return match[1], match[2]


def new_device_key(pepper: str | bytes) -> IssuedKey:
    return _issue(DEVICE_KEY_PREFIX, pepper)


def parse_device_key(key: object) -> tuple[str, str]:
    """(keyid, secret), or `BadKey("invalid_device_key")` for anything else, whatever it is."""
    return _parse(_DEVICE_KEY, DEVICE_KEY_PREFIX, key, "invalid_device_key")


def new_api_token(scopes: Iterable[str], pepper: str | bytes) -> IssuedKey:
    """A `tk_<keyid>_<secret>` token; store `validate_scopes(scopes)` with the row."""
    validate_scopes(scopes)
    return _issue(API_TOKEN_PREFIX, pepper)


def parse_api_token(token: object) -> tuple[str, str]:
    return _parse(_API_TOKEN, API_TOKEN_PREFIX, token, "invalid_api_token")


def is_legacy_tenant_key(token: object) -> bool:
    return isinstance(token, str) and _LEGACY_TENANT_KEY.fullmatch(token) is not None


def validate_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; `BadScope` if one is unknown or there are none. A single string
    is read as space-separated (OAuth style), never as a set of characters."""
    granted = frozenset(scopes.split() if isinstance(scopes, str) else scopes)
    unknown = granted - API_SCOPES
    if unknown or not granted:
        raise BadScope(
            f"Unknown or missing scopes: {sorted(unknown)}; allowed: {sorted(API_SCOPES)}"
        )
    return granted


def has_scope(granted: Iterable[str], needed: str) -> bool:
    """Exact match, no wildcards and no implied scopes. `needed` must be a known scope (a
    typo in a route declaration is a programming error, not a silent deny)."""
    if needed not in API_SCOPES:
        raise ValueError(f"unknown scope {needed!r}")
    return needed in (granted.split() if isinstance(granted, str) else frozenset(granted))


def key_is_live(
    *,
    rotated_at: datetime | None,
    revoked_at: datetime | None,
    now: datetime,
    overlap: timedelta = KEY_OVERLAP,
) -> bool:
    """A key is live unless revoked, or rotated `overlap` ago or more."""
    if revoked_at is not None:
        return False
    return rotated_at is None or now < rotated_at + overlap


@dataclass(frozen=True)
class KeyTimes:
    keyid: str
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return key_is_live(rotated_at=self.rotated_at, revoked_at=self.revoked_at, now=now)


@dataclass(frozen=True)
class RotationPlan:
    rotate: tuple[str, ...]  # set rotated_at = now: they enter the overlap window
    revoke: tuple[str, ...]  # set revoked_at = now: they were already in it


def rotation_plan(keys: Sequence[KeyTimes], now: datetime) -> RotationPlan:
    """What to change on a device's existing keys when it gets a new one, so that at most
    `MAX_LIVE_KEYS` remain live: the new key and the newest current one (now overlapping).
    Keys already overlapping, and any other un-rotated key, are revoked."""
    live = [k for k in keys if k.is_live(now)]
    current = sorted((k for k in live if k.rotated_at is None), key=lambda k: k.created_at)
    keep = current[-1:]
    revoke = [k.keyid for k in live if k not in keep]
    return RotationPlan(rotate=tuple(k.keyid for k in keep), revoke=tuple(revoke))
