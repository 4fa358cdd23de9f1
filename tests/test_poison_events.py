"""Issue 15, item 1: one bad event never blocks the edge.

A terminal report whose time sat at the edge of the representable range
(`9999-12-31T23:59:59-14:00`, year 0001 at +14:00, a UTC time that is year 10000 in
the tenant's zone) made the whole batch answer 500 on every retry (an OverflowError
in the clock conversion), so every scan queued behind it on the edge stayed pending.
Here a valid batch carries ONE poisoned event (extreme times, huge or oddly spelt
numbers, text no database keeps, deeply nested junk), at a random position: the
poisoned event is refused on its own with a stable code, every neighbour posts, and
the books still reconcile. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cloud_api.domain import posting_rules as rules
from cloud_api.services import ingest
from tests.conftest import Api
from tests.factory import setup_workshop

EVENTS = "/edge/events"
# the codes a poisoned event may get: malformed (the contract), dated outside the
# window the cloud takes, or amounts beyond what the books keep
STABLE_CODES = {"invalid_event", "occurred_at_out_of_range", "amount_out_of_range"}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def neighbour(n: int) -> dict[str, Any]:
    """A valid receipt of 1 RAW at 2.00, dated an hour or so ago (inside the window
    whatever the day the suite runs)."""
    return {
        "event_id": str(uuid.uuid4()),
        "device_id": "term-1",
        "seq": n,
        "type": "purchase_receipt",
        "occurred_at": (_now() - timedelta(hours=1, minutes=n)).isoformat(),
        "payload": {
            "supplier": "SUP",
            "item": "RAW",
            "location": "WH",
            "quantity": "1",
            "unit_price": "2.00",
        },
    }


# -- poisons -----------------------------------------------------------------------

EDGE_TIMES = [
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T20:00:00Z",  # year 10000 in the tenant's zone (Asia/Shanghai)
    "2999-12-31T23:59:59-14:00",  # past 3000 in UTC
    "1969-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T00:00:00+24:00",
    "2026-03-02T00:00:00",  # no offset
    "2026-03-02 00:00:00+00:00",
    "1700000000",
    "",
]
ODD_NUMBERS: list[Any] = [
    " 12",
    "+5",
    "1_000",
    "\u0663",  # Arabic-Indic three
    "\uff15",  # full-width five
    "5e2",
    "1E400",
    "NaN",
    "Infinity",
    "-0.0000001",
    "0x10",
    "1.",
    ".5",
    "1,5",
    1.5,
    True,
    None,
    [],
    {},
    10**30,
    -(10**30),
    "9" * 5000,
    "1" + "0" * 64,
]
# text no field takes: NUL, a lone surrogate, too long, not text at all
ODD_TEXT: list[Any] = ["L\x001", "\ud800", "x" * 65, 123, ["RAW"], {"code": "RAW"}]
# and what no code takes besides
ODD_CODES: list[Any] = [*ODD_TEXT, "", " leading-space"]


def nested(depth: int) -> Any:
    junk: Any = "x"
    for level in range(depth):
        junk = [junk] if level % 2 else {"k": junk}
    return junk


def _offset(minutes: int) -> str:
    """±HH:MM, from -14:00 to +14:00."""
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _at(path: tuple[str, ...], value: Any) -> Any:
    def poison(event: dict[str, Any]) -> None:
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return poison


poisons = st.one_of(
    # times: the envelope's and a labour report's, extreme or loosely spelt
    st.tuples(st.sampled_from([("occurred_at",), ("captured_at",)]), st.sampled_from(EDGE_TIMES)),
    st.tuples(
        st.just(("occurred_at",)),
        # any year but the window's (ten years back, two days ahead) and a margin
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
        .filter(lambda d: not 2016 <= d.year <= 2036)
        .flatmap(
            lambda d: st.integers(-14 * 60, 14 * 60).map(lambda m: d.isoformat() + _offset(m))
        ),
    ),
    st.tuples(st.just(("occurred_at",)), st.integers(-(2**70), 2**70)),
    # numbers: spelt as the contract does not take them, or beyond the books' range
    st.tuples(
        st.sampled_from([("payload", "quantity"), ("payload", "unit_price")]),
        st.sampled_from(ODD_NUMBERS),
    ),
    st.tuples(
        st.sampled_from([("seq",), ("device_seq",)]),
        st.sampled_from([-1, 2**63, 2**64, 2**200, 1.5, "x"]),
    ),
    st.tuples(st.just(("clock_offset_s",)), st.sampled_from([1e308, -1e308, "x", [], 1e11])),
    # text: NUL, lone surrogates, too long, wrong type, deeply nested junk
    st.tuples(
        st.sampled_from([("payload", "lot"), ("operator",), ("device_id",)]),
        st.sampled_from(ODD_TEXT),
    ),
    st.tuples(
        st.sampled_from([("payload", "item"), ("payload", "supplier"), ("type",)]),
        st.sampled_from(ODD_CODES),
    ),
    st.tuples(
        st.sampled_from([("payload", "lot"), ("payload", "junk"), ("junk",), ("payload",)]),
        st.integers(1, 400).map(nested),
    ),
    st.tuples(st.just(("event_id",)), st.sampled_from([5, "nope", "", None, "a" * 10_000])),
)


@st.composite
def huge_amounts(draw: st.DrawFn) -> tuple[tuple[str, ...], Any]:
    """A receipt the contract takes whose value (quantity × price ≥ 10^15) is beyond
    what the books keep: refused alone, `amount_out_of_range`."""
    quantity = draw(st.integers(10**7, 10**12 - 1))
    price = draw(st.integers(10**8, 10**12 - 1))
    return ("payload",), {
        "supplier": "SUP",
        "item": "RAW",
        "location": "WH",
        "quantity": str(quantity),
        "unit_price": f"{price}.{draw(st.integers(0, 99)):02d}",
    }


def _poisoned(n: int, where: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = neighbour(n)
    _at(where, copy.deepcopy(value))(event)
    return event


def _post(api: Api, events: list[Any]) -> Any:
    """As JSON with \\u escapes (a lone surrogate travels) and NaN/Infinity allowed."""
    body = json.dumps({"events": events}, ensure_ascii=True)
    return api.post(EVENTS, content=body.encode(), headers={"content-type": "application/json"})


class Books:
    """The RAW receipts that posted so far, to check the books after each batch."""

    def __init__(self) -> None:
        self.posted = 0


def _check_batch(api: Api, books: Books, poison: tuple[tuple[str, ...], Any], data: Any) -> None:
    neighbours = data.draw(st.integers(2, 5))
    position = data.draw(st.integers(0, neighbours))
    events: list[Any] = [neighbour(n) for n in range(neighbours)]
    bad = _poisoned(99, *poison)
    events.insert(position, bad)
    response = _post(api, events)
    assert response.status_code == 200, response.text[:500]
    results = response.json()["results"]
    assert len(results) == len(events)
    refused = results[position]
    assert refused["status"] == "rejected", (poison, refused)
    assert refused["code"] in STABLE_CODES, (poison, refused)
    others = results[:position] + results[position + 1 :]
    assert [r["status"] for r in others] == ["posted"] * neighbours, (poison, results)
    books.posted += neighbours
    stock = api.get("/reports/stock").json()
    raw = [row for row in stock if row["item"] == "RAW"]
    assert sum(Decimal(row["quantity"]) for row in raw) == books.posted, raw


@pytest.mark.parametrize("kind", ["poison", "huge_amount"])
def test_one_poisoned_event_never_sinks_its_batch(db: Engine, kind: str) -> None:
    api = Api(db)
    setup_workshop(api)
    books = Books()
    strategy = poisons if kind == "poison" else huge_amounts()

    @given(poison=strategy, data=st.data())
    @settings(
        max_examples=25 if kind == "poison" else 8,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(poison: tuple[tuple[str, ...], Any], data: Any) -> None:
        _check_batch(api, books, poison, data)

    run()
    assert api.reconcile() == []
    kept = api.get("/exceptions", params={"status": "rejected"}).json()
    assert {row["code"] for row in kept} <= STABLE_CODES - {"invalid_event"}


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T20:00:00Z"],
)
def test_edge_of_range_time_is_rejected_alone(api: Api, moment: str) -> None:
    """The issue's own examples: invalid_event, the neighbours posted."""
    setup_workshop(api)
    bad = neighbour(9)
    bad["occurred_at"] = moment
    results = api.events(neighbour(1), bad, neighbour(2))
    assert [r["status"] for r in results] == ["posted", "rejected", "posted"]
    assert results[1]["code"] == "invalid_event"
    assert "1970" in results[1]["message"], results[1]


# -- the event time window ------------------------------------------------------------


def test_window_is_visible_to_the_tenant(api: Api) -> None:
    window = api.get("/settings").json()["event_time_window"]
    assert window == {"max_past_days": 3660, "max_future_hours": 48}


@pytest.mark.parametrize(
    ("shift", "offset", "status"),
    [
        (timedelta(days=-3661), None, "rejected"),  # a clock reset years back
        (timedelta(days=-3650), None, "posted"),
        (timedelta(hours=49), None, "rejected"),  # a clock a few days ahead
        (timedelta(hours=47), None, "posted"),
        # an edge measured 10 h ahead of the cloud may date events 10 h further ahead
        (timedelta(hours=57), -36_000.0, "posted"),
        (timedelta(hours=59), -36_000.0, "rejected"),
        # ... but never more than the window's own 48 h further
        (timedelta(hours=97), -1e9, "rejected"),
    ],
)
def test_event_outside_the_window_is_rejected_alone(
    api: Api, shift: timedelta, offset: float | None, status: str
) -> None:
    setup_workshop(api)
    dated = neighbour(9)
    dated["occurred_at"] = (_now() + shift).isoformat()
    if offset is not None:
        dated["clock_offset_s"] = offset
    results = api.events(neighbour(1), dated, neighbour(2))
    assert [results[0]["status"], results[2]["status"]] == ["posted", "posted"]
    assert results[1]["status"] == status, results[1]
    if status == "rejected":
        assert results[1]["code"] == "occurred_at_out_of_range"
        assert "window" in results[1]["message"]
        # kept in the exception queue: someone must see the broken clock
        kept = api.get("/exceptions", params={"status": "rejected"}).json()
        assert [row["event_id"] for row in kept] == [dated["event_id"]]
    assert api.reconcile() == []


# -- faults no validator foresaw ---------------------------------------------------------


def test_unexpected_error_in_planning_rejects_only_that_event(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one event's posting rule (here a KeyError for one lot) is that event's
    `internal_error`, kept in the queue; the batch goes on."""
    setup_workshop(api)
    plan_receipt = rules.RULES["purchase_receipt"]

    def faulty(event: Any, md: Any) -> Any:
        if event.payload.lot == "BOOM":
            raise KeyError("a bug")
        return plan_receipt(event, md)  # type: ignore[operator]

    monkeypatch.setitem(rules.RULES, "purchase_receipt", faulty)
    bad = neighbour(9)
    bad["payload"]["lot"] = "BOOM"
    results = api.events(neighbour(1), bad, neighbour(2))
    assert [r["status"] for r in results] == ["posted", "rejected", "posted"]
    assert results[1]["code"] == "internal_error"
    assert "KeyError" not in results[1]["message"]  # nothing of the inside leaks
    kept = api.get("/exceptions", params={"status": "rejected"}).json()
    assert [(row["event_id"], row["code"]) for row in kept] == [(bad["event_id"], "internal_error")]
    assert len(api.get("/reports/stock-ledger/RAW").json()) == 2
    assert api.reconcile() == []


def test_failure_after_valuation_runs_the_batch_again_without_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure once the engine has valued an event (booking its rows) could leave
    the batch half-applied: the batch goes back to its savepoint and runs again
    without that event. Nothing of it is in the books; its neighbours are, once."""
    setup_workshop(api)
    keep_lot = ingest.Batch._keep_lot

    def faulty(self: Any, event: Any) -> None:
        keep_lot(self, event)
        if getattr(event.payload, "lot", "") == "BOOM":
            raise ZeroDivisionError("a bug after the engine took the event")

    monkeypatch.setattr(ingest.Batch, "_keep_lot", faulty)
    bad = neighbour(9)
    bad["payload"].update(item="GLUE", lot="BOOM")  # GLUE is lot-tracked
    before, after = neighbour(1), neighbour(2)
    bad["occurred_at"] = before["occurred_at"]  # in between, by time
    results = api.events(before, bad, after)
    assert [r["status"] for r in results] == ["posted", "rejected", "posted"]
    assert results[1]["code"] == "internal_error"
    ledger = api.get("/reports/stock-ledger/RAW").json()
    assert len(ledger) == 2
    assert {row["quantity"] for row in ledger} == {"1.000000"}
    assert api.get("/reports/stock-ledger/GLUE").json() == []
    assert sorted(api.balances().values()) == [Decimal(-4), Decimal(4)]
    assert api.reconcile() == []
    kept = api.get("/exceptions", params={"status": "rejected"}).json()
    assert [(row["event_id"], row["code"]) for row in kept] == [(bad["event_id"], "internal_error")]


def test_pool_beyond_what_the_books_keep_is_refused_alone(api: Api) -> None:
    """Each receipt fits, but the tenth would take the pool's quantity past what a
    quantity column keeps (SQLite's scaled 64-bit integer: 9.2e12): that one alone is
    `amount_out_of_range`, in one batch with the others, which post."""
    setup_workshop(api)
    big = []
    for n in range(10):
        event = neighbour(n)
        event["payload"].update(quantity="999999999999", unit_price="0.000001")
        big.append(event)
    results = api.events(*big)  # posted oldest first: big[9] ... big[0], the tenth
    assert [r["status"] for r in results] == ["rejected"] + ["posted"] * 9
    assert results[0]["code"] == "amount_out_of_range"
    assert "stock quantity" in results[0]["message"]
    stock = api.get("/reports/stock").json()
    assert [Decimal(row["quantity"]) for row in stock] == [Decimal("8999999999991")]
    assert api.reconcile() == []
