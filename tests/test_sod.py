"""Reversing a posted entry (SAAS.md case 13 and the RBAC matrix's "reverse posted
journal"): owners and finance managers only, never the person who posted it unless
the owner waived that (audited), never a device; a second reversal is refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tests.factory import receipt, reversal
from tests.test_users import PASSWORD, Browser, _email


def _member(owner: Browser, db: Engine, role: str) -> Browser:
    email = _email(role)
    added = owner.call(
        "POST", "/users", json={"email": email, "name": role, "role": role, "password": PASSWORD}
    )
    assert added.status_code == 201, added.text
    browser = Browser(db, owner.client.app)
    assert browser.log_in(email).status_code == 200
    return browser


def _setup(owner: Browser) -> None:
    for path, body in (
        ("/items", {"code": "RAW", "name": "Board", "kind": "raw"}),
        ("/suppliers", {"code": "SUP", "name": "Supplier"}),
    ):
        assert owner.call("POST", path, json=body).status_code == 201


def _post(browser: Browser, *events: dict[str, Any]) -> list[dict[str, Any]]:
    response = browser.call("POST", "/edge/events", json={"events": list(events)})
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def _stock_value(browser: Browser) -> Decimal:
    tb = browser.call("GET", "/reports/trial-balance").json()
    return sum((Decimal(a["balance"]) for a in tb["accounts"] if a["code"] == "1403"), Decimal(0))


def test_the_poster_may_not_reverse_their_own_entry_another_finance_manager_may(
    db: Engine,
) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    _setup(owner)
    (posted,) = _post(owner, receipt(1, "RAW", "10", "3.00"))
    assert posted["status"] == "posted"
    assert _stock_value(owner) == Decimal("30.00")

    own = owner.call("POST", f"/events/{posted['event_id']}/reverse", json={"reason": "typo"})
    assert own.status_code == 403 and own.json()["code"] == "sod_violation"
    assert _stock_value(owner) == Decimal("30.00")  # nothing posted

    finance = _member(owner, db, "finance_mgr")
    done = finance.call("POST", f"/events/{posted['event_id']}/reverse", json={"reason": "typo"})
    assert done.status_code == 201, done.text
    assert done.json()["status"] == "posted"
    assert _stock_value(owner) == Decimal("0.00")
    again = finance.call("POST", f"/events/{posted['event_id']}/reverse", json={"reason": "x"})
    assert again.status_code == 409 and again.json()["code"] == "already_reversed"


def test_only_owners_and_finance_managers_reverse_and_a_device_never(db: Engine) -> None:
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    _setup(owner)
    clerk = _member(owner, db, "warehouse")
    (posted,) = _post(clerk, receipt(1, "RAW", "4", "2.50"))
    refused = clerk.call("POST", f"/events/{posted['event_id']}/reverse", json={"reason": "x"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    # nor through the events endpoint, where a clerk may post stock but not reversals
    (through_ingest,) = _post(clerk, reversal(2, posted["event_id"]))
    assert through_ingest["status"] == "rejected" and through_ingest["code"] == "forbidden"

    code = owner.call("POST", "/devices/enrollment-codes", json={}).json()["code"]
    key = owner.client.post("/api/v1/devices/enroll", json={"code": code, "name": "gate"}).json()
    device = owner.client.post(
        "/api/v1/edge/events",
        json={"events": [reversal(3, posted["event_id"])]},
        headers={"Authorization": f"Bearer {key['key']}"},
        cookies={},
    )
    assert device.status_code == 200, device.text
    (result,) = device.json()["results"]
    assert result["status"] == "rejected" and result["code"] == "reversal_not_allowed"
    assert _stock_value(owner) == Decimal("10.00")
    # the owner (not the poster) may; the tenant's API key acts for the owner too
    assert (
        owner.call(
            "POST", f"/events/{posted['event_id']}/reverse", json={"reason": "wrong item"}
        ).status_code
        == 201
    )
    assert _stock_value(owner) == Decimal("0.00")
    assert signed["api_key"]


def test_an_owner_may_waive_it_for_a_one_person_company_and_the_waiver_is_audited(
    db: Engine,
) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    _setup(owner)
    (posted,) = _post(owner, receipt(1, "RAW", "2", "5.00"))
    waived = owner.call("PATCH", "/settings", json={"reversal_sod_waived": True})
    assert waived.status_code == 200 and waived.json()["reversal_sod_waived"] is True
    audit = owner.call("GET", "/audit-log").json()
    assert any(
        a["action"] == "settings.change" and "reversal_sod_waived=True" in a["object"]
        for a in audit
    )
    done = owner.call("POST", f"/events/{posted['event_id']}/reverse", json={"reason": "dup"})
    assert done.status_code == 201, done.text
    assert _stock_value(owner) == Decimal("0.00")


def test_reversing_an_unknown_or_another_tenants_event_is_404(db: Engine) -> None:
    a, b = Browser(db), Browser(db)
    a.sign_up(_email("a"))
    b.sign_up(_email("b"))
    _setup(b)
    (b_event,) = _post(b, receipt(1, "RAW", "1", "1.00"))
    for event_id in (b_event["event_id"], "0190b3a4-0000-7000-8000-000000000000"):
        response = a.call("POST", f"/events/{event_id}/reverse", json={"reason": "x"})
        assert response.status_code == 404 and response.json()["code"] == "unknown_event"
    assert _stock_value(b) == Decimal("1.00")
