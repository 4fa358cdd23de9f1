"""Portal sessions: a random token in a `__Host-` cookie; the database keeps only its
SHA-256 (a 256-bit random token needs no slow hash), with user, active tenant, created_at
and last_seen_at. Rotate the token on login, tenant switch and role change; delete the row
on logout, password change and suspension (a replayed cookie then finds nothing).
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tenant.security._hmac import utf8

SESSION_COOKIE = "__Host-session"
SessionState = Literal["live", "idle_expired", "expired"]


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the session table stores and is looked up by."""
    return hashlib.sha256(utf8(token)).hexdigest()


@dataclass(frozen=True)
class SessionTimes:
    """Idle and absolute limits. Times are aware UTC datetimes; a limit is reached *at*
    the boundary (created_at + 12 h is already expired)."""

    idle_timeout: timedelta = timedelta(minutes=30)
    absolute_timeout: timedelta = timedelta(hours=12)
    # last_seen_at is written at most this often, to spare a write per request; the idle
    # timeout is therefore exact to within this much.
    touch_every: timedelta = timedelta(seconds=60)

    def state(self, created_at: datetime, last_seen_at: datetime, now: datetime) -> SessionState:
        if now >= created_at + self.absolute_timeout:
            return "expired"
        if now >= last_seen_at + self.idle_timeout:
            return "idle_expired"
        return "live"

    def expires_at(self, created_at: datetime, last_seen_at: datetime) -> datetime:
        """The first instant the session is no longer live (for purging rows)."""
        return min(created_at + self.absolute_timeout, last_seen_at + self.idle_timeout)

    def should_touch(self, last_seen_at: datetime, now: datetime) -> bool:
        return now - last_seen_at >= self.touch_every


SESSION_TIMES = SessionTimes()


def session_state(
    created_at: datetime, last_seen_at: datetime, now: datetime, times: SessionTimes = SESSION_TIMES
) -> SessionState:
    return times.state(created_at, last_seen_at, now)


def session_cookie(token: str, times: SessionTimes = SESSION_TIMES) -> dict[str, Any]:
    """Keyword arguments for Starlette's `Response.set_cookie(**session_cookie(token))`.

    `__Host-` makes the browser insist on Secure, Path=/ and no Domain, so no subdomain can
    set or read it. Max-Age equals the absolute timeout; the server enforces both limits.
    """
    return {
        "key": SESSION_COOKIE,
        "value": token,
        "max_age": int(times.absolute_timeout.total_seconds()),
        "path": "/",
        "domain": None,
        "secure": True,
        "httponly": True,
        "samesite": "lax",
    }


def clear_session_cookie() -> dict[str, Any]:
    """Kwargs for `set_cookie` on logout: the same attributes (a `__Host-` cookie is only
    replaced by one that has them), empty value, Max-Age=0."""
    return {**session_cookie(""), "max_age": 0}


def set_cookie_header(token: str, times: SessionTimes = SESSION_TIMES) -> str:
    """The exact `Set-Cookie` header value, for callers that write headers directly."""
    max_age_s = int(times.absolute_timeout.total_seconds())
    return f"{SESSION_COOKIE}={token}; Max-Age={max_age_s}; Path=/; Secure; HttpOnly; SameSite=Lax"
