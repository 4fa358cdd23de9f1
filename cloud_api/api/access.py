"""Which action each API route is (tenant/rbac.py decides which roles may do it), and
the CSRF check for cookie sessions. Portal users come through sessions; integrations
with a tenant API key act for the owner; devices are limited to the edge endpoints."""

from __future__ import annotations

from fastapi import Request

from cloud_api.errors import Forbidden
from tenant.rbac import can
from tenant.security import check_csrf, check_origin

# (method, route path) → action; every GET is "read". A write route missing here is
# refused to portal users (tests/test_users.py checks that every write route is mapped).
WRITE_ACTIONS: dict[tuple[str, str], str] = {
    **{
        ("POST", f"/api/v1/{path}"): "masterdata.write"
        for path in (
            "items",
            "locations",
            "customers",
            "suppliers",
            "work-centers",
            "operators",
            "operator-grades",
            "boms",
            "boms/{item}/{version}/activate",
        )
    },
    ("POST", "/api/v1/edge/events"): "events.post",
    ("POST", "/api/v1/edge/heartbeat"): "events.post",
    ("POST", "/api/v1/work-orders/{work_order}/progress"): "events.post",
    ("POST", "/api/v1/exceptions/{event_id}/repost"): "events.post",
    ("POST", "/api/v1/exceptions/{event_id}/void"): "events.post",
    **{
        ("POST", f"/api/v1/work-orders{path}"): "production.write"
        for path in ("", "/{code}/release", "/{code}/cancel", "/{code}/close")
    },
    ("POST", "/api/v1/events/{event_id}/reverse"): "journal.reverse",
    ("POST", "/api/v1/journal-entries"): "journal.post",
    ("POST", "/api/v1/periods/{code}/close"): "period.close",
    ("POST", "/api/v1/periods/{code}/reopen"): "period.reopen",
    ("PATCH", "/api/v1/settings"): "settings.write",
    ("POST", "/api/v1/devices/enrollment-codes"): "devices.manage",
    ("POST", "/api/v1/devices/{device_id}/rotate"): "devices.manage",
    ("POST", "/api/v1/devices/{device_id}/revoke"): "devices.manage",
    ("POST", "/api/v1/users"): "users.manage",
    ("POST", "/api/v1/logout"): "session",
    ("POST", "/api/v1/mfa/setup"): "session",
    ("POST", "/api/v1/me/password"): "session",
    ("POST", "/api/v1/mfa/confirm"): "session",
    ("POST", "/api/v1/mfa/recovery-codes"): "session",
    ("POST", "/api/v1/session/switch"): "session",
    ("POST", "/api/v1/subscription/cancel"): "billing",
    ("POST", "/api/v1/api-key/rotate"): "users.manage",
    ("POST", "/api/v1/api-key/revoke"): "users.manage",
    ("PATCH", "/api/v1/users/{user_id}"): "users.manage",
    ("DELETE", "/api/v1/users/{user_id}"): "users.manage",
    ("DELETE", "/api/v1/invitations/{invitation_id}"): "users.manage",
    ("POST", "/api/v1/api-tokens"): "users.manage",
    ("POST", "/api/v1/api-tokens/{token_id}/revoke"): "users.manage",
}
# writes that take no credential at all (the credential is in the body, or is made)
OPEN_WRITES = frozenset(
    f"/api/v1/{path}" for path in ("signup", "login", "devices/enroll", "invitations/accept")
)
# the session's own writes and those with no credential: no Idempotency-Key for them
# (they set cookies or show secrets)
SESSION_WRITES = OPEN_WRITES | {p for (_, p), a in WRITE_ACTIONS.items() if a == "session"}
# writes that SAAS.md's "read + billing" allows an unpaid or paused tenant
BILLING_WRITES = frozenset({("POST", "/api/v1/subscription/cancel")})
# reads that not every role may do
READ_ACTIONS = {
    "/api/v1/export": "export",
    "/api/v1/audit-log": "export",
    "/api/v1/subscription/invoices": "users.manage",  # billing: the owner's
    "/api/v1/api-tokens": "users.manage",
    "/api/v1/invitations": "users.manage",  # who is invited: the owner's business
}
# What a scoped integration token needs (tenant/security/keys.py API_SCOPES): the writes
# it may do, and reads by path prefix (the first that matches). Anything else: refused.
TOKEN_WRITES = {
    ("POST", "/api/v1/edge/events"): "events:post",
    ("POST", "/api/v1/work-orders/{work_order}/progress"): "events:post",
    ("POST", "/api/v1/edge/heartbeat"): "events:post",
}
TOKEN_READS = (
    ("/api/v1/export", "export:read"),
    ("/api/v1/audit-log", "export:read"),
    ("/api/v1/work-orders", "work_orders:read"),
    ("/api/v1/reports/stock", "stock:read"),  # and stock-ledger
    ("/api/v1/reports/wip", "stock:read"),
    ("/api/v1/reports", "reports:read"),
    ("/api/v1/accounts", "reports:read"),
    ("/api/v1/edge/masterdata", "items:read"),
    ("/api/v1/items", "items:read"),
    ("/api/v1/locations", "items:read"),
    ("/api/v1/boms", "items:read"),
    ("/api/v1/customers", "items:read"),
    ("/api/v1/suppliers", "items:read"),
    ("/api/v1/work-centers", "items:read"),
    ("/api/v1/operators", "items:read"),
    ("/api/v1/operator-grades", "items:read"),
)
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/api/v1"


def route_path(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return path if path.startswith(API_PREFIX) else API_PREFIX + path


def scope_needed(request: Request) -> str | None:
    path = route_path(request)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return next((scope for prefix, scope in TOKEN_READS if path.startswith(prefix)), None)
    return TOKEN_WRITES.get((request.method, path))


def require_scope(request: Request, scopes: frozenset[str]) -> None:
    needed = scope_needed(request)
    if needed is None or needed not in scopes:
        what = f"{request.method} {route_path(request)}"
        raise Forbidden(
            "insufficient_scope",
            f"this token may not {what}" + (f": it needs the scope {needed}" if needed else ""),
        )


def is_billing(request: Request) -> bool:
    return (request.method, route_path(request)) in BILLING_WRITES


def action_of(request: Request) -> str:
    path = route_path(request)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return READ_ACTIONS.get(path, "read")
    return WRITE_ACTIONS.get((request.method, path), "unmapped")


def require_role(request: Request, role: str) -> None:
    action = action_of(request)
    if not can(role, action):
        raise Forbidden("forbidden", f"the role {role} may not do this ({action})")


def require_csrf(request: Request, session_token: str, secret: str) -> None:
    """Writes with a session cookie carry the session's CSRF token in a header and, if
    the browser says where it comes from, come from this origin."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    allowed = f"{request.url.scheme}://{request.url.netloc}"
    if not check_csrf(session_token, request.headers.get(CSRF_HEADER), secret) or not (
        check_origin(
            request.headers.get("origin"),
            request.headers.get("sec-fetch-site"),
            allowed,
            allow_missing=True,
        )
    ):
        raise Forbidden("csrf_failed", "missing or wrong CSRF token, or a foreign origin")
