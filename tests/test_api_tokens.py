"""Integration tokens (scoped, revocable): the owner creates one, it is shown once and
stored only as a keyed hash, it may do only what its scopes name, the audit log names
it, and a revoked or tampered token is 401 at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from cloud_api.db import models as m
from tests.conftest import Api
from tests.factory import receipt, setup_workshop
from tests.test_users import PASSWORD, Browser, _email

T = m.SQLModel.metadata.tables


def _token(api: Api, *scopes: str, name: str = "ERP bridge") -> dict[str, Any]:
    response = api.post("/api-tokens", json={"name": name, "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _as(api: Api, token: str, method: str, path: str, **kw: Any) -> Any:
    return api.client.request(
        method, "/api/v1" + path, headers={"Authorization": f"Bearer {token}"}, **kw
    )


def test_a_token_does_what_its_scopes_say_and_nothing_else(api: Api) -> None:
    setup_workshop(api)
    reader = _token(api, "items:read", "reports:read")
    assert reader["token"].startswith("tk_") and reader["scopes"] == ["items:read", "reports:read"]
    token = reader["token"]
    assert _as(api, token, "GET", "/items").status_code == 200
    assert _as(api, token, "GET", "/reports/trial-balance").status_code == 200
    for method, path, body in (
        ("POST", "/items", {"code": "X", "name": "X", "kind": "raw"}),
        ("POST", "/edge/events", {"events": [receipt(1, "RAW", "1", "1")]}),
        ("GET", "/work-orders", None),
        ("GET", "/export", None),
        ("POST", "/api-tokens", {"name": "more", "scopes": ["export:read"]}),
        ("GET", "/subscription", None),
    ):
        refused = _as(api, token, method, path, json=body)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["code"] == "insufficient_scope"
    poster = _token(api, "events:post")["token"]
    posted = _as(
        api, poster, "POST", "/edge/events", json={"events": [receipt(1, "RAW", "2", "3")]}
    )
    assert posted.status_code == 200 and posted.json()["posted"] == 1
    audit = api.get("/audit-log").json()
    assert any(a["action"] == "api_token.create" for a in audit)
    with api.db.connect() as conn:
        sender = conn.scalar(
            select(T["edge_event"].c.posted_by).where(T["edge_event"].c.tenant_id == api.tenant.id)
        )
    assert sender is not None and sender.startswith("api_token:")


def test_the_token_is_shown_once_stored_hashed_and_revocable(api: Api) -> None:
    made = _token(api, "items:read")
    listed = api.get("/api-tokens").json()
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0] and made["token"] not in api.get("/api-tokens").text
    with api.db.connect() as conn:
        tokens = T["api_token"]
        stored = conn.execute(select(tokens).where(tokens.c.tenant_id == api.tenant.id)).all()
    assert all(made["token"].split("_", 2)[2] not in str(row) for row in stored)
    assert _as(api, made["token"], "GET", "/items").status_code == 200
    tampered = made["token"][:-1] + ("A" if made["token"][-1] != "A" else "B")
    assert _as(api, tampered, "GET", "/items").status_code == 401
    assert api.post(f"/api-tokens/{made['id']}/revoke").status_code == 200
    after = _as(api, made["token"], "GET", "/items")
    assert after.status_code == 401 and after.json()["code"] == "invalid_api_token"
    assert api.post(f"/api-tokens/{made['id']}/revoke").status_code == 404  # not live
    assert api.get("/api-tokens").json()[0]["revoked_at"] is not None
    assert api.post("/api-tokens", json={"name": "x", "scopes": ["admin"]}).status_code == 422


def test_only_the_owner_manages_tokens_and_a_tenant_cannot_revoke_anothers(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    email = _email("fin")
    owner.call(
        "POST",
        "/users",
        json={"email": email, "name": "F", "role": "finance_mgr", "password": PASSWORD},
    )
    finance = Browser(db, owner.client.app)
    assert finance.log_in(email).status_code == 200
    refused = finance.call("POST", "/api-tokens", json={"name": "x", "scopes": ["items:read"]})
    assert refused.status_code == 403
    assert finance.call("GET", "/api-tokens").status_code == 403
    made = owner.call("POST", "/api-tokens", json={"name": "x", "scopes": ["items:read"]})
    assert made.status_code == 201
    other = Api(db)
    assert other.post(f"/api-tokens/{made.json()['id']}/revoke").status_code == 404
    assert _as(other, made.json()["token"], "GET", "/items").status_code == 200  # still live
