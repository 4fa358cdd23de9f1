"""Held events re-post themselves (issue 15): a receipt, a release, a new item or an
opened period posts the held events that waited for it, in event-time order and
bounded per pass, and the edge learns their new status on its next sync. Whatever
the arrival order of a valid history, the books end as those of the history sent in
event order, with nothing held."""

from __future__ import annotations

import json
import random
import uuid
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy import event as sa_event

from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc
from cloud_api.services import held
from cloud_api.services.tenants import revoke_api_key
from edge_agent.outbox import Capture
from edge_agent.recheck import HeldRecheck
from edge_agent.sync import CloudClient, Syncer
from tests.conftest import Api
from tests.factory import (
    BASE_TIME,
    completion,
    issue,
    labour,
    receipt,
    setup_workshop,
    shipment,
)
from tests.test_edge_sync import outbox_with

EV = m.SQLModel.metadata.tables["edge_event"]


def status_of(api: Api, *events: dict[str, Any]) -> list[tuple[str, str | None]]:
    with api.db.connect() as conn:
        rows = {
            str(r.event_id): (r.status, r.code)
            for r in conn.execute(
                select(EV.c.event_id, EV.c.status, EV.c.code).where(EV.c.tenant_id == api.tenant.id)
            )
        }
    return [rows[e["event_id"]] for e in events]


def held_count(api: Api) -> int:
    with api.db.connect() as conn:
        return len(
            conn.execute(
                select(EV.c.event_id).where(
                    EV.c.tenant_id == api.tenant.id, EV.c.status.in_(("held", "rejected"))
                )
            ).all()
        )


def nonzero(balances: dict[str, D]) -> dict[str, D]:
    return {code: value for code, value in balances.items() if value != 0}


def stock(api: Api) -> list[tuple[str, str, str, str]]:
    return sorted(
        (r["item"], r["location"], r["quantity"], r["value"])
        for r in api.get("/reports/stock").json()
        if D(r["quantity"]) != 0 or D(r["value"]) != 0
    )


def in_order_books(db: Engine, events: list[dict[str, Any]], prepare: Any = setup_workshop) -> Api:
    """The same events sent in event order to a fresh tenant: what the books must be."""
    fresh = Api(db)
    prepare(fresh)
    ordered = sorted(events, key=lambda e: (e["occurred_at"], uuid.UUID(e["event_id"])))
    results = fresh.events(*ordered)
    assert [r["status"] for r in results] == ["posted"] * len(ordered), results
    return fresh


def assert_same_books(api: Api, fresh: Api) -> None:
    assert nonzero(api.balances()) == nonzero(fresh.balances())
    assert stock(api) == stock(fresh)
    assert api.reconcile() == []


# -- a receipt, a release, a new item, a reopened period -----------------------------------
def test_an_issue_held_before_its_receipt_posts_when_the_receipt_does(api: Api) -> None:
    setup_workshop(api)
    early = issue(10, "RAW", "4")
    (answer,) = api.events(early)
    assert (answer["status"], answer["code"]) == ("held", "insufficient_stock")
    late = receipt(5, "RAW", "10", "2.50")
    (answer,) = api.events(late)
    assert answer["status"] == "posted"
    # no manual step: the issue posted right after the receipt's batch committed
    assert status_of(api, early) == [("posted", None)]
    assert api.get("/exceptions").json() == []
    assert_same_books(api, in_order_books(api.db, [early, late]))
    assert api.balances()["5001"] == D("10.00")


def test_a_history_sent_newest_first_ends_as_sent_in_order(api: Api) -> None:
    setup_workshop(api)
    history = [
        receipt(1, "RAW", "10", "3"),
        issue(2, "RAW", "5"),
        labour(3, "2"),
        completion(4, "2"),
        shipment(5, "TBL", "2", "100"),
    ]
    for ev in reversed(history[1:]):
        api.events(ev)
    assert status_of(api, history[1]) == [("held", "insufficient_stock")]
    api.events(history[0])
    assert [s for s, _ in status_of(api, *history)] == ["posted"] * len(history)
    assert_same_books(api, in_order_books(api.db, history))


def test_what_a_repost_posts_wakes_what_waited_for_it(api: Api) -> None:
    """A chain: the release lets the completion post, whose goods let the shipment
    post (in the next pass)."""
    setup_workshop(api)
    api.create("/work-orders", {"code": "WO3", "item": "TBL", "planned_quantity": "2"})
    made, sold = completion(1, "2", wo="WO3"), shipment(2, "TBL", "2", "80")
    api.events(made, sold)
    assert status_of(api, made, sold) == [
        ("held", "work_order_not_released"),
        ("held", "insufficient_stock"),
    ]
    assert api.post("/work-orders/WO3/release", json={}).status_code == 200
    assert status_of(api, made, sold) == [("posted", None), ("posted", None)]
    assert api.balances()["6001"] == D("-160.00")


def test_issues_to_an_order_post_when_it_is_created_and_released(api: Api) -> None:
    setup_workshop(api)
    api.events(receipt(0, "RAW", "10", "2"))
    unknown, draft = issue(5, "RAW", "1", wo="WO7"), issue(6, "RAW", "2", wo="WO8")
    api.create("/work-orders", {"code": "WO8", "item": "TBL", "planned_quantity": "1"})
    api.events(unknown, draft)
    assert status_of(api, unknown, draft) == [
        ("held", "unknown_work_order"),
        ("held", "work_order_not_released"),
    ]
    api.create("/work-orders", {"code": "WO7", "item": "TBL", "planned_quantity": "1"})
    # created as a draft: still held, now for the reason that holds it now
    assert status_of(api, unknown) == [("held", "work_order_not_released")]
    for code in ("WO7", "WO8"):
        assert api.post(f"/work-orders/{code}/release", json={}).status_code == 200
    assert status_of(api, unknown, draft) == [("posted", None), ("posted", None)]
    assert api.balances()["5001"] == D("6.00")
    assert api.reconcile() == []


def test_a_receipt_of_an_item_created_later_posts_when_it_is_created(api: Api) -> None:
    setup_workshop(api)
    ev = receipt(0, "NEW", "3", "7", location="WH2")
    (answer,) = api.events(ev)
    assert (answer["status"], answer["code"]) == ("held", "unknown_item")
    api.create("/items", {"code": "NEW", "name": "New part", "kind": "raw"})
    assert status_of(api, ev) == [("held", "unknown_location")]
    api.create("/locations", {"code": "WH2", "name": "Second store", "kind": "warehouse"})
    assert status_of(api, ev) == [("posted", None)]
    assert ("NEW", "WH2", "3.000000", "21.00") in stock(api)


def test_an_event_of_a_closed_period_posts_when_the_period_is_reopened(api: Api) -> None:
    setup_workshop(api)
    assert api.post("/periods/2026-03/close").status_code == 200
    ev, other = receipt(0, "RAW", "1", "1"), receipt(60 * 24 * 31, "BOLT", "1", "1")  # April
    assert api.post("/periods/2026-04/close").status_code == 200
    api.events(ev, other)
    assert status_of(api, ev, other) == [("held", "period_locked")] * 2
    answer = api.post("/periods/2026-03/reopen", json={"reason": "late delivery note"})
    assert answer.status_code == 200
    # only the reopened period's event posts; April's is still closed
    assert status_of(api, ev, other) == [("posted", None), ("held", "period_locked")]
    assert api.balances()["1403"] == D("1.00")


def test_an_event_that_still_cannot_post_stays_held_with_its_new_reason(api: Api) -> None:
    setup_workshop(api)
    ev = issue(10, "RAW", "8")
    api.events(ev)
    api.events(receipt(0, "RAW", "3", "1"))
    assert status_of(api, ev) == [("held", "insufficient_stock")]
    (row,) = api.get("/exceptions").json()
    assert "available 3" in row["message"], row
    api.events(receipt(1, "RAW", "5", "1"))
    assert status_of(api, ev) == [("posted", None)]


def test_a_receipt_wakes_only_the_events_of_its_item(api: Api, monkeypatch: Any) -> None:
    setup_workshop(api)
    bolt, raw = issue(10, "BOLT", "1"), issue(11, "RAW", "1")
    api.events(bolt, raw)
    tried: list[str] = []
    real = held._post_runs

    def spy(found: Any, *args: Any) -> Any:
        tried.extend(c.raw["event_id"] for c in found)
        return real(found, *args)

    monkeypatch.setattr(held, "_post_runs", spy)
    api.events(receipt(0, "RAW", "5", "1"))
    assert tried == [raw["event_id"]]
    assert status_of(api, bolt, raw) == [("held", "insufficient_stock"), ("posted", None)]


def test_the_bound_per_pass_is_kept_and_nothing_is_lost(api: Api, monkeypatch: Any) -> None:
    setup_workshop(api)
    issues = [issue(10 + n // 3, "RAW", "1") for n in range(7)]  # ties in event time
    api.events(*issues)
    issues.sort(key=lambda e: (e["occurred_at"], uuid.UUID(e["event_id"])))
    passes: list[list[str]] = []
    real = held._post_runs

    def spy(found: Any, *args: Any) -> Any:
        passes.append([c.raw["event_id"] for c in found])
        return real(found, *args)

    monkeypatch.setattr(held, "_post_runs", spy)
    monkeypatch.setattr(held, "PASS_EVENTS", 3)
    monkeypatch.setattr(held, "MAX_PASSES", 2)
    api.events(receipt(0, "RAW", "100", "1"))
    # two passes of at most three, oldest first; the last one waits for the next trigger
    assert passes == [[e["event_id"] for e in issues[:3]], [e["event_id"] for e in issues[3:6]]]
    assert [s for s, _ in status_of(api, *issues)] == ["posted"] * 6 + ["held"]
    passes.clear()
    api.events(receipt(1, "RAW", "1", "1"))
    assert passes == [[issues[6]["event_id"]]]
    assert held_count(api) == 0
    assert api.balances()["5001"] == D("7.00")


def test_a_device_event_is_reposted_as_its_device_bound_to_its_site(api: Api) -> None:
    """The re-post acts as the sender did: a scan held for an unknown location of
    another site stays refused for that device once the location exists."""
    setup_workshop(api)
    api.create("/items", {"code": "X", "name": "X", "kind": "raw"})
    code = api.post("/devices/enrollment-codes", json={}).json()["code"]
    device = api.client.post("/api/v1/devices/enroll", json={"code": code, "name": "hh"})
    headers = {"Authorization": f"Bearer {device.json()['key']}"}
    ev = receipt(0, "X", "1", "1", location="FAR")
    answer = api.client.post("/api/v1/edge/events", json={"events": [ev]}, headers=headers)
    assert answer.json()["results"][0]["code"] == "unknown_location"
    api.create("/locations", {"code": "FAR", "name": "Far", "kind": "warehouse", "site": "s2"})
    assert status_of(api, ev) == [("rejected", "location_outside_site")]
    assert "1403" not in nonzero(api.balances())


# -- a bounded search, a failure that stays contained, order across senders -------------
def test_a_receipt_reads_only_the_held_events_of_its_item(api: Api, monkeypatch: Any) -> None:
    """However many events are held for other items, a receipt's re-post finds its
    own by one indexed query: it reads (and decodes) only the rows that match."""
    setup_workshop(api)
    others = [issue(10 + n, "BOLT", "1") for n in range(60)]
    api.events(*others)
    mine = issue(100, "RAW", "1")
    api.events(mine)
    decoded: list[str] = []
    real_loads = json.loads

    class CountingJson:
        @staticmethod
        def loads(text: Any) -> Any:
            decoded.append(text)
            return real_loads(text)

    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "edge_event.waits_on IN" in statement:
            statements.append((statement, params))

    monkeypatch.setattr(held, "json", CountingJson)
    app_db = api.client.app.state.db  # on PostgreSQL, the app's own engine (erp_app)
    sa_event.listen(app_db, "before_cursor_execute", seen)
    try:
        api.events(receipt(0, "RAW", "5", "1"))
    finally:
        sa_event.remove(app_db, "before_cursor_execute", seen)
    assert status_of(api, mine) == [("posted", None)]
    assert held_count(api) == len(others)
    assert len(decoded) == 1  # the matching row only, not the 60 others
    assert 1 <= len(statements) <= 3  # one query a pass (and an empty sweep), no paging
    if api.db.dialect.name == "postgresql":
        # the query the pass ran can be served by the index of what events wait for
        statement, params = statements[0]
        # A table this small may be read through any index of the tenant's rows, so
        # the planner is left no other (in a transaction rolled back): with sequential
        # scans off, it then uses the waits_on index only if that index can serve it.
        with api.db.connect() as conn, conn.begin() as txn:
            others = conn.exec_driver_sql(
                "SELECT i.relname, c.conname FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid"
                " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid"
                " AND c.conrelid = x.indrelid"
                " WHERE x.indrelid = 'edge_event'::regclass AND i.relname <> %(keep)s",
                {"keep": "ix_edge_event_waits_on"},
            ).all()
            for index, constraint in others:
                conn.exec_driver_sql(
                    f'ALTER TABLE edge_event DROP CONSTRAINT "{constraint}" CASCADE'
                    if constraint
                    else f'DROP INDEX "{index}"'
                )
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
            txn.rollback()
        assert others and "ix_edge_event_waits_on" in plan, plan


def test_held_rows_keep_what_they_wait_for(api: Api) -> None:
    setup_workshop(api)
    api.create("/work-orders", {"code": "WO9", "item": "TBL", "planned_quantity": "1"})
    short, unknown = issue(5, "BOLT", "1"), receipt(6, "NEW", "1", "1")
    draft, posted = labour(7, "1", wo="WO9"), receipt(9, "RAW", "1", "1")
    api.events(short, unknown, draft, posted)
    with api.db.connect() as conn:
        rows = dict(
            conn.execute(
                select(EV.c.event_id, EV.c.waits_on).where(EV.c.tenant_id == api.tenant.id)
            ).all()
        )
    assert [rows[uuid.UUID(e["event_id"])] for e in (short, unknown, draft, posted)] == [
        "item:BOLT",
        "item:NEW",
        "work_order:WO9",
        None,
    ]


def test_a_failing_repost_does_not_fail_the_master_data_change(api: Api, monkeypatch: Any) -> None:
    """Whatever goes wrong re-posting (not only a database error), the change that
    woke the events stands and they stay held for the next trigger."""
    setup_workshop(api)
    ev = receipt(0, "NEW", "3", "7")
    api.events(ev)

    def broken(*_: Any) -> Any:
        raise AssertionError("the re-post failed")

    monkeypatch.setattr(held, "_post_runs", broken)
    answer = api.post("/items", json={"code": "NEW", "name": "New part", "kind": "raw"})
    assert answer.status_code == 201, answer.text
    assert "NEW" in {i["code"] for i in api.get("/items").json()}
    assert status_of(api, ev) == [("held", "unknown_item")]
    monkeypatch.undo()
    api.create("/items", {"code": "NEW2", "name": "Other", "kind": "raw"})
    assert status_of(api, ev) == [("held", "unknown_item")]  # not woken by another item


def _device(api: Api, name: str = "hh") -> tuple[str, dict[str, str]]:
    code = api.post("/devices/enrollment-codes", json={}).json()["code"]
    device = api.client.post("/api/v1/devices/enroll", json={"code": code, "name": name})
    body = device.json()
    return body["device_id"], {"Authorization": f"Bearer {body['key']}"}


def _send(api: Api, headers: dict[str, str], *events: dict[str, Any]) -> list[dict[str, Any]]:
    answer = api.client.post("/api/v1/edge/events", json={"events": list(events)}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]  # type: ignore[no-any-return]


def move_values(api: Api, *events: dict[str, Any]) -> list[D]:
    mv = m.SQLModel.metadata.tables["stock_move"]
    with api.db.connect() as conn:
        values = dict(
            conn.execute(
                select(mv.c.event_id, mv.c.value).where(mv.c.tenant_id == api.tenant.id)
            ).all()
        )
    return [D(values[uuid.UUID(e["event_id"])]) for e in events]


def test_reposts_follow_event_time_across_senders(api: Api) -> None:
    """A device's issues at 10 and 12 and the API key's at 11, all held; a receipt of
    six: the issues at 10 and 11 post (at the FIFO costs of the ordered history), the
    one at 12 waits, as if they had come in event order."""
    setup_workshop(api)
    _, device = _device(api)
    first, third = issue(10, "BOLT", "3", wo="WO1"), issue(12, "BOLT", "3", wo="WO1")
    second = issue(11, "BOLT", "3", wo="WO2")
    _send(api, device, first, third)
    api.events(second)
    assert [s for s, _ in status_of(api, first, second, third)] == ["held"] * 3
    api.events(receipt(0, "BOLT", "3", "1"), receipt(1, "BOLT", "3", "2"))
    assert status_of(api, first, second, third) == [
        ("posted", None),
        ("posted", None),
        ("held", "insufficient_stock"),
    ]
    assert [abs(v) for v in move_values(api, first, second)] == [D("3.00"), D("6.00")]
    api.events(receipt(2, "BOLT", "3", "4"))
    assert [abs(v) for v in move_values(api, first, second, third)] == [
        D("3.00"),
        D("6.00"),
        D("12.00"),
    ]
    assert api.reconcile() == []


def test_a_revoked_senders_held_events_do_not_post_on_its_authority(api: Api) -> None:
    """A revoked device's, a revoked API token's or a revoked tenant key's held event
    is refused when woken (forbidden) and stays held for a person; it never posts on
    an authority that no longer is."""
    setup_workshop(api)
    device_id, device = _device(api)
    _, other = _device(api, "receiving")
    token = api.post("/api-tokens", json={"name": "erp", "scopes": ["events:post"]}).json()
    by_device, by_token = issue(10, "BOLT", "1", wo="WO1"), issue(11, "BOLT", "1", wo="WO2")
    by_key = issue(12, "BOLT", "1", wo="WO2")
    _send(api, device, by_device)
    _send(api, {"Authorization": f"Bearer {token['token']}"}, by_token)
    api.events(by_key)
    assert api.post(f"/devices/{device_id}/revoke", json={}).status_code == 200
    assert api.post(f"/api-tokens/{token['id']}/revoke", json={}).status_code in (200, 204)
    with api.db.begin() as conn:
        revoke_api_key(conn, api.tenant.id, now_utc(), ("user", "owner"))
    (answer,) = _send(api, other, receipt(0, "BOLT", "5", "1"))
    assert answer["status"] == "posted"
    assert status_of(api, by_device, by_token, by_key) == [("held", "insufficient_stock")] * 3


def test_a_live_api_key_and_token_keep_their_authority(api: Api) -> None:
    setup_workshop(api)
    _, other = _device(api)
    token = api.post("/api-tokens", json={"name": "erp", "scopes": ["events:post"]}).json()
    by_token, by_key = issue(11, "BOLT", "1", wo="WO2"), issue(12, "BOLT", "1", wo="WO2")
    _send(api, {"Authorization": f"Bearer {token['token']}"}, by_token)
    api.events(by_key)
    _send(api, other, receipt(0, "BOLT", "5", "1"))
    assert status_of(api, by_token, by_key) == [("posted", None)] * 2


# -- the edge learns it --------------------------------------------------------------------
def _forwarding(api: Api) -> httpx.MockTransport:
    """The edge's HTTP client talking to the test app (either database)."""

    def forward(request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("idempotency-key",)}
        headers["content-type"] = "application/json"
        answer = api.client.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers=headers,
        )
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    return httpx.MockTransport(forward)


def test_the_edge_learns_that_its_held_event_was_posted(api: Api, tmp_path: Path) -> None:
    setup_workshop(api)
    outbox = outbox_with(tmp_path, 0)
    captured = outbox.capture(
        Capture(
            type="material_issue",
            payload={"work_order": "WO1", "item": "RAW", "location": "WH", "quantity": "4"},
            device_id="ws",
            occurred_at=BASE_TIME.replace(hour=8),
        )
    )
    clock = [0.0]
    recheck = HeldRecheck(interval_s=60, clock=lambda: clock[0])
    client = CloudClient("http://cloud", "unused", transport=_forwarding(api))
    syncer = Syncer(outbox, client, held_recheck=recheck)
    report = syncer.sync_once()
    assert report.counts == {"held": 1}
    assert outbox.status().held_count == 1
    # the missing receipt comes through another door (the office, another edge)
    api.events(receipt(0, "RAW", "10", "2"))
    assert status_of(api, {"event_id": captured.event_id}) == [("posted", None)]
    assert outbox.status().held_count == 1  # the edge does not know it yet
    assert syncer.sync_once().sent == 1  # held ones asked about again at once: due
    status = outbox.status()
    assert (status.held_count, status.parked_count) == (0, 0)
    event = outbox.event(captured.event_id)
    assert event is not None and event.state == "sent"
    assert status_of(api, {"event_id": captured.event_id}) == [("posted", None)]
    assert api.balances()["5001"] == D("8.00")  # posted once


def test_the_edge_asks_again_only_every_interval(api: Api, tmp_path: Path) -> None:
    setup_workshop(api)
    outbox = outbox_with(tmp_path, 0)
    outbox.capture(
        Capture(
            type="material_issue",
            payload={"work_order": "WO1", "item": "RAW", "location": "WH", "quantity": "4"},
            device_id="ws",
            occurred_at=BASE_TIME,
        )
    )
    calls: list[int] = []
    inner = _forwarding(api)

    def counting(request: httpx.Request) -> httpx.Response:
        calls.append(len(json.loads(request.content)["events"]))
        return inner.handle_request(request)

    clock = [0.0]
    client = CloudClient("http://cloud", "unused", transport=httpx.MockTransport(counting))
    syncer = Syncer(outbox, client, held_recheck=HeldRecheck(interval_s=60, clock=lambda: clock[0]))
    syncer.sync_once()  # sent: held
    syncer.sync_once()  # due: asked again, still held
    syncer.sync_once()  # not due
    clock[0] = 59
    syncer.sync_once()
    assert calls == [1, 1]
    clock[0] = 60
    syncer.sync_once()
    assert calls == [1, 1, 1]
    assert outbox.status().held_count == 1


# -- any arrival order ---------------------------------------------------------------------
def _second_store(api: Api) -> None:
    setup_workshop(api)
    api.create("/locations", {"code": "WH2", "name": "Second store", "kind": "warehouse"})


PLANNED = {"WO1": D(10), "WO2": D(5)}
step = st.tuples(
    st.sampled_from(["receipt", "receipt", "issue", "labour", "completion", "shipment"]),
    st.sampled_from(["RAW", "BOLT"]),
    st.sampled_from(["WH", "WH2"]),
    st.integers(min_value=1, max_value=6),
    st.sampled_from(["WO1", "WO2"]),
    st.integers(min_value=1, max_value=40).map(lambda c: D(c) / 4),  # a unit price
)


def valid_history(steps: list[Any]) -> list[dict[str, Any]]:
    """Events at increasing times that never take more than is there at that time (so
    the history is valid in event order) and complete no more than planned."""
    on_hand: dict[tuple[str, str], int] = {}
    completed = dict.fromkeys(PLANNED, D(0))
    history = []
    for minute, (kind, item, place, n, wo, price) in enumerate(steps, start=1):
        if kind == "receipt":
            ev = receipt(minute, item, str(n), str(price), location=place)
            on_hand[item, place] = on_hand.get((item, place), 0) + n
        elif kind == "issue":
            n = min(n, on_hand.get((item, place), 0))
            if not n:
                continue
            ev = issue(minute, item, str(n), wo=wo, location=place)
            on_hand[item, place] -= n
        elif kind == "labour":
            ev = labour(minute, str(n), wo=wo)
        elif kind == "completion":
            n = int(min(D(n), PLANNED[wo] - completed[wo]))
            if not n:
                continue
            ev = completion(minute, str(n), wo=wo)
            completed[wo] += n
            on_hand["TBL", "WH"] = on_hand.get(("TBL", "WH"), 0) + n
        else:
            n = min(n, on_hand.get(("TBL", "WH"), 0))
            if not n:
                continue
            ev = shipment(minute, "TBL", str(n), str(price * 10))
            on_hand["TBL", "WH"] -= n
        history.append(ev)
    return history


def assert_any_order_ends_as_in_order(db: Engine, steps: list[Any], seed: int) -> None:
    history = valid_history(steps)
    rng = random.Random(seed)
    arrival = history[:]
    rng.shuffle(arrival)
    api = Api(db)
    _second_store(api)
    while arrival:
        size = rng.randint(1, 4)
        batch, arrival = arrival[:size], arrival[size:]
        api.events(*batch)
    assert held_count(api) == 0, api.get("/exceptions").json()
    if history:
        assert_same_books(api, in_order_books(db, history, _second_store))


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(step, min_size=1, max_size=18), seed=st.integers(0, 2**32))
def test_any_arrival_order_ends_with_nothing_held_and_the_in_order_books_sqlite(
    sqlite_db: Engine, steps: list[Any], seed: int
) -> None:
    assert_any_order_ends_as_in_order(sqlite_db, steps, seed)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(step, min_size=1, max_size=18), seed=st.integers(0, 2**32))
def test_any_arrival_order_ends_with_nothing_held_and_the_in_order_books_postgres(
    pg_db: Engine, steps: list[Any], seed: int
) -> None:
    assert_any_order_ends_as_in_order(pg_db, steps, seed)


@pytest.mark.parametrize("seed", range(3))
def test_a_shuffled_arrival_of_a_long_history_ends_as_in_order(db: Engine, seed: int) -> None:
    """Longer histories than the property test's, shuffled and split into batches."""
    rng = random.Random(seed)
    steps = [
        (
            rng.choice(["receipt", "issue", "issue", "labour", "completion", "shipment"]),
            rng.choice(["RAW", "BOLT"]),
            rng.choice(["WH", "WH2"]),
            rng.randint(1, 6),
            rng.choice(["WO1", "WO2"]),
            D(rng.randint(1, 40)) / 4,
        )
        for _ in range(30)
    ]
    assert_any_order_ends_as_in_order(db, steps, seed)
