"""The Idempotency-Key header (SAAS.md, device authentication 5; cases 8 and 9) on the
API's writes: a repeat of a request with its key gets the first reply, byte for byte,
and runs nothing; the key with another request is `idempotency_key_reused`; a request
still being answered is `in_progress`; a failed request leaves the key free; keys are
each tenant's own. The concurrent cases run through a real server on PostgreSQL as
erp_app."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select, update

from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.services import idempotency
from cloud_api.services.purge import expire_idempotency_keys
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.edge_harness import CloudServer
from tests.factory import receipt, setup_workshop
from tests.roles import as_role
from tests.test_idempotency import at_once
from tests.test_journal_entries import BANK_FEE

T = m.SQLModel.metadata.tables
ITEM = {"code": "X", "name": "Widget", "kind": "raw", "valuation_method": "fifo"}


def _items(api: Api, code: str) -> int:
    return sum(1 for row in api.get("/items").json() if row["code"] == code)


def _keys(db: Engine, api: Api) -> list[dict[str, Any]]:
    t = T["idempotency_record"]
    with tenancy.as_tenant(api.tenant.id), db.connect() as conn:
        rows = conn.execute(select(t).where(t.c.tenant_id == api.tenant.id)).mappings()
        return [dict(r) for r in rows]


def test_a_repeat_gets_the_first_reply_and_runs_nothing(db: Engine) -> None:
    api = Api(db)
    first = api.post("/items", json=ITEM, headers={"Idempotency-Key": "item-x-1"})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = api.post("/items", json=ITEM, headers={"Idempotency-Key": "item-x-1"})
    assert again.status_code == 201
    assert again.content == first.content  # the kept reply, byte for byte
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert _items(api, "X") == 1
    # without the key the same body is a new request: the item exists
    plain = api.post("/items", json=ITEM)
    assert plain.status_code == 409, plain.text


def test_the_key_with_another_request_is_refused_and_nothing_runs(db: Engine) -> None:
    api = Api(db)
    assert api.post("/items", json=ITEM, headers={"Idempotency-Key": "k1"}).status_code == 201
    other = {**ITEM, "code": "Y"}
    reused = api.post("/items", json=other, headers={"Idempotency-Key": "k1"})
    assert reused.status_code == 409, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"
    assert _items(api, "Y") == 0
    # another path with the key is another request too
    elsewhere = api.post(
        "/locations",
        json={"code": "Y", "name": "Y", "kind": "warehouse"},
        headers={"Idempotency-Key": "k1"},
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (409, "idempotency_key_reused")
    assert not any(row["code"] == "Y" for row in api.get("/locations").json())


def test_keys_are_each_tenants_own(db: Engine) -> None:
    a, b = Api(db), Api(db)
    assert a.post("/items", json=ITEM, headers={"Idempotency-Key": "same"}).status_code == 201
    in_b = b.post("/items", json={**ITEM, "name": "B's"}, headers={"Idempotency-Key": "same"})
    assert in_b.status_code == 201, in_b.text
    assert "Idempotent-Replayed" not in in_b.headers
    assert [r["name"] for r in b.get("/items").json() if r["code"] == "X"] == ["B's"]
    assert [r["name"] for r in a.get("/items").json() if r["code"] == "X"] == ["Widget"]
    assert [k["key"] for k in _keys(db, a)] == ["same"] == [k["key"] for k in _keys(db, b)]


def test_a_failed_request_leaves_the_key_free(db: Engine) -> None:
    api = Api(db)
    bad = api.post(
        "/items", json={**ITEM, "valuation_method": "lifo"}, headers={"Idempotency-Key": "k"}
    )
    assert bad.status_code == 422, bad.text
    assert _keys(db, api) == []
    good = api.post("/items", json=ITEM, headers={"Idempotency-Key": "k"})
    assert good.status_code == 201, good.text
    (kept,) = _keys(db, api)
    assert kept["status_code"] == 201 and kept["body"] == good.text


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_a_malformed_key_is_refused(db: Engine, key: str) -> None:
    api = Api(db)
    refused = api.post("/items", json=ITEM, headers={"Idempotency-Key": key.encode()})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "bad_idempotency_key"
    assert _items(api, "X") == 0


def test_a_request_that_died_holding_its_key_is_taken_over_after_the_lease(db: Engine) -> None:
    """A claim whose holder cannot be told (made before migration 0029, no holder): the
    lease is the last resort. A holder known dead is taken over at once
    (tests/test_idempotency_holders.py)."""
    api = Api(db)
    body = httpx.Request("POST", "/", json=ITEM).content
    pepper = get_settings().api_key_pepper
    digest = idempotency.request_hash("POST", "/api/v1/items", "", body, "api_key:tenant", pepper)
    t = T["idempotency_record"]
    now = now_utc()
    row = {"tenant_id": api.tenant.id, "key": "k", "request_hash": digest}
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        conn.execute(insert(t).values(**row, created_at=now, locked_at=now))
    busy = api.post("/items", json=ITEM, headers={"Idempotency-Key": "k"})
    assert (busy.status_code, busy.json()["code"]) == (409, "in_progress")
    assert busy.headers["Retry-After"] == "1"
    assert _items(api, "X") == 0
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        long_ago = now - idempotency.LEASE - timedelta(seconds=1)
        conn.execute(update(t).where(t.c.tenant_id == api.tenant.id).values(locked_at=long_ago))
    taken = api.post("/items", json=ITEM, headers={"Idempotency-Key": "k"})
    assert taken.status_code == 201, taken.text
    assert _items(api, "X") == 1


def test_keys_are_forgotten_after_a_day(db: Engine) -> None:
    """The daily `erp tenant purge` forgets every tenant's keys older than a day, as
    erp_platform one tenant at a time; a key forgotten is a new key again."""
    a, b = Api(db), Api(db)
    for api in (a, b):
        assert api.post("/items", json=ITEM, headers={"Idempotency-Key": "k"}).status_code == 201
    platform = as_role(db, rls.PLATFORM)
    expire_idempotency_keys(platform, now_utc())
    assert len(_keys(db, a)) == 1 == len(_keys(db, b))
    later = now_utc() + idempotency.KEEP + timedelta(minutes=1)
    assert expire_idempotency_keys(platform, later) >= 2  # and other tests' tenants'
    assert _keys(db, a) == [] == _keys(db, b)
    again = a.post("/items", json={**ITEM, "code": "Z"}, headers={"Idempotency-Key": "k"})
    assert again.status_code == 201, again.text


def test_an_event_batch_replays_its_reply_but_not_one_with_held_events(db: Engine) -> None:
    api = Api(db)
    setup_workshop(api)
    batch = {"events": [receipt(1, "RAW", "10", "2.50")]}
    first = api.post("/edge/events", json=batch, headers={"Idempotency-Key": "batch-1"})
    again = api.post("/edge/events", json=batch, headers={"Idempotency-Key": "batch-1"})
    assert first.json()["results"][0]["status"] == "posted"
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    assert api.balances()["1403"] == Decimal("25.00")
    # an event held for unknown master data is tried again when sent again
    held = {"events": [receipt(2, "NEW", "4", "1.00")]}
    answer = api.post("/edge/events", json=held, headers={"Idempotency-Key": "batch-2"})
    assert answer.json()["results"][0]["status"] == "held"
    api.create("/items", {**ITEM, "code": "NEW"})
    retried = api.post("/edge/events", json=held, headers={"Idempotency-Key": "batch-2"})
    assert "Idempotent-Replayed" not in retried.headers
    # run again, not replayed: posted now, or already (a held event re-posts itself
    # once the master data it waited for arrives: services/held.py)
    assert retried.json()["results"][0]["status"] in ("posted", "duplicate")
    assert api.balances()["1403"] == Decimal("29.00")


# ---- concurrency: a real server on PostgreSQL as erp_app (SAAS.md case 8) ----


def _at_once(url: str, key: str, path: str, body: dict[str, Any], senders: int) -> list[Any]:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "once"}
    return at_once(
        senders, lambda client: client.post(url + "/api/v1" + path, json=body, headers=headers)
    )


def _one_reply_or_in_progress(answers: list[httpx.Response], status: int) -> bytes:
    done = [a for a in answers if a.status_code == status]
    busy = [a for a in answers if a.status_code == 409]
    assert len(done) + len(busy) == len(answers), [a.text for a in answers]
    assert all(a.json()["code"] == "in_progress" for a in busy)
    assert done and len({a.content for a in done}) == 1  # identical replies
    assert sum("Idempotent-Replayed" not in a.headers for a in done) == 1
    return done[0].content


@pytest.mark.postgres
@pytest.mark.parametrize("senders", [2, 10])
def test_a_journal_entry_sent_at_once_with_one_key_posts_once(
    pg_db: Engine, server: CloudServer, senders: int
) -> None:
    api = Api(pg_db)
    answers = _at_once(server.url, api.tenant.api_key, "/journal-entries", BANK_FEE, senders)
    _one_reply_or_in_progress(answers, 201)
    assert api.balances()["6603"] == Decimal("35.50")
    je = T["journal_entry"]
    with tenancy.as_tenant(api.tenant.id), pg_db.connect() as conn:
        entries = conn.scalar(select(func.count()).where(je.c.tenant_id == api.tenant.id))
    assert entries == 1
    # a repeat once it is answered is the kept reply
    again = _at_once(server.url, api.tenant.api_key, "/journal-entries", BANK_FEE, 1)
    assert again[0].headers["Idempotent-Replayed"] == "true"


@pytest.mark.postgres
@pytest.mark.parametrize("senders", [2, 10])
def test_an_event_batch_sent_at_once_with_one_key_posts_once(
    pg_db: Engine, server: CloudServer, senders: int
) -> None:
    api = Api(pg_db)
    setup_workshop(api)
    batch = {"events": [receipt(1, "RAW", "10", "2.50")]}
    answers = _at_once(server.url, api.tenant.api_key, "/edge/events", batch, senders)
    reply = _one_reply_or_in_progress(answers, 200)
    assert b'"posted":1' in reply
    assert api.balances()["1403"] == Decimal("25.00")
    assert api.reconcile() == []


def test_a_key_is_its_senders_and_a_secret_is_not_kept(db: Engine) -> None:
    """Another member sending a request with someone's key is another request (409
    idempotency_key_reused, nothing run; their own rights are checked as ever): a
    warehouse clerk bound to a site cannot have the owner's rotation of another site's
    device replayed to them. An answer with a secret (a device key, a token) is not
    kept: a repeat is 409 secret_shown_once, and no second secret is issued."""
    from tests.test_users import PASSWORD, Browser, _email

    api = Api(db)
    code = api.post("/devices/enrollment-codes", json={}).json()["code"]
    enrolled = api.client.post("/api/v1/devices/enroll", json={"code": code, "name": "gate"})
    device = enrolled.json()["device_id"]
    rotate = {"Idempotency-Key": "rotate-1"}
    first = api.post(f"/devices/{device}/rotate", headers=rotate)
    assert first.status_code == 200, first.text
    again = api.post(f"/devices/{device}/rotate", headers=rotate)
    assert again.status_code == 409, (again.status_code, again.text, _keys(db, api))
    assert again.json()["code"] == "secret_shown_once"
    assert first.json()["key"] not in again.text

    email = _email("clerk")
    member = {"email": email, "name": "C", "role": "warehouse", "password": PASSWORD}
    assert api.post("/users", json={**member, "site": "p2"}).status_code == 201
    clerk = Browser(db, api.client.app)
    assert clerk.log_in(email).status_code == 200
    replay = clerk.call("POST", f"/devices/{device}/rotate", headers=rotate)
    assert (replay.status_code, replay.json()["code"]) == (409, "idempotency_key_reused")
    own = clerk.call("POST", f"/devices/{device}/rotate", headers={"Idempotency-Key": "c-1"})
    assert (own.status_code, own.json()["code"]) == (403, "other_site")

    made = {"name": "sync", "scopes": ["items:read"]}
    token = api.post("/api-tokens", json=made, headers={"Idempotency-Key": "tok-1"})
    assert token.status_code == 201
    twice = api.post("/api-tokens", json=made, headers={"Idempotency-Key": "tok-1"})
    assert twice.json()["code"] == "secret_shown_once"
    assert [t["name"] for t in api.get("/api-tokens").json()] == ["sync"]
    kept = {k["key"]: k["body"] for k in _keys(db, api)}
    assert kept["rotate-1"] is None and kept["tok-1"] is None  # no secret stored


def test_only_the_holder_keeps_a_reply_or_lets_the_key_go(db: Engine) -> None:
    """A request that outlived its lease and was taken over: its late failure does not
    free the key the new holder has, nor does its late answer overwrite the new one."""
    api = Api(db)
    now = now_utc()
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        slow = idempotency.take(conn, api.tenant.id, "k", "h", now)
    later = now + idempotency.LEASE + timedelta(seconds=1)
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        fresh = idempotency.take(conn, api.tenant.id, "k", "h", later)
    assert slow.mark == now and fresh.mark == later
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        idempotency.release(conn, api.tenant.id, "k", now)  # the slow one gives up late
        idempotency.keep(conn, api.tenant.id, "k", now, idempotency.Reply(201, None, "x"))
    (row,) = _keys(db, api)
    assert row["status_code"] is None  # still the fresh holder's, unanswered
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        reply = idempotency.Reply(201, "application/json", "{}")
        idempotency.keep(conn, api.tenant.id, "k", later, reply)
    (row,) = _keys(db, api)
    assert (row["status_code"], row["body"]) == (201, "{}")


def test_member_management_takes_a_key_and_signing_in_ignores_one(db: Engine) -> None:
    """POST /users with a key sent twice adds one member (the second answer is the
    first's); the session's own writes (here /login) ignore the header."""
    from tests.test_users import PASSWORD, _email

    api = Api(db)
    email = _email("twice")
    body = {"email": email, "name": "T", "role": "viewer", "password": PASSWORD}
    first = api.post("/users", json=body, headers={"Idempotency-Key": "member-1"})
    again = api.post("/users", json=body, headers={"Idempotency-Key": "member-1"})
    assert first.status_code == 201 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [u["email"] for u in api.get("/users").json()].count(email) == 1
    login = {"email": email, "password": PASSWORD}
    for _ in range(2):
        signed = api.client.post(
            "/api/v1/login", json=login, headers={"Idempotency-Key": "login-1"}
        )
        assert signed.status_code == 200 and "Idempotent-Replayed" not in signed.headers
    assert [k["key"] for k in _keys(db, api)] == ["member-1"]


def test_a_committed_write_keeps_its_answer_when_its_reply_cannot_be_kept(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database gone between the route's commit and keeping its reply: the client
    gets the route's own 201, not a 503 saying nothing was written (which would invite a
    repeat of a write that did happen)."""
    from sqlalchemy.exc import OperationalError

    api = Api(db)

    def gone(*_: Any, **__: Any) -> None:
        raise OperationalError("INSERT ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(idempotency, "keep", gone)
    answer = api.post("/items", json=ITEM, headers={"Idempotency-Key": "item-x-gone"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["code"] == "X"
    assert _items(api, "X") == 1
