"""Manual journal entries (the RBAC matrix's "draft / post journal"; SAAS.md cases 12
and 13): owners, finance managers and accountants post balanced entries on accounts no
sub-ledger owns; a warehouse clerk, a viewer or a device cannot; a closed period
refuses with 409 and keeps nothing; the poster may not reverse their own entry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select

from cloud_api.db import models as m
from tests.factory import event
from tests.test_users import PASSWORD, Browser, _email

T = m.SQLModel.metadata.tables
BANK_FEE = {
    "entry_date": "2026-03-05",
    "memo": "bank charges, March",
    "lines": [
        {"account": "6603", "debit": "35.50"},
        {"account": "1002", "credit": "35.50"},
    ],
}


def _member(owner: Browser, db: Engine, role: str) -> Browser:
    email = _email(role)
    added = owner.call(
        "POST", "/users", json={"email": email, "name": role, "role": role, "password": PASSWORD}
    )
    assert added.status_code == 201, added.text
    browser = Browser(db, owner.client.app)
    assert browser.log_in(email).status_code == 200
    return browser


def _balances(browser: Browser) -> dict[str, Decimal]:
    tb = browser.call("GET", "/reports/trial-balance").json()
    return {a["code"]: Decimal(a["balance"]) for a in tb["accounts"]}


def _held(db: Engine, tenant_id: str) -> int:
    ev = T["edge_event"]
    with db.connect() as conn:
        return int(
            conn.scalar(
                select(func.count()).where(
                    ev.c.tenant_id == __import__("uuid").UUID(tenant_id), ev.c.status == "held"
                )
            )
            or 0
        )


def test_finance_posts_an_entry_and_another_reverses_it(db: Engine) -> None:
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    accountant = _member(owner, db, "accountant")
    posted = accountant.call("POST", "/journal-entries", json=BANK_FEE)
    assert posted.status_code == 201, posted.text
    entry = posted.json()
    balances = _balances(owner)
    assert balances["6603"] == Decimal("35.50") and balances["1002"] == Decimal("-35.50")
    journal = owner.call("GET", "/reports/journal").json()
    assert any("bank charges" in str(e) for e in journal), journal
    own = accountant.call("POST", f"/events/{entry['event_id']}/reverse", json={"reason": "x"})
    assert own.status_code == 403  # an accountant may not reverse at all
    finance = _member(owner, db, "finance_mgr")
    done = finance.call("POST", f"/events/{entry['event_id']}/reverse", json={"reason": "dup"})
    assert done.status_code == 201, done.text
    assert _balances(owner).get("6603", Decimal(0)) == Decimal("0.00")
    again = owner.call("POST", "/journal-entries", json={**BANK_FEE, "entry_id": entry["event_id"]})
    assert again.status_code == 201 and again.json()["status"] == "duplicate"
    assert signed["tenant_id"]


def test_who_may_not_post_a_journal(db: Engine) -> None:
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    for role in ("warehouse", "viewer"):  # a trial has three seats
        refused = _member(owner, db, role).call("POST", "/journal-entries", json=BANK_FEE)
        assert refused.status_code == 403, (role, refused.text)
    # a device: refused per event, and kept nowhere
    code = owner.call("POST", "/devices/enrollment-codes", json={}).json()["code"]
    key = owner.client.post("/api/v1/devices/enroll", json={"code": code, "name": "gate"}).json()
    payload = {"memo": "sneaky", "lines": BANK_FEE["lines"]}
    answer = owner.client.post(
        "/api/v1/edge/events",
        json={"events": [event("journal_entry", 1, payload)]},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    (result,) = answer.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "journal_not_allowed")
    assert "6603" not in _balances(owner)
    assert signed


def test_bad_entries_are_refused_with_a_reason_and_nothing_written(db: Engine) -> None:
    owner = Browser(db)
    owner.sign_up(_email("owner"))
    cases: list[tuple[dict[str, Any], int, str]] = [
        (
            {"lines": [{"account": "6603", "debit": "10"}, {"account": "1002", "credit": "9"}]},
            422,
            "unbalanced_entry",
        ),
        (
            {"lines": [{"account": "1403", "debit": "10"}, {"account": "1002", "credit": "10"}]},
            422,
            "control_account",
        ),
        (
            {"lines": [{"account": "9999", "debit": "1"}, {"account": "1002", "credit": "1"}]},
            422,
            "unknown_account",
        ),
        (
            {
                "lines": [
                    {"account": "6603", "debit": "1", "credit": "1"},
                    {"account": "1002", "credit": "0"},
                ]
            },
            422,
            "bad_journal_line",
        ),
        (
            {"lines": [{"account": "1122", "debit": "5"}, {"account": "6051", "credit": "5"}]},
            422,
            "customer_required",
        ),
        (
            {"lines": [{"account": "6603", "debit": 1.5}, {"account": "1002", "credit": 1.5}]},
            422,
            "invalid_request",
        ),
    ]
    for change, status, code in cases:
        response = owner.call("POST", "/journal-entries", json={**BANK_FEE, **change})
        assert response.status_code == status, (code, response.text)
        assert response.json()["code"] == code
    assert _balances(owner) == {}


def test_a_closed_period_refuses_with_409_and_keeps_nothing(db: Engine) -> None:
    owner = Browser(db)
    signed = owner.sign_up(_email("owner"))
    assert owner.call("POST", "/periods/2026-03/close").status_code == 200
    refused = owner.call("POST", "/journal-entries", json=BANK_FEE)
    assert refused.status_code == 409 and refused.json()["code"] == "period_locked"
    assert _held(db, signed["tenant_id"]) == 0  # not parked in the exception queue
    assert owner.call("POST", "/periods/2026-03/reopen", json={"reason": "late"}).status_code == 200
    assert owner.call("POST", "/journal-entries", json=BANK_FEE).status_code == 201
