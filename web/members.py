"""Users and roles: the tenant's members and the invitations not accepted yet; the
owner invites a person with a role (a member once they accept), withdraws an
invitation, changes a role, removes a member (whose sessions in this tenant end at
once). The last owner can be neither removed nor demoted."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud_api.domain.clock import now_utc
from cloud_api.errors import ErpError
from cloud_api.services import invitations, users
from cloud_api.services.tenants import has_api_key, revoke_api_key, rotate_api_key
from tenant.rbac import ROLES
from web import queries
from web.common import db, notice, parse_uuid, service_call
from web.security import PageError, Principal, PrincipalDep, Write, writer
from web.signin import EMAIL
from web.templating import render


def _(message: str) -> str:
    """Marks a message id for the catalogs; the page translates it."""
    return message


ManageUsers = Annotated[Write, Depends(writer("users.manage"))]
LAST_OWNER = _("The last owner cannot be removed or demoted")


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)
    _pages(r)
    _actions(r)
    return r


def _page(request: Request, who: Principal, status: int = 200, **shown: Any) -> HTMLResponse:
    with db(request).connect() as conn:
        members = users.members(conn, who.tenant.id)
        invited = invitations.pending(conn, who.tenant.id, now_utc())
        key_live = has_api_key(conn, who.tenant.id)
    context: dict[str, Any] = {"values": {}, "error": None, "new_api_key": None}
    context.update(shown)
    return render(
        request,
        "users.html",
        who,
        status=status,
        members=members,
        invited=invited,
        key_live=key_live,
        roles=ROLES,
        notice=notice(request),
        **context,
    )


def _pages(r: APIRouter) -> None:
    @r.get("/users", response_class=HTMLResponse)
    def member_list(request: Request, who: PrincipalDep) -> HTMLResponse:
        return _page(request, who)


def _actions(r: APIRouter) -> None:
    @r.post("/users/invite", response_class=HTMLResponse)
    def invite(request: Request, write: ManageUsers) -> Response:
        values = {k: write.field(k, 254) for k in ("email", "name", "role", "site")}
        password = write.form.get("password", "")[:256]
        problem = _invite_problem(values, password)
        if problem:
            return _page(request, write.who, 422, values=values, error=problem)
        who = write.who

        site, app = values["site"][:64] or None, request.app

        def call() -> invitations.Added:
            # the account lookup is global (the platform's); what is written is this
            # tenant's (as the JSON route). An existing account is invited, always
            with app.state.platform_db.begin() as conn:
                return invitations.add(  # no password: a link by mail
                    conn,
                    who.tenant.id,
                    values["email"],
                    values["name"][:200],
                    values["role"],
                    password or None,
                    site,
                    now_utc(),
                    who.user_id,
                    app.state.settings.api_key_pepper,
                    app.state.mailer,
                    app.state.settings.public_url,
                )

        try:
            added = call()
        except ErpError as error:  # a weak password, a taken seat: the form again
            status = getattr(error, "status", 400)
            return _page(request, who, status, values=values, error=error.message)
        # with a password: the same words whether a member was made or an account
        # invited (the answer must not tell which)
        notice = "invited" if added.status == "added" else "invitation_mailed"
        return RedirectResponse(f"/users?notice={notice}", status_code=303)

    @r.post("/users/invitations/{invitation_id}/withdraw")
    def withdraw(request: Request, invitation_id: str, write: ManageUsers) -> Response:
        """Take a pending invitation back: its link dies."""
        pending_id, who = parse_uuid(invitation_id), write.who

        def call() -> None:
            with db(request).begin() as conn:
                invitations.withdraw(conn, who.tenant.id, pending_id, now_utc(), who.user_id)

        service_call(call)
        return RedirectResponse("/users?notice=invitation_withdrawn", status_code=303)

    @r.post("/users/api-key", response_class=HTMLResponse)
    def replace_api_key(request: Request, write: ManageUsers) -> HTMLResponse:
        """A new tenant API key, shown on the page once; the old one stops at once."""
        who, pepper = write.who, request.app.state.settings.api_key_pepper
        with db(request).begin() as conn:
            key = rotate_api_key(conn, who.tenant.id, pepper, now_utc(), ("user", str(who.user_id)))
        return _page(request, who, new_api_key=key)

    @r.post("/users/api-key/revoke", response_class=HTMLResponse)
    def revoke_key(request: Request, write: ManageUsers) -> Response:
        """No company key from now on: integrations use scoped tokens."""
        who = write.who
        with db(request).begin() as conn:
            revoke_api_key(conn, who.tenant.id, now_utc(), ("user", str(who.user_id)))
        return RedirectResponse("/users?notice=api_key_revoked", status_code=303)

    @r.post("/users/{user_id}/role")
    def change_role(request: Request, user_id: str, write: ManageUsers) -> Response:
        member, role, who = parse_uuid(user_id), write.field("role", 16), write.who

        def call() -> None:
            with db(request).begin() as conn:
                _keep_an_owner(conn, who, member, role)
                users.change_role(conn, who.tenant.id, member, role, now_utc(), who.user_id)

        service_call(call)
        if member == who.user_id:  # their own role: this session ended with the change
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/users?notice=role_changed", status_code=303)

    @r.post("/users/{user_id}/remove")
    def remove(request: Request, user_id: str, write: ManageUsers) -> Response:
        member, who = parse_uuid(user_id), write.who

        def call() -> None:
            with db(request).begin() as conn:
                if queries.role_of(conn, who.tenant.id, member) is None:
                    raise PageError(404, "Not found", user_id[:80])
                _keep_an_owner(conn, who, member, None)  # the translated page first
                users.remove_member(conn, who.tenant.id, member, now_utc(), who.user_id)

        service_call(call)
        if member == who.user_id:  # removed themselves: this session is over too
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/users?notice=removed", status_code=303)


def _keep_an_owner(conn: Any, who: Principal, member: uuid.UUID, role: str | None) -> None:
    """Refuse (409) to remove or demote the tenant's last owner (`role` None: removal),
    with the page's own words; users.remove_member and change_role refuse it too."""
    if role == "owner" or queries.role_of(conn, who.tenant.id, member) != "owner":
        return
    if users.owner_count(conn, who.tenant.id) <= 1:
        raise PageError(409, LAST_OWNER, "")


def _invite_problem(values: dict[str, str], password: str) -> str | None:
    if not EMAIL.match(values["email"]):
        return _("Give a valid email address.")
    if not values["name"]:
        return _("Give the member's name.")
    if values["role"] not in ROLES:
        return _("Choose a role.")
    return None
