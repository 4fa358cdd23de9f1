"""Sign-up, login, logout and the language switch: forms posting to the portal,
calling cloud_api.services.users as the JSON auth routes do and setting the same
`__Host-session` cookie."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cloud_api.domain.clock import now_utc
from cloud_api.errors import ErpError
from cloud_api.services import invitations, users
from tenant.security import (
    LOGIN_FAILED_MESSAGE,
    LOGIN_THROTTLED_MESSAGE,
    SESSION_COOKIE,
    check_csrf,
    clear_session_cookie,
    session_cookie,
)
from web import i18n
from web.common import service_call
from web.security import (
    CSRF_FIELD,
    FORM_EXPIRED,
    PRESESSION_COOKIE,
    RELOAD,
    LoginRequired,
    PageError,
    Principal,
    Write,
    anonymous_form,
    form_fields,
    safe_next,
    same_origin,
    signed_in,
    writer,
)
from web.templating import language_of, render

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


MFA_MESSAGES = {
    "mfa_required": _("Enter the 6-digit code from your authenticator app."),
    "mfa_failed": _("The code is wrong or was already used. Enter the current code."),
}

# The services' own messages the sign-in pages show, so the catalogs translate them.
SERVICE_MESSAGES = (
    _("Incorrect email or password."),
    _("Too many sign-in attempts. Please wait and try again."),
    _("an account with this email exists; sign in instead"),
    _("Use at least 12 characters."),
    _("Do not repeat the same character or short pattern."),
    _("Do not use a run of letters, digits or keyboard keys."),
    _("This password is too common; choose a longer, less predictable one."),
    _("Do not use your email address in the password."),
    _("Do not use the company name in the password."),
)
FormDep = Annotated[dict[str, str], Depends(anonymous_form)]


def _field(form: dict[str, str], name: str, max_length: int) -> str:
    value = form.get(name, "")
    return value if name == "password" else value.strip()[:max_length]


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/signup", response_class=HTMLResponse)
    def sign_up_page(request: Request) -> HTMLResponse:
        return render(request, "signup.html", values={}, error=None)

    @r.post("/signup", response_class=HTMLResponse)
    def sign_up(request: Request, form: FormDep) -> Response:
        values = {k: _field(form, k, 254) for k in ("company", "name", "email")}
        password = form.get("password", "")
        problem = _sign_up_problem(values, password)
        if problem:
            return render(request, "signup.html", status=422, values=values, error=problem)
        try:
            tenant, token = users.sign_up(
                request.app.state.platform_db,
                values["company"][:200],
                values["email"],
                values["name"][:200],
                password[:256],
                request.app.state.settings.api_key_pepper,
                now_utc(),
            )
        except ErpError as error:
            status = getattr(error, "status", 400)
            return render(request, "signup.html", status=status, values=values, error=error.message)
        users.set_locale_of_session(
            request.app.state.platform_db, token, i18n.tag_of(language_of(request)), now_utc()
        )
        response = render(request, "welcome.html", api_key=tenant.api_key, slug=tenant.slug)
        response.set_cookie(**session_cookie(token))
        return response

    @r.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(
            request, "login.html", next=safe_next(next), email="", error=None, ask_otp=False
        )

    @r.post("/login", response_class=HTMLResponse)
    def log_in(request: Request, form: FormDep) -> Response:
        email = _field(form, "email", 254)
        next_path = safe_next(form.get("next"))
        throttle = request.app.state.login_throttle
        ip = request.client.host if request.client else "unknown"
        decision = throttle.check(email, ip, time.monotonic())
        if not decision.ok:
            page = render(
                request,
                "login.html",
                status=429,
                next=next_path,
                email=email,
                error=LOGIN_THROTTLED_MESSAGE,
                ask_otp=False,
            )
            page.headers["Retry-After"] = str(int(decision.retry_after_s) + 1)
            return page
        try:
            _, token = users.log_in(
                request.app.state.platform_db,
                email,
                form.get("password", "")[:256],
                _field(form, "tenant", 64) or None,
                now_utc(),
                _field(form, "otp", 12) or None,
                request.app.state.settings.api_key_pepper,
            )
        except ErpError as error:
            throttle.record_failure(email, time.monotonic())
            second_factor = error.code in ("mfa_required", "mfa_failed")
            return render(
                request,
                "login.html",
                status=401,
                next=next_path,
                email=email,
                error=MFA_MESSAGES.get(error.code, LOGIN_FAILED_MESSAGE),
                ask_otp=second_factor,
            )
        throttle.record_success(email, time.monotonic())
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(**session_cookie(token))
        return response

    @r.get("/invite/{token}", response_class=HTMLResponse)
    def invitation_page(request: Request, token: str) -> HTMLResponse:
        """Whose link it is, and the form to join: a new address chooses a password,
        an existing account confirms with its own; a used or expired link says so
        (401)."""
        settings = request.app.state.settings
        try:
            found = invitations.peek(
                request.app.state.platform_db, token[:100], settings.api_key_pepper, now_utc()
            )
        except ErpError:
            return _invitation(request, token, status=401, invalid=True)
        return _invitation(request, token, found=found)

    @r.post("/invite/{token}", response_class=HTMLResponse)
    def accept_invitation(request: Request, token: str, form: FormDep) -> Response:
        """Join with the link: throttled like a sign-in for an existing account (its
        password is checked here)."""
        settings, db = request.app.state.settings, request.app.state.platform_db
        pepper, token = settings.api_key_pepper, token[:100]
        try:
            found = invitations.peek(db, token, pepper, now_utc())
        except ErpError:
            return _invitation(request, token, status=401, invalid=True)
        throttle = request.app.state.login_throttle
        ip = request.client.host if request.client else "unknown"
        if not throttle.check(found.email, ip, time.monotonic()).ok:
            return _invitation(request, token, 429, found=found, error=LOGIN_FAILED_MESSAGE)
        try:
            _, session = invitations.accept(
                db,
                token,
                form.get("password", "")[:256],
                pepper,
                now_utc(),
                form.get("otp", "")[:12] or None,
            )
        except ErpError as error:
            if error.code == "invalid_invitation":
                return _invitation(request, token, status=401, invalid=True)
            if error.code in ("login_failed", "mfa_required", "mfa_failed"):
                throttle.record_failure(found.email, time.monotonic())
                message = MFA_MESSAGES.get(error.code, LOGIN_FAILED_MESSAGE)
                return _invitation(request, token, 401, found=found, error=message)
            status = getattr(error, "status", 400)
            return _invitation(request, token, status, found=found, error=error.message)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(**session_cookie(session))
        return response

    @r.post("/logout")
    def log_out(request: Request, write: Annotated[Write, Depends(writer("session"))]) -> Response:
        with request.app.state.db.begin() as conn:
            users.log_out(conn, write.who.session_hash, now_utc())
        response = RedirectResponse("/login", status_code=303)
        response.set_cookie(**clear_session_cookie())
        return response

    @r.post("/switch")
    def switch(request: Request, write: Annotated[Write, Depends(writer("session"))]) -> Response:
        """The header's company switch: this session ends, a new one starts in the
        chosen company (one the person belongs to), on its dashboard."""
        who = write.who

        def call() -> str:
            with request.app.state.platform_db.begin() as conn:
                _, token = users.switch_tenant(
                    conn,
                    who.tenant.id,
                    who.session_hash,
                    who.user_id,
                    write.field("tenant", 64),
                    now_utc(),
                )
            return token

        token = service_call(call)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(**session_cookie(token))
        return response

    @r.post("/language")
    async def language(request: Request) -> Response:
        """Any page's language switch: a form with the CSRF token of the session, or of
        the pre-session on the sign-in pages. Sets the `lang` cookie (the choice before
        sign-in) and, for a signed-in user, stores the language on their account."""
        form = await form_fields(request)
        pepper = request.app.state.settings.api_key_pepper
        submitted = form.get(CSRF_FIELD)
        if not same_origin(request):
            raise PageError(403, FORM_EXPIRED, RELOAD)
        by_session = check_csrf(request.cookies.get(SESSION_COOKIE), submitted, pepper)
        if not by_session and not check_csrf(
            request.cookies.get(PRESESSION_COOKIE), submitted, pepper
        ):
            raise PageError(403, FORM_EXPIRED, RELOAD)
        lang = i18n.normalise(form.get("lang")) or i18n.DEFAULT_LANGUAGE
        who = await _session_user(request) if by_session else None
        if who is not None:
            await run_in_threadpool(
                users.set_locale, request.app.state.platform_db, who.user_id, i18n.tag_of(lang)
            )
        response = RedirectResponse(safe_next(form.get("next")), status_code=303)
        response.set_cookie(
            i18n.LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE_S, path="/", samesite="lax"
        )
        return response

    return r


async def _session_user(request: Request) -> Principal | None:
    """The signed-in user, if the session is still live and the subscription lets
    them in (otherwise the switch only sets the cookie)."""
    try:
        return await signed_in(request)
    except (LoginRequired, PageError):
        return None


def _invitation(
    request: Request,
    token: str,
    status: int = 200,
    invalid: bool = False,
    found: invitations.Pending | None = None,
    error: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "invite.html",
        status=status,
        token=token if not invalid else "",
        invalid=invalid,
        email=found.email if found else "",
        company=found.company if found else "",
        has_account=found.has_account if found else False,
        error=error,
    )


def _sign_up_problem(values: dict[str, str], password: str) -> str | None:
    """What the JSON sign-up's schema would refuse, as a sentence (the password policy
    itself is the service's)."""
    if not values["company"] or not values["name"]:
        return _("Give the company's name and yours.")
    if not EMAIL.match(values["email"]) or len(values["email"]) > 254:
        return _("Give a valid email address.")
    if not password or len(password) > 256:
        return _("Choose a password of 12 to 256 characters.")
    return None
