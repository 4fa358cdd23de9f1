"""Late events replayed from valuation-pool snapshots (issue 16), on SQLite and
PostgreSQL: whatever the arrival order and wherever the snapshots fall, the books are
those of the history posted in event order, to the cent; a snapshot tampered with is
caught by the books-check; a late event across snapshot boundaries, into a closed
period, into a FIFO pool consumed after its snapshot, and through a work order into
the goods it made and shipped, gives the values a hand calculation gives."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update
from sqlalchemy import event as sa_event

from cloud_api.db import models as m
from cloud_api.domain import engine
from cloud_api.domain.clock import utc
from cloud_api.domain.refs import INTERNAL_KINDS
from cloud_api.services.store import pool_state
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.factory import (
    BASE_TIME,
    completion,
    issue,
    labour,
    receipt,
    setup_workshop,
    shipment,
)
from tests.test_ledger import _count, stored_layers
from tests.test_property import ITEMS, build, minute, price, quantity, work_order

T = m.SQLModel.metadata.tables
PS = T["pool_snapshot"]
APRIL = 60 * 24 * 31  # minutes from BASE_TIME (2 March) to 2 April
MARCH_END = 60 * 24 * 29 + 60 * 16  # to 1 April 00:00 in Asia/Shanghai (16:00 UTC)


# -- the snapshot interval -----------------------------------------------------------------
@contextmanager
def snapshot_every(records: int) -> Iterator[None]:
    """The interval for one hypothesis example (the function-scoped monkeypatch fixture
    would span all examples of a test)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(get_settings(), "valuation_snapshot_every", records)
        yield


# -- reading the books ---------------------------------------------------------------------
def snapshots(api: Api, **pool: uuid.UUID) -> list[Any]:
    """The tenant's snapshots (of one pool, given item_id and location_id or
    work_order_id), in event-time order."""
    where = [PS.c[column] == value for column, value in pool.items()]
    with api.db.connect() as conn:
        return list(
            conn.execute(
                select(PS)
                .where(PS.c.tenant_id == api.tenant.id, *where)
                .order_by(PS.c.occurred_at, PS.c.event_id, PS.c.line_no)
            )
        )


def id_of(api: Api, table: str, code: str) -> uuid.UUID:
    t = T[table]
    with api.db.connect() as conn:
        found = conn.scalar(select(t.c.id).where(t.c.tenant_id == api.tenant.id, t.c.code == code))
    assert found is not None, (table, code)
    return uuid.UUID(str(found))


def stock_pool(api: Api, item: str, location: str = "WH") -> dict[str, uuid.UUID]:
    return {"item_id": id_of(api, "item", item), "location_id": id_of(api, "location", location)}


def wip_pool(api: Api, order: str = "WO1") -> dict[str, uuid.UUID]:
    return {"work_order_id": id_of(api, "work_order", order)}


def nonzero(balances: dict[str, D]) -> dict[str, D]:
    """An account whose lines net to zero has the same balance as one without lines."""
    return {code: value for code, value in balances.items() if value != 0}


def stock(api: Api) -> list[tuple[str, str, str, D, D]]:
    return [
        (r["item"], r["location"], r["lot"], D(r["quantity"]), D(r["value"]))
        for r in api.get("/reports/stock").json()
    ]


def wip(api: Api) -> dict[str, D]:
    return {r["work_order"]: D(r["wip_value"]) for r in api.get("/reports/wip").json()}


def ledger_values(api: Api, item: str) -> list[tuple[str, D, D]]:
    """The item's moves in event order: (kind of event, quantity, effective value)."""
    rows = api.get(f"/reports/stock-ledger/{item}", params={"limit": 1000}).json()
    return [(r["event_type"], D(r["quantity"]), D(r["value"])) for r in rows]


def statuses(api: Api) -> dict[str, str]:
    ev = T["edge_event"]
    with api.db.connect() as conn:
        return {
            str(r.event_id): r.status
            for r in conn.execute(
                select(ev.c.event_id, ev.c.status).where(ev.c.tenant_id == api.tenant.id)
            )
        }


def busiest_pool_records(api: Api) -> int:
    """The most records (moves and work-order charges) any one pool holds: a pool
    with at least the interval's count of records must have been snapshotted."""
    mv, loc, ch = T["stock_move"], T["location"], T["wip_charge"]
    tid = api.tenant.id
    counts: Counter[tuple[Any, ...]] = Counter()
    with api.db.connect() as conn:
        kinds = {
            r.id: r.kind
            for r in conn.execute(select(loc.c.id, loc.c.kind).where(loc.c.tenant_id == tid))
        }
        for r in conn.execute(select(mv).where(mv.c.tenant_id == tid)):
            for side in (r.from_location_id, r.to_location_id):
                if kinds[side] in INTERNAL_KINDS:
                    counts["stock", r.item_id, side] += 1
                elif kinds[side] == "production":
                    counts["wip", r.work_order_id] += 1
        for r in conn.execute(select(ch.c.work_order_id).where(ch.c.tenant_id == tid)):
            counts["wip", r.work_order_id] += 1
    return max(counts.values(), default=0)


def minute_of(moment: datetime) -> float:
    return (utc(moment) - BASE_TIME).total_seconds() / 60


def assert_snapshots_follow(
    rows: list[Any], timeline: Sequence[tuple[float, D | None, D]], at_least: int
) -> None:
    """Each snapshot holds its pool's state after the last record at or before its
    position, as the hand-computed `timeline` (minute, quantity or None for a work
    order, value) says; and there are at least `at_least` of them."""
    assert len(rows) >= at_least, rows
    for row in rows:
        minute = minute_of(row.occurred_at)
        _, quantity, value = [state for state in timeline if state[0] <= minute][-1]
        if quantity is not None:
            assert row.quantity == quantity, (minute, row)
        assert row.value == value, (minute, row)


def position_of(row: Any) -> tuple[datetime, uuid.UUID, int]:
    return utc(row.occurred_at), uuid.UUID(str(row.event_id)), row.line_no


def assert_snapshots_equal_moves(api: Api) -> None:
    """An oracle beside the books-check: every snapshot holds what its pool's moves
    (at their effective value) and charges add up to at its position: on hand and
    value for a stock pool, units completed and value for a work order."""
    mv, rv, ch, loc = T["stock_move"], T["stock_revaluation"], T["wip_charge"], T["location"]
    tid = api.tenant.id
    with api.db.connect() as conn:
        kinds = {
            r.id: r.kind
            for r in conn.execute(select(loc.c.id, loc.c.kind).where(loc.c.tenant_id == tid))
        }
        deltas: Counter[uuid.UUID] = Counter()
        for r in conn.execute(select(rv.c.move_id, rv.c.delta_value).where(rv.c.tenant_id == tid)):
            deltas[r.move_id] += r.delta_value
        moves = list(conn.execute(select(mv).where(mv.c.tenant_id == tid)))
        charges = list(conn.execute(select(ch).where(ch.c.tenant_id == tid)))
    for row in snapshots(api):
        at = position_of(row)
        quantity, value = D(0), D(0)
        for move in (move for move in moves if position_of(move) <= at):
            effective = move.value + deltas[move.id]
            if row.work_order_id is None and move.item_id == row.item_id:
                sign = (move.to_location_id == row.location_id) - (
                    move.from_location_id == row.location_id
                )
                quantity, value = quantity + sign * move.quantity, value + sign * effective
            elif row.work_order_id is not None and move.work_order_id == row.work_order_id:
                sign = (kinds[move.to_location_id] == "production") - (
                    kinds[move.from_location_id] == "production"
                )
                value += sign * effective
                if move.kind == "completion":
                    quantity -= sign * (move.quantity + move.scrap_quantity)
        if row.work_order_id is not None:
            value += sum(
                (
                    c.value
                    for c in charges
                    if c.work_order_id == row.work_order_id and position_of(c) <= at
                ),
                D(0),
            )
        assert (row.quantity, row.value) == (quantity, value), row


# -- 1. any arrival order, any interval ----------------------------------------------------
def build_events(ops: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The history's events, with ids fixed by their place in it (so an example
    replays exactly: events at the same minute are ordered by id)."""
    events: list[dict[str, Any]] = []
    for op in ops:
        ev = build(op, events)
        if ev is not None:
            events.append(ev)
    fixed = {
        ev["event_id"]: str(uuid.uuid5(uuid.NAMESPACE_OID, str(n))) for n, ev in enumerate(events)
    }
    for ev in events:
        ev["event_id"] = fixed[ev["event_id"]]
        if ev["type"] == "reversal":
            original = ev["payload"]["reverses_event_id"]
            ev["payload"]["reverses_event_id"] = fixed[original]
    return events


def post_in_batches(api: Api, events: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    results = []
    for start in range(0, len(events), size):
        results += api.events(*events[start : start + size])
    return results


def event_order(ev: dict[str, Any]) -> tuple[str, uuid.UUID]:
    return ev["occurred_at"], uuid.UUID(ev["event_id"])


def assert_same_books(api: Api, fresh: Api) -> None:
    """Balances, stock per item/location/lot, work in progress and FIFO layers equal
    to the cent, and nothing for the books-check in either tenant."""
    assert nonzero(api.balances()) == nonzero(fresh.balances())
    assert stock(api) == stock(fresh)
    assert wip(api) == wip(fresh)
    assert stored_layers(api) == stored_layers(fresh)
    assert wip_materials(api) == wip_materials(fresh)
    for tenant in (api, fresh):
        assert tenant.reconcile() == []
        assert_snapshots_equal_moves(tenant)


def wip_materials(api: Api) -> list[tuple[str, str, D, D]]:
    """The cached materials of each work order (the books-check does not read them:
    `save` writes only those that changed, so they are compared here), nonzero."""
    wm, wo, it = T["wip_material"], T["work_order"], T["item"]
    query = (
        select(wo.c.code, it.c.code.label("item"), wm.c.quantity, wm.c.value)
        .join(wo, (wo.c.tenant_id == wm.c.tenant_id) & (wo.c.id == wm.c.work_order_id))
        .join(it, (it.c.tenant_id == wm.c.tenant_id) & (it.c.id == wm.c.item_id))
        .where(wm.c.tenant_id == api.tenant.id)
    )
    with api.db.connect() as conn:
        rows = conn.execute(query).all()
    return sorted((r.code, r.item, r.quantity, r.value) for r in rows if r.quantity or r.value)


@pytest.fixture
def reads_ahead_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every read ahead a rewind uses is what reading at the rewind's own position
    gives: the same snapshot before, snapshots ahead and records with their values."""
    used: Counter[str] = Counter()
    real = engine._Run.reads

    def summary(read: tuple[Any, list[Any], list[Any]]) -> tuple[Any, ...]:
        base, ahead, records = read
        state = None if base is None else (base.position, pool_state(base.pool))
        return state, list(ahead), [(r.id, r.position, r.value) for r in records]

    def reads(run: Any, key: Any, position: Any) -> Any:
        ahead = run.prefetched.get(key)
        read = real(run, key, position)
        if ahead is not None and read[2] is ahead[3]:  # the read ahead was used
            assert summary(read) == summary(run.engine.history.rewind_reads({key: position})[key])
            used["reads ahead used"] += 1
        return read

    monkeypatch.setattr(engine._Run, "reads", reads)
    yield used


def assert_any_arrival_ends_as_in_order(db: Engine, ops: list[Any], data: st.DataObject) -> None:
    events = build_events(ops)
    arrival = data.draw(st.permutations(events), label="arrival")
    size = data.draw(st.integers(1, 4), label="batch size")
    every = data.draw(st.integers(1, 5), label="snapshot every")
    with snapshot_every(every):
        shuffled = Api(db)
        setup_workshop(shuffled)
        rewrites = post_counting_rewrites(shuffled, arrival, size)
        status = statuses(shuffled)
        posted = sorted((e for e in events if status[e["event_id"]] == "posted"), key=event_order)
        in_order = Api(db)
        setup_workshop(in_order)
        results = post_in_batches(in_order, posted, size)
        assert [r["status"] for r in results] == ["posted"] * len(posted), results
        assert_same_books(shuffled, in_order)
        for api in (shuffled, in_order):
            if busiest_pool_records(api) >= every:
                assert snapshots(api), f"no snapshot although a pool has {every}+ records"
        event(f"snapshots of the shuffled tenant: {'some' if snapshots(shuffled) else 'none'}")
        event(f"snapshots rewritten by late events: {'some' if rewrites else 'none'}")


def post_counting_rewrites(api: Api, events: list[dict[str, Any]], size: int) -> int:
    """Post in batches of `size`; how many times a batch changed a snapshot an earlier
    batch wrote (a late event replayed across it), so the property can show it does."""
    rewrites, seen = 0, dict[uuid.UUID, tuple[D, D, str]]()
    for start in range(0, len(events), size):
        api.events(*events[start : start + size])
        now = {row.id: (row.quantity, row.value, row.state) for row in snapshots(api)}
        rewrites += sum(seen[key] != state for key, state in now.items() if key in seen)
        seen = now
    return rewrites


# test_property's operations but stock counts (their difference is fixed when they
# post, so it depends on arrival order), receipts twice as likely so that more of the
# issues find stock
receipts = st.tuples(st.just("receipt"), minute, st.sampled_from([*ITEMS, "TBL"]), quantity, price)
floor_operation = st.one_of(
    receipts,
    receipts,
    st.tuples(st.just("issue"), minute, st.sampled_from(ITEMS), quantity, work_order),
    st.tuples(st.just("return"), minute, st.sampled_from(ITEMS), quantity, work_order),
    st.tuples(st.just("labour"), minute, st.just(""), quantity, work_order),
    st.tuples(st.just("completion"), minute, st.just("TBL"), quantity, work_order),
    st.tuples(st.just("shipment"), minute, st.just("TBL"), quantity, price),
    st.tuples(st.just("reversal"), minute, st.just(""), st.just(""), st.integers(0, 50)),
)
histories = st.lists(floor_operation, min_size=10, max_size=24)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=histories, data=st.data())
def test_any_arrival_order_with_snapshots_gives_the_in_order_books_sqlite(
    sqlite_db: Engine, ops: list[Any], data: st.DataObject, reads_ahead_checked: Counter[str]
) -> None:
    assert_any_arrival_ends_as_in_order(sqlite_db, ops, data)
    event(f"reads ahead used: {'some' if reads_ahead_checked else 'none'}")


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=histories, data=st.data())
def test_any_arrival_order_with_snapshots_gives_the_in_order_books_postgres(
    pg_db: Engine, ops: list[Any], data: st.DataObject, reads_ahead_checked: Counter[str]
) -> None:
    assert_any_arrival_ends_as_in_order(pg_db, ops, data)


# -- 2. a snapshot tampered with -----------------------------------------------------------
def post_history_with_snapshots(api: Api) -> None:
    """RAW (moving average), BOLT (FIFO) and WO1 each get at least one snapshot at an
    interval of 2 records."""
    setup_workshop(api)
    results = api.events(
        receipt(0, "RAW", "10", "10"),
        receipt(1, "BOLT", "10", "1"),
        receipt(2, "BOLT", "10", "2"),
        issue(10, "RAW", "2"),
        issue(15, "BOLT", "12"),
        issue(20, "RAW", "2"),
        issue(30, "RAW", "2"),
    )
    assert [r["status"] for r in results] == ["posted"] * 7, results
    assert api.reconcile() == []


def pool_of(api: Api, pool: str) -> dict[str, uuid.UUID]:
    return wip_pool(api, pool) if pool.startswith("WO") else stock_pool(api, pool)


def tamper(api: Api, row: Any, column: str, value: Any) -> None:
    """What a bad write (or a bug) would leave: one column of one snapshot changed."""
    with api.db.begin() as conn:
        conn.execute(
            update(PS)
            .where(PS.c.tenant_id == api.tenant.id, PS.c.id == row.id)
            .values({column: value})
        )


def assert_caught(api: Api, row: Any, check: str) -> dict[str, Any]:
    """The books-check reports `check` for the snapshot, and nothing for anything
    else (a tampered quantity may also disagree with the snapshot's own lots or
    layers: those name the same snapshot). Returns the difference `check`."""
    differences = api.reconcile()
    assert all(str(row.id) in d["key"] for d in differences), differences
    found = [d for d in differences if d["check"] == check]
    assert len(found) == 1, differences
    return found[0]


@pytest.mark.parametrize(
    ("pool", "column", "change", "check"),
    [
        ("RAW", "value", D("0.01"), "snapshot_value_equals_moves"),
        ("RAW", "quantity", D("1"), "snapshot_quantity_equals_moves"),
        ("BOLT", "value", D("-5.00"), "snapshot_value_equals_moves"),
        ("BOLT", "quantity", D("-0.5"), "snapshot_quantity_equals_moves"),
        ("WO1", "value", D("100.00"), "snapshot_value_equals_moves"),
        # a work order's snapshot quantity is its units completed: none in this history
        ("WO1", "quantity", D("1"), "snapshot_quantity_equals_moves"),
    ],
)
def test_a_snapshot_tampered_with_is_caught_by_the_books_check(
    api: Api, monkeypatch: pytest.MonkeyPatch, pool: str, column: str, change: D, check: str
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    post_history_with_snapshots(api)
    row = snapshots(api, **pool_of(api, pool))[0]
    tamper(api, row, column, getattr(row, column) + change)
    difference = assert_caught(api, row, check)
    assert D(difference["expected"]) == getattr(row, column)
    assert D(difference["actual"]) == getattr(row, column) + change


def more_of_the_lot(state: dict[str, Any]) -> None:
    state["lots"][""] = str(D(state["lots"][""]) + 1)


def part_of_the_lot_moved_to_another(state: dict[str, Any]) -> None:
    """The total unchanged: only a check against the moves per lot sees it."""
    state["lots"][""] = str(D(state["lots"][""]) - 1)
    state["lots"]["L9"] = "1"


def first_layer_worth_more(state: dict[str, Any]) -> None:
    layer = state["layers"][0]  # move id, quantity in, value in, quantity left, value left
    layer[4] = str(D(layer[4]) + 1)


@pytest.mark.parametrize(
    ("pool", "change", "check"),
    [
        ("RAW", more_of_the_lot, "snapshot_lots_equal_quantity"),
        ("RAW", part_of_the_lot_moved_to_another, "snapshot_lots_equal_moves"),
        ("BOLT", first_layer_worth_more, "snapshot_layers_equal_value"),
    ],
)
def test_a_snapshot_whose_state_was_tampered_with_is_caught_by_the_books_check(
    api: Api, monkeypatch: pytest.MonkeyPatch, pool: str, change: Any, check: str
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    post_history_with_snapshots(api)
    row = snapshots(api, **pool_of(api, pool))[0]
    state = json.loads(row.state)
    change(state)
    tamper(api, row, "state", json.dumps(state))
    difference = assert_caught(api, row, check)
    assert D(difference["difference"]) != 0


# -- 3. late events across snapshots, by hand -----------------------------------------------
def in_order_tenant(db: Engine, events: list[dict[str, Any]]) -> Api:
    """The same events sent in event order, one at a time, to a fresh tenant."""
    fresh = Api(db)
    setup_workshop(fresh)
    for ev in sorted(events, key=event_order):
        (result,) = fresh.events(ev)
        assert result["status"] == "posted", result
    return fresh


def post(api: Api, *events: dict[str, Any]) -> None:
    """One request per event, as a live edge sends them: a pool is snapshotted at the
    end of a batch, so one batch of the whole history would leave one snapshot."""
    for ev in events:
        (result,) = api.events(ev)
        assert result["status"] == "posted", result


def snapshots_after(api: Api, pool: dict[str, uuid.UUID], minute: float) -> list[Any]:
    return [row for row in snapshots(api, **pool) if minute_of(row.occurred_at) > minute]


def test_a_late_receipt_across_snapshots_revalues_the_later_issues(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    setup_workshop(api)
    history = [
        receipt(0, "RAW", "10", "10"),
        issue(10, "RAW", "2"),
        issue(20, "RAW", "2"),
        issue(30, "RAW", "2"),
        issue(40, "RAW", "2"),
        issue(50, "RAW", "1"),
    ]
    post(api, *history)
    raw, wo1 = stock_pool(api, "RAW"), wip_pool(api)
    # 100 / 10 = 10.00 a unit throughout; a snapshot every second record of the pool
    assert_snapshots_follow(
        snapshots(api, **raw),
        [
            (0, D(10), D(100)),
            (10, D(8), D(80)),
            (20, D(6), D(60)),
            (30, D(4), D(40)),
            (40, D(2), D(20)),
            (50, D(1), D(10)),
        ],
        at_least=3,
    )
    assert len(snapshots_after(api, raw, 15)) >= 2  # the late receipt crosses several
    first = snapshots(api, **raw)[0]

    late = receipt(15, "RAW", "8", "20", replayed=True)
    post(api, late)
    # At 15: 8 at 80.00 + 8 at 160.00 = 16 at 240.00, 15.00 a unit: the issues at 20,
    # 30 and 40 take 30.00 (not 20.00) and the one at 50 takes 15.00 (not 10.00).
    assert ledger_values(api, "RAW") == [
        ("purchase_receipt", D(10), D("100.00")),
        ("material_issue", D(2), D("20.00")),
        ("purchase_receipt", D(8), D("160.00")),
        ("material_issue", D(2), D("30.00")),
        ("material_issue", D(2), D("30.00")),
        ("material_issue", D(2), D("30.00")),
        ("material_issue", D(1), D("15.00")),
    ]
    balances = api.balances()
    assert balances["1403"] == D("135.00")  # 260 received − 125 issued: 9 at 15.00
    assert balances["5001"] == D("125.00")  # 20 + 3 × 30 + 15
    timeline = [
        (0, D(10), D(100)),
        (10, D(8), D(80)),
        (15, D(16), D(240)),
        (20, D(14), D(210)),
        (30, D(12), D(180)),
        (40, D(10), D(150)),
        (50, D(9), D(135)),
    ]
    assert_snapshots_follow(snapshots(api, **raw), timeline, at_least=3)
    assert_snapshots_follow(
        snapshots(api, **wo1),
        [
            (10, None, D(20)),
            (20, None, D(50)),
            (30, None, D(80)),
            (40, None, D(110)),
            (50, None, D(125)),
        ],
        at_least=2,
    )
    before = snapshots(api, **raw)[0]  # before the late receipt: nothing to change
    assert (before.id, before.quantity, before.value) == (first.id, first.quantity, first.value)
    assert api.reconcile() == []

    # A further late issue, between the rewritten snapshots: 30.00 at 15.00 a unit,
    # and every later snapshot holds 2 fewer at 30.00 less.
    further = issue(25, "RAW", "2")
    post(api, further)
    assert [value for _, _, value in ledger_values(api, "RAW")] == [
        D("100.00"),
        D("20.00"),
        D("160.00"),
        D("30.00"),
        D("30.00"),
        D("30.00"),
        D("30.00"),
        D("15.00"),
    ]
    assert_snapshots_follow(
        snapshots(api, **raw),
        [
            (0, D(10), D(100)),
            (10, D(8), D(80)),
            (15, D(16), D(240)),
            (20, D(14), D(210)),
            (25, D(12), D(180)),
            (30, D(10), D(150)),
            (40, D(8), D(120)),
            (50, D(7), D(105)),
        ],
        at_least=3,
    )
    assert api.balances()["1403"] == D("105.00")
    assert_same_books(api, in_order_tenant(api.db, [*history, late, further]))


def raw_in_march_and_april() -> list[dict[str, Any]]:
    """RAW received, then two issues in March and two in April."""
    return [
        receipt(0, "RAW", "10", "10"),
        issue(10, "RAW", "2"),
        issue(20, "RAW", "2"),
        issue(APRIL + 10, "RAW", "2"),
        issue(APRIL + 20, "RAW", "2"),
    ]


def snapshot_rows(api: Api) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in snapshots(api)]


def test_a_late_event_in_a_closed_period_is_held_and_writes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    setup_workshop(api)
    history = raw_in_march_and_april()
    post(api, *history)
    assert api.post("/periods/2026-03/close").status_code == 200
    kept = snapshot_rows(api)
    assert kept, "a pool of 5 records at an interval of 2 has snapshots"
    moves, entries, balances = _count(api, m.StockMove), _count(api, m.JournalEntry), api.balances()

    late = receipt(15, "RAW", "8", "20")  # March: closed
    (held,) = api.events(late)
    assert (held["status"], held["code"]) == ("held", "period_locked")
    assert snapshot_rows(api) == kept
    assert (_count(api, m.StockMove), _count(api, m.JournalEntry)) == (moves, entries)
    assert api.balances() == balances
    assert api.reconcile() == []

    # Reopened, it posts by itself, across the snapshots of March's end and April.
    reopened = api.post("/periods/2026-03/reopen", json={"reason": "late delivery note"})
    assert reopened.status_code == 200
    assert statuses(api)[late["event_id"]] == "posted"
    assert_snapshots_follow(
        snapshots(api, **stock_pool(api, "RAW")),
        [
            (0, D(10), D(100)),
            (10, D(8), D(80)),
            (15, D(16), D(240)),
            (20, D(14), D(210)),
            (APRIL + 10, D(12), D(180)),
            (APRIL + 20, D(10), D(150)),
        ],
        at_least=2,
    )
    assert_same_books(api, in_order_tenant(api.db, [*history, late]))


def test_closing_a_period_snapshots_each_pool_at_its_last_record_of_the_period(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event at the first instant of April (tenant time, Asia/Shanghai) is April's:
    March's closing snapshot does not hold it."""
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 500)
    setup_workshop(api)
    post(
        api,
        receipt(0, "RAW", "10", "10"),
        issue(10, "RAW", "2"),  # 20.00
        receipt(MARCH_END - 1, "BOLT", "1", "1"),  # 23:59 on 31 March
        receipt(MARCH_END, "RAW", "5", "20"),  # 00:00 on 1 April
    )
    assert snapshots(api) == []
    assert api.post("/periods/2026-03/close").status_code == 200
    at_close = {
        pool: [(minute_of(r.occurred_at), r.quantity, r.value) for r in snapshots(api, **ids)]
        for pool, ids in [
            ("RAW", stock_pool(api, "RAW")),
            ("BOLT", stock_pool(api, "BOLT")),
            ("WO1", wip_pool(api)),
        ]
    }
    assert at_close == {
        "RAW": [(10, D(8), D(80))],
        "BOLT": [(MARCH_END - 1, D(1), D(1))],
        "WO1": [(10, D(0), D(20))],
    }
    assert api.reconcile() == []


def revaluation_by_period(api: Api) -> dict[str, D]:
    """Work in progress debited by revaluations, per period they are booked in."""
    journal = api.get("/reports/journal", params={"limit": 1000}).json()
    out: dict[str, D] = {}
    for entry in journal:
        if entry["kind"] == "revaluation":
            wip_lines = [ln for ln in entry["lines"] if ln["account_code"] == "5001"]
            change = sum((D(ln["debit"]) - D(ln["credit"]) for ln in wip_lines), D(0))
            out[entry["period"]] = out.get(entry["period"], D(0)) + change
    return out


def test_a_late_receipt_before_a_closed_period_revalues_it_in_the_next_open_one(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    setup_workshop(api)
    history = raw_in_march_and_april()
    post(api, *history)
    assert api.post("/periods/2026-04/close").status_code == 200
    raw = stock_pool(api, "RAW")
    assert snapshots_after(api, raw, 15), "the late receipt must cross a snapshot"

    late = receipt(15, "RAW", "8", "20")  # March: still open
    post(api, late)
    # At 15: 16 at 240.00, 15.00 a unit: the issue at 20 and April's two take 30.00.
    assert [value for _, _, value in ledger_values(api, "RAW")] == [
        D("100.00"),
        D("20.00"),
        D("160.00"),
        D("30.00"),
        D("30.00"),
        D("30.00"),
    ]
    # March's difference in March, closed April's in May: 10.00, then 2 × 10.00
    assert revaluation_by_period(api) == {"2026-03": D("10.00"), "2026-05": D("20.00")}
    assert_snapshots_follow(
        snapshots(api, **raw),
        [
            (0, D(10), D(100)),
            (10, D(8), D(80)),
            (15, D(16), D(240)),
            (20, D(14), D(210)),
            (APRIL + 10, D(12), D(180)),
            (APRIL + 20, D(10), D(150)),
        ],
        at_least=2,
    )
    balances = api.balances()
    assert (balances["1403"], balances["5001"]) == (D("150.00"), D("110.00"))
    assert api.reconcile() == []


FIFO_HISTORY = [  # (minute, event): R1, R2 and the issues that consume R1 and part of R2
    (0, "receipt", "10", "1"),
    (5, "issue", "2", ""),
    (10, "receipt", "10", "2"),
    (20, "issue", "6", ""),
    (30, "issue", "6", ""),
    (40, "issue", "3", ""),
]


def bolt_events() -> list[dict[str, Any]]:
    return [
        receipt(minute, "BOLT", qty, price) if kind == "receipt" else issue(minute, "BOLT", qty)
        for minute, kind, qty, price in FIFO_HISTORY
    ]


@pytest.mark.parametrize(
    ("late_minute", "issued", "layers", "timeline"),
    [
        pytest.param(
            7,  # after the snapshot at 5, before R2: the layers are R1, R3, R2
            # 5: 2 of R1 = 2; 20: 6 of R1 = 6; 30: R1's last 2 (2) + 4 of R3 at 3 (12) = 14;
            # 40: 3 of R3 = 9 (was 6 of R2's)
            [D(2), D(6), D(14), D(9)],
            [(D(10), D(3), D("9.00")), (D(10), D(10), D("20.00"))],
            [
                (0, D(10), D(10)),
                (5, D(8), D(8)),
                (7, D(18), D(38)),
                (10, D(28), D(58)),
                (20, D(22), D(52)),
                (30, D(16), D(38)),
                (40, D(13), D(29)),
            ],
            id="between-R1-and-R2",
        ),
        pytest.param(
            -1,  # before everything: the layers are R3, R1, R2
            # 5: 2 of R3 = 6; 20: 6 of R3 = 18; 30: R3's last 2 (6) + 4 of R1 (4) = 10,
            # unchanged; 40: 3 of R1 = 3 (was 6 of R2's)
            [D(6), D(18), D(10), D(3)],
            [(D(10), D(3), D("3.00")), (D(10), D(10), D("20.00"))],
            [
                (-1, D(10), D(30)),
                (0, D(20), D(40)),
                (5, D(18), D(34)),
                (10, D(28), D(54)),
                (20, D(22), D(36)),
                (30, D(16), D(26)),
                (40, D(13), D(23)),
            ],
            id="before-R1",
        ),
    ],
)
def test_a_late_receipt_into_a_fifo_pool_consumed_after_its_snapshot(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    late_minute: int,
    issued: list[D],
    layers: list[tuple[D, D, D]],
    timeline: list[tuple[float, D, D]],
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    setup_workshop(api)
    history = bolt_events()
    post(api, *history)
    bolt = stock_pool(api, "BOLT")
    # before: 2 and 6 of R1, R1's last 2 (2) + 4 of R2 (8) = 10, 3 of R2 = 6
    assert [v for kind, _, v in ledger_values(api, "BOLT") if kind == "material_issue"] == [
        D(2),
        D(6),
        D(10),
        D(6),
    ]
    assert stored_layers(api) == [(D(10), D(3), D("6.00"))]
    assert_snapshots_follow(
        snapshots(api, **bolt),
        [
            (0, D(10), D(10)),
            (5, D(8), D(8)),
            (10, D(18), D(28)),
            (20, D(12), D(22)),
            (30, D(6), D(12)),
            (40, D(3), D(6)),
        ],
        at_least=3,
    )

    late = receipt(late_minute, "BOLT", "10", "3")
    post(api, late)
    assert [v for kind, _, v in ledger_values(api, "BOLT") if kind == "material_issue"] == issued
    assert stored_layers(api) == layers
    assert_snapshots_follow(snapshots(api, **bolt), timeline, at_least=3)
    on_hand = timeline[-1]
    assert [row[1:] for row in stock(api) if row[0] == "BOLT"] == [
        ("WH", "", on_hand[1], on_hand[2])
    ]
    balances = api.balances()
    assert balances["5001"] == sum(issued, D(0))
    assert balances["1403"] == D(60) - sum(issued, D(0))  # received 10 + 20 + 30
    assert_same_books(api, in_order_tenant(api.db, [*history, late]))


def test_a_late_receipt_cascades_through_a_work_order_into_the_goods_shipped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    setup_workshop(api)
    history = [
        receipt(0, "RAW", "10", "10"),
        issue(10, "RAW", "4"),
        issue(20, "RAW", "4"),
        labour(30, "1"),  # 40.00 labour + 10.00 overhead
        completion(40, "10"),  # all of WO1: 40 + 40 + 50 = 130.00
        shipment(50, "TBL", "4", "100"),  # 52.00
        shipment(60, "TBL", "3", "100"),  # 39.00
    ]
    post(api, *history)
    assert api.balances()["6401"] == D("91.00")
    raw, wo1, tbl = stock_pool(api, "RAW"), wip_pool(api), stock_pool(api, "TBL")
    assert snapshots(api, **raw) and snapshots(api, **tbl) and len(snapshots(api, **wo1)) >= 2

    late = receipt(5, "RAW", "10", "16")
    post(api, late)
    # At 5: 20 at 260.00, 13.00 a unit: each issue 52.00; WO1 52 + 52 + 50 = 154.00;
    # the sales take 154 × 4/10 = 61.60 and 92.40 × 3/6 = 46.20.
    assert ledger_values(api, "RAW") == [
        ("purchase_receipt", D(10), D("100.00")),
        ("purchase_receipt", D(10), D("160.00")),
        ("material_issue", D(4), D("52.00")),
        ("material_issue", D(4), D("52.00")),
    ]
    assert ledger_values(api, "TBL") == [
        ("production_completion", D(10), D("154.00")),
        ("sales_shipment", D(4), D("61.60")),
        ("sales_shipment", D(3), D("46.20")),
    ]
    assert_snapshots_follow(
        snapshots(api, **raw),
        [(0, D(10), D(100)), (5, D(20), D(260)), (10, D(16), D(208)), (20, D(12), D(156))],
        at_least=1,
    )
    assert_snapshots_follow(
        snapshots(api, **wo1),
        [(10, None, D(52)), (20, None, D(104)), (30, None, D(154)), (40, None, D(0))],
        at_least=2,
    )
    assert_snapshots_follow(
        snapshots(api, **tbl),
        [(40, D(10), D(154)), (50, D(6), D("92.40")), (60, D(3), D("46.20"))],
        at_least=1,
    )
    balances = api.balances()
    assert balances["1403"] == D("156.00")  # 260 − 104
    assert balances.get("5001", D(0)) == D(0)
    assert balances["1405"] == D("46.20")  # 154 − 61.60 − 46.20
    assert balances["6401"] == D("107.80")
    assert_same_books(api, in_order_tenant(api.db, [*history, late]))


def test_a_late_charge_to_a_completed_order_stops_its_replay_at_the_next_snapshot(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late labour reaches the goods through the completion, which empties the
    order; after it the order's work in progress is what it was, so its replay stops
    at its next snapshot and leaves that snapshot as it was."""
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 2)
    setup_workshop(api)
    history = [
        receipt(0, "RAW", "10", "10"),
        issue(10, "RAW", "5", wo="WO2"),  # 50.00
        labour(20, "1", wo="WO2"),  # 50.00: 40 labour + 10 overhead
        completion(30, "5", wo="WO2"),  # all of WO2 (planned 5): 100.00
        labour(40, "1", wo="WO2"),
        labour(50, "1", wo="WO2"),
        shipment(60, "TBL", "2", "100"),  # 100 × 2/5 = 40.00
    ]
    post(api, *history)
    wo2, tbl = wip_pool(api, "WO2"), stock_pool(api, "TBL")
    (after_completion,) = [row for row in snapshots(api, **wo2) if minute_of(row.occurred_at) == 40]

    late = labour(25, "1", wo="WO2")
    post(api, late)
    # the completion takes 150.00, the sale 150 × 2/5 = 60.00; the order ends at 100.00
    assert ledger_values(api, "TBL") == [
        ("production_completion", D(5), D("150.00")),
        ("sales_shipment", D(2), D("60.00")),
    ]
    assert_snapshots_follow(
        snapshots(api, **wo2),
        [
            (10, D(0), D(50)),
            (20, D(0), D(100)),
            (25, D(0), D(150)),
            (30, D(5), D(0)),
            (40, D(5), D(50)),
            (50, D(5), D(100)),
        ],
        at_least=2,
    )
    (kept,) = [row for row in snapshots(api, **wo2) if minute_of(row.occurred_at) == 40]
    assert tuple(kept) == tuple(after_completion)
    assert_snapshots_follow(
        snapshots(api, **tbl), [(30, D(5), D(150)), (60, D(3), D(90))], at_least=1
    )
    balances = api.balances()
    assert (balances["5001"], balances["1405"], balances["6401"]) == (
        D("100.00"),
        D("90.00"),
        D("60.00"),
    )
    assert_same_books(api, in_order_tenant(api.db, [*history, late]))


# -- what a cascade reads and writes ---------------------------------------------------------
MATERIALS = ("M1", "M2", "M3", "M4", "M5")


def floor_of_orders(api: Api, orders: int) -> list[dict[str, Any]]:
    """`orders` work orders of TBL, each issued RAW and five other materials, one unit
    of each completed and shipped; the history as events."""
    setup_workshop(api)
    for code in MATERIALS:
        api.create("/items", {"code": code, "name": code, "kind": "raw"})
    codes = ["WO1", "WO2"] + [f"WO{n}" for n in range(3, orders + 1)]
    for code in codes[2:]:
        api.create(
            "/work-orders", {"code": code, "item": "TBL", "planned_quantity": "10", "release": True}
        )
    history = [receipt(0, "RAW", "100", "10")]
    history += [receipt(0.5, code, "100", "2") for code in MATERIALS]
    for n, order in enumerate(codes[:orders]):
        history.append(issue(10 + n, "RAW", "2", order))
        history += [issue(30 + n, code, "1", order) for code in MATERIALS]
        history.append(completion(60 + n, "1", order))
        history.append(shipment(90 + n, "TBL", "1", "100"))
    return history


def post_watching(api: Api, event: dict[str, Any]) -> Counter[str]:
    """Post one event; count the statements that read stock moves and the rows written
    to the cached work-order materials."""
    seen: Counter[str] = Counter()

    def watch(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM stock_move" in statement:
            seen["move reads"] += 1
        if statement.startswith("INSERT INTO wip_material"):
            seen["material rows"] += len(params) if isinstance(params, list | tuple) else 1

    app_db = api.client.app.state.db
    sa_event.listen(app_db, "before_cursor_execute", watch)
    try:
        post(api, event)
    finally:
        sa_event.remove(app_db, "before_cursor_execute", watch)
    return seen


def test_a_cascade_reads_a_step_of_pools_at_once_and_writes_what_changed(db: Engine) -> None:
    """A late receipt revalues RAW's issue to every order, each order's completion and
    its shipment: it rewinds 1 + n + 1 pools. Reading ahead for a cascade's step reads
    the orders' histories in one round, so the statements that read moves do not grow
    with the number of orders; and of each order's six materials only RAW's cached row
    is rewritten."""
    reads = {}
    for orders in (2, 6):
        api = Api(db)
        history = floor_of_orders(api, orders)
        post(api, *history)
        late = receipt(5, "RAW", "100", "16")
        seen = post_watching(api, late)
        reads[orders] = seen["move reads"]
        assert seen["material rows"] == orders  # RAW's material in each order, no other
        fresh = Api(db)
        floor_of_orders(fresh, orders)
        post(fresh, *sorted([*history, late], key=event_order))
        assert_same_books(api, fresh)
        # 200 RAW at 2,600.00, 13.00 a unit: each order's 2 at 26.00
        issued = [value for kind, _, value in ledger_values(api, "RAW") if kind == "material_issue"]
        assert issued == [D("26.00")] * orders
    assert reads[2] == reads[6], reads
