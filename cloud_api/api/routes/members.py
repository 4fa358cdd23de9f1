"""The tenant's members and invitations: who works here, with what role and site,
and who is invited."""

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api.deps import DbDep, PepperDep, PlatformDbDep, PrincipalDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Open, Requires
from cloud_api.api.routes.auth import check_throttle, start_session
from cloud_api.api.schemas.auth import (
    InvitationAccept,
    InvitationRow,
    InvitationWithdrawn,
    MemberAdd,
    MemberAdded,
    MemberRemoved,
    MemberRow,
    RoleChange,
    RoleChanged,
    SignedIn,
)
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Rejected, Unauthorized
from cloud_api.services import invitations, users

router = APIRouter(route_class=IdempotentRoute)

MANAGE = Requires("users.manage")


@router.get("/users", response_model=list[MemberRow], dependencies=[Requires("read")])
def list_users(
    request: Request, response: Response, page: PageDep, tenant: TenantDep, db: DbDep
) -> list[dict[str, Any]]:
    """The tenant's members (invited people are in GET /invitations until they
    accept), a page at a time."""
    with db.connect() as conn:
        rows, total = users.members_page(conn, tenant.id, page.limit, page.offset)
    return paged(request, response, page, rows, total)


@router.post(
    "/users",
    response_model=MemberAdded,
    response_model_exclude_unset=True,
    status_code=201,
    dependencies=[MANAGE],
)
def add_user(
    body: MemberAdd,
    request: Request,
    principal: PrincipalDep,
    platform_db: PlatformDbDep,
    pepper: PepperDep,
) -> dict[str, Any]:
    """Invite a person by mail: `status` "invited" with an `invitation_id`; they
    are a member once they accept. With a `password`: `status` "added" and no id,
    an address nobody has yet being an account and a member at once, one with an
    account invited by mail all the same. Either answer is the same whether the
    address has an account anywhere or not, and never holds a person's id (look a
    member up in GET /users). 503 mail_unavailable when the mail cannot go
    (nothing is kept)."""
    # the account lookup is global (the platform's); what is written is this tenant's
    state, tenant_id = request.app.state, principal.tenant.id
    with platform_db.begin() as conn:
        added = invitations.add(
            conn,
            tenant_id,
            body.email,
            body.name,
            body.role,
            body.password,
            body.site,
            now_utc(),
            principal.user_id,
            pepper,
            state.mailer,
            state.settings.public_url,
        )
    answer: dict[str, Any] = {"status": added.status, "email": body.email.strip().lower()}
    if added.invitation_id is not None:
        answer["invitation_id"] = str(added.invitation_id)
    return answer | {"role": body.role, "site": body.site}


@router.get("/invitations", response_model=list[InvitationRow], dependencies=[MANAGE])
def list_invitations(
    request: Request, response: Response, page: PageDep, tenant: TenantDep, db: DbDep
) -> list[dict[str, Any]]:
    """Invitations not accepted yet (nor expired): address, role, until when."""
    with db.connect() as conn:
        rows, total = page.slice(invitations.pending(conn, tenant.id, now_utc()))
    return paged(request, response, page, rows, total)


@router.delete(
    "/invitations/{invitation_id}", response_model=InvitationWithdrawn, dependencies=[MANAGE]
)
def withdraw_invitation(
    invitation_id: uuid.UUID, principal: PrincipalDep, db: DbDep
) -> dict[str, Any]:
    """Take a pending invitation back: its link dies (404 unknown_invitation)."""
    with db.begin() as conn:
        invitations.withdraw(conn, principal.tenant.id, invitation_id, now_utc(), principal.user_id)
    return {"invitation_id": str(invitation_id), "withdrawn": True}


@router.post("/invitations/accept", response_model=SignedIn, dependencies=[Open()])
def accept_invitation(
    body: InvitationAccept,
    request: Request,
    response: Response,
    platform_db: PlatformDbDep,
    pepper: PepperDep,
) -> dict[str, Any]:
    """The invited person joins with the link's token and is signed in there (a
    session cookie, as at login): a new address with the password it chooses (422
    weak_password), an existing account with its own password and second factor
    (401 login_failed / mfa_required / mfa_failed, throttled as at login). 401
    invalid_invitation for a link used, expired or unknown."""
    now = now_utc()
    email = invitations.peek(platform_db, body.token, pepper, now).email
    check_throttle(request, email)
    try:
        tenant_id, token = invitations.accept(
            platform_db, body.token, body.password, pepper, now, body.otp
        )
    except Unauthorized as error:
        if error.code != "invalid_invitation":
            request.app.state.login_throttle.record_failure(email, time.monotonic())
        raise
    return {"tenant_id": str(tenant_id), "csrf_token": start_session(response, token, pepper)}


@router.patch(
    "/users/{user_id}",
    response_model=RoleChanged,
    response_model_exclude_unset=True,
    dependencies=[MANAGE],
)
def change_role(
    user_id: uuid.UUID, body: RoleChange, principal: PrincipalDep, db: DbDep
) -> dict[str, Any]:
    """A new role: the member's sessions in this tenant end, so they sign in again
    with it (a new session id). A site (or null) applies from the next request."""
    given = body.model_fields_set
    if not given & {"role", "site"} or ("role" in given and body.role is None):
        raise Rejected("nothing_to_change", "send a role, a site (null: every site), or both")
    tenant_id, by, now, ended = principal.tenant.id, principal.user_id, now_utc(), 0
    with db.begin() as conn:
        if "site" in given:
            users.set_site(conn, tenant_id, user_id, body.site, now, by)
        if body.role is not None:
            ended = users.change_role(conn, tenant_id, user_id, body.role, now, by)
    answer = {"user_id": str(user_id), "sessions_ended": ended}
    return answer | {k: getattr(body, k) for k in sorted(given)}


@router.delete("/users/{user_id}", response_model=MemberRemoved, dependencies=[MANAGE])
def remove_user(user_id: uuid.UUID, principal: PrincipalDep, db: DbDep) -> dict[str, Any]:
    """The member leaves this tenant and their sessions in it end; the last owner
    cannot be removed (409 last_owner)."""
    with db.begin() as conn:
        revoked = users.remove_member(
            conn, principal.tenant.id, user_id, now_utc(), principal.user_id
        )
    return {"user_id": str(user_id), "removed": True, "sessions_revoked": revoked}
