"""Idempotency under concurrency (SAAS.md cases 8 and 9), through a real server on
PostgreSQL as erp_app: the event id is the idempotency key (the edge persists it
before sending). The same event sent 2 and 10 times at once posts once and every
answer names the same entry and moves; the same id with another body is a conflict
that writes nothing; the same id in another tenant is that tenant's own event."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import Api
from tests.edge_harness import CloudServer
from tests.factory import receipt, setup_workshop

pytestmark = pytest.mark.postgres


def at_once(senders: int, send: Callable[[httpx.Client], Any]) -> list[Any]:
    """`send` run by `senders` threads released together, each with its own client;
    their answers (any exception fails the test)."""
    answers: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(senders)

    def run() -> None:
        try:
            with httpx.Client(timeout=60) as client:
                start.wait()
                answers.append(send(client))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return answers


def _at_once(url: str, key: str, event: dict[str, Any], senders: int) -> list[dict[str, Any]]:
    def send(client: httpx.Client) -> dict[str, Any]:
        response = client.post(
            url + "/api/v1/edge/events",
            json={"events": [event]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200, response.text
        return response.json()["results"][0]  # type: ignore[no-any-return]

    return at_once(senders, send)


@pytest.mark.parametrize("senders", [2, 10])
def test_the_same_event_sent_at_once_posts_once(
    pg_db: Engine, server: CloudServer, senders: int
) -> None:
    api = Api(pg_db)
    setup_workshop(api)
    event = receipt(1, "RAW", "10", "2.50")
    answers = _at_once(server.url, api.tenant.api_key, event, senders)
    statuses = sorted(a["status"] for a in answers)
    assert statuses == ["duplicate"] * (senders - 1) + ["posted"]
    assert len({a["journal_entry_id"] for a in answers}) == 1
    assert len({tuple(a["move_ids"]) for a in answers}) == 1
    assert api.balances()["1403"] == Decimal("25.00")
    assert api.reconcile() == []


def test_the_same_id_with_another_body_is_a_conflict_and_another_tenant_is_independent(
    pg_db: Engine, server: CloudServer
) -> None:
    a, b = Api(pg_db), Api(pg_db)
    for api in (a, b):
        setup_workshop(api)
    event = receipt(1, "RAW", "10", "2.50")
    (posted,) = a.events(event)
    assert posted["status"] == "posted"
    other = {**event, "payload": {**event["payload"], "quantity": "99"}}
    answers = _at_once(server.url, a.tenant.api_key, other, 4)
    assert {(x["status"], x["code"]) for x in answers} == {("conflict", "idempotency_key_reused")}
    assert a.balances()["1403"] == Decimal("25.00")
    # the same event id under B is B's own event: it posts there, once
    (in_b,) = b.events(other)
    assert in_b["status"] == "posted"
    assert b.balances()["1403"] == Decimal("247.50")
    assert a.balances()["1403"] == Decimal("25.00")
