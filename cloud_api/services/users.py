"""Portal users: sign-up, password login, sessions, memberships. The rules (argon2id,
policy, session times, throttling) are pure, in tenant/security; this keeps their state.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.errors import Conflict, NotFound, Rejected, Unauthorized
from cloud_api.mail import Mailer
from cloud_api.services import subscriptions
from cloud_api.services.audit import audit
from cloud_api.services.tenants import NewTenant, create_tenant
from tenant.plans import check_limit
from tenant.rbac import ROLES
from tenant.security import (
    LOGIN_FAILED_MESSAGE,
    SessionTimes,
    WeakPassword,
    check_password_policy,
    hash_password,
    mfa,
    new_session_token,
    token_hash,
    verify_or_dummy,
)

T = m.SQLModel.metadata.tables
TIMES = SessionTimes()


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    session_hash: str
    mfa: bool = False  # a second factor is set up
    site: str | None = None  # the member's site (membership.site)

    @property
    def device_site(self) -> str | None:
        """The one site whose devices this member manages; None: every site (an
        owner always)."""
        return None if self.role == "owner" else self.site


def _email(text: str) -> str:
    return text.strip().lower()


def normalised_email(text: str) -> str:
    """An address as accounts are keyed by it (trimmed, lower case)."""
    return _email(text)


def account_by_email(conn: Connection, email: str) -> Any:
    """The account with this address, or None (the platform engine: accounts are
    global; never shown to a tenant the person is not a member of)."""
    return _user_by_email(conn, _email(email))


def new_account(
    conn: Connection, email: str, name: str, password_hash: str, now: datetime
) -> uuid.UUID:
    """A new account of the person's own (a password they chose)."""
    return _insert_user(conn, _email(email), name, password_hash, now)


def join(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    now: datetime,
    site: str | None = None,
) -> None:
    """The person becomes a member (the caller checked the seats and their consent)."""
    conn.execute(
        insert(T["membership"]).values(
            tenant_id=tenant_id, user_id=user_id, role=role, created_at=now, site=site
        )
    )


def second_factor(
    conn: Connection, tenant_id: uuid.UUID, user: Any, otp: str | None, now: datetime, pepper: str
) -> None:
    """The account's second factor, checked as at sign-in (401 mfa_required or
    mfa_failed)."""
    _second_factor(conn, tenant_id, user, otp, now, pepper)


def checked_password(password: str, email: str, company: str | None = None) -> str:
    try:
        check_password_policy(password, email=email, company=company)
    except WeakPassword as error:
        raise Rejected("weak_password", error.message, reason=error.reason) from error
    return hash_password(password)


def sign_up(
    db: Engine, company: str, email: str, name: str, password: str, pepper: str, now: datetime
) -> tuple[NewTenant, str]:
    """A new tenant on a 14-day trial, its owner, and a first session."""
    email = _email(email)
    password_hash = checked_password(password, email, company)
    with db.connect() as conn:
        if _user_by_email(conn, email) is not None:
            raise Conflict("email_taken", "an account with this email exists; sign in instead")
    slug = "t-" + uuid.uuid4().hex[:12]
    tenant = create_tenant(db, slug, company, pepper, plan_code="starter", trial=True)
    with db.begin() as conn:
        tenancy.switch(conn, tenant.id)
        user_id = _insert_user(conn, email, name, password_hash, now)
        join(conn, tenant.id, user_id, "owner", now)
        token = create_session(conn, tenant.id, user_id, now)
        audit(conn, tenant.id, now, ("user", str(user_id)), "tenant.sign_up", company)
    return tenant, token


def _user_by_email(conn: Connection, email: str) -> Any:
    u = T["app_user"]
    return conn.execute(select(u).where(u.c.email == email)).first()


def _insert_user(
    conn: Connection,
    email: str,
    name: str,
    password_hash: str,
    now: datetime,
    unclaimed: bool = False,
) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute(
        insert(T["app_user"]).values(
            id=user_id,
            email=email,
            name=name,
            password_hash=password_hash,
            created_at=now,
            unclaimed=unclaimed,
        )
    )
    return user_id


def log_in(
    db: Engine,
    email: str,
    password: str,
    tenant_slug: str | None,
    now: datetime,
    otp: str | None = None,
    pepper: str = "",
) -> tuple[uuid.UUID, str]:
    """(tenant id, session token) for the right password; the same 401 for an unknown
    user, a wrong password or no membership, at the same cost. A user with a second
    factor also gives the current code, or one of their recovery codes (401
    mfa_required without it, mfa_failed for a wrong or replayed one)."""
    email = _email(email)
    with db.begin() as conn:
        user = _user_by_email(conn, email)
        ok, new_hash = verify_or_dummy(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Unauthorized("login_failed", LOGIN_FAILED_MESSAGE)
        if new_hash is not None:  # parameters went up since: rehash now
            u = T["app_user"]
            conn.execute(update(u).where(u.c.id == user.id).values(password_hash=new_hash))
        tenant_id = _tenant_of(conn, user.id, tenant_slug)
        if tenant_id is None:
            raise Unauthorized("login_failed", LOGIN_FAILED_MESSAGE)
        tenancy.switch(conn, tenant_id)
        ms = T["membership"]
        role = conn.scalar(
            select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user.id)
        )
        subscriptions.gate_login(conn, tenant_id, role, now)
        if user.totp_secret:
            _second_factor(conn, tenant_id, user, otp, now, pepper)
        token = create_session(conn, tenant_id, user.id, now)
        audit(conn, tenant_id, now, ("user", str(user.id)), "user.log_in")
    return tenant_id, token


def _second_factor(
    conn: Connection, tenant_id: uuid.UUID, user: Any, otp: str | None, now: datetime, pepper: str
) -> None:
    if not otp:
        raise Unauthorized("mfa_required", "enter the 6-digit code from your authenticator app")
    u = T["app_user"]
    recovery = mfa.normalise_recovery_code(otp)
    if recovery is not None and pepper:
        _use_recovery_code(conn, tenant_id, user.id, mfa.recovery_code_hash(recovery, pepper), now)
        return
    checked = mfa.verify(user.totp_secret, otp, now, user.totp_last_step)
    if not checked.ok:
        raise Unauthorized("mfa_failed", "the code is wrong or was already used")
    conn.execute(update(u).where(u.c.id == user.id).values(totp_last_step=checked.step))


def _use_recovery_code(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, digest: str, now: datetime
) -> None:
    """A recovery code instead of the app's: it works once (struck off under the row's
    lock), and the audit log says so and how many are left."""
    u = T["app_user"]
    stored = conn.scalar(select(u.c.mfa_recovery_hashes).where(u.c.id == user_id).with_for_update())
    left = (stored or "").split()
    if digest not in left:
        raise Unauthorized("mfa_failed", "the code is wrong or was already used")
    left.remove(digest)
    conn.execute(update(u).where(u.c.id == user_id).values(mfa_recovery_hashes=" ".join(left)))
    said = f"{len(left)} left"
    audit(conn, tenant_id, now, ("user", str(user_id)), "user.mfa_recovery_code_used", detail=said)


def replace_recovery_codes(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    code: str,
    pepper: str,
    now: datetime,
) -> list[str]:
    """New recovery codes for whoever shows the app's current code (a session alone,
    left open or stolen, cannot mint codes that outlive it)."""
    u = T["app_user"]
    row = conn.execute(select(u).where(u.c.id == user_id).with_for_update()).one()
    if row.totp_secret is None:
        raise Conflict("no_mfa", "set up a second factor first")
    checked = mfa.verify(row.totp_secret, code, now, row.totp_last_step)
    if not checked.ok:
        raise Rejected("mfa_failed", "the code is wrong or was already used")
    conn.execute(update(u).where(u.c.id == user_id).values(totp_last_step=checked.step))
    return new_recovery_codes(conn, tenant_id, user_id, pepper, now)


def new_recovery_codes(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, pepper: str, now: datetime
) -> list[str]:
    """Ten new recovery codes for a user whose second factor was just confirmed or
    who showed its current code (the callers check), shown once; the old ones stop
    working. Audited."""
    u = T["app_user"]
    codes = mfa.new_recovery_codes()
    hashes = " ".join(mfa.recovery_code_hash(c.replace("-", ""), pepper) for c in codes)
    conn.execute(update(u).where(u.c.id == user_id).values(mfa_recovery_hashes=hashes))
    audit(conn, tenant_id, now, ("user", str(user_id)), "user.mfa_recovery_codes_made")
    return codes


def change_password(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    current: str,
    new: str,
    now: datetime,
) -> str:
    """A new password for the signed-in user, after the current one (on the platform
    engine: app_user is global). Every session of theirs, in every tenant, ends; the
    returned token is a fresh session in this tenant (SAAS.md: revoke on password
    change, rotate)."""
    u = T["app_user"]
    row = conn.execute(select(u).where(u.c.id == user_id)).one()
    ok, _ = verify_or_dummy(row.password_hash, current)
    if not ok:
        raise Unauthorized("login_failed", LOGIN_FAILED_MESSAGE)
    conn.execute(
        update(u).where(u.c.id == user_id).values(password_hash=checked_password(new, row.email))
    )
    end_sessions_everywhere(conn, user_id, now)
    tenancy.switch(conn, tenant_id)
    token = create_session(conn, tenant_id, user_id, now)
    audit(conn, tenant_id, now, ("user", str(user_id)), "user.password_changed")
    return token


def tenants_of(conn: Connection, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Every tenant the person is a member of (erp_platform reads memberships across
    tenants)."""
    ms = T["membership"]
    query = select(ms.c.tenant_id).where(ms.c.user_id == user_id).order_by(ms.c.tenant_id)
    return list(conn.scalars(query.execution_options(cross_tenant=True)))


def end_sessions_everywhere(conn: Connection, user_id: uuid.UUID, now: datetime) -> None:
    """End the person's live sessions in every tenant they belong to. Row-level
    security lets a transaction change only its tenant's rows, so it visits each
    tenant in turn; the caller points the transaction back where it needs it."""
    for tenant_id in tenants_of(conn, user_id):
        tenancy.switch(conn, tenant_id)
        end_sessions(conn, tenant_id, now, user_id)


def end_sessions(
    conn: Connection, tenant_id: uuid.UUID, now: datetime, user_id: uuid.UUID | None = None
) -> int:
    """End the live sessions in this tenant (the transaction's): one person's, or with
    `user_id` None everyone's. Returns how many ended."""
    s = T["user_session"]
    live = update(s).where(s.c.tenant_id == tenant_id, s.c.revoked_at.is_(None))
    if user_id is not None:
        live = live.where(s.c.user_id == user_id)
    return int(conn.execute(live.values(revoked_at=now)).rowcount or 0)


def memberships(conn: Connection, user_id: uuid.UUID) -> list[dict[str, str]]:
    """The companies a person belongs to, by name: slug, name and their role there
    (erp_platform reads memberships across tenants)."""
    ms, t = T["membership"], T["tenant"]
    query = (
        select(t.c.slug, t.c.name, ms.c.role)
        .join(t, t.c.id == ms.c.tenant_id)
        .where(ms.c.user_id == user_id)
        .order_by(t.c.name, t.c.slug)
    )
    rows = conn.execute(query.execution_options(cross_tenant=True))
    return [{"slug": r.slug, "name": r.name, "role": r.role} for r in rows]


def switch_tenant(
    conn: Connection,
    tenant_id: uuid.UUID,
    session_hash: str,
    user_id: uuid.UUID,
    slug: str,
    now: datetime,
) -> tuple[uuid.UUID, str]:
    """Move a signed-in person to another company they belong to: this session ends
    and a new one starts there (SAAS.md: rotate on tenant switch), under that tenant's
    subscription (a suspended one lets only its owner in). Not a member, or no such
    company: 404 unknown_tenant, and the session goes on."""
    target = _tenant_of(conn, user_id, slug) if slug.strip() else None
    if target is None:
        raise NotFound("unknown_tenant", f"you are not a member of {slug!r}")
    tenancy.switch(conn, target)
    ms = T["membership"]
    role = conn.scalar(select(ms.c.role).where(ms.c.tenant_id == target, ms.c.user_id == user_id))
    subscriptions.gate_login(conn, target, role, now)
    tenancy.switch(conn, tenant_id)  # row-level security: end the session where it is
    s = T["user_session"]
    here = (s.c.tenant_id == tenant_id) & (s.c.token_hash == session_hash)
    started = conn.scalar(select(s.c.created_at).where(here))
    log_out(conn, session_hash, now)
    # where they went is the other company's business, not this one's
    audit(conn, tenant_id, now, ("user", str(user_id)), "session.switch_out")
    tenancy.switch(conn, target)
    # the new session keeps the old one's start: switching back and forth never
    # outlives the absolute timeout
    token = create_session(conn, target, user_id, now, started=started)
    audit(conn, target, now, ("user", str(user_id)), "session.switch_in")
    return target, token


def reset_mfa(conn: Connection, email: str, reason: str, now: datetime) -> list[uuid.UUID]:
    """An operator's reset of a lost second factor, once who asks has been checked
    outside the system: the secret goes, every session of the person ends, and each
    tenant they belong to gets an audit line with the reason; they set up a new
    factor at their next sign-in. Returns those tenants."""
    if not reason.strip():
        raise Rejected("reason_required", "say why the second factor is reset (audited)")
    user = _user_by_email(conn, _email(email))
    if user is None:
        raise NotFound("user_not_found", f"no user {email}")
    u = T["app_user"]
    conn.execute(
        update(u)
        .where(u.c.id == user.id)
        .values(totp_secret=None, totp_pending=None, totp_last_step=None, mfa_recovery_hashes=None)
    )
    end_sessions_everywhere(conn, user.id, now)
    tenants = tenants_of(conn, user.id)
    for tenant_id in tenants:
        tenancy.switch(conn, tenant_id)
        actor = ("system", "erp-cli")
        audit(conn, tenant_id, now, actor, "user.mfa_reset", user.email, detail=reason.strip())
    return tenants


MFA_MAIL_SUBJECT = "Your code to set up a second factor"
MFA_MAIL = """Someone signed in as {email} is setting up a second factor (an
authenticator app) for the shop-floor ERP. To finish, enter this code on the set-up
page, with the first code the app shows:

    {code}

It works for {minutes} minutes, once. If this was not you, your password is known to
someone else: change it now, and tell your company's owner.
"""


def start_mfa(
    conn: Connection,
    user_id: uuid.UUID,
    session_hash: str,
    now: datetime,
    pepper: str,
    mailer: Mailer,
    reuse: bool = False,
) -> dict[str, str]:
    """A new secret waiting for its first code (the platform engine: app_user is
    global), to put into an authenticator app, and a code mailed to the account's
    address that must come with it; the set-up belongs to the session that started it.
    `reuse`: this session's set-up still waiting (its mail not expired) is shown again,
    with no new mail (a page reloaded). At most one mail a minute (429 mail_cooldown):
    the password alone cannot flood the address."""
    u = T["app_user"]
    row = conn.execute(select(u).where(u.c.id == user_id).with_for_update()).one()
    sent_at = row.mfa_mail_code_at
    waiting = sent_at is not None and now - sent_at < mfa.MAIL_CODE_TTL
    mine = row.mfa_pending_session == session_hash
    if reuse and row.totp_pending is not None and waiting and mine:
        secret = row.totp_pending
    else:
        if sent_at is not None and now - sent_at < mfa.MAIL_COOLDOWN:
            wait_s = math.ceil((mfa.MAIL_COOLDOWN - (now - sent_at)).total_seconds())
            raise subscriptions.Refused(
                429, "mail_cooldown", "a set-up mail was sent under a minute ago", wait_s
            )
        secret, code = mfa.new_secret(), mfa.new_mail_code()
        conn.execute(
            update(u)
            .where(u.c.id == user_id)
            .values(
                totp_pending=secret,
                mfa_mail_code_hash=mfa.mail_code_hash(code, pepper),
                mfa_mail_code_at=now,
                mfa_pending_session=session_hash,
            )
        )
        minutes = int(mfa.MAIL_CODE_TTL.total_seconds() // 60)
        body = MFA_MAIL.format(email=row.email, code=code, minutes=minutes)
        mailer.send(row.email, MFA_MAIL_SUBJECT, body)  # raises: nothing is kept
    return {
        "secret": secret,
        "otpauth_uri": mfa.provisioning_uri(secret, row.email),
        "mailed_to": row.email,
    }


def confirm_mfa(
    db: Engine,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    session_hash: str,
    code: str,
    mail_code: str,
    now: datetime,
    pepper: str,
) -> list[str]:
    """The first code from the app proves it holds the pending secret, the mailed code
    that the person reads the account's mail: it becomes the user's second factor
    (audited), with ten new recovery codes, returned to be shown once. A wrong or
    expired mailed code ends the set-up, written before the refusal (start again: a
    new mail), so it cannot be guessed."""
    u = T["app_user"]
    with db.begin() as conn:  # the row locked: two confirms cannot share one guess
        row = conn.execute(select(u).where(u.c.id == user_id).with_for_update()).one()
        if row.totp_pending is None or row.mfa_pending_session != session_hash:
            raise Conflict(
                "no_mfa_pending",
                "no set-up started in this session: POST /api/v1/mfa/setup first",
            )
        sent = (row.mfa_mail_code_hash, row.mfa_mail_code_at)
        if mfa.mail_code_ok(*sent, mail_code, pepper, now):
            checked = mfa.verify(row.totp_pending, code, now, None)
            if not checked.ok:
                raise Rejected("mfa_failed", "the code does not match; check the app's clock")
            conn.execute(
                update(u)
                .where(u.c.id == user_id)
                .values(
                    totp_secret=row.totp_pending,
                    totp_pending=None,
                    totp_last_step=checked.step,
                    mfa_mail_code_hash=None,
                    mfa_mail_code_at=None,
                    mfa_pending_session=None,
                )
            )
            audit(conn, tenant_id, now, ("user", str(user_id)), "user.mfa_enabled")
            return new_recovery_codes(conn, tenant_id, user_id, pepper, now)
        conn.execute(
            update(u)
            .where(u.c.id == user_id)
            .values(totp_pending=None, mfa_mail_code_hash=None, mfa_pending_session=None)
        )  # mfa_mail_code_at stays: the cooldown holds
        audit(conn, tenant_id, now, ("user", str(user_id)), "user.mfa_mail_code_failed")
    raise Rejected(
        "mail_code_failed",
        "the code from the mail is wrong or expired; start the set-up again (a new mail)",
    )


def _tenant_of(conn: Connection, user_id: uuid.UUID, slug: str | None) -> uuid.UUID | None:
    ms, t = T["membership"], T["tenant"]
    query = (
        select(ms.c.tenant_id)
        .join(t, t.c.id == ms.c.tenant_id)
        .where(ms.c.user_id == user_id)
        .order_by(ms.c.created_at)
    )
    if slug:
        query = query.where(t.c.slug == slug)
    return conn.scalar(query.limit(1))


def create_session(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    now: datetime,
    started: datetime | None = None,
) -> str:
    token = new_session_token()
    conn.execute(
        insert(T["user_session"]).values(
            tenant_id=tenant_id,
            token_hash=token_hash(token),
            user_id=user_id,
            created_at=started or now,
            last_seen_at=now,
        )
    )
    return token


def principal(conn: Connection, token: str, now: datetime) -> Principal:
    """The live session's user, tenant and current role (read each request, so a role
    change applies at once); 401 for an unknown, revoked or timed-out session."""
    s, ms, u = T["user_session"], T["membership"], T["app_user"]
    row = conn.execute(
        select(s, ms.c.role, ms.c.site, u.c.totp_secret.is_not(None).label("mfa"))
        .join(ms, (ms.c.tenant_id == s.c.tenant_id) & (ms.c.user_id == s.c.user_id))
        .join(u, u.c.id == s.c.user_id)
        .where(s.c.token_hash == token_hash(token))
    ).first()
    if (
        row is None
        or row.revoked_at is not None
        or TIMES.state(row.created_at, row.last_seen_at, now) != "live"
    ):
        raise Unauthorized("session_expired", "sign in again")
    tenancy.switch(conn, row.tenant_id)
    if TIMES.should_touch(row.last_seen_at, now):
        conn.execute(
            update(s)
            .where(s.c.tenant_id == row.tenant_id, s.c.token_hash == row.token_hash)
            .values(last_seen_at=now)
        )
    return Principal(row.tenant_id, row.user_id, row.role, row.token_hash, row.mfa, row.site)


def log_out(conn: Connection, session_hash: str, now: datetime) -> None:
    s = T["user_session"]
    ended = update(s).where(s.c.token_hash == session_hash).values(revoked_at=now)
    conn.execute(ended.execution_options(cross_tenant=True))  # the session's own row


def add_member(
    conn: Connection,
    tenant_id: uuid.UUID,
    email: str,
    name: str,
    role: str,
    password_hash: str,
    now: datetime,
    by: uuid.UUID | None,
    site: str | None = None,
) -> uuid.UUID:
    """A new account, with the password the owner set up (its hash), joins the tenant
    with a role at `site` (None: every site); the plan's seats are a hard limit. Never
    for an address that has an account: that person is invited and accepts
    (invitations.add), so a tenant cannot make anybody's account its member."""
    if role not in ROLES:
        raise Rejected("unknown_role", f"role must be one of {', '.join(ROLES)}")
    ms = T["membership"]
    seats = conn.scalar(select(func.count()).where(ms.c.tenant_id == tenant_id))
    exceeded = check_limit(subscriptions.plan_of(conn, tenant_id), "users", int(seats or 0))
    if exceeded is not None:
        raise subscriptions.Refused(402, exceeded.code, exceeded.message)
    email = _email(email)
    try:  # two companies adding one new address at once: one of them waits
        user_id = _insert_user(conn, email, name, password_hash, now)
    except IntegrityError as error:
        raise Conflict("member_busy", f"{email} is being added just now") from error
    join(conn, tenant_id, user_id, role, now, site)
    at = f" at {site}" if site else ""
    audit(conn, tenant_id, now, ("user", str(by)), "member.add", f"{email} as {role}{at}")
    return user_id


LAST_OWNER = "a tenant keeps at least one owner: make another member owner first"


def _keep_an_owner(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str | None
) -> None:
    """Refuse (409) to remove (`role` None) or demote the tenant's last owner. The
    owners' rows are locked on PostgreSQL, so two concurrent demotions cannot each see
    the other still there."""
    ms = T["membership"]
    current = conn.scalar(
        select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id)
    )
    if role == "owner" or current != "owner":
        return
    if owner_count(conn, tenant_id) <= 1:
        raise Conflict("last_owner", LAST_OWNER)


def owner_count(conn: Connection, tenant_id: uuid.UUID) -> int:
    """The tenant's owners, locked on PostgreSQL until the transaction ends, so two
    concurrent demotions cannot both see another owner left."""
    ms = T["membership"]
    query = select(ms.c.user_id).where(ms.c.tenant_id == tenant_id, ms.c.role == "owner")
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return len(conn.execute(query).all())


def remove_member(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, now: datetime, by: Any
) -> int:
    """End a user's membership of this tenant and revoke their sessions in it (their
    account and their other tenants stay); the last owner cannot go. Returns how many
    sessions were revoked."""
    ms = T["membership"]
    current = conn.scalar(
        select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id)
    )
    if current is None:
        raise NotFound("unknown_member", f"no member {user_id} in this tenant")
    _keep_an_owner(conn, tenant_id, user_id, None)
    conn.execute(ms.delete().where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id))
    inv = T["invitation"]  # a link not used yet dies with the membership
    conn.execute(inv.delete().where(inv.c.tenant_id == tenant_id, inv.c.user_id == user_id))
    revoked = end_sessions(conn, tenant_id, now, user_id)
    audit(
        conn,
        tenant_id,
        now,
        ("user", str(by)),
        "member.remove",
        str(user_id),
        detail=f"was {current}; {revoked} sessions revoked",
    )
    return int(revoked or 0)


def change_role(
    conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str, now: datetime, by: Any
) -> int:
    """Give a member another role. Their sessions in this tenant end (SAAS.md: rotate
    on role change), so they sign in again and hold a new session id with the new
    role; the same role again changes nothing. Returns the sessions ended."""
    if role not in ROLES:
        raise Rejected("unknown_role", f"role must be one of {', '.join(ROLES)}")
    ms = T["membership"]
    current = conn.scalar(
        select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id)
    )
    if current is None:
        raise NotFound("unknown_member", f"no member {user_id} in this tenant")
    if current == role:
        return 0
    _keep_an_owner(conn, tenant_id, user_id, role)
    conn.execute(
        update(ms).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id).values(role=role)
    )
    ended = end_sessions(conn, tenant_id, now, user_id)
    said = f"was {current}; {ended} sessions ended"
    actor = ("user", str(by))
    audit(conn, tenant_id, now, actor, "member.role", f"{user_id} → {role}", detail=said)
    return ended


def set_site(
    conn: Connection,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    site: str | None,
    now: datetime,
    by: Any,
) -> None:
    """The site whose devices the member manages (None: every site); read on each
    request, so it applies at once. Audited."""
    ms = T["membership"]
    mine = (ms.c.tenant_id == tenant_id) & (ms.c.user_id == user_id)
    if conn.scalar(select(ms.c.role).where(mine)) is None:
        raise NotFound("unknown_member", f"no member {user_id} in this tenant")
    conn.execute(update(ms).where(mine).values(site=site))
    audit(conn, tenant_id, now, ("user", str(by)), "member.site", str(user_id), None, site or "*")


def members(conn: Connection, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every member of the tenant, by address."""
    return members_page(conn, tenant_id, None, 0)[0]


def members_page(
    conn: Connection, tenant_id: uuid.UUID, limit: int | None, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the tenant's members by address (`limit` None: all of them), and how
    many there are. Only members: a person invited is not one until they accept."""
    ms, u = T["membership"], T["app_user"]
    query = (
        select(u.c.id, u.c.email, u.c.name, ms.c.role, ms.c.site)
        .join(ms, ms.c.user_id == u.c.id)
        .where(ms.c.tenant_id == tenant_id)
        .order_by(u.c.email, u.c.id)
    )
    total = int(conn.scalar(select(func.count()).where(ms.c.tenant_id == tenant_id)) or 0)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = [
        {"id": str(r.id), "email": r.email, "name": r.name, "role": r.role, "site": r.site}
        for r in conn.execute(query)
    ]
    return rows, total


def set_locale(platform_db: Engine, user_id: uuid.UUID, locale: str) -> None:
    """Store a user's language on their own account. app_user is global: the tenants'
    role may only read it, so this runs on the platform engine, for that one user."""
    u = T["app_user"]
    with platform_db.begin() as conn:
        conn.execute(update(u).where(u.c.id == user_id).values(locale=locale))


def set_locale_of_session(platform_db: Engine, token: str, locale: str, now: datetime) -> None:
    """At sign-up: the new owner's language is the one the sign-up page was shown in."""
    u = T["app_user"]
    with platform_db.begin() as conn:
        user_id = principal(conn, token, now).user_id
        conn.execute(update(u).where(u.c.id == user_id).values(locale=locale))
