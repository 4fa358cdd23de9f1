"""Inviting a member by mail: a new account gets a one-time link (7 days, single use,
stored as a keyed hash) with which they choose their own password and are signed in;
nobody hands a first password over. A person who has an account already (another
company's member) is told by mail that they were added, and signs in as ever."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.errors import Unauthorized
from cloud_api.mail import Mailer
from cloud_api.services import subscriptions, users
from cloud_api.services.audit import audit
from tenant.security._hmac import hmac_hex

T = m.SQLModel.metadata.tables
VALID_FOR = timedelta(days=7)
BAD_LINK = "this invitation link is not valid: it was used, has expired, or was never sent"

NEW_MEMBER_SUBJECT = "You are invited to {company}"
NEW_MEMBER_MAIL = """{inviter} has added you to {company} on the shop-floor ERP, as
{role}. Choose your password here (the link works once, for 7 days):

    {link}

If you did not expect this, you can ignore the mail.
"""
ADDED_SUBJECT = "You were added to {company}"
ADDED_MAIL = """{inviter} has added you to {company} on the shop-floor ERP, as {role}.
Sign in with your email and your own password, and choose {company}:

    {login}
"""


@dataclass(frozen=True)
class Added:
    user_id: uuid.UUID
    mailed: bool  # invited by mail (a link for a new account, else a notice)


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
    """Add the member (the platform engine: accounts are global) with the first
    password given, or, with none, invite them by mail: a link for a new account, a
    notice for an existing one. A mail that cannot be sent undoes it all (503
    mail_unavailable)."""
    user_id = users.add_member(conn, tenant_id, email, name, role, password, now, by, site)
    if password is not None:
        return Added(user_id, mailed=False)
    u, t = T["app_user"], T["tenant"]
    account = conn.execute(select(u.c.email, u.c.unclaimed).where(u.c.id == user_id)).one()
    company = conn.scalar(select(t.c.name).where(t.c.id == tenant_id)) or ""
    inviter = conn.scalar(select(u.c.name).where(u.c.id == by)) if by else None
    words = {"company": company, "role": role, "inviter": inviter or "The owner"}
    audit(conn, tenant_id, now, ("user", str(by)), "member.invited", account.email)
    if not account.unclaimed:  # somebody's own account: they sign in as ever
        body = ADDED_MAIL.format(**words, login=f"{public_url.rstrip('/')}/login")
        mailer.send(account.email, ADDED_SUBJECT.format(**words), body)
        return Added(user_id, mailed=True)
    # a new account, or one invited before whose link was never used: a new link
    token = secrets.token_urlsafe(32)
    address = account.email
    conn.execute(
        insert(T["invitation"]).values(
            tenant_id=tenant_id, token_hash=_hash(token, pepper), user_id=user_id, created_at=now
        )
    )
    link = f"{public_url.rstrip('/')}/invite/{token}"
    body = NEW_MEMBER_MAIL.format(**words, link=link)
    mailer.send(address, NEW_MEMBER_SUBJECT.format(**words), body)
    return Added(user_id, mailed=True)


@dataclass(frozen=True)
class Pending:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    company: str
    role: str


def peek(db: Engine, token: str, pepper: str, now: datetime) -> Pending:
    """Who a live link is for (the platform engine: before the tenant is known);
    401 invalid_invitation otherwise."""
    with db.connect() as conn:
        return _find(conn, token, pepper, now)


def _find(conn: Connection, token: str, pepper: str, now: datetime) -> Pending:
    """A live link: not used, not expired, for an account still unclaimed (a link of
    another company's, once one was used, is dead) that is still a member."""
    inv, u, t, ms = T["invitation"], T["app_user"], T["tenant"], T["membership"]
    if not 20 <= len(token) <= 100:
        raise Unauthorized("invalid_invitation", BAD_LINK)
    query = select(inv).where(inv.c.token_hash == _hash(token, pepper))
    row = conn.execute(query.execution_options(cross_tenant=True)).first()
    if row is None or row.used_at is not None or now - row.created_at > VALID_FOR:
        raise Unauthorized("invalid_invitation", BAD_LINK)
    tenancy.switch(conn, row.tenant_id)
    account = conn.execute(select(u.c.email, u.c.unclaimed).where(u.c.id == row.user_id)).first()
    member = ms.c.tenant_id == row.tenant_id, ms.c.user_id == row.user_id
    role = conn.scalar(select(ms.c.role).where(*member))
    if account is None or not account.unclaimed or role is None:
        raise Unauthorized("invalid_invitation", BAD_LINK)
    company = conn.scalar(select(t.c.name).where(t.c.id == row.tenant_id))
    return Pending(row.tenant_id, row.user_id, str(account.email), str(company or ""), role)


def accept(
    db: Engine, token: str, password: str, pepper: str, now: datetime
) -> tuple[uuid.UUID, str]:
    """The invited person's own password (the policy's rules), the link spent, and a
    first session in that company: (tenant id, session token). The link is spent by a
    conditional UPDATE, so two uses of one link cannot both win."""
    inv, u = T["invitation"], T["app_user"]
    with db.begin() as conn:
        found = _find(conn, token, pepper, now)
        stored = users.checked_password(password, found.email)
        spent = conn.execute(
            update(inv)
            .where(
                inv.c.tenant_id == found.tenant_id,
                inv.c.token_hash == _hash(token, pepper),
                inv.c.used_at.is_(None),
            )
            .values(used_at=now)
        ).rowcount
        if spent != 1:
            raise Unauthorized("invalid_invitation", BAD_LINK)
        subscriptions.gate_login(conn, found.tenant_id, found.role, now)  # as at sign-in
        conn.execute(
            update(u)
            .where(u.c.id == found.user_id, u.c.unclaimed.is_(True))
            .values(password_hash=stored, unclaimed=False)
        )
        session = users.create_session(conn, found.tenant_id, found.user_id, now)
        actor = ("user", str(found.user_id))
        audit(conn, found.tenant_id, now, actor, "member.invitation_accepted", found.email)
    return found.tenant_id, session
