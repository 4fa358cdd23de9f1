"""Inviting a member by mail. An invitation is pending until the invited person accepts
it with the mailed one-time link (7 days, single use, stored as a keyed hash): a new
address by choosing its own password, an existing account with its own password (and
second factor). Only then are they a member; nobody hands a first password over, and
no company makes another company's person its member behind their back.

What the inviting company sees is the same whether the address has an account
anywhere or not: the same answer (by mail: "invited" and an invitation id; with a
password set by the owner: "added", no id at all; never a person's global id), the
same work (one lookup, one row, one mail; no password hashed in one case only), and
nobody's account made its member without its person accepting (SAAS.md: no
existence leak)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.errors import Conflict, NotFound, Rejected, Unauthorized
from cloud_api.mail import Mailer
from cloud_api.services import subscriptions, users
from cloud_api.services.audit import audit
from tenant.plans import check_limit
from tenant.rbac import ROLES
from tenant.security import LOGIN_FAILED_MESSAGE, verify_or_dummy
from tenant.security._hmac import hmac_hex

T = m.SQLModel.metadata.tables
VALID_FOR = timedelta(days=7)
BAD_LINK = "this invitation link is not valid: it was used, has expired, or was never sent"

NEW_MEMBER_SUBJECT = "You are invited to {company}"
NEW_MEMBER_MAIL = """{inviter} invites you to {company} on the shop-floor ERP, as
{role}. Choose your password here (the link works once, for 7 days):

    {link}

If you did not expect this, you can ignore the mail.
"""
JOIN_SUBJECT = "You are invited to {company}"
JOIN_MAIL = """{inviter} invites you to {company} on the shop-floor ERP, as {role}.
You join only if you accept: open this link and confirm with your own password (the
link works once, for 7 days):

    {link}

If you did not expect this, ignore the mail and nothing changes.
"""
ADDED_SUBJECT = "You are a member of {company}"
ADDED_MAIL = """{inviter} added you to {company} on the shop-floor ERP, as {role}.
Sign in with this address and the password they give you:

    {link}

If you did not expect this, tell {inviter}.
"""
NEW_MEMBER = (NEW_MEMBER_SUBJECT, NEW_MEMBER_MAIL)
JOIN = (JOIN_SUBJECT, JOIN_MAIL)
ADDED = (ADDED_SUBJECT, ADDED_MAIL)


@dataclass(frozen=True)
class Added:
    """What the inviting company is told: `status` "invited" (by mail, with the
    pending `invitation_id`) or "added" (with a password: a new address is a member
    now, an account is invited by mail; which of the two is not said, nor any id).
    Either way the same for an address with an account and one without."""

    status: str
    invitation_id: uuid.UUID | None = None


def _hash(token: str, pepper: str) -> str:
    return hmac_hex(pepper, "invitation:" + token)


def add(
    conn: Connection,
    tenant_id: uuid.UUID,
    email: str,
    name: str,
    role: str,
    password: str | None,
    site: str | None,
    now: datetime,
    by: uuid.UUID | None,
    pepper: str,
    mailer: Mailer,
    public_url: str,
) -> Added:
    """Invite the person by mail (the platform engine: accounts are global); with a
    `password`, an address nobody has yet becomes an account and a member at once
    (a shop-floor login set up by the owner), told so by mail. An address that has
    an account is always invited: its person accepts, or it stays not a member. The
    answer does not say which happened (`Added`). A mail that cannot be sent undoes
    it all (503 mail_unavailable), in either case."""
    email = users.normalised_email(email)
    if role not in ROLES:
        raise Rejected("unknown_role", f"role must be one of {', '.join(ROLES)}")
    account = users.account_by_email(conn, email)
    if password is not None:
        # the policy and the hash in both cases: a weak password is refused, and the
        # answer takes as long, whether the address has an account or not
        stored = users.checked_password(password, email)
        if account is None:  # the same checks and seats as inviting (_invite)
            tenancy.switch(conn, tenant_id)
            _withdraw_earlier(conn, tenant_id, email)
            _seat_left(conn, tenant_id, now)
            users.add_member(conn, tenant_id, email, name, role, stored, now, by, site)
            base = public_url.rstrip("/")
            _mail(conn, mailer, Mail(tenant_id, email, role, by), ADDED, f"{base}/login")
            return Added("added")
    tenancy.switch(conn, tenant_id)
    _not_a_member_yet(conn, tenant_id, account, email)
    token = secrets.token_urlsafe(32)
    invited = Invited(email, name, role, site, _hash(token, pepper))
    invitation_id = _invite(conn, tenant_id, invited, now, by)
    claimed = account is not None and not account.unclaimed  # accepts with its own password
    link = f"{public_url.rstrip('/')}/invite/{token}"
    _mail(conn, mailer, Mail(tenant_id, email, role, by), JOIN if claimed else NEW_MEMBER, link)
    if password is not None:  # an account invited: told as a new address added
        return Added("added")
    return Added("invited", invitation_id)


@dataclass(frozen=True)
class Mail:
    tenant_id: uuid.UUID
    to: str
    role: str
    by: uuid.UUID | None


def _mail(conn: Connection, mailer: Mailer, mail: Mail, text: tuple[str, str], link: str) -> None:
    """One mail in every case, so no case answers quicker (or keeps working when the
    mail server is down) and tells the inviting company which case it was."""
    words = _words(conn, mail.tenant_id, mail.role, mail.by)
    subject, body = text
    mailer.send(mail.to, subject.format(**words), body.format(**words, link=link))


def _not_a_member_yet(conn: Connection, tenant_id: uuid.UUID, account: Any, email: str) -> None:
    """409 already_member for a member of this tenant (its own members are this
    tenant's to know; nothing is said of any other). The same query either way."""
    ms = T["membership"]
    user_id = account.id if account is not None else uuid.UUID(int=0)
    here = (ms.c.tenant_id == tenant_id) & (ms.c.user_id == user_id)
    if conn.scalar(select(ms.c.role).where(here)) is not None:
        raise Conflict("already_member", f"{email} is already a member")


@dataclass(frozen=True)
class Invited:
    email: str
    name: str
    role: str
    site: str | None
    token_hash: str


def _invite(
    conn: Connection, tenant_id: uuid.UUID, who: Invited, now: datetime, by: uuid.UUID | None
) -> uuid.UUID:
    """A pending invitation; one inviting the address before is withdrawn (its link
    dies). Pending invitations take seats: the plan's limit holds when they are all
    accepted."""
    inv = T["invitation"]
    _withdraw_earlier(conn, tenant_id, who.email)
    _seat_left(conn, tenant_id, now)
    invitation_id = uuid.uuid4()
    conn.execute(
        insert(inv).values(
            tenant_id=tenant_id,
            token_hash=who.token_hash,
            id=invitation_id,
            email=who.email,
            name=who.name,
            role=who.role,
            site=who.site,
            invited_by=by,
            created_at=now,
        )
    )
    at = f" at {who.site}" if who.site else ""
    said = f"{who.email} as {who.role}{at}"
    audit(conn, tenant_id, now, ("user", str(by)), "member.invited", said)
    return invitation_id


def _withdraw_earlier(conn: Connection, tenant_id: uuid.UUID, email: str) -> None:
    """The address's pending invitation here, if any, is replaced (its link dies): by
    a new one, or by the member the owner made with a password."""
    inv = T["invitation"]
    earlier = (inv.c.tenant_id == tenant_id) & (inv.c.email == email)
    conn.execute(delete(inv).where(earlier, inv.c.used_at.is_(None)))


def _seat_left(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> None:
    """402 when the plan's seats are taken by members and pending invitations: the
    same count whether the next one is a member at once or an invitation, so a full
    plan refuses both alike."""
    ms = T["membership"]
    seats = int(conn.scalar(select(func.count()).where(ms.c.tenant_id == tenant_id)) or 0)
    seats += _pending_count(conn, tenant_id, now)
    exceeded = check_limit(subscriptions.plan_of(conn, tenant_id), "users", seats)
    if exceeded is not None:
        raise subscriptions.Refused(402, exceeded.code, exceeded.message)


def _pending_count(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> int:
    inv = T["invitation"]
    live = (
        (inv.c.tenant_id == tenant_id)
        & inv.c.used_at.is_(None)
        & inv.c.user_id.is_(None)  # an old one's member is counted as a member
        & (inv.c.created_at > now - VALID_FOR)
    )
    return int(conn.scalar(select(func.count()).where(live)) or 0)


def _words(
    conn: Connection, tenant_id: uuid.UUID, role: str, by: uuid.UUID | None
) -> dict[str, str]:
    u, t = T["app_user"], T["tenant"]
    company = conn.scalar(select(t.c.name).where(t.c.id == tenant_id)) or ""
    inviter = conn.scalar(select(u.c.name).where(u.c.id == by)) if by else None
    return {"company": company, "role": role, "inviter": inviter or "The owner"}


def pending(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> list[dict[str, Any]]:
    """The tenant's invitations not accepted yet and not expired, by address: who was
    invited, as what, when, until when (no person's id: they are nobody's member
    here yet)."""
    inv = T["invitation"]
    rows = conn.execute(
        select(inv)
        .where(
            inv.c.tenant_id == tenant_id,
            inv.c.used_at.is_(None),
            inv.c.created_at > now - VALID_FOR,
        )
        .order_by(inv.c.email, inv.c.id)
    )
    return [
        {
            "id": str(r.id),
            "email": r.email,
            "name": r.name,
            "role": r.role,
            "site": r.site,
            "status": "invited",
            "created_at": r.created_at,
            "expires_at": r.created_at + VALID_FOR,
        }
        for r in rows
    ]


def withdraw(
    conn: Connection, tenant_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime, by: Any
) -> None:
    """The owner takes a pending invitation back: its link dies. 404 unknown_invitation
    for one this tenant does not have pending."""
    inv = T["invitation"]
    mine = (inv.c.tenant_id == tenant_id) & (inv.c.id == invitation_id) & inv.c.used_at.is_(None)
    email = conn.scalar(select(inv.c.email).where(mine))
    if email is None:
        raise NotFound("unknown_invitation", f"no pending invitation {invitation_id}")
    conn.execute(delete(inv).where(mine))
    audit(conn, tenant_id, now, ("user", str(by)), "member.invitation_withdrawn", email)


@dataclass(frozen=True)
class Pending:
    tenant_id: uuid.UUID
    invitation_id: uuid.UUID
    email: str
    name: str
    company: str
    role: str
    site: str | None
    has_account: bool  # accept with the account's own password, not a new one


def peek(db: Engine, token: str, pepper: str, now: datetime) -> Pending:
    """Who a live link is for (the platform engine: before the tenant is known);
    401 invalid_invitation otherwise. Shown to the link's holder only."""
    with db.connect() as conn:
        return _find(conn, token, pepper, now)


def _find(conn: Connection, token: str, pepper: str, now: datetime) -> Pending:
    """A live link: not used, not expired."""
    inv, t = T["invitation"], T["tenant"]
    if not 20 <= len(token) <= 100:
        raise Unauthorized("invalid_invitation", BAD_LINK)
    query = select(inv).where(inv.c.token_hash == _hash(token, pepper))
    row = conn.execute(query.execution_options(cross_tenant=True)).first()
    if row is None or row.used_at is not None or now - row.created_at > VALID_FOR:
        raise Unauthorized("invalid_invitation", BAD_LINK)
    tenancy.switch(conn, row.tenant_id)
    company = conn.scalar(select(t.c.name).where(t.c.id == row.tenant_id))
    account = users.account_by_email(conn, row.email)
    claimed = account is not None and not account.unclaimed
    return Pending(
        row.tenant_id,
        row.id,
        row.email,
        row.name,
        str(company or ""),
        row.role,
        row.site,
        claimed,
    )


def accept(
    db: Engine,
    token: str,
    password: str,
    pepper: str,
    now: datetime,
    otp: str | None = None,
) -> tuple[uuid.UUID, str]:
    """The invited person joins: (tenant id, a session token there). A new address
    chooses its password (the policy's rules); an existing account gives its own
    password, and its second factor if it has one (401 login_failed, mfa_required,
    mfa_failed, as at sign-in), so a link alone (a forwarded mail) joins nobody.
    The link is spent by a conditional UPDATE: two uses cannot both win."""
    inv = T["invitation"]
    with db.begin() as conn:
        found = _find(conn, token, pepper, now)
        user_id = _the_person(conn, found, password, pepper, now, otp)
        tenancy.switch(conn, found.tenant_id)
        spent = conn.execute(
            update(inv)
            .where(
                inv.c.tenant_id == found.tenant_id,
                inv.c.token_hash == _hash(token, pepper),
                inv.c.used_at.is_(None),
            )
            .values(used_at=now, user_id=user_id)
        ).rowcount
        if spent != 1:
            raise Unauthorized("invalid_invitation", BAD_LINK)
        _join(conn, found, user_id, now)
        subscriptions.gate_login(conn, found.tenant_id, found.role, now)  # as at sign-in
        session = users.create_session(conn, found.tenant_id, user_id, now)
        actor = ("user", str(user_id))
        audit(conn, found.tenant_id, now, actor, "member.invitation_accepted", found.email)
    return found.tenant_id, session


def _the_person(
    conn: Connection, found: Pending, password: str, pepper: str, now: datetime, otp: str | None
) -> uuid.UUID:
    """The account accepting: made now with the chosen password for a new address (or
    claimed, for one made unclaimed by an invitation before revision 0028), or the
    existing one, proved by its own password and second factor."""
    u = T["app_user"]
    account = users.account_by_email(conn, found.email)
    if account is not None and not account.unclaimed:
        ok, _ = verify_or_dummy(account.password_hash, password)
        if not ok:
            raise Unauthorized("login_failed", LOGIN_FAILED_MESSAGE)
        if account.totp_secret:
            users.second_factor(conn, found.tenant_id, account, otp, now, pepper)
        return account.id  # type: ignore[no-any-return]
    stored = users.checked_password(password, found.email)
    if account is not None:  # unclaimed: made by an invitation of the old kind
        conn.execute(
            update(u)
            .where(u.c.id == account.id, u.c.unclaimed.is_(True))
            .values(password_hash=stored, unclaimed=False)
        )
        return account.id  # type: ignore[no-any-return]
    try:  # two companies' links to one new address used at once: one of them waits
        return users.new_account(conn, found.email, found.name, stored, now)
    except IntegrityError as error:
        raise Conflict("member_busy", f"{found.email} is being set up just now") from error


def _join(conn: Connection, found: Pending, user_id: uuid.UUID, now: datetime) -> None:
    """The membership the invitation promised (an old invitation's exists already),
    within the plan's seats."""
    ms = T["membership"]
    here = (ms.c.tenant_id == found.tenant_id) & (ms.c.user_id == user_id)
    if conn.scalar(select(ms.c.role).where(here)) is not None:
        return
    seats = int(conn.scalar(select(func.count()).where(ms.c.tenant_id == found.tenant_id)) or 0)
    exceeded = check_limit(subscriptions.plan_of(conn, found.tenant_id), "users", seats)
    if exceeded is not None:
        raise subscriptions.Refused(402, exceeded.code, exceeded.message)
    users.join(conn, found.tenant_id, user_id, found.role, now, found.site)
