"""The portal end to end in a real headless Chromium (Debian's, driven by Playwright,
which downloads no browser): sign up, the empty dashboard, events posted through the
ingest API moving the figures, a held event fixed from the exception queue, a device
enrolled, the language switched, and a viewer kept from writing. Saves screenshots of
the main pages to docs/screenshots/.

Without /usr/bin/chromium these tests skip, except with CI=true, where they fail."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from cloud_api.domain.clock import now_utc
from tests.edge_harness import CloudServer
from tests.factory import setup_workshop
from tests.portal_helpers import PASSWORD, email

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000
# One worker runs these under pytest-xdist: one Chromium launch (the module's browser
# fixture) instead of one per worker that happens to draw a browser test.
pytestmark = pytest.mark.xdist_group("chromium")

sync_api = pytest.importorskip("playwright.sync_api") if not CI else None
if CI:  # in CI a missing Playwright is a failure, not a skip
    import playwright.sync_api as sync_api


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-wqy-microhei"
        if CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    assert sync_api is not None
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def server(db: Engine) -> Iterator[CloudServer]:
    cloud = CloudServer(db)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


class Ingest:
    """The tenant's integration: the JSON API with the API key shown at sign-up."""

    def __init__(self, url: str, api_key: str) -> None:
        self.client = httpx.Client(
            base_url=url + "/api/v1", headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )

    def create(self, path: str, body: dict[str, Any]) -> None:
        response = self.client.post(path, json=body)
        assert response.status_code == 201, response.text

    def events(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.post("/edge/events", json={"events": list(events)})
        assert response.status_code == 200, response.text
        return response.json()["results"]  # type: ignore[no-any-return]


def event(type_: str, minutes_ago: float, **payload: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "device_id": "hh-1",
        "seq": 1,
        "type": type_,
        "occurred_at": (now_utc() - timedelta(minutes=minutes_ago)).isoformat(),
        "operator": "OP-7",
        "payload": payload,
    }


def receipt(item: str, quantity: str, price: str, minutes_ago: float = 30) -> dict[str, Any]:
    return event(
        "purchase_receipt",
        minutes_ago,
        supplier="SUP",
        item=item,
        location="WH",
        quantity=quantity,
        unit_price=price,
    )


def issue(item: str, quantity: str, minutes_ago: float = 20) -> dict[str, Any]:
    return event(
        "material_issue", minutes_ago, work_order="WO1", item=item, location="WH", quantity=quantity
    )


def month_of_work() -> list[dict[str, Any]]:
    """Receive 10 boards at 10, issue 4, an hour of labour (40 + 10 overhead), complete
    the 10 tables (90), ship 5 at 20."""
    return [
        receipt("RAW", "10", "10"),
        issue("RAW", "4"),
        event("labour", 15, work_order="WO1", work_center="WC", hours="1"),
        event("production_completion", 10, work_order="WO1", location="WH", quantity="10"),
        event(
            "sales_shipment",
            5,
            customer="CUS",
            item="TBL",
            location="WH",
            quantity="5",
            unit_price="20",
        ),
    ]


def shoot(page: Any, name: str, db: Engine) -> None:
    """Screenshots come from the SQLite run (one set, not one per database)."""
    if db.dialect.name == "sqlite":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_up(page: Any, url: str, company: str = "Oak & Pine Furniture") -> tuple[str, str]:
    """Through the pages, from the login redirect; the owner's email and API key."""
    page.goto(url + "/")
    assert "/login?next=/" in page.url
    page.get_by_role("link", name="Start a trial").click()
    address = email("owner")
    page.get_by_label("Company").fill(company)
    page.get_by_label("Your name").fill("Li Wei")
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    api_key = page.locator("#api-key").inner_text().strip()
    assert api_key.startswith("tk_")
    page.get_by_role("link", name="Go to the dashboard").click()
    return address, api_key


def card(page: Any, element_id: str) -> str:
    return " ".join(page.locator(f"#{element_id}").inner_text().split())


def test_owner_story_in_chromium(browser: Any, page: Any, server: CloudServer, db: Engine) -> None:
    _, api_key = sign_up(page, server.url)
    assert "CN¥0.00" in card(page, "stock-raw") and "CN¥0.00" in card(page, "revenue")
    assert "Books agree" in card(page, "books") and "Trial" in page.locator(".banner").inner_text()

    ingest = Ingest(server.url, api_key)
    setup_workshop(ingest)
    ingest.create("/items", {"code": "SCREW", "name": "Screw", "kind": "raw", "safety_stock": "50"})
    assert [r["status"] for r in ingest.events(*month_of_work())] == ["posted"] * 5
    page.reload()
    assert card(page, "below-safety").startswith("Items below safety stock 1 SCREW")
    assert "CN¥60.00" in card(page, "stock-raw")
    assert "CN¥45.00" in card(page, "stock-finished")
    assert "CN¥100.00" in card(page, "revenue") and "55.0 %" in card(page, "margin")
    assert "CN¥9.00" in card(page, "output-month")
    assert page.locator("svg.chart rect.chart-bar").count() > 1
    # stock 105 now, none 90 days ago: average 52.5; cost of sales 45
    assert "0.86 ×" in card(page, "turnover") and "210.0" in card(page, "days-of-stock")
    assert "CN¥113.00" in card(page, "receivables-open")
    assert page.locator("#aging-chart svg rect.chart-bar").count() == 4
    assert page.locator("#margin-trend svg polyline").count() == 1
    shoot(page, "dashboard", db)
    print_labels(page, db)
    page.get_by_role("link", name="Dashboard").click()

    (held,) = ingest.events(issue("BOLT", "3", minutes_ago=3))
    assert held["status"] == "held"
    (wrong,) = ingest.events(receipt("GLUE", "5", "3", minutes_ago=2))  # its lot missing
    assert wrong["status"] == "rejected"
    page.reload()
    assert card(page, "held").startswith("Held events waiting 1 1 rejected")
    page.get_by_role("link", name="Open the exception queue").click()
    row = page.locator(f"#event-{held['event_id']}")
    assert (
        "Not enough stock" in row.inner_text() and "Receive the missing stock" in row.inner_text()
    )
    rejected = page.locator(f"#rejected-events #event-{wrong['event_id']}")
    assert "The item is lot-tracked, and no lot was given" in rejected.inner_text()
    shoot(page, "exceptions", db)
    assert "posts by itself" in row.inner_text()
    # the missing stock arrives: the held issue posts by itself, nobody re-posts it
    ingest.events(receipt("BOLT", "10", "2", minutes_ago=40))
    page.reload()
    assert page.locator("#queue-empty").is_visible()
    assert page.locator(f"#event-{held['event_id']}").count() == 0
    rejected = page.locator(f"#rejected-events #event-{wrong['event_id']}")
    rejected.get_by_text("Void…").click()
    rejected.get_by_label("Reason").fill("no lot label on the drum")
    rejected.get_by_role("button", name="Void").click()
    assert "The event is voided." in page.locator(".notice").first.inner_text()
    assert page.locator("#none-rejected").is_visible()

    page.get_by_role("link", name="Inventory").click()
    assert "CN¥" in page.locator("#inventory-total").inner_text()
    shoot(page, "inventory", db)
    page.get_by_role("link", name="BOLT").click()
    ledger = page.locator("#ledger")
    assert ledger.locator("tbody tr").count() == 2 and "OP-7" in ledger.inner_text()
    ledger.get_by_role("link", name="Material issue").click()
    assert "生产成本" in page.locator("#journal-lines").inner_text()  # both account names

    page.get_by_role("link", name="Devices").click()
    page.get_by_role("button", name="Enroll a device").click()
    code = page.locator("#enrollment-code").inner_text().strip()
    assert len(code) == 19 and page.locator("#enrollment-qr svg").is_visible()
    shoot(page, "devices", db)
    enrolled = httpx.post(
        server.url + "/api/v1/devices/enroll", json={"code": code, "name": "handheld-1"}
    )
    assert enrolled.status_code == 201, enrolled.text
    page.get_by_role("link", name="Devices").click()
    assert "handheld-1" in page.locator("#device-list").inner_text()

    production_and_books(page, db)

    page.get_by_role("button", name="中文").click()
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "仪表盘"
    assert "¥74.00" in card(page, "stock-raw") and "原材料" in card(page, "stock-raw")  # + 20 - 6
    shoot(page, "dashboard-zh", db)
    page.get_by_role("button", name="English").click()
    assert page.locator("h1").inner_text() == "Dashboard"

    page.set_viewport_size({"width": 360, "height": 740})  # a handheld's browser
    for path in (
        "/",
        "/inventory",
        "/exceptions",
        "/devices",
        "/inventory/BOLT",
        "/production",
        "/production/WO1",
        "/finance/trial-balance",
        "/finance/journal",
        "/finance/statements",
        "/finance/receivables",
        "/finance/periods",
        "/labels",
        "/subscription",
        "/users",
    ):
        page.goto(server.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)  # wide tables scroll inside their box


def print_labels(page: Any, db: Engine) -> None:
    """The labels page from the menu: two items ticked, two copies, a PDF downloaded."""
    page.get_by_role("link", name="Labels").click()
    assert page.locator("h1").inner_text() == "Labels"
    page.locator("#label-codes input[value=RAW]").check()
    page.locator("#label-codes input[value=TBL]").check()
    page.get_by_label("Copies of each").fill("2")
    shoot(page, "labels", db)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the sheet").click()
    assert download.value.suggested_filename == "labels-item.pdf"
    with open(download.value.path(), "rb") as sheet:
        assert sheet.read(5) == b"%PDF-"
    page.get_by_role("link", name="Operator badges").click()
    assert page.locator("#no-codes").is_visible()  # the workshop has no operators


def production_and_books(page: Any, db: Engine) -> None:
    """The work orders, WO1's cost report and its close; the trial balance with both
    account names, a journal line to its source event; the statements balancing."""
    page.get_by_role("link", name="Production").click()
    row = page.locator("#wo-WO1")
    assert "Completed" in row.inner_text() and "100 %" in row.inner_text()
    assert page.locator("#wo-WO2 progress").count() == 1
    shoot(page, "production", db)
    row.get_by_role("link", name="WO1").click()
    assert "CN¥46.00" in page.locator("#cost-material").inner_text()  # 4 boards, 3 bolts
    assert "CN¥96.00" in page.locator("#cost-total").inner_text()
    assert "CN¥9.00" in card(page, "unit-cost")
    shoot(page, "work-order", db)
    page.locator("summary", has_text="Close…").click()
    page.get_by_label("Reason").fill("all ten made")
    page.get_by_role("button", name="Close", exact=True).click()
    assert page.locator("#order-status").inner_text() == "Closed"
    assert "CN¥6.00" in card(page, "settled-variance")  # the bolts issued after completion

    page.get_by_role("link", name="Finance").click()
    raw = page.locator("#account-1403").inner_text()
    assert "原材料" in raw and "Raw materials" in raw and "CN¥74.00" in raw
    assert "Balanced" in page.locator("#tb-total").inner_text()
    shoot(page, "trial-balance", db)
    page.get_by_role("link", name="Journal").click()
    page.locator("#journal a.source").first.click()
    assert "/events/" in page.url and page.locator("#journal-lines").is_visible()

    page.get_by_role("link", name="Finance").click()
    page.get_by_role("link", name="Statements").click()
    assets = page.locator("#bs-total-assets").inner_text().split()[-1]
    claims = page.locator("#bs-total-liabilities-equity").inner_text().split()[-1]
    assert (
        assets == claims and "The balance sheet balances." in page.locator("#bs-check").inner_text()
    )
    assert "CN¥49.00" in page.locator("#is-profit").inner_text()  # 55 − the variance 6
    shoot(page, "statements", db)


def test_a_viewer_cannot_reach_a_write_action(
    browser: Any, page: Any, server: CloudServer, db: Engine
) -> None:
    _, api_key = sign_up(page, server.url, "Viewer's Workshop")
    ingest = Ingest(server.url, api_key)
    setup_workshop(ingest)
    (held,) = ingest.events(issue("BOLT", "3"))
    viewer_email = email("viewer")
    added = ingest.client.post(
        "/users",
        json={"email": viewer_email, "name": "Vi", "role": "viewer", "password": PASSWORD},
    )
    assert added.status_code == 201, added.text

    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    viewer = context.new_page()
    viewer.goto(server.url + "/exceptions")
    assert "/login?next=/exceptions" in viewer.url
    viewer.get_by_label("Email").fill(viewer_email)
    viewer.get_by_label("Password").fill(PASSWORD)
    viewer.get_by_role("button", name="Sign in").click()
    viewer.wait_for_url(server.url + "/exceptions")
    assert viewer.locator("h1").inner_text() == "异常队列"  # an account's default language
    viewer.get_by_role("button", name="English").click()  # stored on the viewer's account
    viewer.wait_for_url(server.url + "/exceptions")
    row = viewer.locator(f"#event-{held['event_id']}")
    assert "Not enough stock" in row.inner_text()
    assert row.get_by_role("button", name="Re-post").count() == 0
    viewer.get_by_role("link", name="Devices").click()
    assert viewer.get_by_role("button", name="Enroll a device").count() == 0
    viewer.get_by_role("link", name="Production").click()
    viewer.get_by_role("link", name="WO1").click()
    assert viewer.locator("#order-actions").count() == 0
    viewer.goto(server.url + "/finance/periods")
    assert viewer.get_by_role("button", name="Close the period").count() == 0

    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = context.request.post(
        f"{server.url}/exceptions/{held['event_id']}/repost",
        form={"csrf_token": token},
        max_redirects=0,
    )
    assert refused.status == 403 and "Not allowed for your role" in refused.text()
    enroll = context.request.post(
        f"{server.url}/devices/enroll", form={"csrf_token": token, "site": "main"}, max_redirects=0
    )
    assert enroll.status == 403
    viewer.goto(server.url + "/exceptions")
    assert viewer.locator(f"#event-{held['event_id']}").count() == 1  # still held
    context.close()
