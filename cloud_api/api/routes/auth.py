"""Portal sign-up, login, logout, who am I, switching company, the password and the
second factor. Sessions live in an `__Host-session` cookie (HttpOnly, Secure,
SameSite=Lax); every write with it needs the session's CSRF token in the
X-CSRF-Token header (cloud_api/api/permissions.py)."""

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api.deps import PepperDep, PlatformDbDep, Principal, PrincipalDep, client_ip
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.permissions import SESSION, Open, Requires
from cloud_api.api.schemas.auth import (
    LogIn,
    Me,
    MfaConfirm,
    MfaConfirmed,
    MfaStarted,
    NewRecoveryCodes,
    PasswordChange,
    PasswordChanged,
    RecoveryCodes,
    SignedIn,
    SignedOut,
    SignedUp,
    SignUp,
    Switched,
    TenantSwitch,
)
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Conflict, ErpError
from cloud_api.services import users
from cloud_api.services.subscriptions import Refused
from tenant.security import LOGIN_FAILED_MESSAGE, clear_session_cookie, csrf_token, session_cookie

router = APIRouter(route_class=IdempotentRoute)

OWN_SESSION = Requires(SESSION)
BEFORE_MFA = Requires(SESSION, mfa_free=True)  # allowed before a second factor is set up


def session_user(principal: Principal) -> tuple[uuid.UUID, str]:
    """The signed-in person and their session (409 no_session for a key or a device)."""
    if principal.user_id is None or principal.session_hash is None:
        raise Conflict("no_session", "a second factor belongs to a person: sign in first")
    return principal.user_id, principal.session_hash


def start_session(response: Response, token: str, pepper: str) -> str:
    """Set the session cookie; the session's CSRF token."""
    response.set_cookie(**session_cookie(token))
    return csrf_token(token, pepper)


def check_throttle(request: Request, email: str) -> None:
    """429 login_throttled while this address (or this client) backs off."""
    ip = client_ip(request) or "unknown"
    decision = request.app.state.login_throttle.check(email, ip, time.monotonic())
    if not decision.ok:
        retry = int(decision.retry_after_s) + 1
        raise Refused(429, "login_throttled", LOGIN_FAILED_MESSAGE, retry)


@router.post("/signup", response_model=SignedUp, status_code=201, dependencies=[Open()])
def sign_up(
    body: SignUp, response: Response, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, Any]:
    """A new company: its tenant on a 14-day trial, the owner, and a session."""
    tenant, token = users.sign_up(
        platform_db, body.company, body.email, body.name, body.password, pepper, now_utc()
    )
    return {
        "tenant_id": str(tenant.id),
        "slug": tenant.slug,
        "api_key": tenant.api_key,
        "csrf_token": start_session(response, token, pepper),
    }


@router.post("/login", response_model=SignedIn, dependencies=[Open()])
def log_in(
    body: LogIn, request: Request, response: Response, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, Any]:
    throttle = request.app.state.login_throttle
    check_throttle(request, body.email)
    try:
        tenant_id, token = users.log_in(
            platform_db, body.email, body.password, body.tenant, now_utc(), body.otp, pepper
        )
    except ErpError:
        throttle.record_failure(body.email, time.monotonic())
        raise
    throttle.record_success(body.email, time.monotonic())
    return {"tenant_id": str(tenant_id), "csrf_token": start_session(response, token, pepper)}


@router.post("/logout", response_model=SignedOut, dependencies=[BEFORE_MFA])
def log_out(request: Request, response: Response, principal: PrincipalDep) -> dict[str, Any]:
    if principal.session_hash is None:
        raise Conflict("no_session", "only a portal session signs out; a key is revoked")
    with request.app.state.db.begin() as conn:
        users.log_out(conn, principal.session_hash, now_utc())
    response.set_cookie(**clear_session_cookie())
    return {"signed_out": True}


@router.get("/me", response_model=Me, dependencies=[Requires("read", mfa_free=True)])
def me(
    request: Request, principal: PrincipalDep, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, Any]:
    """Who is signed in, where, with what role; the companies they may switch to."""
    token = request.cookies.get("__Host-session", "")
    user_id = principal.user_id
    companies = []
    if user_id is not None:
        with platform_db.connect() as conn:
            companies = users.memberships(conn, user_id)
    return {
        "tenant_id": str(principal.tenant.id),
        "user_id": str(user_id or ""),
        "role": principal.role or "owner",  # a key acts for the owner
        "csrf_token": csrf_token(token, pepper) if token else None,
        "tenants": companies,
    }


@router.post("/session/switch", response_model=Switched, dependencies=[OWN_SESSION])
def switch_tenant(
    body: TenantSwitch,
    response: Response,
    principal: PrincipalDep,
    platform_db: PlatformDbDep,
    pepper: PepperDep,
) -> dict[str, Any]:
    """Work in another company one belongs to: this session ends, a new one starts
    there (a new cookie and CSRF token). Not a member: 404 unknown_tenant."""
    user_id, session_hash = session_user(principal)
    with platform_db.begin() as conn:
        tenant_id, token = users.switch_tenant(
            conn, principal.tenant.id, session_hash, user_id, body.tenant, now_utc()
        )
    return {
        "tenant_id": str(tenant_id),
        "slug": body.tenant,
        "csrf_token": start_session(response, token, pepper),
    }


@router.post("/me/password", response_model=PasswordChanged, dependencies=[OWN_SESSION])
def change_password(
    body: PasswordChange,
    response: Response,
    principal: PrincipalDep,
    platform_db: PlatformDbDep,
    pepper: PepperDep,
) -> dict[str, Any]:
    """Every session of the user ends, in every tenant; this browser gets a new
    one (a new cookie and CSRF token)."""
    user_id, _ = session_user(principal)
    with platform_db.begin() as conn:
        token = users.change_password(
            conn, principal.tenant.id, user_id, body.current_password, body.new_password, now_utc()
        )
    return {"changed": True, "csrf_token": start_session(response, token, pepper)}


@router.post("/mfa/setup", response_model=MfaStarted, dependencies=[BEFORE_MFA])
def mfa_setup(
    request: Request, principal: PrincipalDep, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, str]:
    """A new TOTP secret for the signed-in user (shown once: scan the otpauth URI
    as a QR code) and a code mailed to their address; it counts once confirmed with
    the app's first code and the mailed one. 503 mail_unavailable when the mail
    cannot be sent (nothing is started)."""
    (user_id, session_hash), mailer = session_user(principal), request.app.state.mailer
    with platform_db.begin() as conn:
        return users.start_mfa(conn, user_id, session_hash, now_utc(), pepper, mailer)


@router.post("/mfa/confirm", response_model=MfaConfirmed, dependencies=[BEFORE_MFA])
def mfa_confirm(
    body: MfaConfirm, principal: PrincipalDep, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, Any]:
    """The factor counts from now on; the answer holds ten one-time recovery codes
    (for a lost phone), shown this once."""
    user_id, session_hash = session_user(principal)
    codes = users.confirm_mfa(
        platform_db,
        principal.tenant.id,
        user_id,
        session_hash,
        body.code,
        body.mail_code,
        now_utc(),
        pepper,
    )
    return {"mfa": True, "recovery_codes": codes}


@router.post("/mfa/recovery-codes", response_model=NewRecoveryCodes, dependencies=[OWN_SESSION])
def mfa_recovery_codes(
    body: RecoveryCodes, principal: PrincipalDep, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, Any]:
    """Ten new recovery codes for the app's current code, shown this once; the old
    ones stop working."""
    user_id, _ = session_user(principal)
    with platform_db.begin() as conn:
        codes = users.replace_recovery_codes(
            conn, principal.tenant.id, user_id, body.code, pepper, now_utc()
        )
    return {"recovery_codes": codes}
