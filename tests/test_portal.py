"""The owner portal through a TestClient, on SQLite and PostgreSQL (as erp_app, so
row-level security applies): sign-in redirects, CSRF and Origin on every form, the
role check of each write, tenant isolation, the figures pages show after posting,
the exception queue, devices and the language switch."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
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
    for page in PAGES:
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


def test_a_held_event_is_fixed_from_the_queue_or_voided_with_a_reason(owner: Portal) -> None:
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
        tenant_id = conn.scalar(select(t.c.id).where(t.c.slug == owner.slug))
        ended = start_trial("starter", now_utc() - timedelta(days=19))[0]
        subscriptions.save(conn, tenant_id, ended)
    queue = owner.get("/exceptions")
    assert queue.status_code == 200 and "Paused" in queue.text  # the state banner
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
    rotated = owner.post(f"/devices/{device_id}/rotate", page="/devices")
    assert rotated.status_code == 200 and "dk_live_" in rotated.text
    revoked = owner.post(f"/devices/{device_id}/revoke", page="/devices")
    assert revoked.headers["location"] == "/devices?notice=revoked"
    assert "revoked" in owner.get("/devices").text
    again = owner.post(f"/devices/{device_id}/revoke", page="/devices")
    assert again.status_code == 404


def test_the_language_follows_the_cookie_then_the_browser(db: Engine, owner: Portal) -> None:
    assert "Dashboard" in owner.get("/").text
    assert "仪表盘" in owner.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    switched = owner.post("/language", {"lang": "zh_CN", "next": "/inventory"})
    assert switched.status_code == 303 and switched.headers["location"] == "/inventory"
    page = owner.get("/", headers={"Accept-Language": "en"}).text
    assert "仪表盘" in page and "库存价值" in page and "¥0.00" in page
    assert owner.post("/language", {"lang": "en", "next": "//evil"}).headers["location"] == "/"
    assert "Dashboard" in owner.get("/").text
    forged = owner.client.post("/language", data={"lang": "zh_CN", "csrf_token": "x"})
    assert forged.status_code == 403
    login = Portal(db)  # before sign-in, bound to the pre-session cookie
    token = csrf_of(login.get("/login").text)
    assert (
        login.client.post("/language", data={"lang": "zh_CN", "csrf_token": token}).status_code
        == 303
    )
    assert "登录" in login.get("/login").text


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
