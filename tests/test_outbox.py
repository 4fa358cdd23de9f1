"""The edge outbox on real SQLite files: capture and delivery per cloud status, device
message dedup, seq, the wire envelope, the disk cap, clock chaos, schema migration, a
SIGKILL torture run and a property test (EDGE.md scenarios 2-6, 11-13)."""

import hashlib
import json
import os
import random
import re
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import edge_agent.ids as edge_ids
from contract import EVENT_ADAPTER
from edge_agent.ids import device_msg_event_id, uuid7, uuid7_unix_ms
from edge_agent.outbox import (
    CURRENT_VERSION,
    HELD,
    PARKED,
    PENDING,
    SENT,
    Capture,
    Outbox,
    OutboxError,
    OutboxFull,
    SendResult,
    payload_sha256,
)

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
# The cloud's payload hash covers these envelope fields (the rest is transport).
CONTENT_FIELDS = ("event_id", "device_id", "seq", "occurred_at", "operator", "type", "payload")


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeCloud:
    """The cloud's per-event answers: unique event ids, a repeat answered `duplicate`
    (same content) or `conflict` (other content); events of an unknown work order are
    rejected (or held, with `hold_unknown`)."""

    def __init__(self, known_work_orders: Iterable[str] = ("WO1",), hold_unknown: bool = False):
        self.known_work_orders = set(known_work_orders)
        self.hold_unknown = hold_unknown
        self.digests: dict[str, str] = {}
        self.posted: list[str] = []
        self.bodies: list[dict[str, Any]] = []

    def post(self, bodies: list[dict[str, Any]]) -> list[SendResult]:
        return [self._one(body) for body in bodies]

    def _one(self, body: dict[str, Any]) -> SendResult:
        self.bodies.append(body)
        event_id = body["event_id"]
        content = {name: body.get(name) for name in CONTENT_FIELDS}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        known = self.digests.get(event_id)
        if known is not None and known != digest:
            return SendResult(event_id, "conflict", "idempotency_key_reused", "id reused")
        if known is not None:
            return SendResult(event_id, "duplicate")
        work_order = body["payload"].get("work_order")
        if work_order is not None and work_order not in self.known_work_orders:
            status = "held" if self.hold_unknown else "rejected"
            return SendResult(event_id, status, "unknown_work_order", f"no {work_order}")
        self.digests[event_id] = digest
        self.posted.append(event_id)
        return SendResult(event_id, "posted")


def open_outbox(path: Path, clock: FakeClock | None = None, **options: Any) -> Outbox:
    settings_: dict[str, Any] = {
        "edge_id": "edge-1",
        "identity": "tenant-1",
        "disk_cap_bytes": 1 << 30,
        "agent_version": "1.2.3",
    }
    settings_.update(options)
    if clock is not None:
        settings_["clock"] = clock
    return Outbox(path, **settings_)


def issue(
    quantity: str = "2",
    *,
    work_order: str = "WO1",
    device_id: str = "term-1",
    occurred_at: datetime = T0,
    **fields: Any,
) -> Capture:
    payload = {"work_order": work_order, "item": "RAW", "location": "L1", "quantity": quantity}
    return Capture("material_issue", payload, device_id, occurred_at, **fields)


def sync_once(outbox: Outbox, cloud: FakeCloud, limit: int = 100) -> int:
    batch = outbox.next_batch(limit)
    if batch:
        outbox.record_results(cloud.post([outbox.wire(ev) for ev in batch]))
    return len(batch)


def drain(outbox: Outbox, cloud: FakeCloud) -> None:
    for _ in range(10_000):
        if sync_once(outbox, cloud) == 0:
            return
    raise AssertionError("the outbox did not drain")


def rows(path: Path) -> list[sqlite3.Row]:
    """Every event row, read by a separate connection (what is really on disk)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM event ORDER BY seq").fetchall()
    finally:
        conn.close()


def states(path: Path) -> dict[str, str]:
    return {row["event_id"]: row["state"] for row in rows(path)}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


# -- ids -------------------------------------------------------------------------------


def test_uuid7_carries_the_millisecond_and_keeps_increasing_when_the_clock_goes_back(
    monkeypatch,
):
    # The generator remembers the last millisecond of this process (other tests ran
    # at today's time, after T0): start it afresh; monkeypatch puts it back after.
    monkeypatch.setattr(edge_ids, "_last_ms", -1)
    ms = int(T0.timestamp() * 1000)
    first = uuid7(ms)
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert uuid7_unix_ms(first) == ms
    ids = [first] + [uuid7(ms) for _ in range(5000)] + [uuid7(ms - 60_000) for _ in range(10)]
    assert ids == sorted(ids), "ids must be strictly increasing within a process"
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 for i in ids)


def test_device_message_id_is_uuid5_of_identity_device_and_message():
    one = device_msg_event_id("tenant-1", "term-1", "m-7")
    assert one.version == 5
    assert one == device_msg_event_id("tenant-1", "term-1", "m-7")
    assert one != device_msg_event_id("tenant-2", "term-1", "m-7")
    assert one != device_msg_event_id("tenant-1", "term-2", "m-7")


# -- capture and delivery --------------------------------------------------------------


def test_capture_is_committed_and_next_batch_hands_out_pending_events_in_seq_order(db, clock):
    outbox = open_outbox(db, clock)
    captured = [outbox.capture(issue(str(n))) for n in range(1, 6)]
    assert [c.seq for c in captured] == sorted({c.seq for c in captured})
    assert not any(c.duplicate for c in captured)
    # committed: another connection sees every row, pending
    assert list(states(db).values()) == [PENDING] * 5
    batch = outbox.next_batch(3)
    assert [ev.event_id for ev in batch] == [c.event_id for c in captured[:3]]
    assert [ev.payload["quantity"] for ev in batch] == ["1", "2", "3"]
    assert batch[0].payload_sha256 == payload_sha256("material_issue", batch[0].payload)
    with pytest.raises(ValueError):
        outbox.next_batch(0)
    outbox.close()


def test_each_cloud_status_moves_the_event_to_its_state(db, clock):
    outbox = open_outbox(db, clock)
    ids = [outbox.capture(issue(str(n))).event_id for n in range(1, 8)]
    answers = ["posted", "duplicate", "held", "rejected", "conflict", "later_status"]
    outbox.record_results(
        [SendResult(i, s, f"code_{s}", f"message {s}") for i, s in zip(ids, answers, strict=False)]
        + [SendResult(str(uuid.uuid4()), "posted")]  # not ours: ignored
    )
    assert list(states(db).values()) == [SENT, SENT, HELD, PARKED, PARKED, PENDING, PENDING]
    # no head-of-line blocking: only pending events are handed out
    assert [ev.event_id for ev in outbox.next_batch(10)] == ids[5:]
    status = outbox.status()
    assert (status.backlog, status.held_count, status.parked_count, status.sent_count) == (
        2,
        1,
        2,
        2,
    )
    assert [(p.event_id, p.code, p.message) for p in status.parked] == [
        (ids[3], "code_rejected", "message rejected"),
        (ids[4], "code_conflict", "message conflict"),
    ]
    assert status.parked[0].type == "material_issue" and status.parked[0].at == T0
    assert [h.event_id for h in status.held] == [ids[2]]
    # a delivered event stays delivered, whatever a stale answer says
    outbox.record_results([SendResult(ids[0], "rejected", "late", "stale")])
    assert states(db)[ids[0]] == SENT
    outbox.close()


def test_retry_puts_parked_and_held_events_back_with_the_same_id(db, clock):
    outbox = open_outbox(db, clock)
    held, parked, sent = (outbox.capture(issue(str(n))).event_id for n in (1, 2, 3))
    outbox.record_results(
        [SendResult(held, "held"), SendResult(parked, "rejected"), SendResult(sent, "posted")]
    )
    outbox.retry(held)
    outbox.retry(parked)
    outbox.retry(parked)  # already pending: nothing to do
    assert [ev.event_id for ev in outbox.next_batch(10)] == [held, parked]
    with pytest.raises(OutboxError) as unknown:
        outbox.retry(str(uuid.uuid4()))
    assert unknown.value.code == "unknown_event"
    with pytest.raises(OutboxError) as delivered:
        outbox.retry(sent)
    assert delivered.value.code == "already_delivered"
    assert states(db)[sent] == SENT
    outbox.close()


def test_seq_keeps_increasing_across_reopen_and_after_everything_is_purged(db, clock):
    outbox = open_outbox(db, clock)
    first = [outbox.capture(issue()).seq for _ in range(3)]
    outbox.close()
    outbox = open_outbox(db, clock)
    outbox.record_results(SendResult(ev.event_id, "posted") for ev in outbox.next_batch(10))
    clock.advance(days=1)
    assert outbox.purge_sent(timedelta(hours=1)) == 3
    assert rows(db) == []
    outbox.close()
    outbox = open_outbox(db, clock)
    later = outbox.capture(issue()).seq
    assert later > max(first), "a seq is never reused, even after a purge"
    outbox.close()


def test_purge_deletes_only_delivered_events_older_than_asked(db, clock):
    outbox = open_outbox(db, clock)
    ids = [outbox.capture(issue(str(n))).event_id for n in range(1, 5)]
    outbox.record_results([SendResult(ids[0], "posted"), SendResult(ids[1], "rejected")])
    outbox.record_results([SendResult(ids[2], "held")])
    assert outbox.purge_sent(timedelta(minutes=5)) == 0, "sent just now: kept"
    clock.advance(minutes=10)
    assert outbox.purge_sent(timedelta(minutes=5)) == 1
    assert states(db) == {ids[1]: PARKED, ids[2]: HELD, ids[3]: PENDING}
    outbox.close()


def test_bad_captures_are_refused_before_anything_is_written(db, clock):
    outbox = open_outbox(db, clock)
    refused = [
        ("invalid_payload", Capture("material_issue", {"quantity": 2.5}, "term-1", T0)),
        ("invalid_payload", Capture("material_issue", {"lines": [{"q": 1e3}]}, "term-1", T0)),
        ("invalid_payload", Capture("material_issue", {"at": T0}, "term-1", T0)),
        ("invalid_capture", issue(occurred_at=datetime(2025, 3, 1, 8, 0))),  # naive
        ("invalid_capture", issue(device_id="")),
        ("invalid_capture", issue(device_msg_id="")),
        ("invalid_capture", issue(device_msg_id="m" * 65)),
        ("invalid_capture", issue(operator="B" * 65)),
    ]
    for code, capture in refused:
        with pytest.raises(OutboxError) as error:
            outbox.capture(capture)
        assert error.value.code == code, capture
    assert rows(db) == []
    outbox.close()


def test_meta_keeps_small_agent_state_across_reopen(db, clock):
    outbox = open_outbox(db, clock)
    assert outbox.meta_get("masterdata_cursor") is None
    outbox.meta_set("masterdata_cursor", "41")
    outbox.meta_set("masterdata_cursor", "42")
    outbox.close()
    outbox = open_outbox(db, clock)
    assert outbox.meta_get("masterdata_cursor") == "42"
    outbox.close()


def test_threads_capture_while_the_sync_thread_delivers(db):
    outbox = open_outbox(db)
    cloud = FakeCloud()
    errors: list[BaseException] = []
    done = threading.Event()

    def device(n: int) -> None:
        try:
            for i in range(60):
                outbox.capture(issue(str(i % 9 + 1), device_id=f"term-{n}", device_seq=i))
        except BaseException as exc:
            errors.append(exc)

    def sync() -> None:
        try:
            while not done.is_set():
                sync_once(outbox, cloud, limit=25)
        except BaseException as exc:
            errors.append(exc)

    devices = [threading.Thread(target=device, args=(n,)) for n in range(4)]
    syncer = threading.Thread(target=sync)
    for thread in [*devices, syncer]:
        thread.start()
    for thread in devices:
        thread.join(timeout=30)
    done.set()
    syncer.join(timeout=30)
    assert errors == []
    drain(outbox, cloud)
    stored = rows(db)
    assert len(stored) == 240 and {row["state"] for row in stored} == {SENT}
    assert sorted(cloud.posted) == sorted(row["event_id"] for row in stored)
    for n in range(4):  # per-device order: seq follows the device's own counter
        mine = [row["device_seq"] for row in stored if row["device_id"] == f"term-{n}"]
        assert mine == list(range(60))
    outbox.close()


# -- device message dedup (scenario 9) ---------------------------------------------------


def test_a_terminal_resending_one_message_gets_one_event_and_three_acks(db, clock):
    outbox = open_outbox(db, clock)
    acks = [outbox.capture(issue(device_msg_id="m-1")) for _ in range(3)]
    assert len({(a.event_id, a.seq) for a in acks}) == 1
    assert [a.duplicate for a in acks] == [False, True, True]
    assert acks[0].event_id == str(device_msg_event_id("tenant-1", "term-1", "m-1"))
    other_device = outbox.capture(issue(device_id="term-2", device_msg_id="m-1"))
    assert not other_device.duplicate and other_device.event_id != acks[0].event_id
    assert len(rows(db)) == 2
    outbox.close()


def test_same_message_id_with_another_payload_is_refused_and_writes_nothing(db, clock):
    outbox = open_outbox(db, clock)
    first = outbox.capture(issue("2", device_msg_id="m-1"))
    with pytest.raises(OutboxError) as conflict:
        outbox.capture(issue("3", device_msg_id="m-1"))
    assert conflict.value.code == "device_msg_conflict"
    assert first.event_id in conflict.value.message
    assert [row["payload_sha256"] for row in rows(db)] == [
        payload_sha256("material_issue", issue("2").payload)
    ]
    # the dedup survives a restart of the agent
    outbox.close()
    outbox = open_outbox(db, clock)
    again = outbox.capture(issue("2", device_msg_id="m-1"))
    assert (again.event_id, again.seq, again.duplicate) == (first.event_id, first.seq, True)
    outbox.close()


# -- wire envelope -----------------------------------------------------------------------


def test_wire_envelope_carries_every_field_and_the_cloud_contract_accepts_it(db, clock):
    outbox = open_outbox(db, clock)
    occurred = datetime(2025, 3, 1, 15, 59, 30, tzinfo=CST)
    outbox.capture(
        issue(
            occurred_at=occurred,
            operator="B-0042",
            device_seq=17,
            device_msg_id="m-17",
            raw_scan="]C1\x1d10LOT7",
        ),
        clock_offset_s=-0.25,
        clock_synced=True,
    )
    [event] = outbox.next_batch(1)
    body = outbox.wire(event)
    assert body == {
        "event_id": str(device_msg_event_id("tenant-1", "term-1", "m-17")),
        "device_id": "term-1",
        "seq": 1,
        "occurred_at": "2025-03-01T15:59:30+08:00",
        "operator": "B-0042",
        "replayed": False,
        "type": "material_issue",
        "payload": {"work_order": "WO1", "item": "RAW", "location": "L1", "quantity": "2"},
        "edge_id": "edge-1",
        "device_seq": 17,
        "device_msg_id": "m-17",
        "captured_at": "2025-03-01T08:00:00+00:00",
        "clock_offset_s": -0.25,
        "clock_synced": True,
        "raw_scan": "]C1\x1d10LOT7",
        "agent_version": "1.2.3",
    }
    json.dumps(body, allow_nan=False)  # JSON-ready
    parsed = EVENT_ADAPTER.validate_python(body)
    assert str(parsed.event_id) == body["event_id"] and parsed.occurred_at == occurred
    outbox.close()


def test_wire_leaves_out_unset_fields_and_carries_what_a_reversal_points_at(db, clock):
    outbox = open_outbox(db, clock)
    target = outbox.capture(issue()).event_id
    reversal = Capture(
        "reversal",
        {"reverses_event_id": target, "reason": "wrong lot"},
        "term-1",
        T0,
        reverses_event_id=target,
    )
    outbox.capture(reversal, clock_offset_s=float("nan"))
    plain, reversing = (outbox.wire(ev) for ev in outbox.next_batch(2))
    assert "clock_offset_s" not in reversing, "not finite: unknown, left out"
    for optional in ("operator", "device_seq", "device_msg_id", "raw_scan", "clock_offset_s"):
        assert optional not in plain
    assert "reverses_event_id" not in plain
    assert reversing["reverses_event_id"] == target
    outbox.close()


def test_replayed_when_sent_a_minute_after_capture_or_captured_while_sync_failed(db, clock):
    outbox = open_outbox(db, clock)
    outbox.capture(issue("1"))
    clock.advance(seconds=59)
    [fresh] = outbox.next_batch(1)
    assert outbox.wire(fresh)["replayed"] is False
    clock.advance(seconds=2)
    assert outbox.wire(fresh)["replayed"] is True
    outbox.note_sync(ok=False, error="connect timeout", at=clock.now)
    offline = outbox.capture(issue("2")).event_id
    status = outbox.status()
    assert status.last_sync_error == "connect timeout" and status.last_sync_ok_at is None
    outbox.close()
    outbox = open_outbox(db, clock)  # the last sync failure survives a restart
    during_outage = outbox.capture(issue("3")).event_id
    outbox.note_sync(ok=True)
    after = outbox.capture(issue("4")).event_id
    replayed = {ev.event_id: outbox.wire(ev)["replayed"] for ev in outbox.next_batch(10)}
    assert replayed[offline] and replayed[during_outage] and not replayed[after]
    status = outbox.status()
    assert status.last_sync_error is None and status.last_sync_ok_at == clock.now
    outbox.close()


# -- scenarios -------------------------------------------------------------------------


def test_scenario_3_crash_after_the_cloud_answered_resends_and_gets_duplicate(db, clock):
    cloud = FakeCloud()
    outbox = open_outbox(db, clock)
    outbox.capture(issue("5", device_msg_id="m-1"))
    outbox.capture(issue("6"))
    first_send = [outbox.wire(ev) for ev in outbox.next_batch(10)]
    assert [r.status for r in cloud.post(first_send)] == ["posted", "posted"]
    outbox.close()  # the agent dies before record_results
    clock.advance(minutes=5)
    outbox = open_outbox(db, clock)
    second_send = [outbox.wire(ev) for ev in outbox.next_batch(10)]
    for before, after in zip(first_send, second_send, strict=True):
        assert {k: v for k, v in before.items() if k != "replayed"} == {
            k: v for k, v in after.items() if k != "replayed"
        }, "a retry must say exactly what the first send said"
    results = cloud.post(second_send)
    assert [r.status for r in results] == ["duplicate", "duplicate"]
    outbox.record_results(results)
    assert set(states(db).values()) == {SENT}
    assert len(cloud.posted) == 2, "posted once each"
    outbox.close()


def test_scenario_4_conflict_is_parked_with_its_reason_and_later_events_post(db, clock):
    cloud = FakeCloud()
    outbox = open_outbox(db, clock)
    event_id = outbox.capture(issue("5")).event_id
    cloud.digests[event_id] = "another payload"  # the id was used before with other content
    later = [outbox.capture(issue("1")).event_id for _ in range(20)]
    drain(outbox, cloud)
    assert states(db)[event_id] == PARKED
    assert cloud.posted == later
    [parked] = outbox.status().parked
    assert (parked.event_id, parked.code) == (event_id, "idempotency_key_reused")
    outbox.close()


@pytest.mark.parametrize(
    ("hold_unknown", "after"), [(False, 1000), (True, 200)], ids=["rejected", "held"]
)
def test_scenario_5_poison_event_waits_while_a_thousand_post_then_retries(
    db, clock, hold_unknown, after
):
    cloud = FakeCloud(hold_unknown=hold_unknown)
    outbox = open_outbox(db, clock)
    poison = outbox.capture(issue(work_order="WO-NEW")).event_id
    rest = [outbox.capture(issue(str(n % 9 + 1))).event_id for n in range(after)]
    drain(outbox, cloud)
    assert cloud.posted == rest
    status = outbox.status()
    assert status.backlog == 0
    expected = HELD if hold_unknown else PARKED
    assert states(db)[poison] == expected
    shown = status.held if hold_unknown else status.parked
    assert [(p.event_id, p.code) for p in shown] == [(poison, "unknown_work_order")]
    cloud.known_work_orders.add("WO-NEW")  # master data fixed
    outbox.retry(poison)
    drain(outbox, cloud)
    assert cloud.posted == [*rest, poison]
    assert states(db)[poison] == SENT
    outbox.close()


def test_scenario_6_disk_cap_refuses_new_scans_evicts_nothing_and_resumes(db, clock):
    outbox = open_outbox(db, clock, disk_cap_bytes=96 * 1024)
    captured = []
    with pytest.raises(OutboxFull) as full:
        for n in range(5000):
            captured.append(outbox.capture(issue(str(n % 9 + 1), device_msg_id=f"m-{n}")))
    assert full.value.code == "outbox_full" and "refused" in full.value.message
    assert len(captured) > 20
    before = [tuple(row) for row in rows(db)]
    for _ in range(3):
        with pytest.raises(OutboxFull):
            outbox.capture(issue())
    # a terminal re-sending an acknowledged message still gets its ack: nothing to write
    resent = outbox.capture(issue("1", device_msg_id="m-0"))
    assert resent.duplicate and resent.event_id == captured[0].event_id
    assert [tuple(row) for row in rows(db)] == before, (
        "refused scans write nothing and evict nothing"
    )
    assert outbox.status().full and outbox.status().backlog == len(captured)
    assert outbox.purge_sent(timedelta(0)) == 0, "nothing unsent is ever purged"
    with pytest.raises(OutboxFull):
        outbox.capture(issue())
    # the cloud comes back: the backlog is delivered, then purged
    drain(outbox, FakeCloud())
    clock.advance(seconds=1)
    assert outbox.purge_sent(timedelta(0)) == len(captured)
    assert not outbox.status().full
    resumed = outbox.capture(issue())
    assert resumed.seq > max(c.seq for c in captured)
    outbox.close()


def test_scenario_6_free_disk_floor_refuses_scans_too(db, clock):
    outbox = open_outbox(db, clock, min_free_bytes=1 << 62)
    with pytest.raises(OutboxFull) as full:
        outbox.capture(issue())
    assert "free" in full.value.message
    assert rows(db) == []
    outbox.close()


def test_scenario_11_clock_chaos_keeps_seq_order_both_times_and_flags_skew(db, clock):
    outbox = open_outbox(db, clock)
    on_time = outbox.capture(issue("1", occurred_at=clock.now))
    clock.advance(hours=-1)  # the edge clock steps back
    behind = outbox.capture(issue("2", occurred_at=clock.now))
    terminal_two_hours_off = clock.now + timedelta(hours=2)
    skewed = outbox.capture(issue("3", occurred_at=terminal_two_hours_off))
    assert on_time.seq < behind.seq < skewed.seq
    stored = rows(db)
    assert [row["event_id"] for row in stored] == [
        on_time.event_id,
        behind.event_id,
        skewed.event_id,
    ]
    assert [row["captured_at"] for row in stored] == [
        "2025-03-01T08:00:00.000000+00:00",
        "2025-03-01T07:00:00.000000+00:00",
        "2025-03-01T07:00:00.000000+00:00",
    ]
    assert datetime.fromisoformat(stored[2]["occurred_at"]) == terminal_two_hours_off
    assert [row["clock_skew"] for row in stored] == [0, 0, 1]
    assert outbox.status().clock_skew_count == 1
    batch = outbox.next_batch(10)
    assert [ev.seq for ev in batch] == [on_time.seq, behind.seq, skewed.seq]
    # sent at 07:00 by a clock that went back: the 08:00 capture is not "replayed"
    assert [outbox.wire(ev)["replayed"] for ev in batch] == [False, False, False]
    assert [ev.clock_skew for ev in batch] == [False, False, True]
    outbox.close()


# -- scenario 13: schema migration -------------------------------------------------------

# What the first release (schema version 1) created, frozen here on purpose: the
# migration must open files that release wrote, whatever edge_agent/outbox/schema.py
# says today.
V1_DDL = """
CREATE TABLE event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    edge_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    device_seq INTEGER,
    device_msg_id TEXT,
    type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    operator TEXT,
    payload TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    reverses_event_id TEXT,
    agent_version TEXT NOT NULL,
    captured_offline INTEGER NOT NULL DEFAULT 0 CHECK (captured_offline IN (0, 1)),
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'held', 'parked')),
    result_code TEXT,
    result_message TEXT,
    result_at TEXT,
    sent_at TEXT
);
CREATE INDEX event_by_state ON event (state, seq);
CREATE TABLE event_history (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    at TEXT NOT NULL,
    what TEXT NOT NULL,
    code TEXT,
    message TEXT
);
CREATE INDEX event_history_by_event ON event_history (event_id);
CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_sync_at TEXT,
    last_sync_ok INTEGER CHECK (last_sync_ok IN (0, 1)),
    last_sync_ok_at TEXT,
    last_sync_error TEXT
);
INSERT INTO sync_state (id) VALUES (1);
PRAGMA user_version = 1;
"""


def write_v1_outbox(path: Path) -> list[str]:
    """A v1 file with a backlog: pending (one with a skewed terminal clock), held,
    parked and sent events, as the first release left it. Returns the event ids."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(V1_DDL)
    ids = [str(uuid7()) for _ in range(5)]
    spec = [
        (PENDING, "2025-02-28T16:00:00+08:00", None),
        (HELD, "2025-02-28T16:01:00+08:00", None),
        (PENDING, "2025-02-28T10:00:00+08:00", None),  # terminal clock 6 h behind
        (PARKED, "2025-02-28T16:03:00+08:00", None),
        (SENT, "2025-02-28T16:04:00+08:00", "2025-02-28T08:05:00.000000+00:00"),
    ]
    for n, (event_id, (state, occurred, sent_at)) in enumerate(zip(ids, spec, strict=True)):
        payload = issue(str(n + 1)).payload
        conn.execute(
            "INSERT INTO event (event_id, edge_id, device_id, device_seq, type, occurred_at,"
            " captured_at, operator, payload, payload_sha256, agent_version, state,"
            " result_code, sent_at) VALUES (?, 'edge-1', 'term-1', ?, 'material_issue', ?,"
            " ?, 'B-1', ?, ?, '1.0.0', ?, ?, ?)",
            (
                event_id,
                n,
                occurred,
                f"2025-02-28T08:0{n}:00.000000+00:00",
                json.dumps(payload),
                payload_sha256("material_issue", payload),
                state,
                "unknown_work_order" if state in (HELD, PARKED) else None,
                sent_at,
            ),
        )
    conn.commit()
    conn.close()
    return ids


def columns(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return [tuple(col) for col in conn.execute(f"PRAGMA table_info({table})")]


def test_scenario_13_a_v1_outbox_with_a_backlog_opens_under_the_current_schema(tmp_path, clock):
    old = tmp_path / "v1.db"
    ids = write_v1_outbox(old)
    before = [dict(row) for row in rows(old)]
    outbox = open_outbox(old, clock)
    assert outbox.migrated_from_version == 1
    after = [dict(row) for row in rows(old)]
    assert len(after) == len(before) == 5
    for was, now in zip(before, after, strict=True):
        assert {k: now[k] for k in was} == was, "migration changes no captured column"
    assert [row["clock_skew"] for row in after] == [0, 0, 1, 0, 0]
    assert [row["clock_synced"] for row in after] == [None] * 5, "unknown, not 'false'"
    # the backlog flows on: pending in seq order, then the held one after a retry
    assert [ev.event_id for ev in outbox.next_batch(10)] == [ids[0], ids[2]]
    body = outbox.wire(outbox.next_batch(1)[0])
    assert "clock_synced" not in body and body["replayed"] is True
    EVENT_ADAPTER.validate_python(body)
    outbox.retry(ids[1])
    cloud = FakeCloud()
    drain(outbox, cloud)
    assert cloud.posted == [ids[0], ids[1], ids[2]]
    assert outbox.status().parked_count == 1
    assert outbox.capture(issue()).seq == 6
    outbox.meta_set("k", "v")
    outbox.close()

    fresh = tmp_path / "fresh.db"
    open_outbox(fresh, clock).close()
    migrated_conn, fresh_conn = sqlite3.connect(old), sqlite3.connect(fresh)
    for conn in (migrated_conn, fresh_conn):
        assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for table in ("event", "event_history", "sync_state", "meta"):
        assert columns(migrated_conn, table) == columns(fresh_conn, table), table
    indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
    assert migrated_conn.execute(indexes).fetchall() == fresh_conn.execute(indexes).fetchall()
    migrated_conn.close()
    fresh_conn.close()


def test_an_outbox_from_a_newer_agent_is_refused_and_left_untouched(db, clock):
    open_outbox(db, clock).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    conn.close()
    with pytest.raises(OutboxError) as too_new:
        open_outbox(db, clock)
    assert too_new.value.code == "outbox_too_new"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION + 1
    conn.close()


# -- scenario 2: SIGKILL at random instants ------------------------------------------------

LINE = re.compile(r"^(new|dup) ([0-9a-f-]{36}) (\d+)$")


def run_and_kill(path: Path, round_no: int, rng: random.Random) -> list[str]:
    """Start the worker, SIGKILL it at a random instant, return what it printed.
    Some rounds die during start-up (opening / migrating), most mid-burst."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_crash_worker", str(path), str(round_no)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    if rng.random() < 0.2:
        time.sleep(rng.uniform(0.0, 0.15))
    else:
        ready, _, _ = select.select([worker.stdout], [], [], 20)
        assert ready, "the worker did not start"
        time.sleep(rng.uniform(0.0, 0.3))
    worker.send_signal(signal.SIGKILL)
    out, _ = worker.communicate(timeout=20)
    assert worker.returncode == -signal.SIGKILL
    return out.splitlines()


def test_scenario_2_sigkill_at_random_instants_loses_no_acknowledged_event(db):
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    acknowledged: list[tuple[str, ...]] = []
    for round_no in range(15):
        printed = run_and_kill(db, round_no, rng)
        # a line cut by the kill is dropped; its capture had returned, so it is stored
        acknowledged += [m.groups() for m in map(LINE.match, printed) if m]
    assert len(acknowledged) > 50, f"too few captures to mean anything (seed {seed})"

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], seed
    stored = dict(conn.execute("SELECT event_id, seq FROM event").fetchall())
    [[total]] = conn.execute("SELECT count(*) FROM event").fetchall()
    doubled = conn.execute(
        "SELECT device_id, device_msg_id FROM event WHERE device_msg_id IS NOT NULL"
        " GROUP BY device_id, device_msg_id HAVING count(*) > 1"
    ).fetchall()
    conn.close()
    assert total == len(stored), "each event id stored once"
    assert doubled == [], "a re-sent device message must not become a second event"
    for _kind, event_id, seq in acknowledged:
        assert stored.get(event_id) == int(seq), f"acknowledged {event_id} lost (seed {seed})"
    new_seqs = [int(seq) for kind, _, seq in acknowledged if kind == "new"]
    assert new_seqs == sorted(set(new_seqs)), f"seq must rise in capture order (seed {seed})"

    # and each acknowledged scan is posted exactly once
    outbox = open_outbox(db)
    cloud = FakeCloud()
    drain(outbox, cloud)
    outbox.close()
    assert len(cloud.posted) == len(set(cloud.posted))
    assert set(cloud.posted) <= set(stored)
    assert all(state == SENT for state in states(db).values())


# -- property: random interleavings keep the invariants ----------------------------------

STATUSES = ["posted", "duplicate", "held", "rejected", "conflict", "some_new_status", None]


class OutboxMachine(RuleBasedStateMachine):
    """A model of the outbox (event id -> state, capture order) next to the real one."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-prop-"))
        self.path = self.dir / "outbox.db"
        self.clock = FakeClock()
        self.outbox = open_outbox(self.path, self.clock)
        self.state: dict[str, str] = {}
        self.order: list[str] = []  # capture order
        self.seq: dict[str, int] = {}
        self.messages: dict[tuple[str, str], tuple[str, str]] = {}  # -> (event_id, qty)
        self.purged: set[str] = set()
        self.sent_at: dict[str, datetime] = {}
        self.captured_at: dict[str, datetime] = {}

    @rule(
        device=st.sampled_from(["t1", "t2"]),
        message=st.none() | st.sampled_from(["m1", "m2", "m3"]),
        quantity=st.sampled_from(["1", "2"]),
    )
    def capture(self, device: str, message: str | None, quantity: str) -> None:
        c = issue(quantity, device_id=device, device_msg_id=message, occurred_at=self.clock.now)
        known = self.messages.get((device, message)) if message else None
        if known is not None and known[0] not in self.purged:
            if known[1] != quantity:
                with pytest.raises(OutboxError) as conflict:
                    self.outbox.capture(c)
                assert conflict.value.code == "device_msg_conflict"
                return
            again = self.outbox.capture(c)
            assert again.duplicate and again.event_id == known[0]
            return
        captured = self.outbox.capture(c)
        assert not captured.duplicate
        assert all(captured.seq > s for s in self.seq.values()), "seq rises"
        if captured.event_id in self.purged:  # a purged message's id comes back
            self.purged.discard(captured.event_id)
            self.order.remove(captured.event_id)
        self.state[captured.event_id] = PENDING
        self.seq[captured.event_id] = captured.seq
        self.captured_at[captured.event_id] = self.clock.now
        self.order.append(captured.event_id)
        if message:
            self.messages[(device, message)] = (captured.event_id, quantity)

    @rule(data=st.data(), limit=st.integers(1, 5))
    def sync(self, data: st.DataObject, limit: int) -> None:
        batch = self.outbox.next_batch(limit)
        assert [ev.event_id for ev in batch] == self.pending()[:limit]
        answers = data.draw(
            st.lists(st.sampled_from(STATUSES), min_size=len(batch), max_size=len(batch))
        )
        results = [
            SendResult(ev.event_id, status, "c", "m")
            for ev, status in zip(batch, answers, strict=False)
            if status is not None
        ]
        self.outbox.record_results(results)
        after = {"posted": SENT, "duplicate": SENT, "held": HELD}
        after |= {"rejected": PARKED, "conflict": PARKED}
        for result in results:
            if self.state[result.event_id] != SENT and result.status in after:
                self.state[result.event_id] = after[result.status]
                self.sent_at[result.event_id] = self.clock.now

    @precondition(lambda self: self.state)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        event_id = data.draw(st.sampled_from(sorted(self.state)))
        if self.state[event_id] == SENT:
            with pytest.raises(OutboxError):
                self.outbox.retry(event_id)
        else:
            self.outbox.retry(event_id)
            self.state[event_id] = PENDING

    @rule()
    def retry_unknown(self) -> None:
        with pytest.raises(OutboxError) as unknown:
            self.outbox.retry(str(uuid.uuid4()))
        assert unknown.value.code == "unknown_event"

    @rule()
    def purge(self) -> None:
        self.clock.advance(seconds=1)
        # by the edge clock, which may have stepped back since: then fewer go
        sent = {i for i, s in self.state.items() if s == SENT and self.sent_at[i] < self.clock.now}
        assert self.outbox.purge_sent(timedelta(0)) == len(sent)
        for event_id in sent:
            del self.state[event_id]
        self.purged |= sent

    @rule(keep=st.integers(0, 90), window=st.integers(0, 90))
    def purge_by_age(self, keep: int, window: int) -> None:
        """The retention's purge: sent before now - keep and captured before
        now - window (both by the edge clock); the rest stays and still dedups."""
        now = self.clock.now
        sent = {
            i
            for i, s in self.state.items()
            if s == SENT
            and self.sent_at[i] < now - timedelta(minutes=keep)
            and self.captured_at[i] < now - timedelta(minutes=window)
        }
        purged = self.outbox.purge_sent(
            timedelta(minutes=keep), captured_before=timedelta(minutes=window)
        )
        assert purged == len(sent)
        for event_id in sent:
            del self.state[event_id]
        self.purged |= sent

    @rule(minutes=st.integers(-180, 180))
    def clock_jumps(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def restart(self) -> None:
        self.outbox.close()
        self.outbox = open_outbox(self.path, self.clock)

    def pending(self) -> list[str]:
        return [i for i in self.order if self.state.get(i) == PENDING]

    @invariant()
    def every_event_is_stored_once_in_its_state(self) -> None:
        stored = rows(self.path)
        assert {row["event_id"]: row["state"] for row in stored} == self.state
        assert [row["event_id"] for row in stored] == [i for i in self.order if i in self.state]
        status = self.outbox.status()
        counts = [list(self.state.values()).count(s) for s in (PENDING, HELD, PARKED, SENT)]
        assert [
            status.backlog,
            status.held_count,
            status.parked_count,
            status.sent_count,
        ] == counts

    def teardown(self) -> None:
        self.outbox.close()
        for name in os.listdir(self.dir):
            os.remove(self.dir / name)
        os.rmdir(self.dir)


OutboxMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
test_random_interleavings_keep_the_outbox_invariants = OutboxMachine.TestCase
