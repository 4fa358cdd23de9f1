"""Portal users (SAAS.md cases 13, 18, 19 and the RBAC matrix): sign-up on a trial,
login with the same answer for unknown user and wrong password, the `__Host-` session
cookie, CSRF on every write, logout, throttling, roles applied on the next request,
the plan's seats, and every write route mapped to an action."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloud_api.api import deps
from cloud_api.api.deps import (
    PrincipalDep,  # resolved by name: the module's annotations are strings
)
from cloud_api.settings import get_settings
from erp.app import create_app
from tests.members import member_id
from tests.roles import app_engines

PASSWORD = "tiger-lily walks 42 oak benches"


class Browser:
    """A portal user's browser: HTTPS (the cookie is Secure), cookies kept, the CSRF
    token sent on writes as the portal's pages will."""

    def __init__(self, db: Engine, app: Any = None) -> None:
        app = app or create_app(get_settings(), *app_engines(db))
        self.client = TestClient(app, base_url="https://testserver")
        self.csrf: str | None = None

    def call(self, method: str, path: str, csrf: bool = True, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if csrf and self.csrf and method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        response = self.client.request(method, "/api/v1" + path, headers=headers, **kw)
        if response.status_code < 300 and isinstance(body := _json(response), dict):
            self.csrf = body.get("csrf_token", self.csrf)
        return response

    def sign_up(self, email: str, company: str = "Oak & Pine") -> dict[str, Any]:
        response = self.call(
            "POST",
            "/signup",
            json={"company": company, "email": email, "name": "Owner", "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def log_in(self, email: str, password: str = PASSWORD) -> Any:
        return self.call("POST", "/login", json={"email": email, "password": password})


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _email(tag: str) -> str:
    import uuid

    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def test_sign_up_starts_a_trial_with_an_owner_session(db: Engine) -> None:
    owner = Browser(db)
    body = owner.sign_up(_email("owner"))
    cookie = owner.client.cookies.jar
    (session,) = [c for c in cookie if c.name == "__Host-session"]
    assert session.secure and session.path == "/" and not session.domain_specified
    assert owner.call("GET", "/me").json()["role"] == "owner"
    sub = owner.call("GET", "/subscription").json()
    assert sub["state"] == "trialing" and sub["banner"]
    assert body["api_key"].startswith("tk_")
    item = {"code": "RAW", "name": "Board", "kind": "raw"}
    assert owner.call("POST", "/items", json=item).status_code == 201


def test_weak_passwords_and_taken_emails_are_refused(db: Engine) -> None:
    browser = Browser(db)
    weak = browser.call(
        "POST",
        "/signup",
        json={"company": "X", "email": _email("w"), "name": "W", "password": "password123"},
    )
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    email = _email("taken")
    browser.sign_up(email)
    again = Browser(db).call(
        "POST", "/signup", json={"company": "Y", "email": email, "name": "Y", "password": PASSWORD}
    )
    assert again.status_code == 409 and again.json()["code"] == "email_taken"


def test_login_answers_alike_rotates_the_session_and_logout_ends_it(db: Engine) -> None:
    email = _email("owner")
    first = Browser(db)
    first.sign_up(email)
    old_cookie = first.client.cookies.get("__Host-session")
    stranger, wrong = Browser(db).log_in(_email("nobody")), Browser(db).log_in(email, "nope")
    assert stranger.status_code == wrong.status_code == 401
    assert stranger.json()["detail"] == wrong.json()["detail"]
    again = Browser(db)
    assert again.log_in(email).status_code == 200
    assert again.client.cookies.get("__Host-session") != old_cookie  # a new session id
    assert again.call("POST", "/logout").status_code == 200
    assert first.call("POST", "/logout").status_code == 200
    # the old cookie, replayed after logout
    after = Browser(db).client.request(
        "GET", "/api/v1/me", headers={"Cookie": f"__Host-session={old_cookie}"}
    )
    assert after.status_code == 401


def test_writes_need_the_csrf_token_and_our_origin(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    item = {"code": "RAW", "name": "Board", "kind": "raw"}
    missing = owner.call("POST", "/items", csrf=False, json=item)
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_failed"
    forged = owner.call("POST", "/items", csrf=False, json=item, headers={"X-CSRF-Token": "x"})
    assert forged.status_code == 403
    foreign = owner.call("POST", "/items", json=item, headers={"Origin": "https://evil.test"})
    assert foreign.status_code == 403
    assert owner.call("POST", "/items", json=item).status_code == 201
    assert owner.call("GET", "/items").status_code == 200  # reads need no token


def test_roles_limit_what_members_do_and_a_role_change_ends_their_sessions(db: Engine) -> None:
    """SAAS.md: rotate the session on a role change. The member's sessions in the
    tenant end with the change; they sign in again into a new session with the new
    role. The same role again ends nothing."""
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    members: dict[str, str] = {}
    for role in ("viewer", "warehouse"):
        email = _email(role)
        added = owner.call(
            "POST",
            "/users",
            json={"email": email, "name": role, "role": role, "password": PASSWORD},
        )
        assert added.status_code == 201, added.text
        members[role] = member_id(owner.call("GET", "/users").json(), email)
        members[role + "_email"] = email
    viewer, clerk = Browser(db), Browser(db)
    assert viewer.log_in(members["viewer_email"]).status_code == 200
    assert clerk.log_in(members["warehouse_email"]).status_code == 200
    item = {"code": "RAW", "name": "Board", "kind": "raw"}
    denied = viewer.call("POST", "/items", json=item)
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert viewer.call("GET", "/items").status_code == 200
    assert clerk.call("POST", "/items", json=item).status_code == 201
    assert clerk.call("POST", "/periods/2026-01/close").status_code == 403
    assert clerk.call("POST", "/users", json={}).status_code in (403, 422)
    assert clerk.call("PATCH", "/settings", json={}).status_code == 403
    self_promotion = viewer.call("PATCH", f"/users/{members['viewer']}", json={"role": "owner"})
    assert self_promotion.status_code == 403
    same = owner.call("PATCH", f"/users/{members['warehouse']}", json={"role": "warehouse"})
    assert same.status_code == 200 and same.json()["sessions_ended"] == 0
    assert clerk.call("GET", "/items").status_code == 200
    old_cookie = clerk.client.cookies.get("__Host-session")
    downgrade = owner.call("PATCH", f"/users/{members['warehouse']}", json={"role": "viewer"})
    assert downgrade.status_code == 200 and downgrade.json()["sessions_ended"] == 1
    item2 = {"code": "RAW2", "name": "Board", "kind": "raw"}
    ended = clerk.call("POST", "/items", json=item2)
    assert ended.status_code == 401 and ended.json()["code"] == "session_expired"
    assert owner.call("GET", "/items").status_code == 200  # the owner's own goes on
    assert clerk.log_in(members["warehouse_email"]).status_code == 200
    assert clerk.client.cookies.get("__Host-session") != old_cookie  # a new session id
    assert clerk.call("GET", "/me").json()["role"] == "viewer"
    assert clerk.call("POST", "/items", json=item2).status_code == 403
    log = [a for a in owner.call("GET", "/audit-log").json() if a["action"] == "member.role"]
    assert len(log) == 1 and "was warehouse; 1 sessions ended" in log[0]["detail"], log


def test_stock_movements_are_the_warehouses_and_progress_is_productions(db: Engine) -> None:
    """SAAS.md's RBAC rows "Post stock movement" (production ✗) and "Work-order
    progress / completion" (warehouse ✗), checked per event, not per route: the wrong
    role's event is rejected `forbidden` and nothing posts; the right one posts."""
    from tests.factory import completion, receipt, setup_workshop

    owner = Browser(db)
    owner.sign_up(_email("owner"))

    class _Create:
        def create(self, path: str, body: dict[str, Any]) -> None:
            assert owner.call("POST", path, json=body).status_code == 201

    setup_workshop(_Create())
    people = {}
    for role in ("warehouse", "production"):
        email = _email(role)
        body = {"email": email, "name": role, "role": role, "password": PASSWORD}
        assert owner.call("POST", "/users", json=body).status_code == 201
        people[role] = Browser(db, owner.client.app)
        assert people[role].log_in(email).status_code == 200

    def send(role: str, event: dict[str, Any]) -> dict[str, Any]:
        sent = people[role].call("POST", "/edge/events", json={"events": [event]})
        assert sent.status_code == 200, sent.text
        return sent.json()["results"][0]  # type: ignore[no-any-return]

    refused = send("production", receipt(1, "RAW", "10", "2"))
    assert (refused["status"], refused["code"]) == ("rejected", "forbidden")
    assert "may not post a purchase receipt" in refused["message"]
    assert send("warehouse", receipt(2, "RAW", "10", "2"))["status"] == "posted"
    made = completion(30, "1", wo="WO1")
    refused = send("warehouse", made)
    assert (refused["status"], refused["code"]) == ("rejected", "forbidden")
    void = people["warehouse"].call(
        "POST", f"/exceptions/{made['event_id']}/void", json={"reason": "not mine"}
    )
    assert void.status_code == 403  # nor may they void production's event
    assert send("production", made)["status"] in {"posted", "held"}  # theirs
    stock = {r["item"]: r["quantity"] for r in owner.call("GET", "/reports/stock").json()}
    assert stock.get("RAW") == "10.000000"  # the production clerk's receipt never posted


def test_seats_are_a_hard_plan_limit(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))  # a trial: 3 users
    statuses = [
        owner.call(
            "POST",
            "/users",
            json={"email": _email(f"u{n}"), "name": "U", "role": "viewer", "password": PASSWORD},
        ).status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 402]


def test_six_bad_passwords_back_off_and_the_hourly_cap_holds(db: Engine) -> None:
    email = _email("owner")
    Browser(db).sign_up(email)
    browser = Browser(db)
    codes = [browser.log_in(email, "wrong password").status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    refused = browser.log_in(email)  # even the right password waits out the backoff
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_every_api_route_declares_who_may_call_it() -> None:
    """Each route carries its Permission (cloud_api/api/permissions.py); every write
    but the four that take no credential names an action tenant/rbac.py knows."""
    from cloud_api.api.permissions import declared
    from cloud_api.api.routes import ROUTERS
    from tenant.rbac import ACTIONS

    open_routes = {"/signup", "/login", "/devices/enroll", "/invitations/accept"}
    routes = [route for router in ROUTERS for route in router.routes]
    assert len(routes) > 60
    rules = {(m, r.path): declared(r.dependencies) for r in routes for m in r.methods}
    assert None not in rules.values()
    writes = {key: rule for key, rule in rules.items() if key[0] != "GET"}
    assert {path for (_, path), rule in writes.items() if rule.open} == open_routes
    unmapped = {key for key, rule in writes.items() if not rule.open and rule.action not in ACTIONS}
    assert unmapped == set()


def test_export_holds_all_of_the_tenant_and_nothing_of_another(db: Engine) -> None:
    import csv
    import io
    import zipfile

    from tests.conftest import Api
    from tests.factory import receipt, setup_workshop

    a, b = Api(db), Api(db)
    for api in (a, b):  # identical codes in both
        setup_workshop(api)
        api.events(receipt(1, "RAW", "5", "2"))
    assert a.post("/periods/2026-01/close").status_code == 200
    refused = a.post("/periods/2026-01/reopen", json={})
    assert refused.status_code == 422  # a reason is required
    assert a.post("/periods/2026-01/reopen", json={"reason": "late bill"}).status_code == 200
    response = a.get("/export")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = __import__("json").loads(archive.read("manifest.json"))
    assert manifest["tables"]["item"] == 4 and manifest["tables"]["stock_move"] == 1
    b_id, a_id = str(b.tenant.id), str(a.tenant.id)
    for name in archive.namelist():
        text = archive.read(name).decode()
        assert b_id not in text, name
        if name.endswith(".csv"):
            rows = list(csv.DictReader(io.StringIO(text)))
            assert all(r["tenant_id"] == a_id for r in rows), name
    audit = [row["action"] for row in a.get("/audit-log").json()]
    assert "period.reopen" in audit and "period.close" in audit
    assert "late bill" in archive.read("audit_log.csv").decode()


def test_only_owner_finance_and_auditor_export(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    email = _email("clerk")
    owner.call(
        "POST",
        "/users",
        json={"email": email, "name": "C", "role": "warehouse", "password": PASSWORD},
    )
    clerk = Browser(db)
    clerk.log_in(email)
    assert clerk.call("GET", "/export").status_code == 403
    assert owner.call("GET", "/export").status_code == 200


def test_a_tenant_reaches_none_of_another_tenants_objects_by_id(db: Engine) -> None:
    """SAAS.md cases 1-3: B's ids with A's credentials answer 404 (or 422 for a role
    that is not one) and change nothing in B; a tenant_id in a body is refused."""
    from tests.conftest import Api
    from tests.factory import issue, setup_workshop

    a, b = Api(db), Api(db)
    for api in (a, b):
        setup_workshop(api)
    b_device = b.client.post(
        "/api/v1/devices/enroll",
        json={"code": b.post("/devices/enrollment-codes", json={}).json()["code"], "name": "e"},
    ).json()["device_id"]
    (held,) = b.events(issue(1, "RAW", "1"))  # no stock: held in B's exception queue
    assert held["status"] == "held"
    for path in (
        f"/devices/{b_device}/rotate",
        f"/devices/{b_device}/revoke",
        f"/exceptions/{held['event_id']}/repost",
    ):
        assert a.post(path, json={}).status_code == 404, path
    voided = a.post(f"/exceptions/{held['event_id']}/void", json={"reason": "x"})
    assert voided.status_code == 404
    assert b.get("/devices").json()[0]["revoked_at"] is None
    assert [e["event_id"] for e in b.get("/exceptions").json()] == [held["event_id"]]
    smuggled = a.post(
        "/items", json={"code": "X", "name": "X", "kind": "raw", "tenant_id": str(b.tenant.id)}
    )
    assert smuggled.status_code == 422
    assert all(i["code"] != "X" for i in b.get("/items").json())


def test_a_tenant_beyond_its_plan_rate_gets_429_and_another_does_not(db: Engine) -> None:
    app = create_app(get_settings(), *app_engines(db))  # one server: its buckets are per tenant
    busy, quiet = Browser(db, app), Browser(db, app)
    busy.sign_up(_email("busy"))  # a trial: 5 requests a second, 50 at once
    quiet.sign_up(_email("quiet"))
    answers = [busy.call("GET", "/items") for _ in range(120)]
    codes = [a.status_code for a in answers]
    assert codes.count(200) >= 50 and 429 in codes
    limited = answers[codes.index(429)]
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert quiet.call("GET", "/items").status_code == 200


def test_members_are_removed_and_the_last_owner_stays(db: Engine) -> None:
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    me = owner.call("GET", "/me").json()["user_id"]
    demoted = owner.call("PATCH", f"/users/{me}", json={"role": "viewer"})
    assert demoted.status_code == 409 and demoted.json()["code"] == "last_owner"
    assert owner.call("DELETE", f"/users/{me}").status_code == 409
    email = _email("clerk")
    added = owner.call(
        "POST",
        "/users",
        json={"email": email, "name": "c", "role": "warehouse", "password": PASSWORD},
    )
    assert added.status_code == 201, added.text
    clerk_id = member_id(owner.call("GET", "/users").json(), email)
    clerk = Browser(db, owner.client.app)
    assert clerk.log_in(email).status_code == 200
    assert clerk.call("GET", "/items").status_code == 200
    assert clerk.call("DELETE", f"/users/{me}").status_code == 403  # not the clerk's to do
    gone = owner.call("DELETE", f"/users/{clerk_id}")
    assert gone.status_code == 200 and gone.json()["sessions_revoked"] == 1
    assert clerk.call("GET", "/items").status_code == 401  # the session went with it
    assert clerk.log_in(email).status_code == 401  # no tenant of theirs any more
    assert owner.call("DELETE", f"/users/{clerk_id}").status_code == 404
    actions = [a["action"] for a in owner.call("GET", "/audit-log").json()]
    assert "member.remove" in actions and signed


def test_a_password_change_ends_every_other_session(db: Engine) -> None:
    email = _email("owner")
    here = Browser(db)
    here.sign_up(email)
    there = Browser(db, here.client.app)
    assert there.log_in(email).status_code == 200
    # the same person is also a member of another company, signed in there
    other_owner = Browser(db, here.client.app)
    other = other_owner.sign_up(_email("other"), company="Birch & Co")
    member = {"email": email, "name": "Owner", "role": "viewer"}
    assert other_owner.call("POST", "/users", json=member).status_code == 201
    from tests.test_invitations import accept_by_mail  # an account: invited, accepts

    assert accept_by_mail(Browser(db, here.client.app), email).status_code == 200
    elsewhere = Browser(db, here.client.app)
    signed_in = elsewhere.call(
        "POST", "/login", json={"email": email, "password": PASSWORD, "tenant": other["slug"]}
    )
    assert signed_in.status_code == 200, signed_in.text
    assert elsewhere.call("GET", "/items").status_code == 200
    wrong = here.call(
        "POST", "/me/password", json={"current_password": "nope", "new_password": PASSWORD + "!"}
    )
    assert wrong.status_code == 401
    weak = here.call(
        "POST", "/me/password", json={"current_password": PASSWORD, "new_password": "short"}
    )
    assert weak.status_code == 422 and weak.json()["code"] == "weak_password"
    new = "quiet harbour lanterns 77 glow"
    changed = here.call(
        "POST", "/me/password", json={"current_password": PASSWORD, "new_password": new}
    )
    assert changed.status_code == 200, changed.text
    assert here.call("GET", "/items").status_code == 200  # this browser: a new session
    assert there.call("GET", "/items").status_code == 401  # the other: ended
    assert elsewhere.call("GET", "/items").status_code == 401  # in the other tenant too
    assert Browser(db).log_in(email).status_code == 401  # the old password is gone
    assert Browser(db).log_in(email, new).status_code == 200


def test_a_declared_route_that_never_resolves_its_caller_is_refused_at_start() -> None:
    """A declaration checks nothing by itself: the checks run when the route resolves
    its caller (deps.current_principal, through PrincipalDep or TenantDep). A handler
    that takes neither would answer anyone, so the app refuses to start with one; every
    real route resolves its caller."""
    from fastapi import APIRouter

    from cloud_api.api.idempotent import IdempotentRoute
    from cloud_api.api.permissions import Requires, unguarded_routes
    from cloud_api.api.routes import ROUTERS

    router = APIRouter(route_class=IdempotentRoute)

    @router.get("/export-all", dependencies=[Requires("export", token_scope="export:read")])
    def export_all() -> dict[str, bool]:  # forgot TenantDep
        return {"everything": True}

    @router.get("/fine", dependencies=[Requires("read")])
    def fine(principal: PrincipalDep) -> dict[str, bool]:
        return {"fine": True}

    assert unguarded_routes(router.routes, deps.current_principal) == ["GET /export-all"]
    real = [route for router in ROUTERS for route in router.routes]
    assert unguarded_routes(real, deps.current_principal) == []
