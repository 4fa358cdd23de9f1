"""Bills of materials through the API, on SQLite and PostgreSQL: versions and
activation, multi-level explosion with scrap and the routing's planned cost, cycle
detection, low-level codes, and bad input that answers 4xx and writes nothing. Then
the pure domain: per-level rounding and properties over random graphs."""

import copy
import threading
from collections import defaultdict
from decimal import Decimal as D
from itertools import pairwise
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cloud_api.api import schemas
from cloud_api.domain import bom as domain
from cloud_api.errors import Conflict, Rejected
from cloud_api.services import boms, masterdata
from cloud_api.services.tenants import tenant_by_slug
from tests.bom_factory import (
    bom,
    create_bom,
    line,
    low_level_codes,
    operation,
    post_bom,
    setup_furniture,
    table_boms,
)
from tests.conftest import Api

PROBLEM = "application/problem+json"
ZERO_CODES = {"TBL": 0, "LEG": 0, "TOP": 0, "BOARD": 0, "BOLT": 0, "A": 0, "B": 0, "C": 0}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


def versions(api: Api, item: str | None = None) -> list[tuple[str, int, str]]:
    params = {"item": item} if item else {}
    response = api.get("/boms", params=params)
    assert response.status_code == 200, response.text
    return [(b["item"], b["version"], b["status"]) for b in response.json()]


def explode(api: Api, item: str, quantity: str) -> dict[str, Any]:
    response = api.get(f"/boms/{item}/explode", params={"quantity": quantity})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def requirements(explosion: dict[str, Any]) -> dict[str, tuple[int, D, list[Any]]]:
    """component → (low-level code, total, [(level, path, quantity)])."""
    return {
        c["item"]: (
            c["low_level_code"],
            D(c["quantity"]),
            [(s["level"], "/".join(s["path"]), D(s["quantity"])) for s in c["sources"]],
        )
        for c in explosion["components"]
    }


# -- a two-level BOM, exploded ---------------------------------------------------


def test_create_answers_the_stored_bom(api: Api) -> None:
    setup_furniture(api)
    table, leg = table_boms(api)
    assert api.get("/boms/TBL/1").json() == table
    body = api.get("/boms/LEG/1").json()
    assert body == leg
    assert (body["item"], body["version"], body["status"]) == ("LEG", 1, "active")
    assert D(body["output_quantity"]) == D(3)
    assert [
        (ln["line_no"], ln["item"], D(ln["quantity"]), D(ln["scrap_factor"]))
        for ln in body["lines"]
    ] == [
        (1, "BOARD", D(1), D("0.07")),
        (2, "BOLT", D(2), D("0.02")),
    ]
    ops = table["operations"]
    assert [
        (o["seq"], o["work_center"], D(o["setup_minutes"]), D(o["minutes_per_unit"])) for o in ops
    ] == [
        (10, "ASM", D(15), D(12)),
        (20, "FIN", D(0), D("4.7")),
        (30, "ASM", D(0), D(3)),
    ]


def test_two_level_explosion_with_scrap_by_hand(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    explosion = explode(api, "TBL", "10")
    assert (explosion["item"], explosion["version"], D(explosion["quantity"])) == ("TBL", 1, D(10))
    # LEG   10 / 1 × 4 × 1.06 = 42.4;  TOP 10 × 1 × 1.02 = 10.2;  BOLT 10 × 8 = 80
    # BOARD 42.4 / 3 × 1 × 1.07 = 15.1226666… → 15.122667 (half-up, 6 places)
    # BOLT  42.4 / 3 × 2 × 1.02 = 28.832, plus the 80 straight under TBL = 108.832
    assert requirements(explosion) == {
        "LEG": (1, D("42.4"), [(1, "TBL/LEG", D("42.4"))]),
        "TOP": (1, D("10.2"), [(1, "TBL/TOP", D("10.2"))]),
        "BOARD": (2, D("15.122667"), [(2, "TBL/LEG/BOARD", D("15.122667"))]),
        "BOLT": (2, D("108.832"), [(2, "TBL/LEG/BOLT", D("28.832")), (1, "TBL/BOLT", D(80))]),
    }
    # by low-level code, then in the order the explosion met them
    assert [c["item"] for c in explosion["components"]] == ["LEG", "TOP", "BOARD", "BOLT"]
    assert {c["item"]: c["exploded"] for c in explosion["components"]} == {
        "LEG": True,
        "TOP": False,
        "BOARD": False,
        "BOLT": False,
    }


def test_explosion_plans_the_items_own_routing_at_the_centres_rates(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    explosion = explode(api, "TBL", "10")
    # ASM: 15 set-up + 12 × 10 + 3 × 10 = 165 min = 2.75 h; × 40 = 110.00, × 10 = 27.50
    # FIN: 4.7 × 10 = 47 min = 0.783333 h; × 30 = 23.50, × 17 = 13.3166… → 13.32
    # SAW belongs to LEG's routing (its own work order), not to TBL's.
    assert [
        (
            r["work_center"],
            D(r["minutes"]),
            D(r["hours"]),
            D(r["labour_rate"]),
            D(r["overhead_rate"]),
            D(r["labour_cost"]),
            D(r["overhead_cost"]),
        )
        for r in explosion["routing"]
    ] == [
        ("ASM", D(165), D("2.75"), D(40), D(10), D("110.00"), D("27.50")),
        ("FIN", D(47), D("0.783333"), D(30), D(17), D("23.50"), D("13.32")),
    ]
    assert (D(explosion["labour_cost"]), D(explosion["overhead_cost"])) == (
        D("133.50"),
        D("40.82"),
    )
    leg = explode(api, "LEG", "3")
    assert requirements(leg) == {
        "BOARD": (2, D("1.07"), [(1, "LEG/BOARD", D("1.07"))]),
        "BOLT": (2, D("2.04"), [(1, "LEG/BOLT", D("2.04"))]),
    }
    assert [(r["work_center"], D(r["minutes"]), D(r["labour_cost"])) for r in leg["routing"]] == [
        ("SAW", D(15), D("9.00"))
    ]


def test_a_bom_without_routing_plans_no_cost(api: Api) -> None:
    setup_furniture(api)
    create_bom(api, bom("A", line("B", "2")))
    explosion = explode(api, "A", "1")
    assert explosion["routing"] == []
    assert (D(explosion["labour_cost"]), D(explosion["overhead_cost"])) == (D(0), D(0))
    assert requirements(explosion) == {"B": (1, D(2), [(1, "A/B", D(2))])}


# -- versions and activation -------------------------------------------------------


def test_versions_and_activation_obsolete_the_previous(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    v2 = bom("TBL", line("LEG", "4"), line("TOP", "1"), line("BOARD", "0.5"), activate=False)
    created = create_bom(api, v2)
    assert (created["version"], created["status"]) == (2, "draft")
    assert versions(api, "TBL") == [("TBL", 1, "active"), ("TBL", 2, "draft")]
    assert explode(api, "TBL", "10")["version"] == 1  # a draft changes nothing

    response = api.post("/boms/TBL/2/activate")
    assert response.status_code == 200, response.text
    assert (response.json()["version"], response.json()["status"]) == (2, "active")
    assert versions(api, "TBL") == [("TBL", 1, "obsolete"), ("TBL", 2, "active")]
    explosion = explode(api, "TBL", "10")
    assert explosion["version"] == 2
    # BOARD: 10 × 0.5 = 5 straight under TBL, plus 40 / 3 × 1.07 = 14.2666… via LEG
    assert requirements(explosion)["BOARD"] == (
        2,
        D("19.266667"),
        [(2, "TBL/LEG/BOARD", D("14.266667")), (1, "TBL/BOARD", D(5))],
    )
    assert explosion["routing"] == []  # version 2 has no routing


def test_activating_the_active_version_is_idempotent(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    before = api.get("/boms/TBL/1").json()
    again = api.post("/boms/TBL/1/activate")
    assert again.status_code == 200, again.text
    assert again.json() == before
    assert versions(api) == [("LEG", 1, "active"), ("TBL", 1, "active")]


def test_an_obsolete_version_can_be_activated_again(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    create_bom(api, bom("TBL", line("LEG", "4"), line("TOP", "1")))  # active at once
    assert versions(api, "TBL") == [("TBL", 1, "obsolete"), ("TBL", 2, "active")]
    assert api.post("/boms/TBL/1/activate").status_code == 200
    assert versions(api, "TBL") == [("TBL", 1, "active"), ("TBL", 2, "obsolete")]
    third = create_bom(api, bom("TBL", line("LEG", "2"), activate=False))
    assert (third["version"], third["status"]) == (3, "draft")


def test_unknown_versions_and_items_are_404(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    assert_problem(api.get("/boms/TBL/3"), 404, "unknown_bom")
    assert_problem(api.post("/boms/TBL/3/activate"), 404, "unknown_bom")
    assert_problem(api.get("/boms/NOPE/1"), 404, "unknown_item")
    assert_problem(api.post("/boms/NOPE/1/activate"), 404, "unknown_item")
    assert_problem(api.get("/boms", params={"item": "NOPE"}), 404, "unknown_item")
    assert_problem(api.get("/boms/NOPE/explode"), 404, "unknown_item")
    assert_problem(api.get("/boms/BOARD/explode"), 404, "no_active_bom")
    assert_problem(api.get("/boms/TBL/explode", params={"quantity": "0"}), 422, "invalid_request")
    assert versions(api) == [("LEG", 1, "active"), ("TBL", 1, "active")]


def test_a_figure_too_large_to_round_exactly_is_refused(api: Api) -> None:
    setup_furniture(api)
    create_bom(api, bom("A", line("B", "999999999999")))
    assert requirements(explode(api, "A", "100000"))["B"][1] == D("99999999999900000")
    response = api.get("/boms/A/explode", params={"quantity": "1000000"})
    assert "over the limit" in assert_problem(response, 422, "figure_too_large")["detail"]


def test_a_bom_has_no_update_route(api: Api) -> None:
    setup_furniture(api)
    table_boms(api)
    response = api.client.put("/api/v1/boms/TBL/1", json=bom("TBL", line("TOP", "1")))
    assert_problem(response, 405, "method_not_allowed")
    assert [ln["item"] for ln in api.get("/boms/TBL/1").json()["lines"]] == ["LEG", "TOP", "BOLT"]


# -- low-level codes ---------------------------------------------------------------


def test_low_level_codes_take_the_deepest_level(api: Api) -> None:
    setup_furniture(api)
    create_bom(api, bom("TBL", line("LEG", "4"), line("BOARD", "0.5")))
    create_bom(api, bom("LEG", line("BOARD", "1")))
    # BOARD is at level 1 under TBL and at level 2 under LEG: it takes 2.
    assert low_level_codes(api) == {**ZERO_CODES, "LEG": 1, "BOARD": 2}


def test_low_level_codes_follow_activation_both_ways(api: Api) -> None:
    setup_furniture(api)
    create_bom(api, bom("TBL", line("LEG", "4"), line("BOARD", "0.5")))
    create_bom(api, bom("LEG", line("BOARD", "1")))
    create_bom(api, bom("LEG", line("BOLT", "2"), activate=False))
    assert low_level_codes(api) == {**ZERO_CODES, "LEG": 1, "BOARD": 2}  # a draft: no change
    assert api.post("/boms/LEG/2/activate").status_code == 200
    assert low_level_codes(api) == {**ZERO_CODES, "LEG": 1, "BOARD": 1, "BOLT": 2}
    assert api.post("/boms/LEG/1/activate").status_code == 200
    assert low_level_codes(api) == {**ZERO_CODES, "LEG": 1, "BOARD": 2}


# -- cycles --------------------------------------------------------------------------


@pytest.mark.parametrize("activate", [True, False])
def test_a_direct_cycle_is_refused_and_nothing_written(api: Api, activate: bool) -> None:
    setup_furniture(api)
    create_bom(api, bom("A", line("B", "1")))
    problem = assert_problem(
        post_bom(api, bom("B", line("A", "1"), activate=activate)), 409, "bom_cycle"
    )
    assert "B → A → B" in problem["detail"]
    assert problem["cycle"] == ["B", "A", "B"]
    assert versions(api) == [("A", 1, "active")]
    assert low_level_codes(api) == {**ZERO_CODES, "B": 1}


def test_an_indirect_cycle_is_refused_and_nothing_written(api: Api) -> None:
    setup_furniture(api)
    create_bom(api, bom("A", line("B", "1")))
    create_bom(api, bom("B", line("C", "1")))
    problem = assert_problem(post_bom(api, bom("C", line("A", "1"))), 409, "bom_cycle")
    assert "C → A → B → C" in problem["detail"]
    assert versions(api) == [("A", 1, "active"), ("B", 1, "active")]
    assert low_level_codes(api) == {**ZERO_CODES, "B": 1, "C": 2}


def test_activation_rechecks_cycles_against_the_active_boms(api: Api) -> None:
    setup_furniture(api)
    create_bom(api, bom("C", line("A", "1"), activate=False))  # no cycle while a draft
    create_bom(api, bom("A", line("C", "1")))
    problem = assert_problem(api.post("/boms/C/1/activate"), 409, "bom_cycle")
    # the path starts at the BOM being activated, not at the first item by name
    assert "C → A → C" in problem["detail"]
    assert problem["cycle"] == ["C", "A", "C"]
    assert versions(api) == [("A", 1, "active"), ("C", 1, "draft")]
    assert low_level_codes(api) == {**ZERO_CODES, "C": 1}


def test_bom_writers_wait_for_each_other_but_postings_do_not(pg_db: Engine) -> None:
    """On PostgreSQL, while one transaction writes a BOM, a second BOM writer waits
    and then sees it, so no cycle can slip between two writers; an ordinary insert
    under the same tenant (its foreign-key check shares the tenant row) goes on."""
    api = Api(pg_db)
    setup_furniture(api)
    tenant = tenant_by_slug(pg_db, api.tenant.slug)
    outcome: list[str] = []

    def second_writer() -> None:
        try:
            with pg_db.begin() as conn:
                boms.create_bom(conn, tenant, schemas.BomCreate(**bom("B", line("A", "1"))))
            outcome.append("created")
        except Conflict as error:
            outcome.append(error.code)

    def new_item() -> None:
        with pg_db.begin() as conn:
            body = schemas.ItemCreate(code="SCREW", name="Screw", kind="raw")
            masterdata.create_item(conn, tenant, body)

    writer, inserter = threading.Thread(target=second_writer), threading.Thread(target=new_item)
    with pg_db.begin() as conn:
        boms.create_bom(conn, tenant, schemas.BomCreate(**bom("A", line("B", "1"))))
        writer.start()
        inserter.start()
        inserter.join(timeout=10)
        assert not inserter.is_alive()  # not blocked by the BOM lock
        writer.join(timeout=1)
        assert writer.is_alive() and outcome == []  # waits for the first writer
    writer.join(timeout=30)
    assert outcome == ["bom_cycle"]
    assert versions(api) == [("A", 1, "active")]
    assert low_level_codes(api)["SCREW"] == 0


# -- bad input: 4xx with its own code, nothing written --------------------------------


def _valid_body() -> dict[str, Any]:
    return bom(
        "TBL",
        line("LEG", "4", "0.05"),
        line("TOP", "1"),
        operations=[operation(10, "ASM", "12"), operation(20, "FIN", "3")],
    )


def _set(path: str, value: Any) -> Any:
    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


BAD_BOMS = [
    ("unknown item", _set("item", "NOPE"), 404, "unknown_item"),
    ("unknown component", _set("lines.1.item", "NOPE"), 404, "unknown_component"),
    ("unknown work centre", _set("operations.0.work_center", "NOPE"), 404, "unknown_work_center"),
    ("component is parent", _set("lines.1.item", "TBL"), 422, "bom_component_is_parent"),
    ("duplicate component", _set("lines.1.item", "LEG"), 422, "bom_duplicate_component"),
    ("duplicate seq", _set("operations.1.seq", 10), 422, "bom_duplicate_operation"),
    ("zero quantity", _set("lines.0.quantity", "0"), 422, "invalid_quantity"),
    ("negative quantity", _set("lines.1.quantity", "-1"), 422, "invalid_quantity"),
    ("zero output quantity", _set("output_quantity", "0"), 422, "invalid_quantity"),
    ("negative scrap", _set("lines.0.scrap_factor", "-0.01"), 422, "invalid_scrap_factor"),
    ("scrap of one", _set("lines.0.scrap_factor", "1"), 422, "invalid_scrap_factor"),
    ("scrap above one", _set("lines.0.scrap_factor", "1.5"), 422, "invalid_scrap_factor"),
    ("empty lines", _set("lines", []), 422, "bom_without_lines"),
    ("float quantity", _set("lines.0.quantity", 4.0), 422, "invalid_request"),
    ("seven decimals", _set("lines.0.quantity", "0.0000001"), 422, "invalid_request"),
    ("unknown field", _set("version", 7), 422, "invalid_request"),
]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [case[1:] for case in BAD_BOMS],
    ids=[case[0] for case in BAD_BOMS],
)
def test_bad_bom_is_refused_and_nothing_written(
    api: Api, change: Any, status: int, code: str
) -> None:
    setup_furniture(api)
    create_bom(api, bom("LEG", line("BOARD", "1")))
    good = _valid_body()
    body = copy.deepcopy(good)
    change(body)
    assert_problem(post_bom(api, body), status, code)
    assert versions(api) == [("LEG", 1, "active")]
    assert low_level_codes(api) == {**ZERO_CODES, "BOARD": 1}
    assert create_bom(api, good)["version"] == 1  # the unchanged body is fine


# -- the pure domain ---------------------------------------------------------------------


def test_each_level_is_rounded_before_the_next_explodes() -> None:
    boms = {
        "A": domain.Bom("A", (domain.BomLine("B", D(1)),), output_quantity=D(3)),
        "B": domain.Bom("B", (domain.BomLine("C", D(3)),)),
    }
    found = domain.explode(boms, "A", D(1))
    # B = 1 / 3 → 0.333333; C = 0.333333 × 3 = 0.999999 (not 1: B was rounded first)
    assert [(r.path, r.quantity) for r in found] == [
        (("A", "B"), D("0.333333")),
        (("A", "B", "C"), D("0.999999")),
    ]


def test_half_up_rounding_of_a_line() -> None:
    bom_ = domain.Bom("P", (domain.BomLine("X", D("0.000001"), D("0.5")),))
    assert bom_.requirement(bom_.lines[0], D(1)) == D("0.000002")  # 0.0000015 → up


def test_explosion_is_bounded() -> None:
    # 12 levels of two parallel sub-assemblies: 2 + 4 + … + 2¹² paths
    boms = {
        f"L{i}": domain.Bom(f"L{i}", (domain.BomLine(f"X{i}", D(1)), domain.BomLine(f"Y{i}", D(1))))
        for i in range(12)
    }
    for i in range(11):
        boms[f"X{i}"] = domain.Bom(f"X{i}", (domain.BomLine(f"L{i + 1}", D(1)),))
        boms[f"Y{i}"] = domain.Bom(f"Y{i}", (domain.BomLine(f"L{i + 1}", D(1)),))
    with pytest.raises(Rejected) as caught:
        domain.explode(boms, "L0", D(1), max_paths=1000)
    assert caught.value.code == "bom_explosion_too_large"
    assert len(domain.explode(boms, "L6", D(1), max_paths=1000)) < 1000


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A random DAG: edges only from a lower to a higher rank, under shuffled names."""
    size = draw(st.integers(min_value=2, max_value=12))
    names = draw(st.permutations([f"I{i}" for i in range(size)]))
    pairs = st.tuples(st.integers(0, size - 1), st.integers(0, size - 1))
    edges = draw(st.sets(pairs.filter(lambda e: e[0] < e[1]), min_size=1, max_size=30))
    graph: dict[str, list[str]] = defaultdict(list)
    for parent, component in sorted(edges):
        graph[names[parent]].append(names[component])
    return dict(graph)


def _parents(graph: dict[str, list[str]]) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = defaultdict(list)
    for parent, components in graph.items():
        for component in components:
            parents[component].append(parent)
    return parents


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(dags())
def test_low_level_codes_order_every_edge(graph: dict[str, list[str]]) -> None:
    assert domain.find_cycle(graph) is None
    codes = domain.low_level_codes(graph)
    parents = _parents(graph)
    for parent, components in graph.items():
        for component in components:
            assert codes[component] > codes[parent], (parent, component, codes)
    for item, code in codes.items():  # and each code is exactly the deepest level
        assert code == max((codes[p] + 1 for p in parents.get(item, [])), default=0)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(dags(), st.data())
def test_a_back_edge_is_always_a_cycle(graph: dict[str, list[str]], data: st.DataObject) -> None:
    top = data.draw(st.sampled_from(sorted(graph)))
    below = top
    for _ in range(data.draw(st.integers(1, 12))):  # walk down to a descendant
        if below not in graph:
            break
        below = data.draw(st.sampled_from(graph[below]))
    cyclic = {**graph, below: [*graph.get(below, []), top]}
    cycle = domain.find_cycle(cyclic)
    assert cycle is not None
    assert cycle[0] == cycle[-1] and len(cycle) >= 3
    for parent, component in pairwise(cycle):
        assert component in cyclic[parent], (cycle, cyclic)
    with pytest.raises(Conflict) as caught:
        domain.low_level_codes(cyclic)
    assert caught.value.code == "bom_cycle"


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(dags())
def test_explosion_counts_every_path(graph: dict[str, list[str]]) -> None:
    """With unit quantities and no scrap, a component's total is its number of paths."""
    boms = {
        item: domain.Bom(item, tuple(domain.BomLine(c, D(1)) for c in components))
        for item, components in graph.items()
    }
    root = sorted(graph)[0]
    paths: dict[str, int] = defaultdict(int)
    stack = [root]
    while stack:
        item = stack.pop()
        for component in graph.get(item, []):
            paths[component] += 1
            stack.append(component)
    totals = domain.gross_requirements(domain.explode(boms, root, D(1)))
    assert totals == {item: D(count) for item, count in paths.items()}
