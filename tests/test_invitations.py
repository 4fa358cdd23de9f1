"""Inviting a member by mail: no first password handed over. A new account gets a
one-time link (7 days) to choose its own password and is signed in; an existing
account gets a notice and keeps its password; a link works once; a mail that cannot
go adds nobody. Through the JSON API and through the portal's pages."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.mail import SmtpMailer
from cloud_api.services import invitations
from tests.mail import mails_to
from tests.test_mfa import _closed_port
from tests.test_users import PASSWORD, Browser, _email

T = m.SQLModel.metadata.tables


def _link_token(address: str) -> str:
    body = mails_to(address)[-1].get_payload(decode=True)
    assert isinstance(body, bytes)
    found = re.search(r"/invite/([A-Za-z0-9_-]+)\s", body.decode())
    assert found, body
    return found.group(1)


def test_a_new_member_chooses_their_own_password_from_the_mailed_link(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"), company="Oak & Pine")
    email = _email("clerk")
    added = owner.call("POST", "/users", json={"email": email, "name": "Clerk", "role": "viewer"})
    assert added.status_code == 201 and added.json()["mailed"] is True, added.text
    (mail,) = mails_to(email)
    assert mail["Subject"] == "You are invited to Oak & Pine"
    token = _link_token(email)
    assert mail.get_payload(decode=True).decode().count("http://127.0.0.1:8000/invite/") == 1
    # nobody can sign in before the link is used: there is no password yet
    assert Browser(db, owner.client.app).log_in(email, PASSWORD).status_code == 401

    clerk = Browser(db, owner.client.app)
    weak = clerk.call("POST", "/invitations/accept", json={"token": token, "password": "short"})
    assert (weak.status_code, weak.json()["code"]) == (422, "weak_password")
    joined = clerk.call("POST", "/invitations/accept", json={"token": token, "password": PASSWORD})
    assert joined.status_code == 200, joined.text
    assert clerk.call("GET", "/me").json()["role"] == "viewer"  # signed in
    again = Browser(db, owner.client.app).call(
        "POST", "/invitations/accept", json={"token": token, "password": PASSWORD + "!"}
    )
    assert (again.status_code, again.json()["code"]) == (401, "invalid_invitation")
    assert Browser(db, owner.client.app).log_in(email, PASSWORD).status_code == 200
    actions = [r["action"] for r in owner.call("GET", "/audit-log").json()]
    assert "member.invited" in actions and "member.invitation_accepted" in actions


def test_an_existing_account_is_told_and_keeps_its_password(db: Engine) -> None:
    first, second = Browser(db), Browser(db)
    email = _email("accountant")
    first.sign_up(email, company="Birch & Co")  # an account of their own already
    second.sign_up(_email("owner"), company="Oak & Pine")
    body = {"email": email, "name": "Acc", "role": "accountant"}
    added = second.call("POST", "/users", json=body)
    assert added.status_code == 201 and added.json()["mailed"] is True
    notice = mails_to(email)[-1]
    assert notice["Subject"] == "You were added to Oak & Pine"
    assert "/invite/" not in notice.get_payload(decode=True).decode()
    assert Browser(db).log_in(email).status_code == 200  # the password they had


def test_a_link_expires_after_7_days_and_no_mail_adds_nobody(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    email = _email("late")
    assert owner.call("POST", "/users", json={"email": email, "name": "L", "role": "viewer"})
    token = _link_token(email)
    signed = owner.call("GET", "/me").json()
    with tenancy.as_tenant(uuid.UUID(signed["tenant_id"])), db.begin() as conn:
        inv = T["invitation"]
        old = now_utc() - invitations.VALID_FOR - timedelta(minutes=1)
        mine = inv.c.tenant_id == uuid.UUID(signed["tenant_id"])
        assert conn.execute(update(inv).values(created_at=old).where(mine)).rowcount == 1
    late = owner.call("POST", "/invitations/accept", json={"token": token, "password": PASSWORD})
    assert (late.status_code, late.json()["code"]) == (401, "invalid_invitation")

    owner.client.app.state.mailer = SmtpMailer("127.0.0.1", _closed_port(), "erp@localhost")
    nobody = _email("nobody")
    refused = owner.call("POST", "/users", json={"email": nobody, "name": "N", "role": "viewer"})
    assert (refused.status_code, refused.json()["code"]) == (503, "mail_unavailable")
    assert nobody not in {u["email"] for u in owner.call("GET", "/users").json()}


def test_the_portal_invites_and_the_link_page_signs_the_member_in(db: Engine) -> None:
    from tests.test_tenant_lifecycle import Portal

    owner = Portal(db)
    owner.sign_up()
    email = _email("prod")
    form = {"email": email, "name": "Prod", "role": "production", "password": ""}
    sent = owner.post("/users/invite", form, page="/users")
    assert sent.headers["location"] == "/users?notice=invitation_mailed", sent.text
    token = _link_token(email)

    member = Portal(db)
    page = member.client.get(f"/invite/{token}")
    assert page.status_code == 200 and email in page.text and 'id="invite-accept"' in page.text
    weak = member.post(f"/invite/{token}", {"password": "weak"}, page=f"/invite/{token}")
    assert weak.status_code == 422 and 'id="invite-accept"' in weak.text
    done = member.post(f"/invite/{token}", {"password": PASSWORD}, page=f"/invite/{token}")
    assert (done.status_code, done.headers["location"]) == (303, "/")
    assert member.client.get("/", follow_redirects=False).status_code == 200  # signed in
    used = Portal(db).client.get(f"/invite/{token}")
    assert used.status_code == 401 and 'id="invitation-invalid"' in used.text


def test_the_access_log_never_holds_an_invitation_token() -> None:
    """uvicorn logs each request's path; the link's token is in it."""
    import logging

    from cloud_api.api.logs import RedactSecrets

    token = "Abc_def-123456789012345678901234567890"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/invite/{token}", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert token not in record.getMessage() and "/invite/…" in record.getMessage()


def test_an_unused_link_can_be_sent_again_and_a_removed_member_s_link_is_dead(
    db: Engine,
) -> None:
    """An invited address whose link was never used is still nobody's: inviting it
    again (this company or another) sends a new link, and the old one dies once an
    account is claimed. Removing the member before they accept kills the link. Only
    the token's keyed hash is stored."""
    owner, other = Browser(db), Browser(db)
    owner.sign_up(_email("owner"), company="Oak\nPine")  # a line break in the name
    other.sign_up(_email("owner"), company="Birch & Co")
    email = _email("new")
    body = {"email": email, "name": "New", "role": "viewer"}
    assert owner.call("POST", "/users", json=body).status_code == 201
    first = _link_token(email)
    assert mails_to(email)[-1]["Subject"] == "You are invited to Oak Pine"
    assert other.call("POST", "/users", json=body).status_code == 201
    second = _link_token(email)
    assert second != first and mails_to(email)[-1]["Subject"] == "You are invited to Birch & Co"
    stored = set()
    for browser in (owner, other):
        tenant_id = uuid.UUID(browser.call("GET", "/me").json()["tenant_id"])
        with tenancy.as_tenant(tenant_id), db.connect() as conn:
            inv = T["invitation"]
            stored |= set(
                conn.scalars(select(inv.c.token_hash).where(inv.c.tenant_id == tenant_id))
            )
    assert len(stored) == 2 and not stored & {first, second}

    joined = Browser(db).call(
        "POST", "/invitations/accept", json={"token": second, "password": PASSWORD}
    )
    assert joined.status_code == 200, joined.text
    dead = Browser(db).call(
        "POST", "/invitations/accept", json={"token": first, "password": PASSWORD}
    )
    assert dead.json()["code"] == "invalid_invitation"  # the account is claimed

    gone = _email("gone")
    added = owner.call("POST", "/users", json={"email": gone, "name": "G", "role": "viewer"})
    token = _link_token(gone)
    assert owner.call("DELETE", f"/users/{added.json()['user_id']}").status_code == 200
    late = Browser(db).call(
        "POST", "/invitations/accept", json={"token": token, "password": PASSWORD}
    )
    assert (late.status_code, late.json()["code"]) == (401, "invalid_invitation")


def _accept(db: Engine, token: str) -> Any:
    body = {"token": token, "password": PASSWORD}
    return Browser(db).call("POST", "/invitations/accept", json=body)
