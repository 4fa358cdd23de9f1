"""The isolation suite (SAAS.md cases 1-3, 7 and 20): tenants A and B with identical
data, and A's credentials on every endpoint of the API: its key, and an owner's portal
session.

Every GET of the OpenAPI document is called as A (with A's codes and with B's ids in
its path); no answer is a 5xx and none holds any id of B's rows. Every write that names
an object by id is called as A with B's ids: 404, and B's rows are byte for byte what
they were. A's device posting against a work order only B has changes nothing in B.
On PostgreSQL the app runs as erp_app, so row-level security is behind the queries'
own filters; on SQLite the filters stand alone."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
import zipfile
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, select

from cloud_api.db import models as m
from tests.conftest import Api
from tests.factory import completion, issue, labour, receipt, setup_workshop, shipment
from tests.members import member_id

if TYPE_CHECKING:
    from tests.test_users import Browser

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def seed(api: Api) -> dict[str, Any]:
    """The same data in each tenant; returns the ids the API handed out."""
    setup_workshop(api)
    api.create(
        "/boms",
        {
            "item": "TBL",
            "lines": [{"item": "RAW", "quantity": "2"}],
            "activate": True,
        },
    )
    results = api.events(
        receipt(1, "RAW", "10", "2.00"),
        issue(2, "RAW", "4"),
        labour(3, "1.5"),
        completion(4, "2"),
        shipment(5, "TBL", "1", "30"),
        issue(6, "BOLT", "1"),  # no BOLT in stock: held
    )
    held = [r["event_id"] for r in results if r["status"] == "held"]
    assert len(held) == 1, results
    code = api.post("/devices/enrollment-codes", json={}).json()["code"]
    enrolled = api.client.post("/api/v1/devices/enroll", json={"code": code, "name": "gate"})
    assert enrolled.status_code == 201, enrolled.text
    viewer_email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
    viewer = api.post(
        "/users",
        json={
            "email": viewer_email,
            "name": "Viewer",
            "role": "viewer",
            "password": "tiger-lily walks 42 oak benches",
        },
    )
    assert viewer.status_code == 201, viewer.text
    invited = {"email": f"inv-{uuid.uuid4().hex[:8]}@example.com", "name": "I", "role": "viewer"}
    invitation = api.post("/users", json=invited)
    assert invitation.status_code == 201, invitation.text
    token = api.post("/api-tokens", json={"name": "bridge", "scopes": ["items:read"]})
    assert token.status_code == 201, token.text
    return {
        "token_id": token.json()["id"],
        "event_id": held[0],
        "device_id": enrolled.json()["device_id"],
        "device_key": enrolled.json()["key"],
        "user_id": member_id(api.get("/users").json(), viewer_email),
        "invitation_id": invitation.json()["invitation_id"],
    }


def snapshot(db: Engine, tenant_id: uuid.UUID) -> dict[str, str]:
    """A digest of every row the tenant has, per table."""
    digests = {}
    with db.connect() as conn:
        for table in m.tenant_tables():
            rows = conn.execute(
                select(table)
                .where(table.c.tenant_id == tenant_id)
                .order_by(*table.primary_key.columns)
            ).all()
            digests[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def ids_of(db: Engine, tenant_id: uuid.UUID) -> set[str]:
    """Every UUID in the tenant's rows (its own ids and every reference)."""
    found: set[str] = set()
    with db.connect() as conn:
        for table in m.tenant_tables():
            for row in conn.execute(select(table).where(table.c.tenant_id == tenant_id)):
                found.update(str(v) for v in row if isinstance(v, uuid.UUID))
    return found


@pytest.fixture
def tenants(db: Engine) -> tuple[Api, Api, dict[str, Any], dict[str, Any]]:
    a, b = Api(db), Api(db)
    a_ids, b_ids = seed(a), seed(b)
    return a, b, a_ids, b_ids


CODES = {"code": "WO1", "item_code": "RAW", "item": "TBL", "version": "1"}


def _paths(api: Api) -> dict[str, list[str]]:
    spec = api.client.get("/openapi.json").json()
    return {p: sorted(ops) for p, ops in spec["paths"].items() if p.startswith("/api/v1")}


def owner_session(a: Api, db: Engine) -> Browser:
    """A new owner of A signed in to the portal with a second factor (A is on Pro): a
    browser holding the `__Host-session` cookie, and the session's CSRF token that its
    `call` sends on writes (tests/test_users.py Browser). Shared with
    tests/test_schemathesis.py."""
    import pyotp

    from tests.mail import mailed_code
    from tests.test_users import PASSWORD, Browser

    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "name": "Owner", "role": "owner", "password": PASSWORD}
    assert a.post("/users", json=body).status_code == 201
    browser = Browser(db, a.client.app)
    assert browser.log_in(email).status_code == 200
    secret = browser.call("POST", "/mfa/setup").json()["secret"]
    codes = {"code": pyotp.TOTP(secret).now(), "mail_code": mailed_code(email)}
    assert browser.call("POST", "/mfa/confirm", json=codes).is_success
    me = browser.call("GET", "/me").json()
    assert me["user_id"] and me["role"] == "owner" and me["csrf_token"]  # a session
    return browser


class _Caller:
    """A's credential on the JSON API: its tenant key, or (SAAS.md cases 2 and 20)
    the portal session of an owner of A, with a second factor (A is on Pro) and the
    session's CSRF token on writes."""

    def __init__(self, a: Api, db: Engine, kind: str) -> None:
        self.api, self.browser = a, None
        if kind == "session":
            self.browser = owner_session(a, db)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        if self.browser is not None:
            return self.browser.call(method, path, **kw)
        return self.api.client.request(method, "/api/v1" + path, **kw)


@pytest.fixture(params=["key", "session"])
def caller(
    request: pytest.FixtureRequest,
    db: Engine,
    tenants: tuple[Api, Api, dict[str, Any], dict[str, Any]],
) -> _Caller:
    return _Caller(tenants[0], db, request.param)


def test_every_read_as_a_shows_nothing_of_b(
    db: Engine, tenants: tuple[Api, Api, dict[str, Any], dict[str, Any]], caller: _Caller
) -> None:
    a, b, _, _b_ids = tenants
    b_only = ids_of(db, b.tenant.id) - ids_of(db, a.tenant.id)
    assert len(b_only) > 30  # B's data is really there to leak
    reads = [p for p, ops in _paths(a).items() if "get" in ops]
    assert len(reads) >= 30
    answered = {}
    for path in reads:
        url = path.format(**CODES)
        response = caller.request("GET", url.removeprefix("/api/v1"))
        answered[path] = response.status_code
        assert response.status_code < 500, (path, response.text)
        body = response.text
        if path.endswith("/export"):
            archive = zipfile.ZipFile(io.BytesIO(response.content))
            body = "".join(archive.read(name).decode() for name in archive.namelist())
        leaked = set(UUID_RE.findall(body)) & b_only
        assert not leaked, (path, sorted(leaked)[:3])
    # every read really answered with A's data (the ids in the path are A's codes)
    assert {p: s for p, s in answered.items() if s != 200} == {}
    assert str(b.tenant.id) not in caller.request("GET", "/me").text


def test_every_write_by_id_with_bs_ids_is_404_and_b_is_untouched(
    db: Engine, tenants: tuple[Api, Api, dict[str, Any], dict[str, Any]], caller: _Caller
) -> None:
    a, b, _, b_ids = tenants
    before = snapshot(db, b.tenant.id)
    writes = {
        p: ops
        for p, ops in _paths(a).items()
        if "{" in p and set(ops) & {"post", "patch", "put", "delete"}
    }
    by_id = {p: ops for p, ops in writes.items() if re.search(r"\{\w+_id\}", p)}
    assert set(by_id) == {
        "/api/v1/exceptions/{event_id}/repost",
        "/api/v1/exceptions/{event_id}/void",
        "/api/v1/events/{event_id}/reverse",
        "/api/v1/devices/{device_id}/rotate",
        "/api/v1/devices/{device_id}/revoke",
        "/api/v1/users/{user_id}",
        "/api/v1/invitations/{invitation_id}",
        "/api/v1/api-tokens/{token_id}/revoke",
    }
    bodies = {
        "void": {"reason": "not mine"},
        "reverse": {"reason": "not mine"},
        "{user_id}": {"role": "owner"},
    }
    for path, ops in by_id.items():
        url = path.format(**b_ids).removeprefix("/api/v1")
        body = next((v for k, v in bodies.items() if path.endswith(k)), {})
        for op in ops:
            response = caller.request(op.upper(), url, json=body)
            assert response.status_code == 404, (op, path, response.text)
            assert str(b.tenant.id) not in response.text
    assert snapshot(db, b.tenant.id) == before


def test_a_device_of_a_posting_against_bs_work_order_changes_nothing_in_b(
    db: Engine, tenants: tuple[Api, Api, dict[str, Any], dict[str, Any]]
) -> None:
    """Case 1: A's device key and a work order only B has: not posted in B (held in A
    as an unknown work order), and nothing of B in the answer."""
    a, b, a_ids, _ = tenants
    b.create("/work-orders", {"code": "WOB", "item": "TBL", "planned_quantity": "1"})
    before = snapshot(db, b.tenant.id)
    response = a.client.post(
        "/api/v1/edge/events",
        json={"events": [issue(9, "RAW", "1", wo="WOB")]},
        headers={"Authorization": f"Bearer {a_ids['device_key']}"},
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["status"] in ("held", "rejected") and result["code"] == "unknown_work_order"
    assert snapshot(db, b.tenant.id) == before
    # and the device cannot reach B's objects by id either: it is limited to the edge
    refused = a.client.post(
        f"/api/v1/devices/{a_ids['device_id']}/revoke",
        headers={"Authorization": f"Bearer {a_ids['device_key']}"},
    )
    assert refused.status_code == 403


def test_a_device_naming_bs_work_order_by_id_gets_404_and_a_security_event_in_a(
    db: Engine, tenants: tuple[Api, Api, dict[str, Any], dict[str, Any]]
) -> None:
    """Case 1 as SAAS.md has it: A's device key + B's work-order id →
    POST /work-orders/{B_id}/progress → 404. Nothing is posted (no stock move in
    either tenant), B has no new row (no audit line either), and A's audit log has a
    security event naming the device and the id it asked for. A's own order, by its
    id, takes the same request (the route works)."""
    a, b, a_ids, _ = tenants
    b_id = b.get("/work-orders/WO1").json()["id"]
    a_id = a.get("/work-orders/WO1").json()["id"]
    assert a_id != b_id  # the same code in both tenants, different ids
    device = {"Authorization": f"Bearer {a_ids['device_key']}"}
    body = {"type": "production_completion", "payload": {"location": "WH", "quantity": "1"}}
    before_a, before_b = snapshot(db, a.tenant.id), snapshot(db, b.tenant.id)
    response = a.client.post(f"/api/v1/work-orders/{b_id}/progress", json=body, headers=device)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "unknown_work_order"
    assert str(b.tenant.id) not in response.text
    assert snapshot(db, b.tenant.id) == before_b
    after_a = snapshot(db, a.tenant.id)
    changed = {t for t in after_a if after_a[t] != before_a.get(t)}
    assert changed == {"audit_log"}  # the security event, and nothing else
    (probe,) = [r for r in a.get("/audit-log").json() if r["action"] == "security.unknown_object"]
    assert probe["object"] == f"work_order:{b_id}"
    assert (probe["actor_kind"], probe["actor_id"]) == ("device", a_ids["device_id"])
    assert probe["detail"] == f"POST /api/v1/work-orders/{b_id}/progress"
    # A's own order by id: posted in A
    own = a.client.post(f"/api/v1/work-orders/{a_id}/progress", json=body, headers=device)
    assert own.status_code == 201, own.text
    assert (own.json()["work_order"], own.json()["status"]) == ("WO1", "posted")
    assert snapshot(db, b.tenant.id) == before_b


def test_identical_codes_in_both_tenants_and_no_error_tells_of_the_other(
    db: Engine, tenants: tuple[Api, Api, dict[str, Any], dict[str, Any]]
) -> None:
    """Case 7: both create item X; a duplicate within a tenant is a plain conflict that
    names nothing of the other tenant."""
    a, b, _, _ = tenants
    for api in (a, b):
        api.create("/items", {"code": "X", "name": "X", "kind": "raw"})
    again = a.post("/items", json={"code": "X", "name": "X", "kind": "raw"})
    assert again.status_code == 409
    assert str(b.tenant.id) not in again.text
    assert [i["code"] for i in a.get("/items").json()].count("X") == 1
