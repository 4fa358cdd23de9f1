"""Bad input never writes and never answers 500: every refusal has a stable code.

Batch-level problems answer problem+json; per-event problems answer a `rejected`
(malformed) or `held` (valid but not postable now) result, and the valid neighbours
in the same batch still post.
"""

import copy
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import Api
from tests.factory import event, receipt, setup_workshop, shipment

PROBLEM = "application/problem+json"
EVENTS = "/edge/events"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    return body


def assert_nothing_written(api: Api) -> None:
    assert api.balances() == {}
    assert api.get("/exceptions").json() == []
    assert api.get("/reports/stock").json() == []
    assert api.get("/reports/journal").json() == []


def good(minutes: float = 1) -> dict[str, Any]:
    return receipt(minutes, "RAW", "2", "5")


def only_good_posted(api: Api) -> None:
    """Exactly one receipt of 2 RAW at 5 is in the books, nothing else."""
    balances = api.balances()
    assert sorted(balances.values()) == [Decimal(-10), Decimal(10)], balances
    assert len(api.get("/reports/stock-ledger/RAW").json()) == 1
    assert api.get("/exceptions").json() == []
    assert api.reconcile() == []


# -- batch level ------------------------------------------------------------------


def test_malformed_json_is_400(api: Api) -> None:
    response = api.post(
        EVENTS, content=b'{"events": [', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")
    assert_nothing_written(api)


def test_batch_over_the_limit_is_422(api: Api) -> None:
    setup_workshop(api)
    batch = [receipt(i, "RAW", "1", "1") for i in range(1001)]
    response = api.post(EVENTS, json={"events": batch})
    assert_problem(response, 422, "invalid_request")
    assert api.balances() == {}
    assert api.get("/exceptions").json() == []


def test_empty_batch_is_422(api: Api) -> None:
    response = api.post(EVENTS, json={"events": []})
    assert_problem(response, 422, "invalid_request")
    assert_nothing_written(api)


def test_unknown_top_level_field_is_422(api: Api) -> None:
    setup_workshop(api)
    response = api.post(EVENTS, json={"events": [good()], "extra": 1})
    assert_problem(response, 422, "invalid_request")
    assert api.balances() == {}
    assert api.get("/exceptions").json() == []


def test_body_too_large_is_413(api: Api) -> None:
    setup_workshop(api)
    filler = "x" * (9 * 1024 * 1024)
    body = json.dumps({"events": [good()], "padding": filler}).encode()
    assert len(body) > 8 * 1024 * 1024
    response = api.post(EVENTS, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 413, "body_too_large")
    assert api.balances() == {}
    assert api.get("/exceptions").json() == []


# -- per event: rejected ------------------------------------------------------------


def _posted_as_ascii_json(api: Api, path: str, body: Any) -> httpx.Response:
    """JSON with \\u escapes, as a client may send a lone surrogate (which httpx's own
    UTF-8 encoding of `json=` cannot)."""
    content = json.dumps(body).encode("ascii")
    return api.post(path, content=content, headers={"content-type": "application/json"})


def _with_payload(**changes: Any) -> dict[str, Any]:
    ev = receipt(0, "RAW", "1", "1")
    ev["payload"].update(changes)
    return ev


def _without(field: str) -> dict[str, Any]:
    ev = receipt(0, "RAW", "1", "1")
    del ev[field]
    return ev


def _naive() -> dict[str, Any]:
    ev = receipt(0, "RAW", "1", "1")
    ev["occurred_at"] = "2026-03-02T00:00:00"
    return ev


LENIENT_NUMBERS = {
    "space": " 12",
    "plus": "+5",
    "underscore": "1_000",
    "arabic_indic": "\u0663",
    "full_width": "\uff15",
    "exponent": "5e2",
    "exponent_upper": "1E+2",
    "hex": "0x10",
    "trailing_point": "1.",
    "leading_point": ".5",
    "comma": "1,5",
    "newline": "5\n",
}
EDGE_OF_RANGE = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T20:00:00Z",  # year 10000 in the tenant's zone (Asia/Shanghai)
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
]


def _dated(field: str, moment: str) -> dict[str, Any]:
    ev = receipt(0, "RAW", "1", "1")
    ev[field] = moment
    return ev


def _nested(depth: int) -> Any:
    junk: Any = "x"
    for _ in range(depth):
        junk = [junk]
    return junk


BAD_EVENTS = {
    "unknown_payload_field": (_with_payload(colour="red"), "colour"),
    "quantity_not_a_number": (_with_payload(quantity="abc"), "quantity"),
    "negative_quantity": (_with_payload(quantity="-1"), "quantity"),
    "zero_quantity": (_with_payload(quantity="0"), "quantity"),
    "float_quantity": (_with_payload(quantity=1.5), "quantity"),
    "too_many_decimals": (_with_payload(quantity="1.1234567"), "quantity"),
    "nan_quantity": (_with_payload(quantity="NaN"), "quantity"),
    "infinite_quantity": (_with_payload(quantity="Infinity"), "quantity"),
    "bool_quantity": (_with_payload(quantity=True), "quantity"),
    "unknown_type": (event("teleport", 0, {"item": "RAW"}), "type"),
    "missing_occurred_at": (_without("occurred_at"), "occurred_at"),
    "naive_occurred_at": (_naive(), "occurred_at"),
    "unknown_envelope_field": ({**receipt(0, "RAW", "1", "1"), "sneaky": 1}, "sneaky"),
    "event_id_not_uuid": ({**receipt(0, "RAW", "1", "1"), "event_id": "nope"}, "event_id"),
    # text no database keeps: PostgreSQL's text refuses NUL, UTF-8 a lone surrogate
    "nul_in_text": (_with_payload(lot="L\x001"), "NUL"),
    "lone_surrogate": (_with_payload(lot="L\ud8001"), "surrogate"),
    "nul_in_envelope": ({**receipt(0, "RAW", "1", "1"), "operator": "OP\x00"}, "NUL"),
    # issue 15, item 10: a decimal is plain ASCII digits, a time ISO 8601 with an offset
    **{
        f"lenient_quantity_{name}": (_with_payload(quantity=spelt), "quantity")
        for name, spelt in LENIENT_NUMBERS.items()
    },
    "lenient_unit_price": (_with_payload(unit_price="+2.50"), "unit_price"),
    "epoch_occurred_at": (
        {**receipt(0, "RAW", "1", "1"), "occurred_at": 1772409600},
        "occurred_at",
    ),
    "epoch_text_occurred_at": (
        {**receipt(0, "RAW", "1", "1"), "occurred_at": "1772409600"},
        "occurred_at",
    ),
    "spaced_occurred_at": (
        {**receipt(0, "RAW", "1", "1"), "occurred_at": "2026-03-02 00:00:00+00:00"},
        "occurred_at",
    ),
    "basic_offset_occurred_at": (
        {**receipt(0, "RAW", "1", "1"), "occurred_at": "2026-03-02T00:00:00+0000"},
        "occurred_at",
    ),
    "epoch_expiry": (_with_payload(expiry=20260302), "expiry"),
    # issue 15, item 1: times whose clock conversion overflowed, failing the batch
    **{
        f"edge_of_range_{field}_{n}": (_dated(field, moment), field)
        for field in ("occurred_at", "captured_at")
        for n, moment in enumerate(EDGE_OF_RANGE)
    },
    "nested_junk": (_with_payload(lot=_nested(400)), "lot"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_malformed_event_is_rejected_alone(api: Api, case: str) -> None:
    setup_workshop(api)
    bad, field = copy.deepcopy(BAD_EVENTS[case])
    bad["event_id"] = bad["event_id"] if case == "event_id_not_uuid" else str(uuid.uuid4())
    results = _posted_as_ascii_json(api, EVENTS, {"events": [bad, good()]}).json()["results"]
    assert len(results) == 2
    assert results[0]["status"] == "rejected", results[0]
    assert results[0]["code"] == "invalid_event"
    assert field in results[0]["message"], results[0]["message"]
    assert results[1]["status"] == "posted", results[1]
    only_good_posted(api)


def test_batch_counts_match_results(api: Api) -> None:
    setup_workshop(api)
    response = api.post(EVENTS, json={"events": [_with_payload(quantity="abc"), good()]})
    assert response.status_code == 200
    body = response.json()
    assert (body["posted"], body["rejected"], body["held"]) == (1, 1, 0)


# -- per event: held / rejected by the posting rules ----------------------------------


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (lambda: receipt(0, "NOPE", "1", "1"), "unknown_item"),
        (lambda: receipt(0, "RAW", "1", "1", location="NOWHERE"), "unknown_location"),
    ],
    ids=["unknown_item", "unknown_location"],
)
def test_unknown_master_data_is_held(api: Api, bad: Any, code: str) -> None:
    setup_workshop(api)
    bad = bad()
    results = api.events(bad, good())
    assert (results[0]["status"], results[0]["code"]) == ("held", code)
    assert results[1]["status"] == "posted"
    held = api.get("/exceptions").json()
    assert [h["event_id"] for h in held] == [bad["event_id"]]
    assert sorted(api.balances().values()) == [Decimal(-10), Decimal(10)]


def test_unknown_customer_is_held(api: Api) -> None:
    setup_workshop(api)
    assert api.events(good())[0]["status"] == "posted"
    before = api.balances()
    bad = shipment(5, "RAW", "1", "9")
    bad["payload"]["customer"] = "NOBODY"
    results = api.events(bad)
    assert (results[0]["status"], results[0]["code"]) == ("held", "unknown_customer")
    assert api.balances() == before
    assert [h["event_id"] for h in api.get("/exceptions").json()] == [bad["event_id"]]
    assert len(api.get("/reports/stock-ledger/RAW").json()) == 1


def test_receipt_into_virtual_location_is_rejected(api: Api) -> None:
    setup_workshop(api)
    bad = receipt(0, "RAW", "1", "1", location="SUPPLIER")
    results = api.events(bad, good())
    assert (results[0]["status"], results[0]["code"]) == ("rejected", "location_not_internal")
    assert results[1]["status"] == "posted"
    only_good_posted(api)


# -- authentication and tenant isolation -------------------------------------------


def test_wrong_api_key_is_401(api: Api) -> None:
    setup_workshop(api)
    response = api.client.post(
        "/api/v1" + EVENTS,
        json={"events": [good()]},
        headers={"Authorization": "Bearer not-a-real-key"},
    )
    assert_problem(response, 401, "invalid_api_key")
    assert api.balances() == {}
    assert api.get("/exceptions").json() == []


def test_missing_api_key_is_401(api: Api) -> None:
    setup_workshop(api)
    del api.client.headers["Authorization"]
    response = api.client.post("/api/v1" + EVENTS, json={"events": [good()]})
    assert_problem(response, 401, "missing_api_key")
    response = api.client.get("/api/v1/reports/trial-balance")
    assert_problem(response, 401, "missing_api_key")
    api.client.headers["Authorization"] = f"Bearer {api.tenant.api_key}"
    assert api.balances() == {}


def test_tenants_are_isolated(db: Engine) -> None:
    a, b = Api(db), Api(db)
    setup_workshop(a)
    shared = good()
    assert a.events(shared)[0]["status"] == "posted"
    assert a.balances() != {}

    assert b.balances() == {}
    unknown = b.get("/reports/stock-ledger/RAW")  # A's item is no item of B's
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_item")
    assert b.get("/reports/stock").json() == []
    assert b.get("/items").json() == []
    assert b.get("/exceptions").json() == []

    # B has no RAW item: the same event id lands in B's own space, held there.
    result = b.events(shared)[0]
    assert result["status"] in ("posted", "held"), result
    assert result["status"] != "duplicate"
    assert result["code"] in ("unknown_item", "unknown_supplier"), result
    assert b.balances() == {}
    assert [h["event_id"] for h in b.get("/exceptions").json()] == [shared["event_id"]]
    assert len(a.get("/reports/stock-ledger/RAW").json()) == 1
    assert a.get("/exceptions").json() == []


def test_same_event_id_posts_in_each_tenant(db: Engine) -> None:
    a, b = Api(db), Api(db)
    setup_workshop(a)
    setup_workshop(b)
    shared = good()
    assert a.events(shared)[0]["status"] == "posted"
    assert b.events(shared)[0]["status"] == "posted"
    assert a.events(shared)[0]["status"] == "duplicate"
    assert len(a.get("/reports/stock-ledger/RAW").json()) == 1
    assert len(b.get("/reports/stock-ledger/RAW").json()) == 1


# -- master data ---------------------------------------------------------------------


def test_duplicate_item_code_is_409(api: Api) -> None:
    api.create("/items", {"code": "RAW", "name": "Board", "kind": "raw"})
    response = api.post("/items", json={"code": "RAW", "name": "Other", "kind": "raw"})
    assert_problem(response, 409, "item_exists")
    items = api.get("/items").json()
    assert [i["code"] for i in items] == ["RAW"]
    assert items[0]["name"] == "Board"


def test_unknown_field_in_item_is_422(api: Api) -> None:
    response = api.post("/items", json={"code": "X", "name": "X", "kind": "raw", "colour": 1})
    assert_problem(response, 422, "invalid_request")
    assert api.get("/items").json() == []


@pytest.mark.parametrize("name", ["Board\x00", "Board\udc00"])
def test_text_no_database_keeps_is_422(api: Api, name: str) -> None:
    response = _posted_as_ascii_json(api, "/items", {"code": "X", "name": name, "kind": "raw"})
    body = assert_problem(response, 422, "invalid_request")
    assert "NUL" in str(body) or "surrogate" in str(body), body
    assert api.get("/items").json() == []


@pytest.mark.parametrize("code", ["2026-13", "2026-00", "26-01", "2026-1", "abcd-ef"])
def test_invalid_period_is_422(api: Api, code: str) -> None:
    response = api.post(f"/periods/{code}/close")
    assert_problem(response, 422, "invalid_period")
    setup_workshop(api)
    assert api.events(good())[0]["status"] == "posted"


# -- nothing answers 500 -------------------------------------------------------------

GARBAGE: list[Any] = [
    [],
    "x",
    None,
    0,
    1.5,
    True,
    {},
    {"events": "x"},
    {"events": None},
    {"events": {}},
    {"events": 1},
    {"events": [[]]},
    {"events": [{}]},
    {"events": [{"type": None}]},
    {"events": [{"type": "purchase_receipt", "payload": "x"}]},
    {"events": [{"type": "purchase_receipt", "payload": None}]},
    {"events": [{"event_id": 5, "type": [], "payload": []}]},
    {"events": [{"event_id": "a" * 10_000}]},
    {"EVENTS": []},
    {"events": [{"type": "reversal", "payload": {"reverses_event_id": "x"}}]},
]


@pytest.mark.parametrize("body", GARBAGE, ids=[json.dumps(g)[:40] for g in GARBAGE])
def test_garbage_never_500(api: Api, body: Any) -> None:
    response = api.post(EVENTS, content=json.dumps(body).encode(), headers=_JSON)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.headers["content-type"].startswith(PROBLEM)
    else:
        assert all(r["status"] == "rejected" for r in response.json()["results"])
    assert_nothing_written(api)


_JSON = {"content-type": "application/json"}


def test_garbage_bytes_never_500(api: Api) -> None:
    for raw in [b"", b"\xff\xfe", b"nul", b'{"events": [1,]}', b"{" * 5000, b"[" * 5000]:
        response = api.post(EVENTS, content=raw, headers=_JSON)
        assert response.status_code < 500, (raw[:20], response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
    assert_nothing_written(api)


def test_non_object_events_are_rejected_one_by_one(api: Api) -> None:
    setup_workshop(api)
    response = api.post(EVENTS, json={"events": [1, "a", None]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 3
    assert {r["code"] for r in results} == {"invalid_event"}
    assert api.balances() == {}
    assert api.get("/exceptions").json() == []


def test_non_object_event_does_not_sink_its_neighbours(api: Api) -> None:
    setup_workshop(api)
    response = api.post(EVENTS, json={"events": [good(), 1]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["posted", "rejected"]
    assert results[1]["code"] == "invalid_event"
    only_good_posted(api)


# -- issue 15, item 7: out-of-range path and query values, and bodies' times -----------

NUL = "%00"
EDGE_QUERY_TIMES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00%2B14:00",
    "9999-12-31T20:00:00Z",
    "1700000000",  # an epoch
    "2026-03-02T00:00:00",  # no offset
    "2026-03-02 00:00:00Z",
]
OUT_OF_RANGE_PARAMS: list[tuple[str, str]] = [
    *(("GET", f"/reports/stock?at={moment}") for moment in EDGE_QUERY_TIMES),
    *(("GET", f"/edge/masterdata?since={moment}") for moment in EDGE_QUERY_TIMES),
    # integers beyond their column (a BOM version is a 32-bit integer), or loosely spelt
    ("GET", "/boms/RAW/9223372036854775808"),
    ("GET", "/boms/RAW/99999999999999999999999999999"),
    ("GET", "/boms/RAW/2147483648"),
    ("GET", "/boms/RAW/0"),
    ("GET", "/boms/RAW/-1"),
    ("GET", "/boms/RAW/%2B1"),
    ("GET", "/boms/RAW/1_0"),
    ("GET", "/boms/RAW/1.0"),
    ("POST", "/boms/RAW/18446744073709551616/activate"),
    # NUL in path and query text, and text longer than any code
    ("GET", f"/work-orders/WO{NUL}1"),
    ("GET", f"/work-orders/WO{NUL}1/cost"),
    ("POST", f"/work-orders/WO{NUL}1/release"),
    ("POST", f"/work-orders/WO{NUL}1/cancel"),
    ("POST", f"/work-orders/WO{NUL}1/close"),
    ("POST", f"/work-orders/WO{NUL}1/progress"),
    ("GET", f"/reports/stock-ledger/RAW{NUL}"),
    ("GET", f"/boms?item=RAW{NUL}"),
    ("GET", f"/boms/RAW{NUL}/1"),
    ("GET", f"/boms/RAW{NUL}/explode"),
    ("POST", f"/periods/2026-0{NUL}/close"),
    ("GET", "/work-orders/" + "W" * 65),
    ("GET", "/reports/stock-ledger/" + "R" * 65),
    # a decimal query value spelt loosely
    *(("GET", f"/boms/RAW/explode?quantity={q}") for q in ["5e2", "%2B5", "1_000", "NaN", "-1"]),
]


def test_out_of_range_path_and_query_values_are_422(api: Api) -> None:
    """Each was a 500 (an OverflowError converting the time, PostgreSQL refusing a NUL
    or an int4 overflow) or was read loosely; one tenant for all, nothing written."""
    setup_workshop(api)
    before = api.balances()
    for method, path in OUT_OF_RANGE_PARAMS:
        body: dict[str, Any] = {"reason": "x"} if path.endswith("/close") else {}
        if "periods" in path:
            body = {}
        if path.endswith("/progress"):
            body = {"type": "labour", "payload": {"work_center": "WC", "hours": "1"}}
        kwargs: dict[str, Any] = {} if method == "GET" else {"json": body}
        response = api.client.request(method, "/api/v1" + path, **kwargs)
        assert response.status_code == 422, (method, path, response.text[:300])
        assert_problem(response, 422, "invalid_request")
    assert api.balances() == before
    assert api.get("/work-orders/WO1").json()["status"] == "released"


def _heartbeat(**changes: Any) -> dict[str, Any]:
    return {"edge_id": "edge-1", "sent_at": "2026-03-02T00:00:00+00:00", **changes}


BAD_TIMES_IN_BODIES: list[tuple[str, dict[str, Any]]] = [
    *(("/edge/heartbeat", _heartbeat(sent_at=moment)) for moment in EDGE_OF_RANGE),
    ("/edge/heartbeat", _heartbeat(sent_at=1772409600)),
    ("/edge/heartbeat", _heartbeat(sent_at="2026-03-02T00:00:00")),
    ("/edge/heartbeat", _heartbeat(oldest_pending_at="0001-01-01T00:00:00+14:00")),
    *(
        (
            "/work-orders/WO1/progress",
            {
                "type": "labour",
                "payload": {"work_center": "WC", "hours": "1"},
                "occurred_at": moment,
            },
        )
        for moment in EDGE_OF_RANGE
    ),
    ("/journal-entries", {"entry_date": "9999-12-31", "memo": "m", "lines": []}),
    ("/journal-entries", {"entry_date": 20260302, "memo": "m", "lines": []}),
    (f"/events/{uuid.uuid4()}/reverse", {"reason": "r", "occurred_at": EDGE_OF_RANGE[0]}),
    (f"/events/{uuid.uuid4()}/reverse", {"reason": "r", "occurred_at": 1772409600}),
    ("/work-orders", {"code": "WO9", "item": "TBL", "planned_quantity": "1e1"}),
    ("/work-centers", {"code": "WC9", "name": "W", "labour_rate": " 40"}),
    ("/settings", {"completion_tolerance": "+0.1"}),
]


def test_bodies_with_out_of_range_or_loose_values_are_422(api: Api) -> None:
    setup_workshop(api)
    before = (api.balances(), api.get("/settings").json())
    for path, body in BAD_TIMES_IN_BODIES:
        method = "PATCH" if path == "/settings" else "POST"
        response = api.client.request(method, "/api/v1" + path, json=body)
        assert response.status_code == 422, (path, body, response.text[:300])
        assert_problem(response, 422, "invalid_request")
    assert (api.balances(), api.get("/settings").json()) == before
    assert api.get("/edge/agents").json() == []
    assert "WO9" not in {row["code"] for row in api.get("/work-orders").json()}


def test_progress_with_a_labour_time_out_of_range_is_422(api: Api) -> None:
    """The payload is the contract's: its times are bounded too (invalid_event → 422)."""
    setup_workshop(api)
    payload = {
        "work_center": "WC",
        "started_at": "0001-01-01T00:00:00+14:00",
        "stopped_at": "2026-03-02T08:00:00+08:00",
    }
    response = api.post("/work-orders/WO1/progress", json={"type": "labour", "payload": payload})
    assert_problem(response, 422, "invalid_event")
    assert api.balances() == {}


def test_deeply_nested_body_is_a_4xx(api: Api) -> None:
    """Nesting past what the JSON parser takes is the body's problem, never a 500."""
    depth = 100_000
    raw = b'{"events": [' + b"[" * depth + b"]" * depth + b"]}"
    response = api.post(EVENTS, content=raw, headers=_JSON)
    assert 400 <= response.status_code < 500, response.text[:200]
    assert response.headers["content-type"].startswith(PROBLEM)
    assert_nothing_written(api)
