"""Setting up the second factor (TOTP): a new secret shown once as a QR code for an
authenticator app, confirmed with the first code it shows. Owners and finance
managers of a Pro or Enterprise tenant are sent here until they have done it."""

from __future__ import annotations

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from cloud_api.domain.clock import now_utc
from cloud_api.errors import ErpError
from cloud_api.services import users
from web.common import service_call
from web.security import Principal, PrincipalDep, Write, writer
from web.templating import render


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/mfa", response_class=HTMLResponse)
    def setup_page(request: Request, who: PrincipalDep) -> HTMLResponse:
        """The set-up waiting (shown again on a reload, with no new mail), else a new
        secret and a code mailed to the person: nothing counts until both codes are
        confirmed."""
        return _setup(request, who, reuse=True)

    @r.post("/mfa/restart", response_class=HTMLResponse)
    def restart(request: Request, write: Write = Depends(writer("session"))) -> HTMLResponse:
        """A new secret and a new mail (the mail did not come, or the code expired)."""
        return _setup(request, write.who, reuse=False)

    @r.post("/mfa")
    def confirm(request: Request, write: Write = Depends(writer("session"))) -> Response:
        who = write.who

        app = request.app
        try:
            codes = users.confirm_mfa(
                app.state.platform_db,
                who.tenant.id,
                who.user_id,
                who.session_hash,
                write.field("code", 12),
                write.field("mail_code", 16),
                now_utc(),
                app.state.settings.api_key_pepper,
            )
        except ErpError as error:  # the form again, saying what was wrong
            return _setup(request, who, reuse=True, error=error.message, status=422)
        return render(request, "mfa_codes.html", who, codes=codes)

    return r


def _setup(
    request: Request, who: Principal, reuse: bool, error: str | None = None, status: int = 200
) -> HTMLResponse:
    app = request.app

    def call() -> dict[str, str]:
        with app.state.platform_db.begin() as conn:
            return users.start_mfa(
                conn,
                who.user_id,
                who.session_hash,
                now_utc(),
                app.state.settings.api_key_pepper,
                app.state.mailer,
                reuse=reuse,
            )

    started = service_call(call)
    return render(
        request,
        "mfa.html",
        who,
        status=status,
        secret=started["secret"],
        qr=_qr(started["otpauth_uri"]),
        mailed_to=started["mailed_to"],
        error=error,
    )


def _qr(uri: str) -> Markup:
    """The otpauth URI as a QR symbol, inline SVG (paths segno drew from our URI)."""
    return Markup(segno.make(uri, micro=False).svg_inline(scale=4, omitsize=False))  # nosec B704
