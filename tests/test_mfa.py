"""The TOTP second factor (SAAS.md: required for owners and finance managers on Pro
and above): set up with a first code, then asked at every sign-in; a code is good for
its 30-second step (one either side for drift) and never twice; until it is set up,
such a user may only set it up. The tenants' database role cannot read the secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.services import subscriptions
from tenant import subscriptions as subs
from tenant.security import mfa
from tests.mail import mailed_code, mails_to
from tests.roles import as_role
from tests.test_users import PASSWORD, Browser, _email

T = m.SQLModel.metadata.tables

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


def test_a_code_is_good_for_its_step_one_either_side_and_never_twice() -> None:
    secret = mfa.new_secret()
    totp = pyotp.TOTP(secret)
    now_code = totp.at(T0)
    first = mfa.verify(secret, now_code, T0, None)
    assert first.ok and first.step == totp.timecode(T0)
    assert not mfa.verify(secret, now_code, T0, first.step).ok  # replayed
    late = totp.at(T0 - timedelta(seconds=30))
    assert mfa.verify(secret, late, T0, None).ok  # one step of drift
    assert not mfa.verify(secret, totp.at(T0 - timedelta(seconds=90)), T0, None).ok
    assert not mfa.verify(secret, "12345", T0, None).ok
    assert not mfa.verify(secret, "abcdef", T0, None).ok
    assert mfa.verify(secret, " ".join([now_code[:3], now_code[3:]]), T0, None).ok
    assert mfa.required("owner", "pro") and mfa.required("finance_mgr", "enterprise")
    assert not mfa.required("warehouse", "pro") and not mfa.required("owner", "starter")
    assert mfa.provisioning_uri(secret, "a@b.c").startswith("otpauth://totp/")


def _on_pro(db: Engine, tenant_id: Any) -> None:
    with tenancy.as_tenant(tenant_id), db.begin() as conn:
        sub = subs.record_payment(subs.start_checkout("pro", now_utc())[0], now_utc())[0]
        subscriptions.save(conn, tenant_id, sub)


def test_pro_owners_set_up_a_second_factor_and_then_need_it(db: Engine) -> None:
    import uuid

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    blocked = owner.call("GET", "/items")
    assert blocked.status_code == 403 and blocked.json()["code"] == "mfa_setup_required"
    assert owner.call("GET", "/me").status_code == 200
    unconfirmed = owner.call("POST", "/mfa/confirm", json={"code": "000000", "mail_code": "1"})
    assert unconfirmed.status_code == 409  # nothing started yet
    setup = owner.call("POST", "/mfa/setup").json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/") and setup["mailed_to"] == email
    totp, mail_code = pyotp.TOTP(setup["secret"]), mailed_code(email)
    wrong = owner.call("POST", "/mfa/confirm", json={"code": "000001", "mail_code": mail_code})
    assert wrong.status_code == 422 and wrong.json()["code"] == "mfa_failed"
    codes = {"code": totp.now(), "mail_code": mail_code}
    confirmed = owner.call("POST", "/mfa/confirm", json=codes)
    assert confirmed.status_code == 200, confirmed.text
    assert owner.call("GET", "/items").status_code == 200

    again = Browser(db)
    needs = again.log_in(email)
    assert needs.status_code == 401 and needs.json()["code"] == "mfa_required"
    wrong = again.call("POST", "/login", json={"email": email, "password": PASSWORD, "otp": "1"})
    assert wrong.status_code in (401, 422)
    code = totp.at(now_utc() + timedelta(seconds=30))  # the next step: not used yet
    ok = again.call("POST", "/login", json={"email": email, "password": PASSWORD, "otp": code})
    assert ok.status_code == 200, ok.text
    replay = Browser(db).call(
        "POST", "/login", json={"email": email, "password": PASSWORD, "otp": code}
    )
    assert replay.status_code == 401 and replay.json()["code"] == "mfa_failed"
    audit = [a["action"] for a in again.call("GET", "/audit-log").json()]
    assert "user.mfa_enabled" in audit


def test_other_roles_on_pro_are_not_asked(db: Engine) -> None:
    import uuid

    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    clerk_email = _email("clerk")
    owner.call(
        "POST",
        "/users",
        json={"email": clerk_email, "name": "c", "role": "warehouse", "password": PASSWORD},
    )
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    clerk = Browser(db, owner.client.app)
    assert clerk.log_in(clerk_email).status_code == 200
    assert clerk.call("GET", "/items").status_code == 200


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_the_tenants_role_reads_no_password_hash_and_no_secret(db: Engine) -> None:
    import uuid

    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    tenant_id = uuid.UUID(signed["tenant_id"])
    app = as_role(db, rls.APP)
    with tenancy.as_tenant(tenant_id), app.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM (SELECT email FROM app_user) x")) == 1
    for column in ("password_hash", "totp_secret", "totp_pending"):
        with (
            pytest.raises(DBAPIError, match="permission denied"),
            tenancy.as_tenant(tenant_id),
            app.connect() as conn,
        ):
            conn.execute(text(f"SELECT {column} FROM app_user"))


def _csrf(page: str) -> str:
    import re

    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def test_the_portal_sends_a_pro_owner_to_set_up_and_then_asks_for_the_code(db: Engine) -> None:
    import uuid

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    client = owner.client
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/mfa"
    page = client.get("/mfa")
    assert page.status_code == 200 and "<svg" in page.text
    import re

    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text)
    assert secret, page.text[:800]
    assert 'id="mail-code"' in page.text and email in page.text  # where the code went
    again = client.get("/mfa")  # a reload: the same set-up, no second mail
    assert secret.group(1) in again.text and len(mails_to(email)) == 1
    code = pyotp.TOTP(secret.group(1)).now()
    form = {"csrf_token": _csrf(page.text), "code": code, "mail_code": mailed_code(email)}
    done = client.post("/mfa", data=form, follow_redirects=False)
    assert done.status_code == 200 and 'id="recovery-codes"' in done.text, done.text
    assert len(re.findall(r"<code>[0-9a-f]{5}-[0-9a-f]{5}</code>", done.text)) == 10
    assert client.get("/", follow_redirects=False).status_code == 200

    browser = Browser(db, owner.client.app).client
    login = browser.get("/login")
    asked = browser.post(
        "/login",
        data={"csrf_token": _csrf(login.text), "email": email, "password": PASSWORD},
        follow_redirects=False,
    )
    assert asked.status_code == 401 and 'name="otp"' in asked.text
    later = pyotp.TOTP(secret.group(1)).at(now_utc() + timedelta(seconds=30))
    signed_in = browser.post(
        "/login",
        data={
            "csrf_token": _csrf(asked.text),
            "email": email,
            "password": PASSWORD,
            "otp": later,
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    assert browser.get("/", follow_redirects=False).status_code == 200


def test_an_operator_resets_a_lost_second_factor_with_a_reason(db: Engine) -> None:
    """`erp tenant reset-mfa` as erp_platform: the secret goes, the person's sessions
    end in each of their tenants, each tenant's audit log says why; at the next sign-in
    the person sets up a new factor."""
    import uuid

    from typer.testing import CliRunner

    from erp.cli import app as cli

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    secret = owner.call("POST", "/mfa/setup").json()["secret"]
    codes = {"code": pyotp.TOTP(secret).now(), "mail_code": mailed_code(email)}
    confirmed = owner.call("POST", "/mfa/confirm", json=codes)
    assert confirmed.is_success
    other_owner = Browser(db, owner.client.app)
    other_owner.sign_up(_email("other"), company="Birch & Co")
    member = {"email": email, "name": "Owner", "role": "viewer"}
    assert other_owner.call("POST", "/users", json=member).status_code == 201
    # an account is invited, and joins with its own password and second factor
    from tests.test_invitations import _link_token

    joining = {"token": _link_token(email), "password": PASSWORD}
    no_code = Browser(db, owner.client.app).call("POST", "/invitations/accept", json=joining)
    assert (no_code.status_code, no_code.json()["code"]) == (401, "mfa_required")
    joining["otp"] = confirmed.json()["recovery_codes"][0]
    joined = Browser(db, owner.client.app).call("POST", "/invitations/accept", json=joining)
    assert joined.status_code == 200, joined.text

    platform = as_role(db, rls.PLATFORM).url.render_as_string(hide_password=False)
    runner = CliRunner()
    args = ["tenant", "reset-mfa", email.upper(), "--database-url", platform]
    no_reason = runner.invoke(cli, [*args, "--reason", " "])
    assert no_reason.exit_code == 2 and "reason_required" in no_reason.output
    assert owner.call("GET", "/items").status_code == 200  # nothing changed
    done = runner.invoke(cli, [*args, "--reason", "lost phone; called back on file number"])
    assert done.exit_code == 0, done.output
    assert "sessions ended in 2 tenant(s)" in done.output
    assert owner.call("GET", "/items").status_code == 401  # signed out
    again = Browser(db, owner.client.app)
    assert again.log_in(email).status_code == 200  # no code asked: none is set up
    blocked = again.call("GET", "/items")
    assert blocked.status_code == 403 and blocked.json()["code"] == "mfa_setup_required"
    log = other_owner.call("GET", "/audit-log").json()  # the other company's log
    resets = [a for a in log if a["action"] == "user.mfa_reset"]
    assert len(resets) == 1 and "lost phone" in resets[0]["detail"], log
    log_table = m.SQLModel.metadata.tables["audit_log"]
    with db.connect() as conn:  # the first company's (its owner cannot read it yet)
        details = conn.scalars(
            select(log_table.c.detail).where(
                log_table.c.tenant_id == uuid.UUID(signed["tenant_id"]),
                log_table.c.action == "user.mfa_reset",
            )
        ).all()
    assert len(details) == 1 and "lost phone" in details[0]
    unknown = runner.invoke(
        cli,
        ["tenant", "reset-mfa", "nobody@example.com", "--database-url", platform, "--reason", "x"],
    )
    assert unknown.exit_code == 2 and "user_not_found" in unknown.output


def test_the_password_alone_cannot_enrol_a_factor_without_the_mailed_code(db: Engine) -> None:
    """SAAS.md's MFA bootstrap: someone holding only the password of a Pro owner who has
    no factor yet cannot enrol their own authenticator. The set-up mails a code to the
    account's address (saying what to do if it was not them); without it, or with a
    wrong one, nothing is enrolled, the set-up ends (one guess per mail) and the audit
    log says so; an expired code is refused the same way."""
    import uuid

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    secret = owner.call("POST", "/mfa/setup").json()["secret"]
    (sent,) = mails_to(email)
    assert sent["Subject"] == "Your code to set up a second factor"
    assert "If this was not you" in sent.get_payload(decode=True).decode()
    code = pyotp.TOTP(secret).now()
    guessed = owner.call("POST", "/mfa/confirm", json={"code": code, "mail_code": "12345678"})
    assert (guessed.status_code, guessed.json()["code"]) == (422, "mail_code_failed")
    right_too_late = {"code": code, "mail_code": mailed_code(email)}
    ended = owner.call("POST", "/mfa/confirm", json=right_too_late)
    assert (ended.status_code, ended.json()["code"]) == (409, "no_mfa_pending")
    assert owner.call("GET", "/items").json()["code"] == "mfa_setup_required"
    soon = owner.call("POST", "/mfa/setup")  # one mail a minute at most
    assert (soon.status_code, soon.json()["code"]) == (429, "mail_cooldown")
    assert int(soon.headers["Retry-After"]) <= 60 and len(mails_to(email)) == 1

    _mail_sent_ago(db, email, mfa.MAIL_COOLDOWN)
    secret = owner.call("POST", "/mfa/setup").json()["secret"]  # a new mail, a new code
    assert len(mails_to(email)) == 2
    _mail_sent_ago(db, email, mfa.MAIL_CODE_TTL + timedelta(minutes=1))
    late = {"code": pyotp.TOTP(secret).now(), "mail_code": mailed_code(email)}
    expired = owner.call("POST", "/mfa/confirm", json=late)
    assert expired.json()["code"] == "mail_code_failed"

    secret = owner.call("POST", "/mfa/setup").json()["secret"]
    codes = {"code": pyotp.TOTP(secret).now(), "mail_code": mailed_code(email)}
    assert owner.call("POST", "/mfa/confirm", json=codes).status_code == 200
    assert owner.call("GET", "/items").status_code == 200
    actions = [r["action"] for r in owner.call("GET", "/audit-log").json()]
    assert actions.count("user.mfa_mail_code_failed") == 2
    assert actions.count("user.mfa_enabled") == 1


def test_no_mail_no_set_up(db: Engine) -> None:
    """A mail server that does not take the mail: 503 mail_unavailable and nothing is
    started (no pending secret to confirm)."""
    import uuid

    from cloud_api.mail import SmtpMailer

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    owner.client.app.state.mailer = SmtpMailer("127.0.0.1", _closed_port(), "erp@localhost")
    refused = owner.call("POST", "/mfa/setup")
    assert (refused.status_code, refused.json()["code"]) == (503, "mail_unavailable")
    nothing = owner.call("POST", "/mfa/confirm", json={"code": "123456", "mail_code": "1"})
    assert nothing.json()["code"] == "no_mfa_pending"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mail_sent_ago(db: Engine, email: str, ago: timedelta) -> None:
    u = T["app_user"]
    with as_role(db, rls.PLATFORM).begin() as conn:
        sent = now_utc() - ago - timedelta(seconds=1)
        conn.execute(u.update().where(u.c.email == email).values(mfa_mail_code_at=sent))


def test_a_set_up_belongs_to_the_session_that_started_it(db: Engine) -> None:
    """Someone with the password signs in and starts a set-up: the owner's own session
    is not shown that secret (it starts its own, and the mail tells the owner), and the
    other session's secret cannot be confirmed from the owner's session, nor the
    owner's from the other: each is that session's alone."""
    import re
    import uuid

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    intruder = Browser(db, owner.client.app)
    assert intruder.log_in(email).status_code == 200
    theirs = intruder.call("POST", "/mfa/setup").json()["secret"]
    _mail_sent_ago(db, email, mfa.MAIL_COOLDOWN)
    page = owner.client.get("/mfa")  # the owner's own set-up page
    assert page.status_code == 200 and theirs not in page.text
    shown = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text)
    assert shown and shown.group(1) != theirs
    codes = {"code": pyotp.TOTP(theirs).now(), "mail_code": mailed_code(email)}
    stolen = intruder.call("POST", "/mfa/confirm", json=codes)  # the owner's set-up now
    assert (stolen.status_code, stolen.json()["code"]) == (409, "no_mfa_pending")
    mine = {"code": pyotp.TOTP(shown.group(1)).now(), "mail_code": mailed_code(email)}
    assert owner.call("POST", "/mfa/confirm", json=mine).status_code == 200
    with as_role(db, rls.PLATFORM).connect() as conn:
        u = T["app_user"]
        kept = conn.scalar(select(u.c.totp_secret).where(u.c.email == email))
    assert kept == shown.group(1) != theirs


def test_recovery_codes_sign_in_once_each_and_new_ones_replace_them(db: Engine) -> None:
    """Setting up the factor gives ten recovery codes, shown once. One signs in
    instead of the app's code (however it is typed), once; a made-up one is
    mfa_failed; new codes replace the old; an operator's MFA reset clears them."""
    import uuid

    owner, email = Browser(db), _email("owner")
    signed = owner.sign_up(email)
    _on_pro(db, uuid.UUID(signed["tenant_id"]))
    secret = owner.call("POST", "/mfa/setup").json()["secret"]
    codes = {"code": pyotp.TOTP(secret).now(), "mail_code": mailed_code(email)}
    confirmed = owner.call("POST", "/mfa/confirm", json=codes).json()
    recovery = confirmed["recovery_codes"]
    assert len(recovery) == 10 == len(set(recovery))

    def sign_in(otp: str) -> Any:
        body = {"email": email, "password": PASSWORD, "otp": otp}
        return Browser(db, owner.client.app).call("POST", "/login", json=body)

    assert sign_in(recovery[0].upper().replace("-", " ")).status_code == 200
    reused = sign_in(recovery[0])
    assert (reused.status_code, reused.json()["code"]) == (401, "mfa_failed")
    assert sign_in("0123456789").json()["code"] == "mfa_failed"
    log = owner.call("GET", "/audit-log").json()
    assert [r["detail"] for r in log if r["action"] == "user.mfa_recovery_code_used"] == ["9 left"]

    bare = owner.call("POST", "/mfa/recovery-codes", json={"code": "000000"})
    assert (bare.status_code, bare.json()["code"]) == (422, "mfa_failed")  # a session alone
    later = pyotp.TOTP(secret).at(now_utc() + timedelta(seconds=30))
    made = owner.call("POST", "/mfa/recovery-codes", json={"code": later})
    fresh = made.json()["recovery_codes"]
    assert sign_in(recovery[1]).json()["code"] == "mfa_failed"  # the old set is gone
    assert sign_in(fresh[0]).status_code == 200

    from typer.testing import CliRunner

    from erp.cli import app as cli

    platform = as_role(db, rls.PLATFORM).url.render_as_string(hide_password=False)
    args = ["tenant", "reset-mfa", email, "--reason", "lost", "--database-url", platform]
    assert CliRunner().invoke(cli, args).exit_code == 0
    gone = {"email": email, "password": PASSWORD, "otp": fresh[1]}
    after = Browser(db, owner.client.app).call("POST", "/login", json=gone)
    assert after.status_code == 200  # no factor now: the code is not needed, nor kept
    u = T["app_user"]
    with as_role(db, rls.PLATFORM).connect() as conn:
        assert conn.scalar(select(u.c.mfa_recovery_hashes).where(u.c.email == email)) is None
