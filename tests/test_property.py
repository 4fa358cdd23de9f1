"""Property tests: random event histories, arriving in random order (so many events
are late), keep every invariant of the books; and the books do not depend on the
order in which events arrive."""

import uuid
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api
from tests.factory import (
    completion,
    count,
    issue,
    labour,
    receipt,
    ret,
    reversal,
    setup_workshop,
    shipment,
)

ITEMS = ["RAW", "BOLT"]
quantity = st.integers(min_value=1, max_value=9).map(str)
price = st.decimals(min_value=D("0.01"), max_value=D("50"), places=2).map(str)
minute = st.integers(min_value=0, max_value=600)
work_order = st.sampled_from(["WO1", "WO2"])

operation = st.one_of(
    st.tuples(st.just("receipt"), minute, st.sampled_from([*ITEMS, "TBL"]), quantity, price),
    st.tuples(st.just("issue"), minute, st.sampled_from(ITEMS), quantity, work_order),
    st.tuples(st.just("return"), minute, st.sampled_from(ITEMS), quantity, work_order),
    st.tuples(st.just("labour"), minute, st.just(""), quantity, work_order),
    st.tuples(st.just("completion"), minute, st.just("TBL"), quantity, work_order),
    st.tuples(st.just("shipment"), minute, st.just("TBL"), quantity, price),
    st.tuples(st.just("count"), minute, st.sampled_from(ITEMS), quantity, st.just("")),
    st.tuples(st.just("reversal"), minute, st.just(""), st.just(""), st.integers(0, 50)),
)


def build(op: tuple[Any, ...], posted: list[dict[str, Any]]) -> dict[str, Any] | None:
    kind, at, item, qty, extra = op
    if kind == "receipt":
        return receipt(at, item, qty, extra)
    if kind == "issue":
        return issue(at, item, qty, wo=extra)
    if kind == "return":
        return ret(at, item, qty, wo=extra)
    if kind == "labour":
        return labour(at, qty, wo=extra)
    if kind == "completion":
        return completion(at, qty, wo=extra)
    if kind == "shipment":
        return shipment(at, item, qty, extra)
    if kind == "count":
        return count(at, item, qty)
    candidates = [e for e in posted if e["type"] != "reversal"]
    if not candidates:
        return None
    original = candidates[extra % len(candidates)]
    return reversal(_minute_of(original) + 1 + at % 30, original["event_id"])


def _minute_of(event: dict[str, Any]) -> int:
    from datetime import datetime

    from tests.factory import BASE_TIME

    return int((datetime.fromisoformat(event["occurred_at"]) - BASE_TIME).total_seconds() // 60)


def run_history(api: Api, ops: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Send the ops' events in turn; return those that ended posted, in the order
    sent. A held event may post later by itself, once what it waits for posts, so
    what posted is read back from the exception queue, not from the first answer."""
    setup_workshop(api)
    sent: list[dict[str, Any]] = []
    for op in ops:
        ev = build(op, posted_of(api, sent))
        if ev is None:
            continue
        (result,) = api.events(ev)
        assert result["status"] in ("posted", "held", "rejected"), result
        sent.append(ev)
    return posted_of(api, sent)


def posted_of(api: Api, sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of `sent` that are posted now (not held or rejected)."""
    if not sent:
        return []
    still_open = {
        row["event_id"]
        for status in ("held", "rejected")
        for row in api.get("/exceptions", params={"status": status, "limit": 1000}).json()
    }
    return [ev for ev in sent if ev["event_id"] not in still_open]


def assert_books_agree(api: Api) -> None:
    assert api.reconcile() == []
    tb = api.get("/reports/trial-balance").json()
    assert D(tb["total_debit"]) == D(tb["total_credit"])
    stock = api.get("/reports/stock").json()
    assert all(D(row["quantity"]) >= 0 for row in stock), stock


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_random_histories_keep_every_invariant(sqlite_db: Any, ops: list[Any]) -> None:
    api = Api(sqlite_db)
    run_history(api, ops)
    assert_books_agree(api)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(operation, min_size=1, max_size=20))
def test_random_histories_on_postgres(pg_db: Any, ops: list[Any]) -> None:
    api = Api(pg_db)
    run_history(api, ops)
    assert_books_agree(api)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=st.lists(operation.filter(lambda op: op[0] != "count"), min_size=1, max_size=20))
def test_arrival_order_does_not_change_the_books(sqlite_db: Any, ops: list[Any]) -> None:
    """What posted out of order, posted again in event-time order into a fresh
    tenant, leaves the same balances: late events cost exactly what on-time ones do.
    (Stock counts are left out: their difference is fixed when they post.)"""
    shuffled = Api(sqlite_db)
    posted = run_history(shuffled, ops)
    in_order = Api(sqlite_db)
    setup_workshop(in_order)
    for ev in sorted(posted, key=lambda e: (e["occurred_at"], uuid.UUID(e["event_id"]))):
        (result,) = in_order.events(ev)
        assert result["status"] == "posted", result
    assert _nonzero(shuffled.balances()) == _nonzero(in_order.balances())
    assert _stock(shuffled) == _stock(in_order)
    assert in_order.reconcile() == []


def _nonzero(balances: dict[str, Any]) -> dict[str, Any]:
    """An account whose lines net to zero has the same balance as one without lines."""
    return {code: value for code, value in balances.items() if value != 0}


def _stock(api: Api) -> list[tuple[str, str, str, str]]:
    return [
        (r["item"], r["location"], r["quantity"], r["value"])
        for r in api.get("/reports/stock").json()
    ]
