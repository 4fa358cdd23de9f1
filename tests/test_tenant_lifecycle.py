"""What SAAS.md asks of a session around a tenant's life: rotate on tenant switch (a
person in two companies moves between them, the old session ends), revoke on
suspension (`erp tenant suspend`: every session ends, only the owner signs back in,
devices get 403; `unsuspend` puts it back), and the owner's cancellation (confirmed
with the company's short name; read-only, device keys revoked, export still works).
Through the JSON API and the portal's forms, on both databases."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from typer.testing import CliRunner

from cloud_api.db import rls, tenancy
from erp.cli import app as cli
from tests.factory import receipt
from tests.portal_helpers import Portal
from tests.roles import as_role
from tests.test_invitations import accept_by_mail
from tests.test_users import PASSWORD, Browser, _email


def _two_companies(db: Engine) -> tuple[Browser, Browser, str, dict[str, Any], dict[str, Any]]:
    """Oak's owner, who is also a warehouse clerk at Birch; Birch's owner."""
    oak, email = Browser(db), _email("owner")
    first = oak.sign_up(email)
    birch = Browser(db, oak.client.app)
    second = birch.sign_up(_email("birch"), company="Birch & Co")
    member = {"email": email, "name": "Owner", "role": "warehouse"}
    assert birch.call("POST", "/users", json=member).status_code == 201
    # an account is invited: a member once its person accepts with their password
    accepting = Browser(db, oak.client.app)
    assert accept_by_mail(accepting, email).status_code == 200
    assert accepting.call("POST", "/logout").status_code == 200  # the sign-in it gave
    return oak, birch, email, first, second


def _cli(db: Engine, *args: str) -> Any:
    platform = as_role(db, rls.PLATFORM).url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, [*args, "--database-url", platform])


def _session_start(db: Engine, cookie: str | None) -> Any:
    from sqlalchemy import select

    from cloud_api.db import models as m
    from tenant.security import token_hash

    s = m.SQLModel.metadata.tables["user_session"]
    query = select(s.c.created_at).where(s.c.token_hash == token_hash(cookie or ""))
    with db.connect() as conn:
        return conn.scalar(query.execution_options(cross_tenant=True))


def _one_event() -> dict[str, Any]:
    return {"events": [receipt(1, "RAW", "5", "2")]}


def _audit(browser: Browser, action: str) -> list[dict[str, Any]]:
    return [a for a in browser.call("GET", "/audit-log").json() if a["action"] == action]


def test_a_person_in_two_companies_switches_and_the_old_session_ends(db: Engine) -> None:
    oak, birch, _, first, second = _two_companies(db)
    me = oak.call("GET", "/me").json()
    assert me["tenant_id"] == first["tenant_id"] and me["role"] == "owner"
    assert {(t["slug"], t["role"]) for t in me["tenants"]} == {
        (first["slug"], "owner"),
        (second["slug"], "warehouse"),
    }
    old_cookie = oak.client.cookies.get("__Host-session")

    blank = oak.call("POST", "/session/switch", json={"tenant": " "})
    assert blank.status_code == 404 and blank.json()["code"] == "unknown_tenant"
    unknown = oak.call("POST", "/session/switch", json={"tenant": "no-such-company"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_tenant"
    stranger = Browser(db, oak.client.app)
    stranger.sign_up(_email("elm"), company="Elm")  # exists, but not theirs
    elm = stranger.call("GET", "/me").json()["tenants"][0]["slug"]
    foreign = oak.call("POST", "/session/switch", json={"tenant": elm})
    assert foreign.status_code == 404 and foreign.json()["code"] == "unknown_tenant"
    assert oak.call("GET", "/me").json()["tenant_id"] == first["tenant_id"]  # goes on
    smuggled = oak.call(
        "POST", "/session/switch", json={"tenant": second["slug"], "tenant_id": elm}
    )
    assert smuggled.status_code == 422  # a body names no tenant id

    switched = oak.call("POST", "/session/switch", json={"tenant": second["slug"]})
    assert switched.status_code == 200, switched.text
    new_cookie = oak.client.cookies.get("__Host-session")
    assert new_cookie and new_cookie != old_cookie
    started = {k: _session_start(db, c) for k, c in (("old", old_cookie), ("new", new_cookie))}
    assert started["old"] == started["new"]  # the 12 h limit counts from the sign-in
    me = oak.call("GET", "/me").json()
    assert me["tenant_id"] == second["tenant_id"] and me["role"] == "warehouse"
    board = {"code": "RAW", "name": "Board", "kind": "raw"}
    assert oak.call("POST", "/items", json=board).status_code == 201  # Birch's item
    clerk_adds = {"email": _email("x"), "name": "X", "role": "viewer", "password": PASSWORD}
    assert oak.call("POST", "/users", json=clerk_adds).status_code == 403  # a clerk here

    replay = Browser(db, oak.client.app)
    replay.client.cookies.set("__Host-session", old_cookie or "", domain="testserver")
    assert replay.call("GET", "/items").status_code == 401  # the old session ended
    birch_items = {i["code"] for i in birch.call("GET", "/items").json()}
    assert birch_items == {"RAW"}
    assert [a["object"] for a in _audit(birch, "session.switch_in")] == [""]
    back = oak.call("POST", "/session/switch", json={"tenant": first["slug"]})
    assert back.status_code == 200
    assert oak.call("GET", "/items").json() == []  # Oak has none
    # Oak's log says Oak's person left, not for which company
    assert [a["object"] for a in _audit(oak, "session.switch_out")] == [""]


def test_a_suspension_ends_every_session_and_lets_only_the_owner_back(db: Engine) -> None:
    oak, birch, email, first, second = _two_companies(db)
    clerk = Browser(db, oak.client.app)
    signed_in = clerk.call(
        "POST", "/login", json={"email": email, "password": PASSWORD, "tenant": second["slug"]}
    )
    assert signed_in.status_code == 200
    code = birch.call("POST", "/devices/enrollment-codes", json={}).json()["code"]
    enrolled = birch.client.post("/api/v1/devices/enroll", json={"code": code, "name": "edge-1"})
    key = enrolled.json()["key"]
    birch_owner = birch_owner_email(birch)

    no_reason = _cli(db, "tenant", "suspend", second["slug"], "--reason", " ")
    assert no_reason.exit_code == 2 and "reason_required" in no_reason.output
    assert birch.call("GET", "/items").status_code == 200  # nothing changed

    done = _cli(db, "tenant", "suspend", second["slug"], "--reason", "chargeback 4471")
    assert done.exit_code == 0, done.output
    assert f"{second['slug']} is suspended; 2 sessions ended" in done.output
    assert birch.call("GET", "/items").status_code == 401
    assert clerk.call("GET", "/items").status_code == 401
    assert oak.call("GET", "/items").status_code == 200  # Oak is another tenant
    refused = Browser(db, oak.client.app).call(
        "POST", "/login", json={"email": email, "password": PASSWORD, "tenant": second["slug"]}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "tenant_suspended"
    switch = oak.call("POST", "/session/switch", json={"tenant": second["slug"]})
    assert switch.status_code == 403 and switch.json()["code"] == "tenant_suspended"
    assert oak.call("GET", "/me").json()["tenant_id"] == first["tenant_id"]  # goes on
    device = birch.client.post(
        "/api/v1/edge/events", json=_one_event(), headers={"Authorization": f"Bearer {key}"}
    )
    assert device.status_code == 403 and device.json()["code"] == "tenant_suspended"
    owner = Browser(db, oak.client.app)
    assert owner.log_in(birch_owner).status_code == 200
    assert owner.call("GET", "/items").status_code == 200  # the owner reads

    twice = _cli(db, "tenant", "suspend", second["slug"], "--reason", "again")
    assert twice.exit_code == 2 and "invalid_subscription_transition" in twice.output
    lifted = _cli(db, "tenant", "unsuspend", second["slug"])
    assert lifted.exit_code == 0 and f"{second['slug']} is trialing" in lifted.output
    assert clerk.call(
        "POST", "/login", json={"email": email, "password": PASSWORD, "tenant": second["slug"]}
    ).is_success
    again = _cli(db, "tenant", "unsuspend", second["slug"])
    assert again.exit_code == 2 and "invalid_subscription_transition" in again.output
    moves = [(a["object"], a["detail"]) for a in owner.call("GET", "/audit-log").json()]
    assert ("trialing -> suspended", "chargeback 4471") in moves
    assert ("suspended -> trialing", "") in moves


def birch_owner_email(birch: Browser) -> str:
    listed = birch.call("GET", "/users").json()
    return str(next(m["email"] for m in listed if m["role"] == "owner"))


def test_the_owner_cancels_confirming_with_the_short_name(db: Engine) -> None:
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    code = owner.call("POST", "/devices/enrollment-codes", json={}).json()["code"]
    enrolled = owner.client.post("/api/v1/devices/enroll", json={"code": code, "name": "edge-1"})
    key = enrolled.json()["key"]
    viewer_email = _email("viewer")
    member = {"email": viewer_email, "name": "V", "role": "viewer", "password": PASSWORD}
    assert owner.call("POST", "/users", json=member).status_code == 201
    viewer = Browser(db, owner.client.app)
    assert viewer.log_in(viewer_email).status_code == 200

    by_viewer = viewer.call("POST", "/subscription/cancel", json={"confirm": signed["slug"]})
    assert by_viewer.status_code == 403
    by_key = owner.client.post(
        "/api/v1/subscription/cancel",
        json={"confirm": signed["slug"]},
        headers={"Authorization": f"Bearer {signed['api_key']}"},
    )
    assert by_key.status_code == 403 and by_key.json()["code"] == "owner_session_required"
    wrong = owner.call("POST", "/subscription/cancel", json={"confirm": "oak"})
    assert wrong.status_code == 422 and wrong.json()["code"] == "confirmation_mismatch"
    assert owner.call("GET", "/subscription").json()["state"] == "trialing"  # unchanged

    done = owner.call("POST", "/subscription/cancel", json={"confirm": signed["slug"]})
    assert done.status_code == 200, done.text
    assert done.json() == {"state": "canceled", "devices_revoked": 1}
    device = owner.client.post(
        "/api/v1/edge/events", json=_one_event(), headers={"Authorization": f"Bearer {key}"}
    )
    assert device.status_code == 401  # the key is revoked
    write = owner.call("POST", "/items", json={"code": "RAW", "name": "Board", "kind": "raw"})
    assert write.status_code in (402, 403), write.text
    assert owner.call("GET", "/items").status_code == 200  # read-only, 30 days
    assert owner.call("GET", "/export").status_code == 200
    again = owner.call("POST", "/subscription/cancel", json={"confirm": signed["slug"]})
    assert again.status_code in (402, 403, 409)
    log = owner.call("GET", "/audit-log").json()
    actions = [a["action"] for a in log]
    assert "subscription.canceled" in actions and "device.revoke_all" in actions
    me = owner.call("GET", "/me").json()["user_id"]
    (made,) = [a for a in log if a["action"] == "enrollment_code.create"]
    assert (made["actor_kind"], made["actor_id"]) == ("user", me)  # who, not "the key"


def test_the_portal_switches_company_and_cancels_from_its_pages(db: Engine) -> None:
    oak = Portal(db)
    oak.sign_up(company="Oak & Pine")
    birch = Portal(db)
    birch.sign_up(company="Birch & Co")
    clerk = birch.add_member("warehouse")
    # the clerk also becomes a viewer at Oak
    body = {"email": clerk, "name": "Clerk", "role": "viewer"}
    assert oak.api("POST", "/users", json=body).status_code == 201
    assert accept_by_mail(Browser(db), clerk).status_code == 200  # invited: accepts
    person = Portal(db)
    assert person.log_in(clerk).status_code == 303
    page = person.get("/").text
    assert 'action="/switch"' in page and "Birch &amp; Co" in page and "Oak &amp; Pine" in page
    assert 'action="/switch"' not in oak.get("/").text  # one company: no switch
    here = person.get("/").text
    (where,) = [n for n in ("Oak &amp; Pine", "Birch &amp; Co") if f"· {n} ·" in here]
    target = oak.slug if where.startswith("Birch") else birch.slug
    moved = person.post("/switch", {"tenant": target})
    assert moved.status_code == 303 and moved.headers["location"] == "/"
    there = person.get("/").text
    assert f"· {where} ·" not in there
    assert person.post("/switch", {"tenant": "nowhere"}).status_code == 404

    form = oak.get("/subscription").text
    assert 'id="cancel-subscription"' in form and oak.slug in form
    assert 'id="cancel-subscription"' not in person.get("/subscription").text  # not owner
    mismatch = oak.post("/subscription/cancel", {"confirm": "nope"}, page="/subscription")
    assert mismatch.status_code == 422 and "short name" in mismatch.text
    canceled = oak.post("/subscription/cancel", {"confirm": oak.slug}, page="/subscription")
    assert canceled.headers["location"] == "/subscription?notice=subscription_canceled"
    shown = oak.get(canceled.headers["location"]).text
    assert 'id="canceled"' in shown and 'id="cancel-subscription"' not in shown
    assert "The subscription is canceled: read-only until" in shown  # the banner


def test_the_owner_replaces_the_tenant_api_key(db: Engine) -> None:
    """The key shown once at sign-up can be replaced (SAAS.md: keys revocable): the
    old one is refused at once, the new one works; only the owner's session does it."""
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    old = {"Authorization": f"Bearer {signed['api_key']}"}
    assert owner.client.get("/api/v1/items", headers=old).status_code == 200
    by_key = owner.client.post("/api/v1/api-key/rotate", headers=old)
    assert by_key.status_code == 403 and by_key.json()["code"] == "owner_session_required"
    viewer_email = _email("viewer")
    member = {"email": viewer_email, "name": "V", "role": "viewer", "password": PASSWORD}
    assert owner.call("POST", "/users", json=member).status_code == 201
    viewer = Browser(db, owner.client.app)
    assert viewer.log_in(viewer_email).status_code == 200
    assert viewer.call("POST", "/api-key/rotate").status_code == 403

    rotated = owner.call("POST", "/api-key/rotate")
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["api_key"]
    assert new_key != signed["api_key"] and new_key.startswith("tk_")
    stale = owner.client.get("/api/v1/items", headers=old)
    assert stale.status_code == 401 and stale.json()["code"] == "invalid_api_key"
    fresh = {"Authorization": f"Bearer {new_key}"}
    assert owner.client.get("/api/v1/items", headers=fresh).status_code == 200
    assert len(_audit(owner, "tenant.api_key_rotated")) == 1


def test_the_portal_replaces_the_api_key_for_the_owner_only(db: Engine) -> None:
    owner = Portal(db)
    owner.sign_up()
    old_key = owner.api_key
    clerk = Portal(db)
    assert clerk.log_in(owner.add_member("warehouse")).status_code == 303
    assert 'id="api-key-form"' not in clerk.get("/users").text
    assert clerk.post("/users/api-key", page="/users").status_code == 403
    page = owner.post("/users/api-key", page="/users")
    assert page.status_code == 200
    new_key = text_of_code(page.text)
    assert new_key.startswith("tk_") and new_key != old_key
    assert owner.api("GET", "/items").status_code == 401  # the old key
    owner.api_key = new_key
    assert owner.api("GET", "/items").status_code == 200
    assert new_key not in owner.get("/users").text  # shown once


def test_the_owner_revokes_the_tenant_api_key_and_integrations_keep_their_tokens(
    db: Engine,
) -> None:
    """The tenant key acts for the owner in everything (a payment provider's secret
    key); once every integration has a scoped token the owner revokes it: refused at
    once, tokens unaffected, audited; only the owner's session does it; replacing it
    issues a key again. In the portal too."""
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    key = {"Authorization": f"Bearer {signed['api_key']}"}
    made = owner.call("POST", "/api-tokens", json={"name": "erp-sync", "scopes": ["items:read"]})
    assert made.status_code == 201, made.text
    token = {"Authorization": f"Bearer {made.json()['token']}"}
    by_key = owner.client.post("/api/v1/api-key/revoke", headers=key)
    assert (by_key.status_code, by_key.json()["code"]) == (403, "owner_session_required")
    revoked = owner.call("POST", "/api-key/revoke")
    assert revoked.status_code == 200 and revoked.json() == {"api_key": False}
    refused = owner.client.get("/api/v1/items", headers=key)
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_api_key")
    assert owner.client.get("/api/v1/items", headers=token).status_code == 200
    assert len(_audit(owner, "tenant.api_key_revoked")) == 1
    again = owner.call("POST", "/api-key/rotate").json()["api_key"]
    reissued = {"Authorization": f"Bearer {again}"}
    assert owner.client.get("/api/v1/items", headers=reissued).status_code == 200

    portal = Portal(db)
    portal.sign_up()
    assert 'id="api-key-revoke-form"' in portal.get("/users").text
    gone = portal.post("/users/api-key/revoke", page="/users")
    assert gone.headers["location"] == "/users?notice=api_key_revoked"
    shown = portal.get("/users").text
    assert 'id="api-key-none"' in shown and 'id="api-key-revoke-form"' not in shown
    assert portal.api("GET", "/items").status_code == 401


def text_of_code(html: str) -> str:
    import re

    found = re.search(r'id="new-api-key">([^<]+)<', html)
    assert found, "the page shows the new key"
    return found.group(1)


def test_an_unpaid_owner_may_still_cancel(db: Engine) -> None:
    """SAAS.md: unpaid or paused is "read + billing"; cancelling is billing."""
    from cloud_api.domain.clock import now_utc
    from cloud_api.services import subscriptions
    from tenant import subscriptions as subs

    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    with tenancy.as_tenant(uuid.UUID(signed["tenant_id"])), db.begin() as conn:
        ended = subs.start_trial("starter", now_utc() - timedelta(days=19))[0]  # paused
        subscriptions.save(conn, uuid.UUID(signed["tenant_id"]), ended)
    board = {"code": "RAW", "name": "Board", "kind": "raw"}
    assert owner.call("POST", "/items", json=board).status_code == 402
    done = owner.call("POST", "/subscription/cancel", json={"confirm": signed["slug"]})
    assert done.status_code == 200 and done.json()["state"] == "canceled", done.text
