"""The owner portal through a TestClient, on SQLite and PostgreSQL (as erp_app, so
row-level security applies): sign-in redirects, CSRF and Origin on every form, the
role check of each write, tenant isolation, the figures pages show after posting,
the exception queue, devices, the language stored per user, production (release,
close, cancel, the cost report), finance (trial balance, journal, statements,
receivables by age, period close and reopen), the subscription and the members."""

from __future__ import annotations

import re
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from decimal import Decimal as D
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.reporting.finance import ReceivableLine, aging, bucket_of
from cloud_api.services import held as held_events
from cloud_api.services import subscriptions
from cloud_api.services.tenants import tenant_by_id
from tenant.subscriptions import start_trial
from tests.conftest import Api
from tests.factory import setup_workshop
from tests.portal_helpers import PASSWORD, Portal, csrf_of, email, message_ids
from tests.roles import app_engines
from web.dashboard import BooksCheckCache
from web.i18n import Formats, translations

PAGES = ["/", "/inventory", "/exceptions", "/devices", "/inventory/RAW"]
NEW_PAGES = [
    "/production",
    "/finance/trial-balance",
    "/finance/journal",
    "/finance/statements",
    "/finance/receivables",
    "/finance/periods",
    "/subscription",
    "/users",
]


def _event(type_: str, payload: dict[str, Any], minutes_ago: float = 1) -> dict[str, Any]:
    """An edge event that happened just now (the dashboard shows this month)."""
    return {
        "event_id": str(uuid.uuid4()),
        "device_id": "hh-1",
        "seq": 1,
        "type": type_,
        "occurred_at": (now_utc() - timedelta(minutes=minutes_ago)).isoformat(),
        "operator": "OP-7",
        "payload": payload,
    }


def receipt(item: str, qty: str, price: str, minutes_ago: float = 10) -> dict[str, Any]:
    payload = {"supplier": "SUP", "item": item, "location": "WH", "quantity": qty}
    return _event("purchase_receipt", payload | {"unit_price": price}, minutes_ago)


def issue(item: str, qty: str, minutes_ago: float = 8) -> dict[str, Any]:
    payload = {"work_order": "WO1", "item": item, "location": "WH", "quantity": qty}
    return _event("material_issue", payload, minutes_ago)


class _Setup:
    """setup_workshop's `create` through the portal owner's API key."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def create(self, path: str, body: dict[str, Any]) -> None:
        response = self.portal.api("POST", path, json=body)
        assert response.status_code == 201, response.text


def post_events(portal: Portal, *events: dict[str, Any]) -> list[dict[str, Any]]:
    response = portal.api("POST", "/edge/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with `element_id` (tags dropped, spaces folded)."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(div|td|p|strong|code|section)>', html, re.S)
    assert found, f"no element {element_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def card(html: str, element_id: str) -> str:
    found = re.search(
        rf'id="{element_id}"><h3>.*?</h3>(.*?)</div>\s*(<div class="sub">.*?</div>)?', html, re.S
    )
    assert found, f"no card {element_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(0)).split())


@pytest.fixture
def owner(db: Engine) -> Portal:
    portal = Portal(db)
    portal.sign_up()
    return portal


def test_pages_redirect_to_the_login_without_a_live_session(db: Engine) -> None:
    anonymous = Portal(db)
    for page in PAGES + NEW_PAGES + ["/production/WO1"]:
        response = anonymous.get(page)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=" + page.split("?")[0])
    anonymous.client.cookies.set("__Host-session", "not-a-session", domain="testserver")
    assert anonymous.get("/inventory?q=x").headers["location"] == "/login?next=/inventory%3Fq%3Dx"
    assert anonymous.get("/login").status_code == 200


def test_login_goes_to_the_page_asked_for_and_refuses_alike(db: Engine, owner: Portal) -> None:
    address = email("owner")
    Portal(db).sign_up(address)
    browser = Portal(db)
    wrong, stranger = browser.log_in(address, "wrong password!"), browser.log_in(email("x"))
    assert wrong.status_code == stranger.status_code == 401
    assert "Incorrect email or password." in wrong.text and "Incorrect" in stranger.text
    assert "__Host-session" not in browser.client.cookies
    done = browser.log_in(address, next_path="/inventory")
    assert done.status_code == 303 and done.headers["location"] == "/inventory"
    assert browser.get("/inventory").status_code == 200
    assert Portal(db).log_in(address, next_path="//evil.test/x").headers["location"] == "/"
    mangled = Portal(db)  # a pre-session cookie that is not ours is replaced, not trusted
    mangled.client.cookies.set("__Host-presession", "x", domain="testserver")
    assert mangled.log_in(address).status_code == 303


def test_logout_ends_the_session_server_side(db: Engine, owner: Portal) -> None:
    cookie = owner.client.cookies.get("__Host-session")
    response = owner.post("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    replay = Portal(db)
    replay.client.cookies.set("__Host-session", cookie or "", domain="testserver")
    assert replay.get("/").status_code == 303


def test_repeated_failures_are_throttled(db: Engine) -> None:
    address = email("victim")
    Portal(db).sign_up(address)
    browser = Portal(db)
    for _ in range(5):
        assert browser.log_in(address, "wrong password!").status_code == 401
    throttled = browser.log_in(address)  # even the right password waits now
    assert throttled.status_code == 429 and throttled.headers["Retry-After"]


def test_sign_up_refuses_weak_passwords_and_posts_without_a_token(db: Engine) -> None:
    browser = Portal(db)
    form = {"company": "Oak", "name": "O", "email": email("weak"), "password": "password123"}
    weak = browser.post("/signup", form, page="/signup")
    assert weak.status_code == 422 and "Use at least 12 characters." in weak.text
    no_token = browser.client.post("/signup", data=form | {"password": PASSWORD})
    assert no_token.status_code == 403
    assert "__Host-session" not in browser.client.cookies


def test_an_empty_tenant_sees_every_page(owner: Portal) -> None:
    for page in ["/", "/inventory", "/exceptions", "/devices"]:
        response = owner.get(page)
        assert response.status_code == 200, (page, response.text[:500])
        assert 'name="csrf_token"' in response.text  # every form carries its token
        assert response.headers["cache-control"] == "no-store"
    dashboard = owner.get("/").text
    assert "CN¥0.00" in card(dashboard, "stock-raw")
    assert "Books agree" in card(dashboard, "books")
    assert "0" in card(dashboard, "held")
    assert "Trial" in dashboard  # the subscription's state banner
    assert "Nothing is held." in owner.get("/exceptions").text
    assert owner.get("/inventory/RAW").status_code == 404


def test_dashboard_and_inventory_show_what_was_posted(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    screw = {"code": "SCREW", "name": "Screw", "kind": "raw", "safety_stock": "50"}
    _Setup(owner).create("/items", screw)
    before = owner.get("/").text
    assert "1" in card(before, "below-safety") and "SCREW" in card(before, "below-safety")
    results = post_events(
        owner,
        receipt("RAW", "10", "10"),
        issue("RAW", "4"),
        _event("labour", {"work_order": "WO1", "work_center": "WC", "hours": "1"}, 6),
        _event(
            "production_completion", {"work_order": "WO1", "location": "WH", "quantity": "10"}, 4
        ),
        _event(
            "sales_shipment",
            {
                "customer": "CUS",
                "item": "TBL",
                "location": "WH",
                "quantity": "5",
                "unit_price": "20",
            },
            2,
        ),
    )
    assert [r["status"] for r in results] == ["posted"] * 5, results
    after = owner.get("/").text
    assert "CN¥0.00" in card(before, "stock-raw") and "CN¥0.00" in card(before, "revenue")
    assert "CN¥60.00" in card(after, "stock-raw")  # 100 received, 40 issued
    assert "CN¥0.00" in card(after, "stock-wip")  # 40 + 50 labour and overhead, completed
    assert "CN¥45.00" in card(after, "stock-finished")  # 90 made, half shipped
    assert "CN¥100.00" in card(after, "revenue")
    assert "CN¥55.00" in card(after, "margin") and "55.0 %" in card(after, "margin")
    assert "10" in card(after, "output-month") and "CN¥9.00" in card(after, "output-month")
    assert "Books agree" in card(owner.get("/?recheck=1").text, "books")
    _ = post_events(owner, receipt("SCREW", "60", "0.1"))
    assert "0" in card(owner.get("/").text, "below-safety")
    assert "SCREW" not in card(owner.get("/").text, "below-safety")
    stock = owner.get("/inventory").text
    assert "CN¥111.00" in text_of(stock, "inventory-total")  # 60 + 6 raw, 45 finished
    ledger = owner.get("/inventory/RAW").text
    assert ledger.count("/events/") == 2 and "Material issue" in ledger and "OP-7" in ledger
    issue_id = results[1]["event_id"]
    source = owner.get(f"/events/{issue_id}").text
    assert "5001" in source and "生产成本" in source and "CN¥40.00" in source


def test_the_dashboard_shows_yesterday_the_devices_and_a_books_difference(
    db: Engine, owner: Portal
) -> None:
    """The cards the main test does not reach: yesterday's output and unit cost, the
    devices online with the edges' backlog (and the devices page's agent table), and
    the books-check's red count once a kept total is tampered with."""
    setup_workshop(_Setup(owner))
    day = 24 * 60  # exactly a day ago is yesterday, in any time zone without DST
    results = post_events(
        owner,
        receipt("RAW", "10", "10", minutes_ago=day + 60),
        issue("RAW", "4", minutes_ago=day + 30),
        _event(
            "production_completion",
            {"work_order": "WO1", "location": "WH", "quantity": "8"},
            day,
        ),
    )
    assert [r["status"] for r in results] == ["posted"] * 3, results
    page = owner.get("/").text
    yesterday = card(page, "output-yesterday")
    # 8 of the order's 10 take 8/10 of the 40 issued: 32, so 4.00 each
    assert "8" in yesterday and "CN¥4.00" in yesterday, yesterday

    code = owner.api("POST", "/devices/enrollment-codes", json={}).json()["code"]
    key = owner.client.post("/api/v1/devices/enroll", json={"code": code, "name": "hh-1"})
    beat = {
        "edge_id": "edge-line-1",
        "agent_version": "1.0",
        "sent_at": (now_utc() - timedelta(seconds=3)).isoformat(),
        "backlog": 7,
        "parked": 2,
        "last_sync_error": "timed out",
    }
    sent = owner.client.post(
        "/api/v1/edge/heartbeat",
        json=beat,
        headers={"Authorization": f"Bearer {key.json()['key']}"},
    )
    assert sent.status_code == 200, sent.text
    devices_card = card(owner.get("/").text, "devices")
    assert "1 / 0" in devices_card and "backlog 7" in devices_card, devices_card
    agents = owner.get("/devices").text
    row = agents[agents.index('id="agent-list"') :]
    assert "edge-line-1" in row and ">7<" in row and ">2<" in row and "timed out" in row
    assert "2 events parked" in text_of(owner.get("/exceptions").text, "parked-on-edges")

    ad = m.SQLModel.metadata.tables["account_day"]
    tenant_id = uuid.UUID(owner.api("GET", "/me").json()["tenant_id"])
    with db.begin() as conn:
        # one day's row: near the tenant's midnight the receipt and the issue fall on
        # two days, and tampering with both would make two differences
        day = conn.scalar(
            select(func.min(ad.c.entry_date)).where(
                ad.c.tenant_id == tenant_id, ad.c.account_code == "1403"
            )
        )
        conn.execute(
            ad.update()
            .where(ad.c.tenant_id == tenant_id, ad.c.account_code == "1403")
            .where(ad.c.entry_date == day)
            .values(debit=ad.c.debit + D("0.01"))
        )
    red = card(owner.get("/?recheck=1").text, "books")
    assert re.search(r"\b1 differences", red), red


def test_a_held_event_is_fixed_from_the_queue_or_voided_with_a_reason(
    owner: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what its receipt would re-post by itself (tests/test_held_repost.py) is left to
    # the queue's button here
    monkeypatch.setattr(held_events, "MAX_PASSES", 0)
    setup_workshop(_Setup(owner))
    (held,) = post_events(owner, issue("BOLT", "3", minutes_ago=5))
    assert held["status"] == "held" and held["code"] == "insufficient_stock"
    queue = owner.get("/exceptions").text
    assert "Not enough stock" in queue and "Receive the missing stock" in queue
    still = owner.post(f"/exceptions/{held['event_id']}/repost", page="/exceptions")
    assert still.headers["location"] == "/exceptions?notice=still_held&code=insufficient_stock"
    post_events(owner, receipt("BOLT", "10", "2", minutes_ago=30))
    done = owner.post(f"/exceptions/{held['event_id']}/repost", page="/exceptions")
    assert done.status_code == 303 and done.headers["location"] == "/exceptions?notice=posted"
    assert "Nothing is held." in owner.get("/exceptions").text
    assert "CN¥14.00" in card(owner.get("/").text, "stock-raw")  # 20 received, 6 issued
    (other,) = post_events(owner, issue("RAW", "1000"))
    assert other["status"] == "held"
    no_reason = owner.post(f"/exceptions/{other['event_id']}/void", {"reason": " "}, "/exceptions")
    assert no_reason.status_code == 422
    assert f"event-{other['event_id']}" in owner.get("/exceptions").text  # still queued
    voided = owner.post(
        f"/exceptions/{other['event_id']}/void", {"reason": "scanned twice"}, "/exceptions"
    )
    assert voided.headers["location"] == "/exceptions?notice=voided"
    queue = owner.get("/exceptions").text
    assert f"event-{other['event_id']}" not in queue and "scanned twice" in queue
    again = owner.post(f"/exceptions/{other['event_id']}/repost", page="/exceptions")
    assert again.status_code == 409  # voided for good
    assert owner.post(f"/exceptions/{uuid.uuid4()}/repost", page="/exceptions").status_code == 404
    assert owner.post("/exceptions/not-a-uuid/repost", page="/exceptions").status_code == 404


def test_a_rejected_event_waits_in_the_queue_until_posted_or_voided(
    db: Engine, owner: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejected edge event is kept for the queue (the edge parks its copy): shown
    with why and the fix, tried again when re-sent or re-posted (as who re-posts, so
    a reversal a clerk may not make posts once an owner re-posts it), or voided."""
    setup_workshop(_Setup(owner))
    glue = receipt("GLUE", "5", "3")  # lot-tracked, sent without its lot
    (rejected,) = post_events(owner, glue)
    assert rejected["status"] == "rejected" and rejected["code"] == "lot_required"
    queue = owner.get("/exceptions").text
    rejected_table = queue[queue.index('id="rejected-events"') :]
    assert f"event-{rejected['event_id']}" in rejected_table
    assert "The item is lot-tracked, and no lot was given" in rejected_table
    assert "Scan the lot" in rejected_table and "label and post it again" in rejected_table
    assert 'id="rejected-count">1 rejected</span>' in owner.get("/").text
    (again,) = post_events(owner, glue)  # re-sent (`erp edge retry`): tried again
    assert again["status"] == "rejected"
    (listed,) = owner.api("GET", "/exceptions", params={"status": "rejected"}).json()
    assert listed["event_id"] == rejected["event_id"] and listed["attempts"] == 2
    still = owner.post(f"/exceptions/{rejected['event_id']}/repost", page="/exceptions")
    assert still.headers["location"] == "/exceptions?notice=still_rejected&code=lot_required"
    assert "The event is still rejected." in owner.get(still.headers["location"]).text
    event_page = owner.get(f"/events/{rejected['event_id']}").text
    assert "Why it is rejected" in event_page and "rejected" in text_of(event_page, "event-status")
    voided = owner.post(
        f"/exceptions/{rejected['event_id']}/void", {"reason": "no lot label"}, "/exceptions"
    )
    assert voided.headers["location"] == "/exceptions?notice=voided"
    queue = owner.get("/exceptions").text
    assert "Nothing is rejected." in queue and "no lot label" in queue
    assert post_events(owner, glue)[0]["status"] == "duplicate"  # voided for good

    # a reversal sent by a warehouse clerk's session is rejected (not their right) ...
    (sold,) = post_events(owner, receipt("RAW", "4", "2"))
    assert "CN¥8.00" in card(owner.get("/").text, "stock-raw")
    clerk = Portal(db)
    assert clerk.log_in(owner.add_member("warehouse")).status_code == 303
    token = clerk.client.get("/api/v1/me").json()["csrf_token"]
    undo = _event("reversal", {"reverses_event_id": sold["event_id"], "reason": "typo"})
    sent = clerk.client.post(
        "/api/v1/edge/events", json={"events": [undo]}, headers={"X-CSRF-Token": token}
    )
    assert sent.json()["results"][0]["code"] == "forbidden", sent.text
    refused = clerk.post(f"/exceptions/{undo['event_id']}/repost", page="/exceptions")
    assert refused.status_code == 403 and "may not reverse" in refused.text
    # ... and posts when the owner, who may, re-posts it
    done = owner.post(f"/exceptions/{undo['event_id']}/repost", page="/exceptions")
    assert done.headers["location"] == "/exceptions?notice=posted"
    ev = m.SQLModel.metadata.tables["edge_event"]
    with db.connect() as conn:  # posted on the owner's authority: theirs to answer for
        by = conn.scalar(
            select(ev.c.posted_by)
            .where(ev.c.event_id == uuid.UUID(undo["event_id"]))
            .execution_options(cross_tenant=True)
        )
    assert by == "user:" + owner.client.get("/api/v1/me").json()["user_id"]
    assert "CN¥0.00" in card(owner.get("/").text, "stock-raw")

    monkeypatch.setattr("web.exception_queue.SHOWN", 1)
    post_events(owner, issue("BOLT", "3"), issue("BOLT", "4"), issue("BOLT", "5"))
    queue = owner.get("/exceptions").text
    assert queue.count('action="/exceptions/') // 2 == 1  # one row shown, re-post + void
    assert text_of(queue, "more-held").startswith("2 more held events wait after these")


def test_forms_need_the_session_token_and_our_origin(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    (held,) = post_events(owner, issue("BOLT", "3"))
    path = f"/exceptions/{held['event_id']}/void"
    token = owner.csrf("/exceptions")
    missing = owner.client.post(path, data={"reason": "no token"})
    wrong = owner.client.post(path, data={"reason": "wrong", "csrf_token": "0" * 64})
    foreign = owner.client.post(
        path,
        data={"reason": "foreign", "csrf_token": token},
        headers={"Origin": "https://evil.test"},
    )
    cross_site = owner.client.post(
        path,
        data={"reason": "x-site", "csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert [r.status_code for r in (missing, wrong, foreign, cross_site)] == [403] * 4
    assert "The form has expired" in missing.text
    assert f"event-{held['event_id']}" in owner.get("/exceptions").text  # nothing voided
    enroll = owner.client.post("/devices/enroll", data={"site": "main"})
    assert enroll.status_code == 403 and "enrollment-code" not in enroll.text


def test_a_viewer_sees_no_write_buttons_and_is_refused(db: Engine, owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    (held,) = post_events(owner, issue("BOLT", "3"))
    address = owner.add_member("viewer")
    viewer = Portal(db)
    assert viewer.log_in(address).status_code == 303
    assert "异常" in viewer.get("/exceptions").text  # an account's default language
    assert viewer.post("/language", {"lang": "en", "next": "/"}).status_code == 303
    queue = viewer.get("/exceptions").text
    assert f"event-{held['event_id']}" in queue and "/repost" not in queue and "/void" not in queue
    devices = viewer.get("/devices").text
    assert "enroll-form" not in devices
    repost = viewer.post(f"/exceptions/{held['event_id']}/repost", page="/exceptions")
    assert repost.status_code == 403 and "Not allowed for your role" in repost.text
    assert viewer.post("/devices/enroll", {"site": "main"}, page="/devices").status_code == 403
    assert f"event-{held['event_id']}" in owner.get("/exceptions").text  # still held
    assert viewer.post("/logout").status_code == 303  # signing out is everyone's


def test_a_paused_subscription_reads_but_does_not_write(db: Engine, owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    (held,) = post_events(owner, issue("BOLT", "3"))
    t = m.SQLModel.metadata.tables["tenant"]
    with db.begin() as conn:  # a trial without a card that ended five days ago
        by_slug = select(t.c.id).where(t.c.slug == owner.slug)
        tenant_id = conn.scalar(by_slug.execution_options(cross_tenant=True))
        ended = start_trial("starter", now_utc() - timedelta(days=19))[0]
        subscriptions.save(conn, tenant_id, ended)
    queue = owner.get("/exceptions")
    assert queue.status_code == 200 and "Paused" in queue.text  # the state banner
    assert "The subscription is not paid: read-only until it is" in queue.text
    assert owner.post("/language", {"lang": "zh_CN", "next": "/"}).status_code == 303
    chinese = owner.get("/subscription").text
    assert chinese.count("订阅未付款：付款前为只读") == 2  # the banner, the page's notice
    assert "read-only until it is" not in chinese
    assert owner.post("/language", {"lang": "en", "next": "/"}).status_code == 303
    assert f"event-{held['event_id']}" in queue.text and "/repost" not in queue.text
    assert "enroll-form" not in owner.get("/devices").text
    refused = owner.post(f"/exceptions/{held['event_id']}/repost", page="/exceptions")
    assert refused.status_code == 402 and "Not allowed by the subscription" in refused.text
    assert owner.post("/logout").status_code == 303  # signing out still works


def test_another_tenants_rows_answer_404(db: Engine, owner: Portal) -> None:
    other = Portal(db)
    other.sign_up(company="Other works")
    setup_workshop(_Setup(other))
    other.api("POST", "/items", json={"code": "SECRET", "name": "Theirs", "kind": "raw"})
    (held,) = post_events(other, issue("BOLT", "3"))
    assert other.get("/inventory/SECRET").status_code == 200
    assert owner.get("/inventory/SECRET").status_code == 404
    assert owner.get(f"/events/{held['event_id']}").status_code == 404
    assert held["event_id"] not in owner.get("/exceptions").text
    refused = owner.post(f"/exceptions/{held['event_id']}/void", {"reason": "mine?"}, "/exceptions")
    assert refused.status_code == 404
    assert f"event-{held['event_id']}" in other.get("/exceptions").text


def test_devices_are_enrolled_rotated_and_revoked(owner: Portal) -> None:
    page = owner.post("/devices/enroll", {"site": "line-2"}, page="/devices")
    assert page.status_code == 200
    code = text_of(page.text, "enrollment-code")
    assert re.fullmatch(r"[2-9A-Z]{4}(-[2-9A-Z]{4}){3}", code) and "<svg" in page.text
    enrolled = owner.client.post("/api/v1/devices/enroll", json={"code": code, "name": "hh-9"})
    assert enrolled.status_code == 201, enrolled.text
    device_id = enrolled.json()["device_id"]
    listed = owner.get("/devices").text
    assert "hh-9" in listed and "line-2" in listed and code not in listed  # shown once
    second_site = owner.post("/devices/enroll", {"site": "line-3"}, page="/devices")
    assert second_site.status_code == 402 and "site" in second_site.text  # a trial: 1
    terminal = owner.post("/devices/enroll", {"site": "line-2", "posts": "progress"}, "/devices")
    code = text_of(terminal.text, "enrollment-code")
    made = owner.client.post("/api/v1/devices/enroll", json={"code": code, "name": "term-1"})
    (listed,) = [d for d in owner.api("GET", "/devices").json() if d["name"] == "term-1"]
    assert made.status_code == 201 and "stock:post" not in listed["scopes"]
    assert "progress:post" in listed["scopes"]
    rotated = owner.post(f"/devices/{device_id}/rotate", page="/devices")
    assert rotated.status_code == 200 and "dk_live_" in rotated.text
    revoked = owner.post(f"/devices/{device_id}/revoke", page="/devices")
    assert revoked.headers["location"] == "/devices?notice=revoked"
    assert "revoked" in owner.get("/devices").text
    again = owner.post(f"/devices/{device_id}/revoke", page="/devices")
    assert again.status_code == 404


def test_the_language_is_the_users_own_in_every_session(db: Engine, owner: Portal) -> None:
    address = email("owner")
    Portal(db).sign_up(address)  # in English: the sign-up page's language is stored
    first = Portal(db)
    assert first.log_in(address).status_code == 303
    page = first.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert "Dashboard" in page and "仪表盘" not in page  # the user's, not the browser's
    switched = first.post("/language", {"lang": "zh_CN", "next": "/inventory"})
    assert switched.status_code == 303 and switched.headers["location"] == "/inventory"
    assert _locale_of(db, address) == "zh-CN"
    page = first.get("/", headers={"Accept-Language": "en"}).text
    assert "仪表盘" in page and "库存价值" in page and "¥0.00" in page
    second = Portal(db)  # another browser of the same user: no cookie, an English one
    assert second.log_in(address).status_code == 303
    assert "仪表盘" in second.get("/", headers={"Accept-Language": "en"}).text
    assert "Dashboard" in owner.get("/").text  # another user keeps their own
    assert second.post("/language", {"lang": "en", "next": "//evil"}).headers["location"] == "/"
    assert _locale_of(db, address) == "en"
    assert "Dashboard" in first.get("/").text  # the first browser follows, cookie or not
    forged = first.client.post("/language", data={"lang": "zh_CN", "csrf_token": "x"})
    assert forged.status_code == 403 and _locale_of(db, address) == "en"
    login = Portal(db)  # before sign-in: the cookie, bound to the pre-session, then the browser
    assert "登录" in login.get("/login", headers={"Accept-Language": "zh-CN"}).text
    token = csrf_of(login.get("/login").text)
    chosen = login.client.post("/language", data={"lang": "zh_CN", "csrf_token": token})
    assert chosen.status_code == 303
    assert "登录" in login.get("/login", headers={"Accept-Language": "en"}).text
    assert _locale_of(db, address) == "en"  # a pre-login choice is nobody's account


def _locale_of(db: Engine, address: str) -> str:
    u = m.SQLModel.metadata.tables["app_user"]
    with db.connect() as conn:
        return str(conn.scalar(select(u.c.locale).where(u.c.email == address)))


def test_every_message_has_a_chinese_translation() -> None:
    catalog = translations("zh_CN")
    ids = message_ids()
    assert len(ids) > 150
    untranslated = [
        i
        for i in ids
        if (catalog.gettext(i) == i if isinstance(i, str) else catalog.ngettext(*i, 2) == i[1])
    ]
    assert untranslated == []


def test_amounts_are_decimal_and_in_the_tenants_currency() -> None:
    assert Formats("en", "CNY").money(Decimal("1234.5")) == "CN¥1,234.50"
    assert Formats("zh_CN", "CNY").money(Decimal("1234.5")) == "¥1,234.50"
    assert Formats("en", "EUR").money(Decimal("0.1") + Decimal("0.2")) == "€0.30"
    assert Formats("en").qty(Decimal("10.500000")) == "10.5"


def test_the_books_check_is_cached_then_refreshed_in_the_background(db: Engine) -> None:
    api = Api(db)
    engine = app_engines(db)[0]
    with db.connect() as conn:
        tenant = tenant_by_id(conn, api.tenant.id)
    cache = BooksCheckCache()
    with tenancy.as_tenant(tenant.id):
        first = cache.get(engine, tenant, fresh=False)
        assert first.differences == 0 and cache.get(engine, tenant, fresh=False) is first
        cache._results[tenant.id] = (0.0, first)  # a minute later
        assert cache.get(engine, tenant, fresh=False) is first  # the last result, at once
        for _ in range(200):  # the refresh runs in its own thread
            if tenant.id not in cache._running:
                break
            time.sleep(0.02)
        refreshed = cache.get(engine, tenant, fresh=False)
        assert refreshed is not first and refreshed.checked_at >= first.checked_at
        assert cache.get(engine, tenant, fresh=True) is not refreshed  # "check now"


# -- the second slice: production, finance, subscription, members ------------------


def month_of_work() -> list[dict[str, Any]]:
    """Receive 10 boards at 10, issue 4 to WO1, an hour of labour (40 + 10 overhead),
    complete the 10 tables (90), ship 5 at 20 (+ 13 % VAT)."""
    return [
        receipt("RAW", "10", "10"),
        issue("RAW", "4"),
        _event("labour", {"work_order": "WO1", "work_center": "WC", "hours": "1"}, 6),
        _event(
            "production_completion", {"work_order": "WO1", "location": "WH", "quantity": "10"}, 4
        ),
        shipment("CUS", "5", "20", days_ago=0),
    ]


def shipment(customer: str, qty: str, price: str, days_ago: float) -> dict[str, Any]:
    payload = {"customer": customer, "item": "TBL", "location": "WH", "quantity": qty}
    return _event("sales_shipment", payload | {"unit_price": price}, days_ago * 1440 + 2)


def row_text(html: str, element_id: str) -> str:
    """The text of the table row with `element_id`."""
    found = re.search(rf'<tr[^>]*id="{element_id}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, f"no row {element_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def member(db: Engine, owner: Portal, role: str) -> Portal:
    """A signed-in member with `role`, in English."""
    browser = Portal(db)
    assert browser.log_in(owner.add_member(role)).status_code == 303
    assert browser.post("/language", {"lang": "en", "next": "/"}).status_code == 303
    return browser


def this_month() -> str:
    return now_utc().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")


def test_the_new_pages_answer_an_empty_tenant_and_refuse_bad_input(owner: Portal) -> None:
    for page in NEW_PAGES:
        response = owner.get(page)
        assert response.status_code == 200, (page, response.text[:500])
        assert 'name="csrf_token"' in response.text and f'href="{page}"' in response.text
    assert "No work orders yet." in owner.get("/production").text
    assert "Nothing is posted yet." in owner.get("/finance/trial-balance").text
    empty = owner.get("/finance/statements?period=2026-01").text
    assert "CN¥0.00" in row_text(empty, "bs-total-assets") and "balances." in empty
    for period in ("2026-13", "abc", "2026-1", "20260-01", "2026-01'--"):
        assert owner.get(f"/finance/statements?period={period}").status_code == 404
    assert owner.get("/production/NOPE").status_code == 404
    assert owner.get("/finance/journal?page=-1").status_code == 200
    assert owner.post("/finance/periods/2026-13/close", page="/finance/periods").status_code == 404
    assert owner.post("/users/not-a-uuid/remove", page="/users").status_code == 404


def test_finance_pages_show_the_posted_figures(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    results = post_events(owner, *month_of_work())
    assert [r["status"] for r in results] == ["posted"] * 5, results
    tb = owner.get("/finance/trial-balance").text
    expected = {
        "1122": ("应收账款", "Accounts receivable", "CN¥113.00 CN¥0.00 CN¥113.00 Dr"),
        "1403": ("原材料", "Raw materials", "CN¥100.00 CN¥40.00 CN¥60.00 Dr"),
        "1405": ("库存商品", "Finished goods", "CN¥90.00 CN¥45.00 CN¥45.00 Dr"),
        "2211": ("应付职工薪酬", "Employee benefits payable", "CN¥0.00 CN¥40.00 -CN¥40.00 Cr"),
        "2221": ("应交税费", "Taxes payable (VAT)", "CN¥0.00 CN¥13.00 -CN¥13.00 Cr"),
        "5001": ("生产成本", "Production cost", "CN¥90.00 CN¥90.00 CN¥0.00"),
        "5101": ("制造费用", "Manufacturing overhead", "CN¥0.00 CN¥10.00 -CN¥10.00 Cr"),
        "6001": ("主营业务收入", "Revenue from main operations", "CN¥0.00 CN¥100.00 -CN¥100.00 Cr"),
        "6401": ("主营业务成本", "Cost of sales", "CN¥45.00 CN¥0.00 CN¥45.00 Dr"),
    }
    for code, (zh, en, figures) in expected.items():
        text = row_text(tb, f"account-{code}")
        assert zh in text and en in text and text.endswith(figures), (code, text)
    assert "account-1002" not in tb  # no postings: not listed
    assert row_text(tb, "tb-total") == "Total CN¥438.00 CN¥438.00 Balanced"

    journal = owner.get("/finance/journal").text
    issue_id = results[1]["event_id"]
    assert journal.count(f'href="/events/{issue_id}"') == 2  # Dr 5001 / Cr 1403
    assert "1122 应收账款 · Accounts receivable" in journal
    source = owner.get(f"/events/{issue_id}")  # the drill-down's target
    assert source.status_code == 200 and "Material issue" in source.text

    month = this_month()
    page = owner.get(f"/finance/statements?period={month}").text
    assert row_text(page, "is-revenue").endswith("CN¥100.00")
    assert row_text(page, "is-cost-of-sales").endswith("CN¥45.00")
    assert row_text(page, "is-gross-profit").endswith("CN¥55.00")
    assert row_text(page, "is-profit") == "Profit for the period CN¥55.00"
    assert row_text(page, "bs-assets").endswith("CN¥218.00")  # 113 + 60 + 45
    assert row_text(page, "bs-production").endswith("-CN¥10.00")  # overhead applied
    assert row_text(page, "bs-liabilities").endswith("CN¥153.00")  # 100 + 40 + 13
    assert row_text(page, "bs-profit").endswith("CN¥55.00")
    total_assets = row_text(page, "bs-total-assets").split()[-1]
    total_claims = row_text(page, "bs-total-liabilities-equity").split()[-1]
    assert total_assets == total_claims == "CN¥208.00"  # assets = liabilities + equity + profit
    assert "The balance sheet balances." in page and "does not balance" not in page
    before = owner.get("/finance/statements?period=2020-01").text  # before anything posted
    assert row_text(before, "is-profit").endswith("CN¥0.00")
    assert row_text(before, "bs-total-assets").endswith("CN¥0.00")
    owner.post("/language", {"lang": "zh_CN", "next": "/"})
    zh = owner.get(f"/finance/statements?period={month}").text
    assert "资产负债表" in zh and "¥208.00" in row_text(zh, "bs-total-assets")


def test_receivables_are_aged_by_entry_date(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    _Setup(owner).create("/customers", {"code": "CUS2", "name": "Second customer"})
    stock = receipt("TBL", "10", "50", minutes_ago=130 * 1440)
    shipped = [shipment("CUS", "1", "100", days) for days in (10, 45, 75, 100)]
    results = post_events(owner, stock, *shipped, shipment("CUS2", "2", "50", 3))
    assert [r["status"] for r in results] == ["posted"] * 6, results
    page = owner.get("/finance/receivables").text
    # 0-30, 31-60, 61-90, 90+, total: each shipment of 100 + 13 VAT
    assert row_text(page, "customer-CUS") == (
        "CUS · Customer CN¥113.00 CN¥113.00 CN¥113.00 CN¥113.00 CN¥452.00"
    )
    assert row_text(page, "customer-CUS2") == (
        "CUS2 · Second customer CN¥113.00 CN¥0.00 CN¥0.00 CN¥0.00 CN¥113.00"
    )
    assert row_text(page, "receivables-total").endswith(
        "CN¥226.00 CN¥113.00 CN¥113.00 CN¥113.00 CN¥565.00"
    )


def test_work_orders_are_released_closed_and_cancelled_from_the_pages(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    bom = {"item": "TBL", "lines": [{"item": "RAW", "quantity": "2"}], "activate": True}
    _Setup(owner).create("/boms", bom)
    _Setup(owner).create("/work-orders", {"code": "WO3", "item": "TBL", "planned_quantity": "5"})
    assert [r["status"] for r in post_events(owner, *month_of_work())] == ["posted"] * 5
    listed = owner.get("/production").text
    assert "Completed" in row_text(listed, "wo-WO1") and "100 %" in row_text(listed, "wo-WO1")
    assert "Draft" in row_text(listed, "wo-WO3")

    page = owner.get("/production/WO1").text
    assert row_text(page, "cost-material") == "Material CN¥0.00 CN¥40.00 CN¥40.00"
    assert row_text(page, "cost-labour") == "Labour CN¥0.00 CN¥40.00 CN¥40.00"
    assert row_text(page, "cost-overhead") == "Overhead CN¥0.00 CN¥10.00 CN¥10.00"
    assert row_text(page, "cost-total").endswith("CN¥90.00 CN¥90.00")
    assert "CN¥9.00" in card(page, "unit-cost")
    closed = owner.post("/production/WO1/close", {"reason": "done"}, page="/production/WO1")
    assert (
        closed.status_code == 303 and closed.headers["location"] == "/production/WO1?notice=closed"
    )
    assert 'id="order-status">Closed<' in owner.get("/production/WO1").text
    again = owner.post("/production/WO1/close", {"reason": "twice"}, page="/production/WO1")
    assert again.status_code == 409
    assert owner.api("GET", "/work-orders/WO1").json()["status"] == "closed"

    short = owner.post("/production/WO3/release", page="/production/WO3")
    assert short.status_code == 409 and "RAW needs 10" in short.text  # the stock is 6
    assert owner.api("GET", "/work-orders/WO3").json()["status"] == "draft"
    released = owner.post("/production/WO3/release", {"allow_shortages": "1"}, "/production/WO3")
    assert released.headers["location"] == "/production/WO3?notice=released"
    assert owner.api("GET", "/work-orders/WO3").json()["status"] == "released"
    detail = owner.get("/production/WO3").text
    assert re.search(r"RAW.*?10.*?0.*?6.*?4", " ".join(re.sub(r"<[^>]+>", " ", detail).split()))
    assert "RAW" in row_text(owner.get("/production").text, "wo-WO3")  # short: 4

    cancelled = owner.post("/production/WO2/cancel", page="/production/WO2")
    assert cancelled.headers["location"] == "/production/WO2?notice=cancelled"
    assert owner.api("GET", "/work-orders/WO2").json()["status"] == "cancelled"
    assert owner.post("/production/WO1/cancel", page="/production/WO1").status_code == 409
    assert owner.post("/production/NOPE/release", page="/production").status_code == 404


def test_a_viewer_sees_no_new_write_buttons_and_posts_are_refused(
    db: Engine, owner: Portal
) -> None:
    setup_workshop(_Setup(owner))
    viewer = member(db, owner, "viewer")
    order = viewer.get("/production/WO1").text
    assert "order-actions" not in order and "/close" not in order and "Cost report" in order
    periods = viewer.get("/finance/periods").text
    assert f"period-{this_month()}" in periods and "/close" not in periods
    members = viewer.get("/users").text
    assert "invite-form" not in members and "/remove" not in members and "/role" not in members
    subscription = viewer.get("/subscription").text
    assert "meter-events" in subscription and 'id="invoices"' not in subscription
    assert "Invoices" not in subscription
    writes = [
        ("/production/WO2/cancel", {}),
        ("/production/WO1/close", {"reason": "x"}),
        (f"/finance/periods/{this_month()}/close", {}),
        (f"/finance/periods/{this_month()}/reopen", {"reason": "because"}),
        (
            "/users/invite",
            {"email": email("x"), "name": "X", "role": "owner", "password": PASSWORD},
        ),
    ]
    for path, form in writes:
        refused = viewer.post(path, form)
        assert refused.status_code == 403 and "Not allowed for your role" in refused.text, path
    assert owner.api("GET", "/work-orders/WO2").json()["status"] == "released"
    assert f"period-{this_month()}" in owner.get("/finance/periods").text
    assert "closed" not in row_text(owner.get("/finance/periods").text, f"period-{this_month()}")


def test_a_finance_manager_closes_a_period_and_only_the_owner_reopens(
    db: Engine, owner: Portal
) -> None:
    setup_workshop(_Setup(owner))
    month = this_month()
    finance = member(db, owner, "finance_mgr")
    page = finance.get("/finance/periods").text
    assert f"/finance/periods/{month}/close" in page and "/reopen" not in page
    closed = finance.post(f"/finance/periods/{month}/close", page="/finance/periods")
    assert closed.headers["location"] == "/finance/periods?notice=period_closed"
    assert "Closed" in row_text(finance.get("/finance/periods").text, f"period-{month}")
    (held,) = post_events(owner, receipt("RAW", "1", "1", minutes_ago=1))
    assert held["status"] == "held" and held["code"] == "period_locked"
    assert "/reopen" not in finance.get("/finance/periods").text
    refused = finance.post(f"/finance/periods/{month}/reopen", {"reason": "a mistake"})
    assert refused.status_code == 403
    assert "/reopen" in owner.get("/finance/periods").text
    no_reason = owner.post(f"/finance/periods/{month}/reopen", {"reason": " "}, "/finance/periods")
    assert no_reason.status_code == 422
    nul_only = owner.post(
        f"/finance/periods/{month}/reopen", {"reason": "\x00"}, "/finance/periods"
    )
    assert nul_only.status_code == 422  # a NUL is no reason, and never reaches the database
    assert "Closed" in row_text(owner.get("/finance/periods").text, f"period-{month}")
    reopened = owner.post(f"/finance/periods/{month}/reopen", {"reason": "late\x00 invoice"})
    assert reopened.headers["location"] == "/finance/periods?notice=period_reopened"
    assert "Open" in row_text(owner.get("/finance/periods").text, f"period-{month}")
    log = owner.api("GET", "/audit-log").json()
    close_rows = [r for r in log if r["action"] == "period.close" and r["object"] == month]
    reopen_rows = [r for r in log if r["action"] == "period.reopen" and r["object"] == month]
    assert len(close_rows) == 1 and close_rows[0]["actor_kind"] == "user"
    assert len(reopen_rows) == 1 and reopen_rows[0]["detail"] == "late invoice"
    assert close_rows[0]["actor_id"] != reopen_rows[0]["actor_id"]  # two people


def test_the_subscription_page_shows_usage_against_the_plan(db: Engine, owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    post_events(owner, receipt("RAW", "1", "1"), receipt("RAW", "2", "1"))
    owner.add_member("warehouse")
    page = owner.get("/subscription").text
    assert "Trial" in card(page, "state")
    assert row_text(page, "meter-events").startswith("Events posted this month 2 ")
    assert row_text(page, "meter-users").startswith("Users 2 ")
    assert row_text(page, "meter-devices").startswith("Devices 0 ")
    assert "<meter" in page and "No invoices yet." in page


def test_the_owner_invites_changes_roles_and_removes_members(db: Engine, owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    address = email("clerk")
    form = {"email": address, "name": "Clerk", "role": "warehouse", "password": "short"}
    weak = owner.post("/users/invite", form, page="/users")
    assert weak.status_code == 422 and "Use at least 12 characters." in weak.text
    invited = owner.post("/users/invite", form | {"password": PASSWORD}, page="/users")
    assert invited.headers["location"] == "/users?notice=invited"
    members = owner.get("/users").text
    listed = {m["email"]: m for m in owner.api("GET", "/users").json()}
    clerk_id = listed[address]["id"]
    assert "Warehouse" in row_text(members, f"member-{clerk_id}")
    clerk = Portal(db)
    assert clerk.log_in(address).status_code == 303
    assert clerk.get("/users").status_code == 200

    changed = owner.post(f"/users/{clerk_id}/role", {"role": "production"}, page="/users")
    assert changed.headers["location"] == "/users?notice=role_changed"
    assert clerk.get("/production/WO2").status_code == 303  # signed out with the change
    assert clerk.log_in(address).status_code == 303  # a new session, the new role
    assert "/production/WO2/cancel" in clerk.get("/production/WO2").text  # may now
    unknown = owner.post(f"/users/{clerk_id}/role", {"role": "emperor"}, page="/users")
    assert unknown.status_code == 422

    owner_id = listed[next(a for a, m in listed.items() if m["role"] == "owner")]["id"]
    demote = owner.post(f"/users/{owner_id}/role", {"role": "viewer"}, page="/users")
    assert demote.status_code == 409 and "The last owner" in demote.text
    remove_self = owner.post(f"/users/{owner_id}/remove", page="/users")
    assert remove_self.status_code == 409
    assert owner.get("/users").status_code == 200  # still the owner

    removed = owner.post(f"/users/{clerk_id}/remove", page="/users")
    assert removed.headers["location"] == "/users?notice=removed"
    assert clerk.get("/").status_code == 303  # the session ended with the membership
    assert f"member-{clerk_id}" not in owner.get("/users").text
    assert owner.post(f"/users/{clerk_id}/remove", page="/users").status_code == 404
    assert Portal(db).log_in(address).status_code == 401  # a member of no tenant now
    log = [r["action"] for r in owner.api("GET", "/audit-log").json()]
    assert {"member.add", "member.role", "member.remove"} <= set(log)

    second = owner.add_member("owner")  # with another owner, one may step down
    listed = {m["email"]: m for m in owner.api("GET", "/users").json()}
    other = Portal(db)
    assert other.log_in(second).status_code == 303
    stepped = other.post(f"/users/{listed[second]['id']}/role", {"role": "viewer"}, page="/users")
    assert stepped.headers["location"] == "/login"  # their own session ended with it
    assert other.log_in(second).status_code == 303
    assert "invite-form" not in other.get("/users").text


def test_aging_applies_credits_to_the_oldest_debits_first() -> None:
    assert [bucket_of(d) for d in (0, 30, 31, 60, 61, 90, 91, 400)] == [
        "0-30",
        "0-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "90+",
        "90+",
    ]
    today = date(2026, 6, 30)

    def line(days: int, debit: str = "0", credit: str = "0") -> ReceivableLine:
        return ReceivableLine("C", "Cust", today - timedelta(days=days), D(debit), D(credit))

    (row,) = aging([line(100, "50"), line(40, "30"), line(5, "20"), line(2, credit="60")], today)
    assert row.buckets == {"0-30": D("20"), "31-60": D("20"), "61-90": D(0), "90+": D(0)}
    assert row.total == D("40")  # 100 owed, 60 received: the oldest 50 and 10 of the 30
    (over,) = aging([line(70, "10"), line(1, credit="15")], today)
    assert over.buckets["0-30"] == D("-5") and over.total == D("-5")  # paid in advance
    assert aging([line(70, "10"), line(1, credit="10")], today) == []  # settled


# -- the third slice: turnover, receivables by age and trends; labels ---------------


def test_the_dashboard_shows_turnover_aging_and_the_trends(owner: Portal) -> None:
    setup_workshop(_Setup(owner))
    empty = owner.get("/").text
    assert "Inventory turnover, last 90 days — " in card(empty, "turnover")
    assert "Days of stock — " in card(empty, "days-of-stock")  # no sales: no figure
    assert "CN¥0.00" in card(empty, "receivables-open")
    early = [
        receipt("TBL", "2", "50", minutes_ago=120 * 1440),  # before the 90 days
        receipt("BOLT", "10", "2", minutes_ago=100 * 1440),
        shipment("CUS", "1", "100", days_ago=100),  # cost 50, before the 90 days
        shipment("CUS", "1", "100", days_ago=40),  # cost 50, in them
    ]
    results = post_events(owner, *early, *month_of_work())
    assert [r["status"] for r in results] == ["posted"] * 9, results
    page = owner.get("/").text
    # stock now: raw 60 + 20, finished 45 = 125; 90 days ago: a table at 50 and the
    # bolts at 20 = 70; average 97.5; cost of sales in the 90 days 50 + 45 = 95
    assert "CN¥125.00" in card(page, "stock-total")
    turns = card(page, "turnover")
    assert "0.97 ×" in turns and "CN¥95.00" in turns and "CN¥97.50" in turns
    assert "Days of stock 118.4 " in card(page, "days-of-stock")  # 125 / (95 / 90)
    assert "CN¥339.00" in card(page, "receivables-open")  # three shipments of 113
    assert text_of(page, "aging-0-30") == "CN¥113.00"
    assert text_of(page, "aging-31-60") == "CN¥113.00"
    assert text_of(page, "aging-61-90") == "CN¥0.00"
    assert text_of(page, "aging-90plus") == "CN¥113.00"
    receivables = owner.get("/finance/receivables").text  # the same figures, shared
    assert row_text(receivables, "receivables-total").endswith(
        "CN¥113.00 CN¥113.00 CN¥0.00 CN¥113.00 CN¥339.00"
    )
    trend = re.search(r'id="margin-trend">(.*?)</svg>', page, re.S)
    assert trend and "<polyline" in trend.group(1)
    today = now_utc().astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d")
    assert f"<title>{today}: CN¥55.00</title>" in trend.group(1)  # 100 − 45, today
    assert "CN¥100.00" in card(page, "revenue")  # the one 40 days ago is another month's
    aged = re.search(r'id="aging-chart">(.*?)</svg>', page, re.S)
    assert aged and aged.group(1).count('class="chart-bar"') == 4
    assert "90+ days" in aged.group(1) and "CN¥113.00" in aged.group(1)


def test_turnover_is_cost_of_sales_over_the_average_stock() -> None:
    from web.turnover import turnover

    moved = {"6401": D("95"), "2202": D("-100"), "1122": D("226"), "6001": D("-200")}
    moved |= {"2221": D("-26"), "2211": D("-40"), "5101": D("-10")}
    t = turnover(D("125"), moved, "6401")
    assert t.opening_value == D("70") and t.average_value == D("97.5")
    assert t.turns == D("0.97") and t.days_of_stock == D("118.4")
    none = turnover(D("125"), {"2202": D("-125")}, "6401")
    assert none.turns is None and none.days_of_stock is None and none.opening_value == 0


def _labelled_workshop(owner: Portal) -> None:
    """The workshop, an oil with a GTIN received in lot L-42, an operator, a bin."""
    setup_workshop(_Setup(owner))
    oil = {"code": "OIL", "name": "Oil", "kind": "raw", "lot_tracked": True}
    _Setup(owner).create("/items", oil | {"gtin": "4006381333931"})
    _Setup(owner).create("/operators", {"code": "OP-7", "name": "Wang Fang"})
    _Setup(owner).create("/locations", {"code": "BIN-1", "name": "Bin 1", "kind": "bin"})
    lots = [("OIL", "L-42", "2027-01-31"), ("GLUE", "G-1", "2027-02-28")]
    events = [receipt(i, "12", "3") for i, _, _ in lots]
    for event, (_, lot, expiry) in zip(events, lots, strict=True):
        event["payload"] |= {"lot": lot, "expiry": expiry}
    assert [r["status"] for r in post_events(owner, *events)] == ["posted"] * 2


def _sheet(portal: Portal, kind: str, codes: list[str], copies: str, fmt: str) -> Any:
    query = [("kind", kind), ("copies", copies), ("format", fmt)] + [("code", c) for c in codes]
    return portal.get("/labels/sheet", params=query)


def test_labels_are_printed_as_sheets_of_the_tenants_own_codes(db: Engine, owner: Portal) -> None:
    import io

    import zxingcpp
    from PIL import Image

    _labelled_workshop(owner)
    form = owner.get("/labels").text
    assert 'href="/labels"' in form and 'value="RAW"' in form and 'value="OIL"' in form
    lots = owner.get("/labels?kind=lot").text
    assert 'value="OIL|L-42"' in lots and "OIL · L-42 · 12 pcs" in lots
    assert 'value="GLUE|G-1"' not in lots and "the item has no GTIN" in lots  # offered, disabled
    for kind, code in [("location", "BIN-1"), ("work_order", "WO1"), ("badge", "OP-7")]:
        assert f'value="{code}"' in owner.get(f"/labels?kind={kind}").text

    png = _sheet(owner, "item", ["RAW", "OIL"], "2", "png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"] == 'attachment; filename="labels-item.png"'
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (2480, 3508)  # A4 at 300 dpi
    read = sorted(r.text for r in zxingcpp.read_barcodes(image))
    assert read == ["(01)04006381333931"] * 2 + ["OIL"] * 2 + ["RAW"] * 2

    one = _sheet(owner, "badge", ["OP-7"], "1", "pdf")
    many = _sheet(owner, "badge", ["OP-7"], "100", "pdf")
    for response, pages in ((one, 1), (many, 3)):  # 40 badges a page
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
        assert len(re.findall(rb"/Type\s*/Page(?!s)", response.content)) == pages
    too_long = _sheet(owner, "badge", ["OP-7"], "100", "png")
    assert too_long.status_code == 422 and "choose PDF" in too_long.text

    svg = _sheet(owner, "lot", ["OIL|L-42"], "3", "svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content.startswith(b"<?xml") and b'width="210.000mm"' in svg.content
    assert svg.content.count(b"<svg") == 1 + 3 * 2  # the page; each label and its bars
    assert b"(01)04006381333931(17)270131" in svg.content


def test_labels_refuse_other_tenants_codes_and_bad_input(db: Engine, owner: Portal) -> None:
    _labelled_workshop(owner)
    other = Portal(db)
    other.sign_up(company="Other works")
    other.api("POST", "/items", json={"code": "SECRET", "name": "Theirs", "kind": "raw"})
    assert _sheet(other, "item", ["SECRET"], "1", "pdf").status_code == 200
    assert 'value="SECRET"' not in owner.get("/labels").text
    assert _sheet(owner, "item", ["SECRET"], "1", "pdf").status_code == 404
    assert _sheet(owner, "item", ["RAW", "SECRET"], "1", "pdf").status_code == 404
    assert _sheet(other, "item", ["RAW"], "1", "pdf").status_code == 404
    assert owner.get("/labels?kind=nope").status_code == 404
    assert _sheet(owner, "nope", ["RAW"], "1", "pdf").status_code == 404
    for copies in ("0", "101", "abc", "²", "-1", "", "1" * 40):
        assert _sheet(owner, "item", ["RAW"], copies, "pdf").status_code == 422, copies
    assert _sheet(owner, "item", ["RAW"], "1", "gif").status_code == 422
    assert _sheet(owner, "item", [], "1", "pdf").status_code == 422
    assert (
        _sheet(owner, "item", ["RAW", "BOLT", "GLUE", "TBL", "OIL", "X"], "100", "pdf").status_code
        == 422
    )
    no_gtin = _sheet(owner, "lot", ["GLUE|G-1"], "1", "pdf")
    assert no_gtin.status_code == 422 and "the item has no GTIN" in no_gtin.text


def test_a_viewer_prints_labels(db: Engine, owner: Portal) -> None:
    """Printing writes nothing: a read, which every role may do."""
    _labelled_workshop(owner)
    viewer = member(db, owner, "viewer")
    assert 'id="label-form"' in viewer.get("/labels?kind=badge").text
    sheet = _sheet(viewer, "badge", ["OP-7"], "2", "pdf")
    assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF")
