"""Who is asking, and may they: the portal's session principal, the CSRF token of
every form, the Origin check and the role check of every write.

The principal is resolved in an async dependency on purpose: the credential lookup
runs on the platform engine in a worker thread, and then `tenancy.bind` runs in the
request's own task, so the sync handler (a worker thread started with a copy of this
context) runs every transaction as the tenant (cloud_api/db/tenancy.py)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Unauthorized
from cloud_api.services import subscriptions, users
from cloud_api.services.store import TenantContext
from cloud_api.services.tenants import tenant_by_id
from tenant import subscriptions as subs
from tenant.rbac import can
from tenant.security import (
    SESSION_COOKIE,
    check_csrf,
    check_origin,
    csrf_token,
    mfa,
    new_session_token,
)
from web import i18n

T = m.SQLModel.metadata.tables
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
# Before sign-in there is no session to bind a CSRF token to: the sign-up and login
# forms bind theirs to this short-lived random cookie (tenant/security/csrf.py).
PRESESSION_COOKIE = "__Host-presession"
PRESESSION_MAX_AGE_S = 2 * 3600


def _(message: str) -> str:
    """Marks a message id for the catalogs; the error page translates it."""
    return message


FORM_EXPIRED = _("The form has expired")
RELOAD = _("Reload the page and try again.")


@dataclass(frozen=True)
class Subscription:
    state: str
    plan: str
    banner: str | None  # in English (tenant/subscriptions.py); the page says it translated
    trial_ends_at: datetime | None
    days_left: int | None  # of the trial, rounded up
    grace_ends_at: datetime | None = None  # past due: the day writes stop
    suspended_reason: str | None = None
    read_only_until: datetime | None = None  # canceled: then locked


@dataclass(frozen=True)
class Principal:
    """A signed-in portal user in one tenant, as resolved for this request."""

    tenant: TenantContext
    tenant_name: str
    currency: str
    user_id: uuid.UUID
    user_name: str
    role: str
    session_token: str
    session_hash: str
    csrf: str
    subscription: Subscription
    writable: bool  # the subscription allows portal writes now (SAAS.md's table)
    language: str = i18n.DEFAULT_LANGUAGE  # the user's own (app_user.locale)
    # an owner or finance manager on Pro+ without a second factor: only /mfa until set
    mfa_setup_needed: bool = False
    # the companies the person belongs to, (slug, name), for the switch in the header
    companies: tuple[tuple[str, str], ...] = ()
    tenant_slug: str = ""
    device_site: str | None = None  # the one site whose devices they manage; None: all

    def can(self, action: str) -> bool:
        """May this user do `action` now: the role (tenant/rbac.py), and for anything
        but signing out, a subscription that allows writes."""
        return can(self.role, action) and (self.writable or action in ("session", "billing"))


class LoginRequired(Exception):
    """No live session: the page answers 303 to /login?next=<this page>."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageError(Exception):
    """A page that cannot be shown or an action refused: an HTML error page with the
    status. `title` is a message id (translated); `detail` is shown as it is."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


def safe_next(next_path: str | None) -> str:
    """Only a path on this site: never `//host`, a scheme or a backslash trick."""
    if (
        not next_path
        or not next_path.startswith("/")
        or next_path.startswith("//")
        or "\\" in next_path
        or any(ord(ch) < 32 for ch in next_path)
    ):
        return "/"
    return next_path


def _pepper(request: Request) -> str:
    return request.app.state.settings.api_key_pepper  # type: ignore[no-any-return]


async def principal(request: Request) -> Principal:
    """The session's user, tenant and role, the subscription allowing the request (a
    read, or a write for a post); the tenant bound for row-level security. No live
    session: LoginRequired."""
    return await _resolve(request, write=request.method not in SAFE_METHODS)


async def signed_in(request: Request) -> Principal:
    """The principal for signing out, which every subscription state allows."""
    return await _resolve(request, write=False)


async def _resolve(request: Request, write: bool) -> Principal:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired(here)
    platform_db = request.app.state.platform_db
    try:
        billing = request.url.path in BILLING_PAGES
        who = await run_in_threadpool(_lookup, platform_db, token, write, _pepper(request), billing)
    except Unauthorized as error:
        raise LoginRequired(here) from error
    except subscriptions.Refused as error:
        raise PageError(error.status, "Not allowed by the subscription", error.message) from error
    tenancy.bind(who.tenant.id)
    request.state.portal_principal = who
    if who.mfa_setup_needed and request.url.path not in MFA_FREE_PAGES:
        raise MfaSetupRequired()
    return who


BILLING_PAGES = frozenset({"/subscription/cancel"})  # "read + billing" while unpaid
MFA_FREE_PAGES = frozenset({"/mfa", "/logout", "/language", "/switch"})


class MfaSetupRequired(Exception):
    """The user must set up a second factor before anything else (redirect to /mfa)."""


def _lookup(
    platform_db: Engine, token: str, write: bool, pepper: str, billing: bool = False
) -> Principal:
    now = now_utc()
    t, u = T["tenant"], T["app_user"]
    with platform_db.begin() as conn:
        found = users.principal(conn, token, now)  # switches the transaction's tenant
        tenant = tenant_by_id(conn, found.tenant_id)
        sub = subscriptions.load(conn, tenant.id)
        subscriptions.gate_portal(conn, tenant, write, found.role, now, billing=billing)
        name, currency, slug = conn.execute(
            select(t.c.name, t.c.currency, t.c.slug).where(t.c.id == tenant.id)
        ).one()
        user = conn.execute(select(u.c.name, u.c.locale).where(u.c.id == found.user_id)).first()
        companies = tuple((c["slug"], c["name"]) for c in users.memberships(conn, found.user_id))
    current, _ = subs.advance(sub, now)
    return Principal(
        tenant=tenant,
        tenant_name=name,
        currency=currency,
        user_id=found.user_id,
        user_name=user.name if user else "",
        role=found.role,
        session_token=token,
        session_hash=found.session_hash,
        device_site=found.device_site,
        csrf=csrf_token(token, pepper),
        writable=subs.allows(current, "portal_write", now=now, role=found.role).ok,
        subscription=Subscription(
            current.state,
            current.plan_code,
            subs.banner(current, now),
            current.trial_ends_at,
            _days_left(current.trial_ends_at, now),
            _after(current.past_due_since, subs.GRACE_DAYS),
            current.suspended_reason,
            _after(current.canceled_at, subs.CANCELED_READ_ONLY_DAYS),
        ),
        language=i18n.normalise(user.locale if user else None) or i18n.DEFAULT_LANGUAGE,
        mfa_setup_needed=(
            mfa.required(found.role, subs.effective_plan(current).code) and not found.mfa
        ),
        companies=companies,
        tenant_slug=slug,
    )


def _after(start: datetime | None, days: int) -> datetime | None:
    return None if start is None else start + timedelta(days=days)


def _days_left(end: datetime | None, now: datetime) -> int | None:
    if end is None:
        return None
    return max(0, math.ceil((end - now).total_seconds() / 86400))


PrincipalDep = Annotated[Principal, Depends(principal)]


@dataclass(frozen=True)
class Write:
    """A checked form post: who sent it and its text fields."""

    who: Principal
    form: dict[str, str]

    def field(self, name: str, max_length: int = 200) -> str:
        return self.form.get(name, "").strip()[:max_length]


def same_origin(request: Request) -> bool:
    allowed = f"{request.url.scheme}://{request.url.netloc}"
    return check_origin(
        request.headers.get("origin"),
        request.headers.get("sec-fetch-site"),
        allowed,
        allow_missing=True,
    )


async def form_fields(request: Request) -> dict[str, str]:
    """The form's text fields, without NUL characters (%00), which no text column keeps
    (PostgreSQL refuses them) and no one types."""
    form = await request.form()
    return {key: value.replace("\x00", "") for key, value in form.items() if isinstance(value, str)}


def writer(action: str) -> Any:
    """A dependency for a form post doing `action` (tenant/rbac.py): the session's
    CSRF token in the form, our Origin, and a role that may do it; else a 403 page.
    (The subscription is checked as a write, except for signing out.)"""
    resolve = signed_in if action == "session" else principal

    # a default, not Annotated: this module's string annotations cannot name the
    # closure's `resolve`
    async def checked(request: Request, who: Principal = Depends(resolve)) -> Write:
        fields = await form_fields(request)
        if not check_csrf(who.session_token, fields.get(CSRF_FIELD), _pepper(request)):
            raise PageError(403, FORM_EXPIRED, RELOAD)
        if not same_origin(request):
            raise PageError(403, FORM_EXPIRED, _("The request came from another site."))
        if not who.can(action):
            raise PageError(403, "Not allowed for your role", f"{who.role}: {action}")
        return Write(who, fields)

    return checked


def presession(request: Request) -> tuple[str, bool]:
    """The pre-session token of the sign-in forms, and whether it is new (to be set)."""
    token = request.cookies.get(PRESESSION_COOKIE)
    if token and 20 <= len(token) <= 64:
        return token, False
    return new_session_token(), True


def presession_cookie(token: str) -> dict[str, Any]:
    return {
        "key": PRESESSION_COOKIE,
        "value": token,
        "max_age": PRESESSION_MAX_AGE_S,
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "lax",
    }


async def anonymous_form(request: Request) -> dict[str, str]:
    """A sign-up / login post: CSRF bound to the pre-session cookie, our Origin."""
    fields = await form_fields(request)
    token = request.cookies.get(PRESESSION_COOKIE)
    if not check_csrf(token, fields.get(CSRF_FIELD), _pepper(request)) or not same_origin(request):
        raise PageError(403, FORM_EXPIRED, RELOAD)
    return fields
