"""Portal sign-up, login, logout, who am I, and the tenant's users. Sessions live in
an `__Host-session` cookie (HttpOnly, Secure, SameSite=Lax); every write with it needs
the session's CSRF token in the X-CSRF-Token header (cloud_api/api/access.py)."""

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import Field

from cloud_api.api.paging import PageDep, paged
from cloud_api.contract import RequestBody
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Conflict, ErpError, Rejected, Unauthorized
from cloud_api.services import invitations, users
from cloud_api.services.subscriptions import Refused
from tenant.security import (
    LOGIN_FAILED_MESSAGE,
    clear_session_cookie,
    csrf_token,
    session_cookie,
)


class _In(RequestBody):
    """A request body (contract.RequestBody: unknown fields refused, text storable)."""


Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Field(min_length=1, max_length=256)]


class SignUp(_In):
    company: Annotated[str, Field(min_length=1, max_length=200)]
    email: Email
    name: Annotated[str, Field(min_length=1, max_length=200)]
    password: Password


class LogIn(_In):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Password
    tenant: Annotated[str, Field(max_length=64)] | None = None  # a slug, for several
    otp: Annotated[str, Field(max_length=12)] | None = None  # the second factor's code


class PasswordChange(_In):
    current_password: Password
    new_password: Password


class MfaConfirm(_In):
    code: Annotated[str, Field(min_length=6, max_length=12)]  # the authenticator's
    mail_code: Annotated[str, Field(min_length=1, max_length=16)]  # the mailed one


Site = Annotated[str, Field(min_length=1, max_length=64)]


class MemberAdd(_In):
    email: Email
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(max_length=16)]
    # left out: a link is mailed (they choose their own, or accept with the account's
    # own). Given: a new address is an account and a member at once; an address with
    # an account is invited all the same (never a member without accepting)
    password: Password | None = None
    site: Site | None = None  # whose devices they manage; left out: every site


class RecoveryCodes(_In):
    code: Annotated[str, Field(min_length=6, max_length=12)]  # the authenticator's


class InvitationAccept(_In):
    """The link's token and a password: a new address chooses it; an existing account
    gives its own (and `otp`, its second factor's code, if it has one)."""

    token: Annotated[str, Field(min_length=1, max_length=100)]
    password: Password
    otp: Annotated[str, Field(max_length=12)] | None = None


class TenantSwitch(_In):
    tenant: Annotated[str, Field(min_length=1, max_length=64)]  # the company's slug


class RoleChange(_In):
    """A new role, and/or the site whose devices they manage (null: every site)."""

    role: Annotated[str, Field(max_length=16)] | None = None
    site: Site | None = None


def _session_user(request: Request) -> uuid.UUID:
    user_id = getattr(request.state, "user_id", None)
    if user_id is None:
        raise Conflict("no_session", "a second factor belongs to a person: sign in first")
    return user_id  # type: ignore[no-any-return]


def router(tenant_dep: Any, route_class: type[APIRoute] = APIRoute) -> APIRouter:
    r = APIRouter(route_class=route_class)

    def _pepper(request: Request) -> str:
        return request.app.state.settings.api_key_pepper  # type: ignore[no-any-return]

    def _start(response: Response, request: Request, token: str) -> str:
        response.set_cookie(**session_cookie(token))
        return csrf_token(token, _pepper(request))

    @r.post("/signup", status_code=201)
    def sign_up(body: SignUp, request: Request, response: Response) -> dict[str, Any]:
        """A new company: its tenant on a 14-day trial, the owner, and a session."""
        tenant, token = users.sign_up(
            request.app.state.platform_db,
            body.company,
            body.email,
            body.name,
            body.password,
            _pepper(request),
            now_utc(),
        )
        return {
            "tenant_id": str(tenant.id),
            "slug": tenant.slug,
            "api_key": tenant.api_key,
            "csrf_token": _start(response, request, token),
        }

    @r.post("/login")
    def log_in(body: LogIn, request: Request, response: Response) -> dict[str, Any]:
        throttle = request.app.state.login_throttle
        ip = request.client.host if request.client else "unknown"
        decision = throttle.check(body.email, ip, time.monotonic())
        if not decision.ok:
            raise Refused(
                429, "login_throttled", LOGIN_FAILED_MESSAGE, int(decision.retry_after_s) + 1
            )
        try:
            tenant_id, token = users.log_in(
                request.app.state.platform_db,
                body.email,
                body.password,
                body.tenant,
                now_utc(),
                body.otp,
                _pepper(request),
            )
        except ErpError:
            throttle.record_failure(body.email, time.monotonic())
            raise
        throttle.record_success(body.email, time.monotonic())
        return {"tenant_id": str(tenant_id), "csrf_token": _start(response, request, token)}

    @r.post("/logout")
    def log_out(
        request: Request, response: Response, tenant: Annotated[Any, Depends(tenant_dep)]
    ) -> dict[str, Any]:
        session_hash = getattr(request.state, "session_hash", None)
        if session_hash is None:
            raise Conflict("no_session", "only a portal session signs out; a key is revoked")
        with request.app.state.db.begin() as conn:
            users.log_out(conn, session_hash, now_utc())
        response.set_cookie(**clear_session_cookie())
        return {"signed_out": True}

    @r.get("/me")
    def me(request: Request, tenant: Annotated[Any, Depends(tenant_dep)]) -> dict[str, Any]:
        """Who is signed in, where, with what role; the companies they may switch to."""
        token = request.cookies.get("__Host-session", "")
        user_id = getattr(request.state, "user_id", None)
        companies = []
        if user_id is not None:
            with request.app.state.platform_db.connect() as conn:
                companies = users.memberships(conn, user_id)
        return {
            "tenant_id": str(tenant.id),
            "user_id": str(user_id or ""),
            "role": getattr(request.state, "role", "owner"),
            "csrf_token": csrf_token(token, _pepper(request)) if token else None,
            "tenants": companies,
        }

    @r.post("/session/switch")
    def switch_tenant(
        body: TenantSwitch,
        request: Request,
        response: Response,
        tenant: Annotated[Any, Depends(tenant_dep)],
    ) -> dict[str, Any]:
        """Work in another company one belongs to: this session ends, a new one starts
        there (a new cookie and CSRF token). Not a member: 404 unknown_tenant."""
        user_id = _session_user(request)
        with request.app.state.platform_db.begin() as conn:
            tenant_id, token = users.switch_tenant(
                conn, tenant.id, request.state.session_hash, user_id, body.tenant, now_utc()
            )
        return {
            "tenant_id": str(tenant_id),
            "slug": body.tenant,
            "csrf_token": _start(response, request, token),
        }

    @r.get("/users")
    def list_users(
        request: Request,
        response: Response,
        page: PageDep,
        tenant: Annotated[Any, Depends(tenant_dep)],
    ) -> list[dict[str, Any]]:
        """The tenant's members (invited people are in GET /invitations until they
        accept), a page at a time."""
        with request.app.state.db.connect() as conn:
            rows, total = users.members_page(conn, tenant.id, page.limit, page.offset)
        return paged(request, response, page, rows, total)

    @r.post("/users", status_code=201)
    def add_user(
        body: MemberAdd, request: Request, tenant: Annotated[Any, Depends(tenant_dep)]
    ) -> dict[str, Any]:
        """Invite a person by mail: `status` "invited" with an `invitation_id`; they
        are a member once they accept. With a `password`: `status` "added" and no id,
        an address nobody has yet being an account and a member at once, one with an
        account invited by mail all the same. Either answer is the same whether the
        address has an account anywhere or not, and never holds a person's id (look a
        member up in GET /users). 503 mail_unavailable when the mail cannot go
        (nothing is kept)."""
        # the account lookup is global (the platform's); what is written is this tenant's
        app, by, now = request.app, getattr(request.state, "user_id", None), now_utc()
        with app.state.platform_db.begin() as conn:
            added = invitations.add(
                conn,
                tenant.id,
                body.email,
                body.name,
                body.role,
                body.password,
                body.site,
                now,
                by,
                _pepper(request),
                app.state.mailer,
                app.state.settings.public_url,
            )
        answer: dict[str, Any] = {"status": added.status, "email": body.email.strip().lower()}
        if added.invitation_id is not None:
            answer["invitation_id"] = str(added.invitation_id)
        return answer | {"role": body.role, "site": body.site}

    @r.get("/invitations")
    def list_invitations(
        request: Request,
        response: Response,
        page: PageDep,
        tenant: Annotated[Any, Depends(tenant_dep)],
    ) -> list[dict[str, Any]]:
        """Invitations not accepted yet (nor expired): address, role, until when."""
        with request.app.state.db.connect() as conn:
            rows, total = page.slice(invitations.pending(conn, tenant.id, now_utc()))
        return paged(request, response, page, rows, total)

    @r.delete("/invitations/{invitation_id}")
    def withdraw_invitation(
        invitation_id: uuid.UUID, request: Request, tenant: Annotated[Any, Depends(tenant_dep)]
    ) -> dict[str, Any]:
        """Take a pending invitation back: its link dies (404 unknown_invitation)."""
        by = getattr(request.state, "user_id", None)
        with request.app.state.db.begin() as conn:
            invitations.withdraw(conn, tenant.id, invitation_id, now_utc(), by)
        return {"invitation_id": str(invitation_id), "withdrawn": True}

    @r.post("/invitations/accept")
    def accept_invitation(
        body: InvitationAccept, request: Request, response: Response
    ) -> dict[str, Any]:
        """The invited person joins with the link's token and is signed in there (a
        session cookie, as at login): a new address with the password it chooses (422
        weak_password), an existing account with its own password and second factor
        (401 login_failed / mfa_required / mfa_failed, throttled as at login). 401
        invalid_invitation for a link used, expired or unknown."""
        app, pepper, now = request.app, _pepper(request), now_utc()
        email = invitations.peek(app.state.platform_db, body.token, pepper, now).email
        throttle = app.state.login_throttle
        ip = request.client.host if request.client else "unknown"
        decision = throttle.check(email, ip, time.monotonic())
        if not decision.ok:
            retry = int(decision.retry_after_s) + 1
            raise Refused(429, "login_throttled", LOGIN_FAILED_MESSAGE, retry)
        try:
            tenant_id, token = invitations.accept(
                app.state.platform_db, body.token, body.password, pepper, now, body.otp
            )
        except Unauthorized as error:
            if error.code != "invalid_invitation":
                throttle.record_failure(email, time.monotonic())
            raise
        return {"tenant_id": str(tenant_id), "csrf_token": _start(response, request, token)}

    @r.patch("/users/{user_id}")
    def change_role(
        user_id: uuid.UUID,
        body: RoleChange,
        request: Request,
        tenant: Annotated[Any, Depends(tenant_dep)],
    ) -> dict[str, Any]:
        """A new role: the member's sessions in this tenant end, so they sign in again
        with it (a new session id). A site (or null) applies from the next request."""
        if not body.model_fields_set & {"role", "site"} or (
            "role" in body.model_fields_set and body.role is None
        ):
            raise Rejected("nothing_to_change", "send a role, a site (null: every site), or both")
        by, now, ended = getattr(request.state, "user_id", None), now_utc(), 0
        with request.app.state.db.begin() as conn:
            if "site" in body.model_fields_set:
                users.set_site(conn, tenant.id, user_id, body.site, now, by)
            if body.role is not None:
                ended = users.change_role(conn, tenant.id, user_id, body.role, now, by)
        answer = {"user_id": str(user_id), "sessions_ended": ended}
        return answer | {k: getattr(body, k) for k in sorted(body.model_fields_set)}

    @r.post("/me/password")
    def change_password(
        body: PasswordChange,
        request: Request,
        response: Response,
        tenant: Annotated[Any, Depends(tenant_dep)],
    ) -> dict[str, Any]:
        """Every session of the user ends, in every tenant; this browser gets a new
        one (a new cookie and CSRF token)."""
        user_id = _session_user(request)
        with request.app.state.platform_db.begin() as conn:
            token = users.change_password(
                conn, tenant.id, user_id, body.current_password, body.new_password, now_utc()
            )
        return {"changed": True, "csrf_token": _start(response, request, token)}

    @r.post("/mfa/setup")
    def mfa_setup(request: Request, tenant: Annotated[Any, Depends(tenant_dep)]) -> dict[str, str]:
        """A new TOTP secret for the signed-in user (shown once: scan the otpauth URI
        as a QR code) and a code mailed to their address; it counts once confirmed with
        the app's first code and the mailed one. 503 mail_unavailable when the mail
        cannot be sent (nothing is started)."""
        user_id, app = _session_user(request), request.app
        with app.state.platform_db.begin() as conn:
            pepper = app.state.settings.api_key_pepper
            return users.start_mfa(
                conn, user_id, request.state.session_hash, now_utc(), pepper, app.state.mailer
            )

    @r.post("/mfa/confirm")
    def mfa_confirm(
        body: MfaConfirm, request: Request, tenant: Annotated[Any, Depends(tenant_dep)]
    ) -> dict[str, Any]:
        """The factor counts from now on; the answer holds ten one-time recovery codes
        (for a lost phone), shown this once."""
        user_id, app = _session_user(request), request.app
        pepper = app.state.settings.api_key_pepper
        codes = users.confirm_mfa(
            app.state.platform_db,
            tenant.id,
            user_id,
            request.state.session_hash,
            body.code,
            body.mail_code,
            now_utc(),
            pepper,
        )
        return {"mfa": True, "recovery_codes": codes}

    @r.post("/mfa/recovery-codes")
    def mfa_recovery_codes(
        body: RecoveryCodes, request: Request, tenant: Annotated[Any, Depends(tenant_dep)]
    ) -> dict[str, Any]:
        """Ten new recovery codes for the app's current code, shown this once; the old
        ones stop working."""
        user_id, app, pepper = _session_user(request), request.app, _pepper(request)
        with app.state.platform_db.begin() as conn:
            codes = users.replace_recovery_codes(
                conn, tenant.id, user_id, body.code, pepper, now_utc()
            )
        return {"recovery_codes": codes}

    @r.delete("/users/{user_id}")
    def remove_user(
        user_id: uuid.UUID, request: Request, tenant: Annotated[Any, Depends(tenant_dep)]
    ) -> dict[str, Any]:
        """The member leaves this tenant and their sessions in it end; the last owner
        cannot be removed (409 last_owner)."""
        with request.app.state.db.begin() as conn:
            revoked = users.remove_member(
                conn, tenant.id, user_id, now_utc(), getattr(request.state, "user_id", None)
            )
        return {"user_id": str(user_id), "removed": True, "sessions_revoked": revoked}

    return r
