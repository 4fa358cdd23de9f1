"""What the portal's page modules share: the tenants' engine, path ids, the notices a
redirect may show, and service errors turned into error pages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from sqlalchemy import Engine

from cloud_api.errors import ErpError
from cloud_api.services.ingest import Actor
from web.security import PageError, Principal

Result = TypeVar("Result")
NOTICES = frozenset(
    {
        "posted",
        "still_held",
        "still_rejected",
        "voided",
        "revoked",
        "released",
        "closed",
        "cancelled",
        "period_closed",
        "period_reopened",
        "invited",
        "role_changed",
        "removed",
        "api_key_revoked",
        "invitation_mailed",
        "invitation_withdrawn",
        "subscription_canceled",
    }
)


def db(request: Request) -> Engine:
    """The tenants' engine: its transactions run as the tenant the principal bound."""
    return request.app.state.db  # type: ignore[no-any-return]


def parse_uuid(text: str) -> uuid.UUID:
    """A path's id; anything else is a 404 page, never a 422 or a 500."""
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise PageError(404, "Not found", text[:80]) from error


def notice(request: Request) -> str | None:
    """The notice a post's redirect asked for, if it is one the pages know."""
    found = request.query_params.get("notice")
    return found if found in NOTICES else None


def service_call(call: Callable[[], Result]) -> Result:
    """Run a service call; its typed errors become an error page with their status."""
    try:
        return call()
    except ErpError as error:
        raise PageError(getattr(error, "status", 400), "Not done", error.message) from error


def actor_of(who: Principal) -> Actor:
    """The signed-in user as the ingest records and checks them (as the JSON routes'
    _ingest_actor does for a session)."""
    return Actor("user", str(who.user_id), who.role)
