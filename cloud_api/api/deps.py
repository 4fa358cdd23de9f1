"""The API's dependencies: who calls (one typed Principal), for which tenant, under
which gates, and the engine to use.

A request's credential is one of: a portal session cookie, a scoped integration token,
the tenant's API key, or a device key. `current_principal` resolves it and checks it
against the route's declared Permission (cloud_api/api/permissions.py) and the
subscription's gates; `rate_limited` takes from the tenant's (and device's) token
bucket; `bound_principal` binds the tenant for row-level security. Handlers take
`TenantDep`, `PrincipalDep` and `DbDep`.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy import Engine

from cloud_api.api import permissions
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Forbidden, Unauthorized
from cloud_api.services import api_tokens, devices, subscriptions, users
from cloud_api.services.ingest import Actor, IngestService
from cloud_api.services.store import TenantContext
from cloud_api.services.tenants import tenant_by_id, tenant_for_key
from tenant.security import SESSION_COOKIE, mfa
from tenant.security.keys import API_TOKEN_PREFIX, is_legacy_tenant_key

DEVICE_KEY_PREFIX = "dk_live_"
RATE_BURST_S = 10
PLAN_CACHE_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who calls, as their credential says: a signed-in `user` (with their role, the
    site whose devices they manage, their session), a `device` (its scopes and site),
    a scoped `api_token` or the tenant's `api_key` (which acts for the owner)."""

    tenant: TenantContext
    kind: str  # user, device, api_token, api_key
    ident: str  # the user's, device's or token's id; "tenant" for the API key
    role: str | None = None  # a user's
    user_id: uuid.UUID | None = None
    member_site: str | None = None  # a user's: None, every site
    session_hash: str | None = None
    device_id: Any = None
    device_scopes: frozenset[str] | None = None
    device_site: str | None = None

    @property
    def actor(self) -> tuple[str, str]:
        """Who the audit log names."""
        return (self.kind, self.ident)

    @property
    def ingest_actor(self) -> Actor:
        """Who sends events, as the ingest checks them."""
        return Actor(self.kind, self.ident, self.role, self.device_scopes, self.device_site)

    def signed_in(self, doing: str) -> uuid.UUID:
        """The signed-in user, for what only a person may do (a key does not cancel
        its own subscription, nor replace itself): 403 owner_session_required."""
        if self.user_id is None:
            raise Forbidden("owner_session_required", f"the owner {doing}, signed in")
        return self.user_id


def current_principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, checked against the route's Permission: 401 without a valid
    credential, 403 for what it may not call."""
    key = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key and request.cookies.get(SESSION_COOKIE):
        return _session_principal(request, request.cookies[SESSION_COOKIE])
    if not key:
        raise Unauthorized(
            "missing_api_key",
            "send the tenant's API key as 'Authorization: Bearer <key>' or 'X-API-Key'",
        )
    pepper = request.app.state.settings.api_key_pepper
    platform_db = request.app.state.platform_db
    if key.startswith(API_TOKEN_PREFIX) and not is_legacy_tenant_key(key):
        with platform_db.begin() as conn:
            tenant_id, keyid, scopes = api_tokens.authenticate(conn, key, pepper, now_utc())
            tenant = tenant_by_id(conn, tenant_id)
        permissions.require_scope(request, scopes)
        return Principal(_gate_key(request, tenant), "api_token", keyid)
    if not key.startswith(DEVICE_KEY_PREFIX):
        tenant = tenant_for_key(platform_db, key, pepper)
        return Principal(_gate_key(request, tenant), "api_key", "tenant")
    with platform_db.connect() as conn:
        tenant_id, device_id, scopes, site = devices.authenticate(conn, key, pepper, now_utc())
        tenant = tenant_by_id(conn, tenant_id)
    permissions.require_device_route(request)
    return Principal(
        tenant,
        "device",
        str(device_id),
        device_id=device_id,
        device_scopes=scopes,
        device_site=site,
    )


def _gate_key(request: Request, tenant: TenantContext) -> TenantContext:
    """An integration's request under the subscription, as SAAS.md's table has it for
    API writes: 402 while unpaid or paused, 403 suspended, none once canceled; reads
    like a member who is not the owner (none while suspended). Posting events and
    heartbeats have the ingest's own gate (402 with Retry-After: the sender keeps them)."""
    if permissions.of(request).device:
        return tenant
    write = request.method not in permissions.READS
    with tenancy.as_tenant(tenant.id), request.app.state.platform_db.begin() as conn:
        subscriptions.gate_portal(conn, tenant, write, "integration", now_utc())
    return tenant


def _session_principal(request: Request, token: str) -> Principal:
    """A portal user's request: a live session, the subscription allowing portal reads
    (writes), the CSRF token on writes, and the role allowed the route's action."""
    now, rule = now_utc(), permissions.of(request)
    with request.app.state.platform_db.begin() as conn:
        who = users.principal(conn, token, now)  # switches the transaction to its tenant
        tenant = tenant_by_id(conn, who.tenant_id)
        # signing out or switching company is allowed in every state (as the portal's)
        write = request.method not in permissions.READS and rule.action != permissions.SESSION
        subscriptions.gate_portal(conn, tenant, write, who.role, now, billing=rule.billing)
        plan = subscriptions.plan_of(conn, tenant.id).code
    if mfa.required(who.role, plan) and not who.mfa and not rule.mfa_free:
        raise Forbidden(
            "mfa_setup_required",
            "owners and finance managers of this plan sign in with a second factor: set "
            "one up first (POST /api/v1/mfa/setup, then /mfa/confirm)",
        )
    permissions.require_csrf(request, token, request.app.state.settings.api_key_pepper)
    permissions.require_role(request, who.role)
    return Principal(
        tenant,
        "user",
        str(who.user_id),
        role=who.role,
        user_id=who.user_id,
        member_site=who.device_site,
        session_hash=who.session_hash,
    )


def rate_limited(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """Token buckets per tenant, and per device for device keys, at the plan's API rate
    with ten seconds of it as the burst; beyond it 429 rate_limited with Retry-After.
    Shared through Redis when REDIS_URL is set, else per process."""
    tenant = principal.tenant
    rps = _plan_rps(request, tenant)
    if rps is None:  # a custom plan: no limit here
        return principal
    limiter, now_s = request.app.state.rate_limiter, time.monotonic()
    keys = [("tenant", tenant.id)]
    if principal.device_id is not None:
        keys.append(("device", principal.device_id))
    for key in keys:
        ok, wait_s = limiter.take(key, now_s, rate_per_s=rps, burst=rps * RATE_BURST_S)
        if not ok:
            raise subscriptions.Refused(
                429, "rate_limited", f"more than {rps} requests a second", math.ceil(wait_s)
            )
    return principal


def _plan_rps(request: Request, tenant: TenantContext) -> int | None:
    cache = request.app.state.plan_cache
    hit = cache.get(tenant.id)
    if hit is None or hit[1] < time.monotonic():
        with tenancy.as_tenant(tenant.id), request.app.state.db.connect() as conn:
            rps = subscriptions.plan_of(conn, tenant.id).api_rps
        hit = cache[tenant.id] = (rps, time.monotonic() + PLAN_CACHE_S)
    return hit[0]  # type: ignore[no-any-return]


async def bound_principal(
    principal: Annotated[Principal, Depends(rate_limited)],
) -> Principal:
    """Bind the request's tenant for row-level security. Async on purpose: it runs in
    the request's own task, so the handler (a worker thread started with a copy of this
    context) and everything it calls run their transactions as this tenant. A sync
    dependency would bind it in a throwaway copy."""
    tenancy.bind(principal.tenant.id)
    return principal


async def bound_tenant(principal: Annotated[Principal, Depends(bound_principal)]) -> TenantContext:
    return principal.tenant


def _db(request: Request) -> Engine:
    return request.app.state.db  # type: ignore[no-any-return]


def _platform_db(request: Request) -> Engine:
    return request.app.state.platform_db  # type: ignore[no-any-return]


def _pepper(request: Request) -> str:
    return request.app.state.settings.api_key_pepper  # type: ignore[no-any-return]


def _ingest(request: Request) -> IngestService:
    return request.app.state.ingest  # type: ignore[no-any-return]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


PrincipalDep = Annotated[Principal, Depends(bound_principal)]
TenantDep = Annotated[TenantContext, Depends(bound_tenant)]
DbDep = Annotated[Engine, Depends(_db)]
PlatformDbDep = Annotated[Engine, Depends(_platform_db)]
PepperDep = Annotated[str, Depends(_pepper)]
IngestDep = Annotated[IngestService, Depends(_ingest)]
