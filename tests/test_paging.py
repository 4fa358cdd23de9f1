"""Lists are paged, never cut off: `limit` (bounded, 422 outside) and `offset`, the
bare JSON array as before, `X-Total-Count` and a `Link: rel="next"` while rows remain
(cloud_api/api/paging.py). A report about an item, order or BOM the tenant does not
have is 404 with a stable code, not an empty answer. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cloud_api.api import schemas
from cloud_api.db import tenancy
from cloud_api.services import masterdata
from tests.conftest import Api
from tests.factory import receipt, setup_workshop

NEXT = re.compile(r'<([^>]+)>; rel="next"')


def _many_items(api: Api, count: int) -> set[str]:
    """`count` items straight through the service (faster than as many requests)."""
    codes = {f"P{n:05d}" for n in range(count)}
    with tenancy.as_tenant(api.tenant.id), api.db.begin() as conn:
        for code in sorted(codes):
            body = schemas.ItemCreate(code=code, name=code, kind="raw")
            masterdata.create_item(conn, api.tenant, body)
    return codes


def _walk(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """Every row of a list, following the Link headers; and each page's total."""
    rows: list[dict[str, Any]] = []
    totals = []
    response = api.get(path, params=params)
    while True:
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)  # still the bare array
        rows += response.json()
        totals.append(int(response.headers["X-Total-Count"]))
        found = NEXT.search(response.headers.get("Link", ""))
        if not found:
            return rows, totals
        response = api.client.get(found.group(1))


def test_more_than_500_items_are_paged_completely(api: Api) -> None:
    """The list used to stop at 500 rows without a word, whatever limit was asked."""
    setup_workshop(api)
    before = {i["code"] for i in _walk(api, "/items", limit=1000)[0]}
    codes = _many_items(api, 620) | before

    first = api.get("/items")
    assert first.status_code == 200 and len(first.json()) == 100  # the default page
    assert first.headers["X-Total-Count"] == str(len(codes))
    assert 'rel="next"' in first.headers["Link"]

    whole = api.get("/items", params={"limit": 1000})
    assert [i["code"] for i in whole.json()] == sorted(codes)
    assert "Link" not in whole.headers  # nothing after it

    rows, totals = _walk(api, "/items", limit=250)
    assert [i["code"] for i in rows] == sorted(codes)  # no overlap, no gap, in order
    assert set(totals) == {len(codes)} and len(totals) == 3

    tail = api.get("/items", params={"limit": 10, "offset": len(codes) - 3})
    assert len(tail.json()) == 3 and "Link" not in tail.headers
    beyond = api.get("/items", params={"offset": len(codes) + 5})
    assert beyond.json() == [] and beyond.headers["X-Total-Count"] == str(len(codes))


@pytest.mark.parametrize(
    "path",
    [
        "/items",
        "/locations",
        "/customers",
        "/suppliers",
        "/work-centers",
        "/operators",
        "/operator-grades",
        "/accounts",
        "/work-orders",
        "/boms",
        "/devices",
        "/api-tokens",
        "/exceptions",
        "/edge/agents",
        "/audit-log",
        "/reports/journal",
        "/reports/stock-ledger/RAW",
        "/subscription/invoices",
    ],
)
def test_every_list_validates_limit_and_offset_and_says_the_total(api: Api, path: str) -> None:
    setup_workshop(api)
    api.events(receipt(1, "RAW", "5", "2"), receipt(2, "RAW", "1", "2"))
    for bad in ({"limit": 0}, {"limit": -1}, {"limit": 10**6}, {"limit": "x"}):
        refused = api.get(path, params=bad)
        assert refused.status_code == 422, (path, bad, refused.text)
        assert refused.json()["code"] == "invalid_request"
    for bad in ({"offset": -1}, {"offset": 2**31}, {"offset": 2**70}):
        refused = api.get(path, params=bad)
        assert (refused.status_code, refused.json()["code"]) == (422, "invalid_request"), bad
    listed = api.get(path)
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    total = int(listed.headers["X-Total-Count"])
    assert total == len(listed.json())  # all of a short list on the first page
    if total >= 2:
        one = api.get(path, params={"limit": 1})
        assert len(one.json()) == 1 and one.headers["X-Total-Count"] == str(total)
        following = NEXT.search(one.headers["Link"])
        assert following and "offset=1" in following.group(1) and "limit=1" in following.group(1)
        second = api.client.get(following.group(1))
        assert second.json() == [listed.json()[1]]


def test_a_report_on_an_unknown_item_is_404_not_an_empty_ledger(db: Engine) -> None:
    """A typo'd (or another tenant's) item code read as "never moved"."""
    a, b = Api(db), Api(db)
    setup_workshop(a)
    setup_workshop(b)
    b.create("/items", {"code": "ONLY-B", "name": "b's", "kind": "raw"})
    for code in ("NOPE", "ONLY-B"):
        for path in (
            f"/reports/stock-ledger/{code}",
            f"/boms/{code}/explode",
            f"/boms/{code}/1",
        ):
            missing = a.get(path)
            assert missing.status_code == 404, (path, missing.text)
            assert missing.json()["code"] in {"unknown_item", "unknown_bom"}, path
        assert a.get("/reports/stock-ledger/" + code).json()["code"] == "unknown_item"
        assert a.get("/boms", params={"item": code}).json()["code"] == "unknown_item"
    for path in ("/work-orders/NOPE", "/work-orders/NOPE/cost"):
        missing = a.get(path)
        assert (missing.status_code, missing.json()["code"]) == (404, "unknown_work_order"), path
    known = a.get("/reports/stock-ledger/RAW")
    assert known.status_code == 200 and known.json() == []  # known, never moved: empty


def test_the_stock_ledger_pages_in_time_order(api: Api) -> None:
    setup_workshop(api)
    api.events(*(receipt(n, "RAW", "1", "2") for n in range(1, 8)))
    whole = api.get("/reports/stock-ledger/RAW", params={"limit": 1000}).json()
    assert len(whole) == 7
    rows, totals = _walk(api, "/reports/stock-ledger/RAW", limit=3)
    assert rows == whole and totals == [7, 7, 7]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(1, 12), offset=st.integers(0, 15))
def test_any_page_is_the_matching_slice_of_the_whole(db: Engine, limit: int, offset: int) -> None:
    api = _shared_api(db)
    whole = api.get("/items", params={"limit": 1000}).json()
    page = api.get("/items", params={"limit": limit, "offset": offset})
    assert page.json() == whole[offset : offset + limit]
    assert page.headers["X-Total-Count"] == str(len(whole))
    assert ("Link" in page.headers) == (offset + limit < len(whole))


_SHARED: dict[str, Api] = {}


def _shared_api(db: Engine) -> Api:
    """One tenant with a dozen items for every example (a tenant per example is slow)."""
    key = str(db.url)
    if key not in _SHARED:
        _SHARED[key] = Api(db)
        setup_workshop(_SHARED[key])
        _many_items(_SHARED[key], 9)
    return _SHARED[key]
