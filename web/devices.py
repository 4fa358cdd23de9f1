"""Devices: enroll (a one-time code, as text and QR), rotate a key, revoke; and what
the edge agents report (last seen, backlog, parked events, clock skew)."""

from __future__ import annotations

from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from cloud_api.domain.clock import now_utc, utc
from cloud_api.reporting.devices import ONLINE_WITHIN
from cloud_api.services import devices, edge
from web.common import db, notice, parse_uuid, service_call
from web.security import Principal, PrincipalDep, Write, writer
from web.templating import render

SITE_MAX = 64
ManageDevices = Annotated[Write, Depends(writer("devices.manage"))]


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _devices(r)
    return r


def _devices(r: APIRouter) -> None:
    def page(request: Request, who: Principal, status: int = 200, **shown: Any) -> HTMLResponse:
        now = now_utc()
        with db(request).connect() as conn:
            listed = devices.list_devices(conn, who.tenant, now)
            agents = edge.list_agents(conn, who.tenant)
        for device in listed:
            seen = device["last_seen_at"]
            device["online"] = seen is not None and now - utc(seen) < ONLINE_WITHIN
        context: dict[str, Any] = {"code": None, "qr": None, "key": None, "site": "main"}
        context.update(shown)
        return render(
            request,
            "devices.html",
            who,
            status=status,
            devices=listed,
            agents=agents,
            notice=notice(request),
            **context,
        )

    @r.get("/devices", response_class=HTMLResponse)
    def device_list(request: Request, who: PrincipalDep) -> HTMLResponse:
        return page(request, who)

    @r.post("/devices/enroll", response_class=HTMLResponse)
    def enroll(request: Request, write: ManageDevices) -> HTMLResponse:
        """A one-time enrollment code, shown once, as text and as a QR code."""
        only = write.who.device_site
        site = write.field("site", SITE_MAX) or None
        scopes = POSTS.get(write.field("posts", 16), POSTS["both"])
        pepper = request.app.state.settings.api_key_pepper

        def call() -> tuple[str, str]:  # a site beyond the plan, or another member's
            with db(request).begin() as conn:  # site: the error page says so
                return devices.create_enrollment_code(
                    conn, write.who.tenant, pepper, now_utc(), site, _by(write), scopes, only
                )

        code, site = service_call(call)
        return page(request, write.who, code=code, qr=_qr(code), site=site)

    @r.post("/devices/{device_id}/rotate", response_class=HTMLResponse)
    def rotate(
        request: Request,
        device_id: str,
        write: ManageDevices,
    ) -> HTMLResponse:
        key_id, pepper = parse_uuid(device_id), request.app.state.settings.api_key_pepper

        def call() -> str:
            with db(request).begin() as conn:
                return devices.rotate_key(
                    conn,
                    write.who.tenant,
                    key_id,
                    pepper,
                    now_utc(),
                    _by(write),
                    write.who.device_site,
                )

        return page(request, write.who, key=service_call(call))

    @r.post("/devices/{device_id}/revoke")
    def revoke(
        request: Request,
        device_id: str,
        write: ManageDevices,
    ) -> Response:
        key_id = parse_uuid(device_id)

        def call() -> None:
            with db(request).begin() as conn:
                devices.revoke(
                    conn, write.who.tenant, key_id, now_utc(), _by(write), write.who.device_site
                )

        service_call(call)
        return RedirectResponse("/devices?notice=revoked", status_code=303)


# what the station posts, as the enroll form offers it: its device's scopes
POSTS = {
    "both": ("stock:post", "progress:post"),
    "stock": ("stock:post",),
    "progress": ("progress:post",),
}


def _by(write: Write) -> tuple[str, str]:
    """Who the audit log names: the signed-in user."""
    return ("user", str(write.who.user_id))


def _qr(code: str) -> Markup:
    """The code as a QR symbol, inline SVG (segno escapes nothing: the code is ours)."""
    svg = segno.make(code, micro=False).svg_inline(scale=5, omitsize=False)
    # paths segno drew from a code we generated
    return Markup(svg)  # nosec B704
