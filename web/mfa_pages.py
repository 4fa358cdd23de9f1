"""Setting up the second factor (TOTP): a new secret shown once as a QR code for an
authenticator app, confirmed with the first code it shows. Owners and finance
managers of a Pro or Enterprise tenant are sent here until they have done it."""

from __future__ import annotations

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from cloud_api.domain.clock import now_utc
from cloud_api.services import users
from web.common import service_call
from web.security import PrincipalDep, Write, writer
from web.templating import render


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/mfa", response_class=HTMLResponse)
    def setup_page(request: Request, who: PrincipalDep) -> HTMLResponse:
        """A fresh secret each visit (the pending one is replaced): nothing counts
        until a code from it is confirmed."""
        with request.app.state.platform_db.begin() as conn:
            started = users.start_mfa(conn, who.user_id)
        return render(
            request,
            "mfa.html",
            who,
            secret=started["secret"],
            qr=_qr(started["otpauth_uri"]),
            error=None,
        )

    @r.post("/mfa")
    def confirm(request: Request, write: Write = Depends(writer("session"))) -> Response:
        who = write.who

        def call() -> None:
            with request.app.state.platform_db.begin() as conn:
                users.confirm_mfa(
                    conn, who.tenant.id, who.user_id, write.field("code", 12), now_utc()
                )

        service_call(call)
        return RedirectResponse("/", status_code=303)

    return r


def _qr(uri: str) -> Markup:
    """The otpauth URI as a QR symbol, inline SVG (paths segno drew from our URI)."""
    return Markup(segno.make(uri, micro=False).svg_inline(scale=4, omitsize=False))  # nosec B704
