"""Inviting a member by mail: no first password handed over, and nobody a member
before they accept. A new address gets a one-time link (7 days) to choose its own
password and is signed in; an existing account accepts with its own password; the
inviting company cannot tell the two apart nor read the person's id; a link works
once; a mail that cannot go invites nobody. Through the JSON API and the portal."""

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
    assert added.status_code == 201 and added.json()["status"] == "invited", added.text
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


def accept_by_mail(browser: Browser, address: str, password: str = PASSWORD) -> Any:
    """The invited person opens the newest link mailed to them and joins with their
    own password (a new address: the one they choose); `browser` is then signed in
    there."""
    body = {"token": _link_token(address), "password": password}
    return browser.call("POST", "/invitations/accept", json=body)


def test_another_tenants_person_is_invited_not_added(db: Engine) -> None:
    """Issue 15 item 9: tenant A adding tenant B's owner by address answered 201 with
    B's owner's global id and made them A's member, silently. Now: an invitation, the
    same answer as for a fresh address, no id of theirs anywhere A can read, and no
    membership until they accept, with their own password."""
    oak, birch = Browser(db), Browser(db, None)
    oak.sign_up(_email("oak"), company="Oak & Pine")
    b_email = _email("birch")
    birch.sign_up(b_email, company="Birch & Co")
    b_id = birch.call("GET", "/me").json()["user_id"]

    existing = oak.call("POST", "/users", json={"email": b_email, "name": "B", "role": "viewer"})
    fresh_email = _email("fresh")
    fresh = oak.call("POST", "/users", json={"email": fresh_email, "name": "F", "role": "viewer"})
    assert existing.status_code == fresh.status_code == 201, existing.text
    assert existing.json().keys() == fresh.json().keys()
    assert existing.json()["status"] == fresh.json()["status"] == "invited"
    assert "user_id" not in existing.json()
    # with a password too: an account is never taken over, its person is invited
    taken = {"email": b_email.upper(), "name": "B", "role": "owner", "password": PASSWORD + "x"}
    again = oak.call("POST", "/users", json=taken)
    assert (again.status_code, again.json()["status"]) == (201, "added")
    assert "invitation_id" not in again.json()
    for seen in (
        existing.text,
        again.text,
        oak.call("GET", "/users").text,
        oak.call("GET", "/invitations").text,
        oak.call("GET", "/audit-log").text,
    ):
        assert b_id not in seen
    assert b_email not in {u["email"] for u in oak.call("GET", "/users").json()}
    pending = {i["email"]: i for i in oak.call("GET", "/invitations").json()}
    assert pending[b_email]["role"] == "owner" and pending[fresh_email]["status"] == "invited"
    assert [t["name"] for t in birch.call("GET", "/me").json()["tenants"]] == ["Birch & Co"]
    oak_slug = oak.call("GET", "/me").json()["tenants"][0]["slug"]
    into_oak = {"email": b_email, "password": PASSWORD, "tenant": oak_slug}
    assert Browser(db).call("POST", "/login", json=into_oak).status_code == 401
    assert Browser(db).log_in(b_email, PASSWORD + "x").status_code == 401  # not theirs
    mail = mails_to(b_email)[-1]
    assert mail["Subject"] == "You are invited to Oak & Pine"
    assert "own password" in mail.get_payload(decode=True).decode()

    # the link alone (a forwarded mail) joins nobody: it takes the person's password
    stranger = Browser(db, oak.client.app)
    wrong = accept_by_mail(stranger, b_email, "not their password at all")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "login_failed")
    assert b_email not in {u["email"] for u in oak.call("GET", "/users").json()}
    joined = accept_by_mail(Browser(db, oak.client.app), b_email)
    assert joined.status_code == 200, joined.text
    members = {u["email"]: u for u in oak.call("GET", "/users").json()}
    assert members[b_email]["role"] == "owner" and members[b_email]["id"] == b_id
    assert Browser(db).call("POST", "/login", json=into_oak).status_code == 200
    assert Browser(db).log_in(b_email).status_code == 200  # their password, unchanged
    assert b_email not in {i["email"] for i in oak.call("GET", "/invitations").json()}


def test_the_answer_does_not_tell_whether_an_address_has_an_account(db: Engine) -> None:
    """The status, the fields and the work (no password hashed in one case only) are
    the same; a weak password is refused for both."""
    import time

    oak, birch = Browser(db), Browser(db)
    oak.sign_up(_email("oak"))
    known = _email("known")
    birch.sign_up(known, company="Birch & Co")

    def shape(body: dict[str, Any]) -> dict[str, Any]:
        return {k: type(v).__name__ for k, v in body.items() if k not in ("email",)}

    seconds: dict[str, list[float]] = {"known": [], "new": []}
    answers = {}
    fresh = _email("new")
    for _ in range(3):  # inviting an address again replaces its invitation (one seat)
        for kind, address in (("known", known), ("new", fresh)):
            body = {"email": address, "name": "X", "role": "viewer"}
            started = time.perf_counter()
            answer = oak.call("POST", "/users", json=body)
            seconds[kind].append(time.perf_counter() - started)
            assert answer.status_code == 201, answer.text
            answers[kind] = shape(answer.json())
    assert answers["known"] == answers["new"]
    slow, fast = max(map(min, seconds.values())), min(map(min, seconds.values()))
    assert slow < 3 * fast + 0.05, seconds  # no branch does grossly more work
    for address in (known, _email("weak")):
        body = {"email": address, "name": "X", "role": "viewer", "password": "short"}
        weak = oak.call("POST", "/users", json=body)
        assert (weak.status_code, weak.json()["code"]) == (422, "weak_password"), address


def test_with_a_password_the_answer_is_the_same_for_an_account_and_a_new_address(
    db: Engine,
) -> None:
    """Review of issue 15: with a password, a new address answered "member" and its
    user id, an address with an account "invited" and an invitation id: the answer
    told which. Now both answer the same bytes (but for the address they echo), with
    no id; a new address is a member, the account is invited by mail and is nobody's
    member here until its person accepts. Each gets one mail, and neither answers
    grossly quicker."""
    import time

    oak, birch = Browser(db), Browser(db)
    oak.sign_up(_email("oak"), company="Oak & Pine")
    known = _email("known")
    birch.sign_up(known, company="Birch & Co")
    b_id = birch.call("GET", "/me").json()["user_id"]

    def add(address: str) -> tuple[int, bytes, float]:
        body = {"email": address, "name": "X", "role": "viewer", "password": PASSWORD + "x"}
        started = time.perf_counter()
        answer = oak.call("POST", "/users", json=body)
        took = time.perf_counter() - started
        assert answer.status_code == 201, answer.text
        return answer.status_code, answer.content.replace(address.encode(), b"<email>"), took

    seconds: dict[str, list[float]] = {"known": [], "new": []}
    answers: dict[str, set[tuple[int, bytes]]] = {"known": set(), "new": set()}
    for _ in range(3):  # a fresh address each time; the known one re-invited (one seat)
        fresh = _email("fresh")
        assert len(fresh) == len(known)
        for kind, address in (("known", known), ("new", fresh)):
            code, content, took = add(address)
            answers[kind].add((code, content))
            seconds[kind].append(took)
        assert [m["Subject"] for m in mails_to(fresh)] == ["You are a member of Oak & Pine"]
        members = {u["email"]: u["id"] for u in oak.call("GET", "/users").json()}
        assert fresh in members and known not in members
        assert oak.call("DELETE", f"/users/{members[fresh]}").status_code == 200  # a seat
    one = (201, b'{"status":"added","email":"<email>","role":"viewer","site":null}')
    assert answers["known"] == answers["new"] == {one}
    slow, fast = max(map(min, seconds.values())), min(map(min, seconds.values()))
    assert slow < 3 * fast + 0.05, seconds  # no branch does grossly more work

    assert b_id not in oak.call("GET", "/audit-log").text
    assert mails_to(known)[-1]["Subject"] == "You are invited to Oak & Pine"
    assert Browser(db).log_in(known, PASSWORD + "x").status_code == 401  # not theirs
    joined = accept_by_mail(Browser(db, oak.client.app), known)
    assert joined.status_code == 200, joined.text
    assert {u["email"]: u["id"] for u in oak.call("GET", "/users").json()}[known] == b_id


def test_a_full_plan_refuses_a_new_address_and_an_account_alike(db: Engine) -> None:
    """The seats count members and pending invitations for both: a new address made a
    member with a password was let in past the pending ones, an account refused 402,
    which told them apart."""
    oak, birch = Browser(db), Browser(db)
    oak.sign_up(_email("oak"))  # a trial: 3 seats
    known = _email("known")
    birch.sign_up(known)
    for n in range(2):  # the owner and two pending invitations fill them
        body = {"email": _email(f"pending{n}"), "name": "P", "role": "viewer"}
        assert oak.call("POST", "/users", json=body).status_code == 201
    refusals = []
    for address in (known, _email("new")):
        body = {"email": address, "name": "X", "role": "viewer", "password": PASSWORD}
        full = oak.call("POST", "/users", json=body)
        assert (full.status_code, full.json()["code"]) == (402, "plan_limit"), full.text
        refusals.append(full.json())
    assert refusals[0] == refusals[1]
    assert len(oak.call("GET", "/users").json()) == 1


def test_the_portal_says_the_same_for_an_account_and_a_new_address(db: Engine) -> None:
    from tests.test_tenant_lifecycle import Portal

    owner, birch = Portal(db), Browser(db)
    owner.sign_up()
    known = _email("known")
    birch.sign_up(known)
    for address in (known, _email("new")):
        form = {"email": address, "name": "X", "role": "viewer", "password": PASSWORD + "x"}
        sent = owner.post("/users/invite", form, page="/users")
        assert sent.headers["location"] == "/users?notice=invited", sent.text


def test_a_new_address_joins_only_by_accepting_and_a_withdrawn_link_is_dead(
    db: Engine,
) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    email = _email("later")
    sent = owner.call("POST", "/users", json={"email": email, "name": "L", "role": "production"})
    assert sent.status_code == 201
    assert email not in {u["email"] for u in owner.call("GET", "/users").json()}
    token = _link_token(email)
    gone = owner.call("DELETE", f"/invitations/{sent.json()['invitation_id']}")
    assert gone.status_code == 200
    dead = _accept(db, token)
    assert (dead.status_code, dead.json()["code"]) == (401, "invalid_invitation")
    again = owner.call("DELETE", f"/invitations/{sent.json()['invitation_id']}")
    assert (again.status_code, again.json()["code"]) == (404, "unknown_invitation")
    assert email not in {u["email"] for u in owner.call("GET", "/users").json()}
    other = Browser(db)
    other.sign_up(_email("other"))
    # another tenant cannot withdraw (nor see) this tenant's invitations
    owner.call("POST", "/users", json={"email": email, "name": "L", "role": "production"})
    mine = owner.call("GET", "/invitations").json()[0]["id"]
    assert other.call("DELETE", f"/invitations/{mine}").status_code == 404
    assert other.call("GET", "/invitations").json() == []
    joined = accept_by_mail(Browser(db, owner.client.app), email)
    assert joined.status_code == 200
    roles = {u["email"]: u["role"] for u in owner.call("GET", "/users").json()}
    assert roles[email] == "production"


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
    again (this company or another) sends a new link; once one made the account, the
    other company's link joins with that account's own password. Only the token's
    keyed hash is stored."""
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
    # the account exists now: the first company's link takes its own password, and
    # chooses none (a link cannot set another password on an account)
    other_password = Browser(db).call(
        "POST", "/invitations/accept", json={"token": first, "password": PASSWORD + "!"}
    )
    assert other_password.json()["code"] == "login_failed"
    joined_first = Browser(db).call(
        "POST", "/invitations/accept", json={"token": first, "password": PASSWORD}
    )
    assert joined_first.status_code == 200, joined_first.text


def _accept(db: Engine, token: str) -> Any:
    body = {"token": token, "password": PASSWORD}
    return Browser(db).call("POST", "/invitations/accept", json=body)
