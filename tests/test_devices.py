"""Devices and the subscription gate (SAAS.md cases 14-17): one-time enrollment codes,
per-device keys (rotation with overlap, revocation at once), what a device may call,
and ingest under an unpaid subscription or an exhausted quota (402/429 with
Retry-After, nothing posted, the edge keeps buffering)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc
from cloud_api.services import subscriptions as sub_store
from erp.cli import app as erp
from tenant import metering
from tenant import subscriptions as subs
from tests.conftest import Api
from tests.edge_harness import cloud
from tests.factory import completion, issue, receipt, setup_workshop

T = m.SQLModel.metadata.tables


def _code(api: Api) -> str:
    response = api.post("/devices/enrollment-codes", json={})
    assert response.status_code == 201, response.text
    return response.json()["code"]  # type: ignore[no-any-return]


def _enroll(api: Api, code: str, name: str = "edge-1") -> Any:
    return api.client.post("/api/v1/devices/enroll", json={"code": code, "name": name})


def _as(api: Api, key: str) -> Callable[..., Any]:
    def call(method: str, path: str, **kw: Any) -> Any:
        return api.client.request(
            method, "/api/v1" + path, headers={"Authorization": f"Bearer {key}"}, **kw
        )

    return call


def _device(api: Api) -> tuple[str, str]:
    body = _enroll(api, _code(api)).json()
    return body["device_id"], body["key"]


def test_enrolled_device_posts_and_may_call_nothing_else(api: Api) -> None:
    setup_workshop(api)
    device_id, key = _device(api)
    assert key.startswith("dk_live_")
    call = _as(api, key)
    posted = call("POST", "/edge/events", json={"events": [receipt(1, "RAW", "5", "2")]})
    assert posted.status_code == 200 and posted.json()["posted"] == 1
    assert call("GET", "/edge/masterdata").status_code == 200
    beat = call("POST", "/edge/heartbeat", json={"edge_id": "e1", "sent_at": now_utc().isoformat()})
    assert beat.status_code == 200
    for method, path in (("GET", "/items"), ("POST", "/devices/enrollment-codes")):
        refused = call(method, path, json={})
        assert refused.status_code == 403 and refused.json()["code"] == "device_not_allowed"
    (listed,) = api.get("/devices").json()
    assert listed["id"] == device_id and listed["live_keys"] == 1
    assert listed["last_seen_at"] is not None
    audit = _audit_actions(api)
    assert "device.enroll" in audit and "enrollment_code.create" in audit


def _audit_actions(api: Api) -> list[str]:
    log = T["audit_log"]
    with api.db.connect() as conn:
        rows = conn.execute(log.select().where(log.c.tenant_id == api.tenant.id)).all()
    return [r.action for r in rows]


def test_enrollment_codes_are_single_use_expire_and_stay_in_their_tenant(db: Engine) -> None:
    a, b = Api(db), Api(db)
    code = _code(a)
    assert _enroll(a, code).status_code == 201
    again = _enroll(a, code, "edge-2")
    assert again.status_code == 401 and again.json()["code"] == "invalid_enrollment_code"
    assert _enroll(a, "ABCD-EFGH-JKMN-PQRS").status_code == 401  # never issued
    assert _enroll(a, "not a code").status_code == 401
    old = _code(a)
    ec = T["enrollment_code"]
    with db.begin() as conn:  # issued 24 h and a second ago
        conn.execute(
            update(ec)
            .where(ec.c.tenant_id == a.tenant.id, ec.c.used_at.is_(None))
            .values(created_at=now_utc() - timedelta(hours=24, seconds=1))
        )
    assert _enroll(a, old, "edge-3").status_code == 401
    # B's code enrolls into B, whoever uses it
    body = _enroll(a, _code(b), "edge-b").json()
    assert [d["id"] for d in b.get("/devices").json()] == [body["device_id"]]
    assert all(d["id"] != body["device_id"] for d in a.get("/devices").json())


def test_revocation_is_immediate_and_rotation_overlaps(api: Api) -> None:
    setup_workshop(api)
    device_id, first = _device(api)
    second = api.post(f"/devices/{device_id}/rotate").json()["key"]
    event = {"events": [receipt(1, "RAW", "1", "2")]}
    for key in (first, second):  # both live during the overlap
        assert _as(api, key)("POST", "/edge/events", json=event).status_code == 200
    dk = T["device_key"]
    with api.db.begin() as conn:  # the overlap of the first key ran out
        conn.execute(
            update(dk)
            .where(dk.c.tenant_id == api.tenant.id, dk.c.rotated_at.is_not(None))
            .values(rotated_at=now_utc() - timedelta(days=7, seconds=1))
        )
    assert _as(api, first)("POST", "/edge/events", json=event).status_code == 401
    third = api.post(f"/devices/{device_id}/rotate").json()["key"]
    fourth = api.post(f"/devices/{device_id}/rotate").json()["key"]
    assert _as(api, third)("GET", "/edge/masterdata").status_code == 200
    assert _as(api, second)("GET", "/edge/masterdata").status_code == 401  # at most 2 live
    tampered = fourth[:-2] + ("A" if fourth[-2] != "A" else "B") + fourth[-1]
    assert _as(api, tampered)("GET", "/edge/masterdata").status_code == 401
    assert api.post(f"/devices/{device_id}/revoke").status_code == 200
    for key in (third, fourth):
        refused = _as(api, key)("POST", "/edge/events", json=event)
        assert refused.status_code == 401 and refused.json()["code"] == "invalid_device_key"
    assert api.post(f"/devices/{device_id}/rotate").status_code == 404


def _set_subscription(api: Api, change: Callable[[subs.Subscription], subs.Subscription]) -> None:
    with api.db.begin() as conn:
        sub_store.save(conn, api.tenant.id, change(sub_store.load(conn, api.tenant.id)))


def test_unpaid_subscription_gets_402_with_retry_after_and_nothing_posts(api: Api) -> None:
    setup_workshop(api)
    now = now_utc()

    def lapse(sub: subs.Subscription) -> subs.Subscription:
        sub, _ = subs.renewal_failed(sub, now - timedelta(days=15))
        return subs.advance(sub, now)[0]  # the 14-day grace is over: unpaid

    _set_subscription(api, lapse)
    assert api.get("/subscription").json()["state"] == "unpaid"
    refused = api.post("/edge/events", json={"events": [receipt(1, "RAW", "5", "2")]})
    assert refused.status_code == 402 and refused.json()["code"] == "subscription_inactive"
    assert int(refused.headers["Retry-After"]) > 0
    assert api.get("/reports/stock").json() == []  # nothing posted
    assert api.get("/items").status_code == 200  # reading still works
    assert api.get("/export").status_code == 200  # and the export
    # an integration's other writes follow SAAS.md's "Writes (portal/API)" column
    write = api.post("/items", json={"code": "NEW", "name": "New", "kind": "raw"})
    assert write.status_code == 402 and write.json()["code"] == "subscription_inactive"
    assert "NEW" not in {i["code"] for i in api.get("/items").json()}
    _set_subscription(api, lambda sub: subs.record_payment(sub, now)[0])
    (ok,) = api.events(receipt(1, "RAW", "5", "2"))
    assert ok["status"] == "posted"


def test_suspended_tenant_devices_get_403(api: Api) -> None:
    setup_workshop(api)
    _set_subscription(api, lambda sub: subs.suspend(sub, "abuse report", now_utc())[0])
    refused = api.post("/edge/events", json={"events": [receipt(1, "RAW", "5", "2")]})
    assert refused.status_code == 403 and refused.json()["code"] == "tenant_suspended"
    for method, path in (("GET", "/items"), ("POST", "/periods/2026-01/close")):
        other = api.client.request(method, "/api/v1" + path)
        assert other.status_code == 403 and other.json()["code"] == "tenant_suspended"


def test_monthly_quota_soft_then_429_and_the_other_tenant_is_untouched(db: Engine) -> None:
    a, b = Api(db), Api(db)
    for api in (a, b):
        setup_workshop(api)
        _set_subscription(api, lambda sub: subs.start_trial("starter", now_utc())[0])
    month = metering.month_key(now_utc())
    u = T["usage_counter"]
    with db.begin() as conn:  # a trial allows 5,000 events a month, +10 %: 5,500
        conn.execute(u.insert().values(tenant_id=a.tenant.id, month=month, events=5499))
    (last,) = a.events(receipt(1, "RAW", "5", "2"))
    assert last["status"] == "posted"
    refused = a.post("/edge/events", json={"events": [receipt(2, "RAW", "5", "2")]})
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) > 0
    assert a.get("/subscription").json()["events_this_month"] == 5500
    (other,) = b.events(receipt(1, "RAW", "5", "2"))
    assert other["status"] == "posted"
    assert b.get("/subscription").json()["events_this_month"] == 1


def test_a_device_beyond_the_plan_is_refused(api: Api) -> None:
    _set_subscription(api, lambda sub: subs.start_trial("starter", now_utc())[0])
    for name in ("edge-1", "edge-2"):  # a trial allows 2 devices
        assert _enroll(api, _code(api), name).status_code == 201
    refused = _enroll(api, _code(api), "edge-3")
    assert refused.status_code == 402 and refused.json()["code"] == "plan_limit"


def test_a_device_posts_only_what_it_was_enrolled_for(api: Api) -> None:
    """SAAS.md's "✓ scoped" for devices: a receiving handheld enrolled for stock
    movements may not report a completion (rejected `forbidden`, nothing posted, kept
    in the queue); a device enrolled before scopes were narrowed ("events:post") posts
    every kind; an unknown scope, or reads alone, is refused with nothing issued."""
    setup_workshop(api)
    unknown = api.post("/devices/enrollment-codes", json={"scopes": ["stock:post", "root"]})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_scope"
    reads = api.post("/devices/enrollment-codes", json={"scopes": ["items:read"]})
    assert reads.status_code == 422 and reads.json()["code"] == "unknown_scope"
    code = api.post("/devices/enrollment-codes", json={"scopes": ["stock:post"]}).json()["code"]
    body = _enroll(api, code, "receiving-1").json()
    (listed,) = [d for d in api.get("/devices").json() if d["id"] == body["device_id"]]
    assert set(listed["scopes"]) == {"stock:post", "items:read", "work_orders:read"}
    call = _as(api, body["key"])
    posted = call("POST", "/edge/events", json={"events": [receipt(1, "RAW", "5", "2")]})
    assert posted.json()["results"][0]["status"] == "posted"
    made = completion(5, "1")
    refused = call("POST", "/edge/events", json={"events": [made]}).json()["results"][0]
    assert (refused["status"], refused["code"]) == ("rejected", "forbidden")
    assert "not enrolled to post a production completion" in refused["message"]
    queued = api.get("/exceptions", params={"status": "rejected"}).json()
    assert [e["event_id"] for e in queued] == [made["event_id"]]
    assert call("GET", "/edge/masterdata").status_code == 200  # its reads come with it

    d = m.SQLModel.metadata.tables["device"]
    with api.db.begin() as conn:  # as enrolled before: every kind
        conn.execute(
            update(d)
            .where(d.c.tenant_id == api.tenant.id, d.c.id == uuid.UUID(body["device_id"]))
            .values(scopes="events:post items:read work_orders:read")
        )
    again = call("POST", "/edge/events", json={"events": [made]}).json()["results"][0]
    assert again["code"] != "forbidden" and again["status"] in {"posted", "held"}


def test_a_site_beyond_the_plan_is_refused(api: Api) -> None:
    """Sites are a hard limit too: a trial has one. A code for a second site is refused
    at once; one issued before the first device made the site count is refused when
    the edge enrolls with it, and nothing is enrolled."""
    _set_subscription(api, lambda sub: subs.start_trial("starter", now_utc())[0])
    early = api.post("/devices/enrollment-codes", json={"site": "plant-2"}).json()["code"]
    assert _enroll(api, _code(api), "edge-1").status_code == 201  # site "main" counts
    refused = api.post("/devices/enrollment-codes", json={"site": "plant-2"})
    assert refused.status_code == 402 and refused.json()["code"] == "plan_limit"
    assert "site" in refused.json()["detail"]
    late = _enroll(api, early, "edge-2")
    assert late.status_code == 402 and late.json()["code"] == "plan_limit"
    assert [d["name"] for d in api.get("/devices").json()] == ["edge-1"]
    assert api.post("/devices/enrollment-codes", json={"site": "main"}).status_code == 201


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_erp_edge_enroll_writes_the_key_the_agent_then_uses(
    api: Api, db: Engine, tmp_path: Path
) -> None:
    setup_workshop(api)
    with cloud(db) as server:
        config = tmp_path / "edge.toml"
        config.write_text(
            f'[edge]\nid = "edge-cli"\noutbox = "outbox.sqlite3"\n'
            f'[cloud]\nurl = "{server.url}"\napi_key_file = "edge.key"\n'
        )
        result = CliRunner().invoke(erp, ["edge", "enroll", "--config", str(config), _code(api)])
        assert result.exit_code == 0, result.output
        key_file = tmp_path / "edge.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert "dk_live_" not in result.output  # never shown
        from edge_agent.config import load_config
        from edge_agent.sync import CloudClient

        cfg = load_config(config)
        assert cfg.api_key.startswith("dk_live_")
        pulled = CloudClient(cfg.cloud_url, cfg.api_key).master_data(None)
        assert {"RAW", "TBL"} <= {i["code"] for i in pulled["items"]}
        reused = CliRunner().invoke(erp, ["edge", "enroll", "--config", str(config), "XXXX"])
        assert reused.exit_code == 1 and "not valid" in reused.output


def test_the_scheduled_tick_applies_due_transitions_once_and_audits_them(db: Engine) -> None:
    from cloud_api.services.subscriptions import tick_all

    api = Api(db)
    started = now_utc() - timedelta(days=15)  # a 14-day trial, no card: over
    _set_subscription(api, lambda sub: subs.start_trial("starter", started)[0])
    moves = [move for tenant_id, move in tick_all(db, now_utc()) if tenant_id == api.tenant.id]
    assert [(m.from_state, m.to_state) for m in moves] == [("trialing", "paused")]
    assert "subscription.trial_ended" in _audit_actions(api)
    assert api.get("/subscription").json()["state"] == "paused"
    again = [tid for tid, _ in tick_all(db, now_utc()) if tid == api.tenant.id]
    assert again == []
    refused = api.post("/edge/events", json={"events": [receipt(1, "RAW", "5", "2")]})
    assert refused.status_code == 402 and int(refused.headers["Retry-After"]) > 0


def test_renewal_invoice_overdue_then_paid_by_transfer(db: Engine) -> None:
    from cloud_api.services.billing import record_payment
    from cloud_api.services.subscriptions import tick_all

    api = Api(db)  # active on pro, a period of 30 days from now
    start = now_utc()
    _set_subscription(
        api, lambda sub: subs.record_payment(subs.start_checkout("starter", start)[0], start)[0]
    )
    tick_all(db, start + timedelta(days=22))  # 8 days before the end: nothing yet
    assert api.get("/subscription/invoices").json() == []
    tick_all(db, start + timedelta(days=24))  # 6 days before: the renewal invoice
    (invoice,) = api.get("/subscription/invoices").json()
    assert (invoice["net"], invoice["vat"], invoice["total"]) == ("299.00", "17.94", "316.94")
    assert invoice["status"] == "open"
    tick_all(db, start + timedelta(days=25))  # issued once per period
    assert len(api.get("/subscription/invoices").json()) == 1
    tick_all(db, start + timedelta(days=30, seconds=1))  # due and unpaid: past due
    assert api.get("/subscription").json()["state"] == "past_due"
    paid_at = start + timedelta(days=31)
    with db.begin() as conn:
        sub = record_payment(conn, api.tenant.id, invoice["number"], "BOC-7788", paid_at)
    assert sub.state == "active" and sub.current_period_end == paid_at + timedelta(days=30)
    (paid,) = api.get("/subscription/invoices").json()
    assert paid["status"] == "paid" and paid["payment_reference"] == "BOC-7788"
    with db.begin() as conn, pytest.raises(Exception, match="is paid"):
        record_payment(conn, api.tenant.id, invoice["number"], "again", paid_at)
    assert "invoice.paid" in _audit_actions(api) and "invoice.overdue" in _audit_actions(api)


def test_held_events_are_metered_when_they_post_not_when_they_are_held(api: Api) -> None:
    """A held event is not a posted one; re-posted from the queue, it counts once.
    Closes and reversals posted by the API count like any posted event."""
    setup_workshop(api)
    (held,) = api.events(issue(1, "RAW", "2"))  # no stock yet
    assert held["status"] == "held"
    assert api.get("/subscription").json()["events_this_month"] == 0
    # before the issue: the issue re-posts itself with it, and counts then
    (posted,) = api.events(receipt(0, "RAW", "5", "2"))
    assert api.get("/subscription").json()["events_this_month"] == 2
    again = api.post(f"/exceptions/{held['event_id']}/repost")
    assert again.status_code == 409  # not held any more: nothing posts, nothing counts
    reversed_ = api.post(f"/events/{posted['event_id']}/reverse", json={"reason": "x"})
    assert reversed_.status_code == 409  # its stock went to WO1: the reversal is held
    assert api.get("/subscription").json()["events_this_month"] == 2


def test_work_order_progress_by_id_or_code_for_a_device_scoped_to_it(api: Api) -> None:
    """POST /work-orders/{id or code}/progress: a station enrolled for progress reports a
    completion and hours on an order; its event id makes a repeat post nothing more; a
    receiving handheld (stock:post) is refused, as is a work order in the body; a
    completion the state holds (a closed order) is 409 with nothing kept; an unknown
    code is 404 with no security event (a code is not a probe), an unknown id is."""
    setup_workshop(api)
    api.events(receipt(1, "RAW", "50", "2"), issue(2, "RAW", "4"))
    station = api.post("/devices/enrollment-codes", json={"scopes": ["progress:post"]})
    call = _as(api, _enroll(api, station.json()["code"], "station-1").json()["key"])
    wo1 = api.get("/work-orders/WO1").json()["id"]
    done = {"location": "WH", "quantity": "2"}
    event_id = str(uuid.uuid4())
    body = {"type": "production_completion", "payload": done, "event_id": event_id}
    needs_time = call("POST", f"/work-orders/{wo1}/progress", json=body)
    assert (needs_time.status_code, needs_time.json()["code"]) == (422, "occurred_at_required")
    body["occurred_at"] = now_utc().isoformat()
    posted = call("POST", f"/work-orders/{wo1}/progress", json=body)
    assert posted.status_code == 201, posted.text
    assert (posted.json()["status"], posted.json()["work_order"]) == ("posted", "WO1")
    again = call("POST", "/work-orders/WO1/progress", json=body)  # by code, same event
    assert (again.status_code, again.json()["status"]) == (201, "duplicate")
    assert again.json()["journal_entry_id"] == posted.json()["journal_entry_id"]
    hours = {"type": "labour", "payload": {"work_center": "WC", "hours": "1.5"}}
    assert call("POST", "/work-orders/WO1/progress", json=hours).status_code == 201
    cost = api.get("/work-orders/WO1/cost").json()
    assert cost["completed_quantity"] == "2.000000", cost

    smuggled = {"type": "labour", "payload": {"work_order": "WO2", "work_center": "WC"}}
    refused = call("POST", "/work-orders/WO1/progress", json=smuggled)
    assert (refused.status_code, refused.json()["code"]) == (422, "work_order_in_body")
    handheld = api.post("/devices/enrollment-codes", json={"scopes": ["stock:post"]})
    receiver = _as(api, _enroll(api, handheld.json()["code"], "recv-1").json()["key"])
    forbidden = receiver("POST", "/work-orders/WO1/progress", json=hours)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
    assert api.post("/work-orders/WO2/cancel").status_code == 200
    anew = {**body, "event_id": None, "occurred_at": None}
    closed = call("POST", "/work-orders/WO2/progress", json=anew)
    assert closed.status_code == 409, closed.text
    assert api.get("/exceptions", params={"status": "held"}).json() == []

    unknown = call("POST", "/work-orders/NOPE/progress", json=hours)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_work_order")
    strangers = [str(uuid.uuid4()), uuid.uuid4().hex]  # an id, in either spelling
    for stranger in strangers:
        answer = call("POST", f"/work-orders/{stranger}/progress", json=hours)
        assert answer.status_code == 404
    probes = [r["object"] for r in api.get("/audit-log").json() if r["action"].startswith("sec")]
    assert sorted(probes) == sorted(f"work_order:{s}" for s in strangers)


def test_a_device_moves_stock_at_its_own_sites_locations_only(api: Api) -> None:
    """SAAS.md: an enrollment is scoped to tenant + site. A warehouse is at a site (a
    bin at its warehouse's); a device enrolled at one site that names another site's
    warehouse or bin is rejected `location_outside_site` and nothing moves; people and
    integrations are not bound to a site."""
    setup_workshop(api)
    api.create("/locations", {"code": "WH2", "name": "Plant 2", "kind": "warehouse", "site": "p2"})
    api.create("/locations", {"code": "B2", "name": "Bin", "kind": "bin", "parent_code": "WH2"})
    mismatch = {"code": "B3", "name": "Bin", "kind": "bin", "parent_code": "WH2", "site": "main"}
    refused = api.post("/locations", json=mismatch)
    assert (refused.status_code, refused.json()["code"]) == (422, "site_mismatch")
    sites = {row["code"]: row["site"] for row in api.get("/locations").json()}
    assert (sites["WH"], sites["WH2"], sites["B2"]) == ("main", "p2", "p2")

    main = _as(api, _device(api)[1])
    code = api.post("/devices/enrollment-codes", json={"site": "p2"}).json()["code"]
    plant2 = _as(api, _enroll(api, code, "p2-gate").json()["key"])
    for caller, place, outcome in [
        (main, "WH2", "location_outside_site"),
        (main, "B2", "location_outside_site"),
        (plant2, "WH", "location_outside_site"),
        (main, "WH", "posted"),
        (plant2, "B2", "posted"),
    ]:
        event = receipt(1, "RAW", "3", "2", location=place)
        (result,) = caller("POST", "/edge/events", json={"events": [event]}).json()["results"]
        assert (result["code"] or result["status"]) == outcome, (place, result)
    stock = api.get("/reports/stock").json()
    held = {(r["location"], r["item"]): Decimal(r["quantity"]) for r in stock}
    assert held == {("WH", "RAW"): 3, ("B2", "RAW"): 3}
    # a device's refused event stays refused when someone re-posts it from the queue
    queued = api.get("/exceptions", params={"status": "rejected"}).json()[0]
    again = api.post(f"/exceptions/{queued['event_id']}/repost")
    assert again.json()["code"] == "location_outside_site", again.text
    # the tenant key (an integration) is at no site
    (moved,) = api.events(receipt(2, "RAW", "1", "2", location="WH2"))
    assert moved["status"] == "posted"
    # and each edge is given its own site's warehouses and bins to check scans against
    for caller, seen in ((main, {"WH"}), (plant2, {"WH2", "B2"})):
        pulled = caller("GET", "/edge/masterdata").json()["locations"]
        assert {row["code"] for row in pulled} == seen
    assert {r["code"] for r in api.get("/edge/masterdata").json()["locations"]} >= {"WH", "WH2"}


def test_a_member_bound_to_a_site_manages_that_sites_devices_only(api: Api) -> None:
    """SAAS.md's RBAC row "Enroll / revoke devices: warehouse ✓ own site, production ✓
    own site": a member bound to a site gets codes for it (by default), and is refused
    `other_site` for another site's code or device; unbound, every site; the owner
    always every site. The site applies from the next request."""
    from tests.members import member_id
    from tests.test_users import PASSWORD, Browser, _email

    email = _email("clerk")
    member = {"email": email, "name": "Clerk", "role": "warehouse", "password": PASSWORD}
    added = api.post("/users", json={**member, "site": "p2"})
    assert added.status_code == 201 and added.json()["site"] == "p2", added.text
    listed = {u["email"]: u["site"] for u in api.get("/users").json()}
    assert listed[email] == "p2"
    clerk = Browser(api.db, api.client.app)
    assert clerk.log_in(email).status_code == 200
    own = clerk.call("POST", "/devices/enrollment-codes", json={})
    assert own.status_code == 201 and own.json()["site"] == "p2", own.text
    other = clerk.call("POST", "/devices/enrollment-codes", json={"site": "main"})
    assert (other.status_code, other.json()["code"]) == (403, "other_site")
    main_device, _ = _device(api)  # the tenant key: every site
    for action in ("rotate", "revoke"):
        refused = clerk.call("POST", f"/devices/{main_device}/{action}")
        assert (refused.status_code, refused.json()["code"]) == (403, "other_site"), action
    p2_device = _enroll(api, own.json()["code"], "p2-gate").json()["device_id"]
    assert clerk.call("POST", f"/devices/{p2_device}/rotate").status_code == 200
    assert clerk.call("POST", f"/devices/{p2_device}/revoke").status_code == 200

    user_id = member_id(api.get("/users").json(), email)
    assert api.patch(f"/users/{user_id}", json={}).json()["code"] == "nothing_to_change"
    freed = api.patch(f"/users/{user_id}", json={"site": None})
    assert freed.status_code == 200 and freed.json()["sessions_ended"] == 0, freed.text
    anywhere = clerk.call("POST", "/devices/enrollment-codes", json={"site": "main"})
    assert anywhere.status_code == 201, anywhere.text  # the same session, the next request
    audit = [r for r in api.get("/audit-log").json() if r["action"] == "member.site"]
    assert [(r["object"], r["detail"]) for r in audit] == [(user_id, "*")]


def test_a_device_name_in_use_is_409_and_the_code_stays_good(api: Api) -> None:
    """A second device enrolled under a name already in use was a 500 (the unique key);
    now 409 device_name_taken, nothing written, and the code still enrolls under
    another name."""
    first = _enroll(api, _code(api), "handheld-1")
    assert first.status_code == 201, first.text
    code = _code(api)
    again = _enroll(api, code, "handheld-1")
    assert again.status_code == 409 and again.json()["code"] == "device_name_taken", again.text
    assert [d["name"] for d in api.get("/devices").json()] == ["handheld-1"]
    other = _enroll(api, code, "handheld-2")
    assert other.status_code == 201, other.text
