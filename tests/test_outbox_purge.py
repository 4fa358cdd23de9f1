"""The purge of delivered events (outbox/retention.py) on real SQLite files: the disk
cap lifts once the cloud confirmed the backlog, a terminal's re-send still dedups within
the retention, nothing unsent ever goes, seq keeps rising, and a purge runs in bounded
chunks. The agent's own loop, against a real cloud: test_edge_agent.py."""

from datetime import timedelta
from pathlib import Path

import pytest

from edge_agent.config import ConfigError, parse_config
from edge_agent.outbox import (
    HELD,
    PARKED,
    PENDING,
    OutboxFull,
    Retention,
    SendResult,
    purge,
)
from edge_agent.outbox.retention import HYSTERESIS, PRESSURE, short_of_space
from tests.test_outbox import FakeClock, FakeCloud, drain, issue, open_outbox, rows, states

RETENTION = Retention(keep_sent=timedelta(hours=24), dedup_window=timedelta(minutes=15))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


def fill_until_full(outbox, clock: FakeClock, prefix: str = "m") -> list:  # type: ignore[no-untyped-def]
    captured = []
    with pytest.raises(OutboxFull):
        for n in range(20_000):
            captured.append(outbox.capture(issue(str(n % 9 + 1), device_msg_id=f"{prefix}-{n}")))
            clock.advance(milliseconds=10)
    return captured


def test_cap_reached_offline_then_drained_and_purged_lets_capture_resume(db, clock):
    CAP = 128 * 1024
    outbox = open_outbox(db, clock, disk_cap_bytes=CAP)
    outbox.purge_chunk = 20  # several chunks in the outbox: the purge may stop part way
    outbox.note_sync(ok=False, error="cloud unreachable")
    captured = fill_until_full(outbox, clock)
    assert purge(outbox, RETENTION).purged == 0, "nothing unsent is ever purged"
    with pytest.raises(OutboxFull):
        outbox.capture(issue())
    drain(outbox, FakeCloud())  # the cloud is back
    assert outbox.status().full, "delivered rows still fill the outbox"
    with pytest.raises(OutboxFull):
        outbox.capture(issue())
    # inside the dedup window nothing goes, not even when space is short
    clock.advance(minutes=10)
    assert purge(outbox, RETENTION).purged == 0
    clock.advance(minutes=6)
    report = purge(outbox, RETENTION)
    # the longest-delivered go (here: the lowest seq) until the outbox is back under
    # PRESSURE - HYSTERESIS of its cap; the rest stay for the audit trail and dedup
    assert report.short_of_space and 0 < report.purged < len(captured)
    assert outbox.space()[0] < (PRESSURE - HYSTERESIS) * CAP
    kept = [row["seq"] for row in rows(db)]
    assert kept == [c.seq for c in captured[report.purged :]]
    assert not outbox.status().full and not short_of_space(outbox)
    resumed = outbox.capture(issue())
    assert resumed.seq > max(c.seq for c in captured), "a seq is never reused"
    # the file did not grow: the freed pages were reused
    assert outbox.space()[0] < CAP
    outbox.close()


def test_a_terminal_resend_dedups_within_the_retention_and_posts_once_after_it(db, clock):
    outbox = open_outbox(db, clock)
    first = outbox.capture(issue("3", device_msg_id="msg-1"))
    cloud = FakeCloud()
    drain(outbox, cloud)
    clock.advance(hours=23)  # past the dedup window, inside keep_sent, space plentiful
    assert not short_of_space(outbox)
    assert purge(outbox, RETENTION).purged == 0
    again = outbox.capture(issue("3", device_msg_id="msg-1"))
    assert again.duplicate and (again.event_id, again.seq) == (first.event_id, first.seq)
    clock.advance(hours=2)
    assert purge(outbox, RETENTION).purged == 1
    # past the retention the re-send is captured again, under the same event id and a
    # new, higher seq; the cloud, which hashes the seq with the content, refuses it as a
    # conflict: parked, in sight, and posted once
    late = outbox.capture(issue("3", device_msg_id="msg-1"))
    assert not late.duplicate and late.event_id == first.event_id and late.seq > first.seq
    drain(outbox, cloud)
    assert cloud.posted == [first.event_id]
    assert states(db) == {first.event_id: PARKED}
    assert outbox.status().parked[0].code == "idempotency_key_reused"
    outbox.close()


def test_under_pressure_only_events_captured_before_the_dedup_window_go(db, clock):
    outbox = open_outbox(db, clock, disk_cap_bytes=160 * 1024)
    early = [outbox.capture(issue(device_msg_id=f"early-{n}")) for n in range(100)]
    clock.advance(minutes=10)
    outbox.note_sync(ok=False, error="down")
    late = fill_until_full(outbox, clock, prefix="late")
    drain(outbox, FakeCloud())
    clock.advance(minutes=6)  # the early ones are 16 min old, the late ones 6
    report = purge(outbox, RETENTION)
    assert report.short_of_space and report.purged == len(early)
    kept = {row["event_id"] for row in rows(db)}
    assert kept == {c.event_id for c in late}
    resent = outbox.capture(issue("1", device_msg_id="late-0"))
    assert resent.duplicate and resent.seq == late[0].seq
    outbox.close()


def test_held_parked_and_pending_events_are_never_purged(db, clock):
    outbox = open_outbox(db, clock, disk_cap_bytes=64 * 1024)
    ids = [outbox.capture(issue(work_order=wo)).event_id for wo in ("WO1", "WO9", "WO8", "WO1")]
    outbox.record_results(
        [
            SendResult(ids[0], "posted"),
            SendResult(ids[1], "held", "unknown_work_order", "no WO9"),
            SendResult(ids[2], "rejected", "unknown_work_order", "no WO8"),
        ]
    )
    clock.advance(days=30)
    tight = Retention(keep_sent=timedelta(0), dedup_window=timedelta(0))
    assert purge(outbox, tight).purged == 1
    assert states(db) == {ids[1]: HELD, ids[2]: PARKED, ids[3]: PENDING}
    outbox.close()


def test_a_big_purge_goes_in_chunks_and_max_rows_bounds_it(db, clock):
    outbox = open_outbox(db, clock)
    outbox.purge_chunk = 50
    total = 50 * 2 + 7
    for n in range(total):
        outbox.capture(issue(device_msg_id=f"m-{n}"))
    cloud = FakeCloud()
    while batch := outbox.next_batch(1000):
        outbox.record_results(cloud.post([outbox.wire(ev) for ev in batch]))
    clock.advance(days=2)
    assert outbox.purge_sent(timedelta(hours=24), max_rows=10) == 10
    assert outbox.purge_sent(timedelta(hours=24), max_rows=51) == 51
    assert outbox.purge_sent(timedelta(hours=24)) == total - 61
    assert rows(db) == []
    assert outbox.capture(issue()).seq == total + 1
    outbox.close()


def test_the_purge_finds_its_rows_through_the_sent_at_index(db, clock):
    """Without it, each purge reads every delivered row (a day's worth on a busy edge)
    while captures wait for the lock."""
    outbox = open_outbox(db, clock)
    plan = outbox._conn.execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM event INDEXED BY event_sent_at"
        " WHERE state = 'sent' AND sent_at < ? AND captured_at < ?",
        ("x", "y"),
    ).fetchall()
    assert "event_sent_at" in plan[0]["detail"]
    outbox.close()


def test_retention_is_configured_in_seconds_with_safe_defaults(tmp_path):
    base = {"edge": {"id": "e1"}, "cloud": {"url": "http://c", "api_key": "k"}}
    config = parse_config(base, tmp_path)
    assert (config.keep_sent_s, config.dedup_window_s, config.purge_every_s) == (
        86400.0,
        900.0,
        60.0,
    )
    set_ = parse_config({**base, "edge": {"id": "e1", "keep_sent_s": 3600, "dedup_window_s": 60}})
    assert (set_.keep_sent_s, set_.dedup_window_s) == (3600.0, 60.0)
    for key, bad in (
        ("keep_sent_s", -1),
        ("dedup_window_s", "15m"),
        ("purge_every_s", 0),
        ("keep_sent_s", float("inf")),
        ("dedup_window_s", True),
    ):
        with pytest.raises(ConfigError) as error:
            parse_config({**base, "edge": {"id": "e1", key: bad}})
        assert key in str(error.value)
