"""The edge agent against a real cloud over HTTP: EDGE.md's acceptance scenarios that do
not need a device (those are in test_edge_devices.py). Each ends by asking the cloud's
ledger: every acknowledged scan posted exactly once, nothing else."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from edge_agent.outbox import Capture
from tests.conftest import Api
from tests.edge_harness import (
    CloudServer,
    cloud,
    edge_config,
    issue_scans,
    login_and_issue,
    make_agent,
    on_hand,
    posted_events,
)
from tests.factory import receipt, setup_workshop


@pytest.fixture
def shop(api: Api) -> Api:
    setup_workshop(api)
    api.create("/operators", {"code": "B-1", "name": "Li Wei"})
    (result,) = api.events(receipt(1, "RAW", "100000", "2"))
    assert result["status"] == "posted"
    return api


def test_scan_to_issue_posts_once_into_the_ledger(shop: Api, db: Engine, tmp_path: Path) -> None:
    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        login_and_issue(agent, "RAW", "3")
        assert agent.drain(timeout_s=20)
        (row,) = posted_events(db, shop.tenant.id)
        assert row.status == "posted"
        assert on_hand(shop, "RAW") == Decimal(100000 - 3)
        agent.stop()
    assert shop.reconcile() == []


def test_bad_scans_are_answered_and_nothing_is_captured(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        assert not agent.scan("ws-1", "WO1").ok  # no badge yet
        assert agent.scan("ws-1", "B-1").ok
        assert "unknown" in agent.scan("ws-1", "WO-NOPE").text
        assert agent.scan("ws-1", "WO1").ok
        assert "unknown" in agent.scan("ws-1", "NOPE").text
        assert agent.scan("ws-1", "RAW").ok
        for bad in ("-1", "abc", "0", "1.0000001"):
            assert not agent.scan("ws-1", bad).ok, bad
        assert agent.scan("ws-1", "#CANCEL").ok
        assert agent.outbox.status().backlog == 0
        agent.stop()


def test_outage_then_back_every_scan_posted_once_in_order(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    server = CloudServer(db)
    agent = make_agent_offline(tmp_path, server, shop)
    login_and_issue(agent, "RAW", "1")
    acked = 1 + issue_scans(agent, "RAW", "1", 1499)
    report = agent.syncer.sync_once()
    assert report.error is not None and "unreachable" in report.error
    assert agent.outbox.status().backlog == acked == 1500
    server.start()
    try:
        assert agent.drain(timeout_s=120)
        rows = posted_events(db, shop.tenant.id)
        assert len(rows) == acked and all(r.status == "posted" for r in rows)
        seqs = [r.seq for r in rows]
        assert seqs == sorted(seqs) and len(set(seqs)) == acked
        assert on_hand(shop, "RAW") == Decimal(100000 - acked)
        assert shop.reconcile() == []
    finally:
        agent.stop()
        server.stop()


def make_agent_offline(tmp_path: Path, server: CloudServer, api: Api, **edge: Any):  # type: ignore[no-untyped-def]
    """An agent whose master data was pulled once, and whose cloud is now down."""
    server.start()
    agent = make_agent(tmp_path, server, api, **edge)
    server.stop()
    return agent


@pytest.mark.parametrize("late", [False, True])
def test_crash_between_the_answer_and_the_mark_resends_and_gets_the_first_reply(
    shop: Api, db: Engine, tmp_path: Path, late: bool
) -> None:
    """The same batch sent again (the same Idempotency-Key) gets the first reply; sent
    late, its events now say `replayed`: another batch, another key, each event
    answered `duplicate`, never a 409 that would hold the outbox up."""
    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        login_and_issue(agent, "RAW", "5")
        real_record = agent.outbox.record_results

        def crash(results):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt("power cut after the cloud answered")

        agent.outbox.record_results = crash  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            agent.syncer.sync_once()
        agent.outbox.record_results = real_record  # type: ignore[method-assign]
        assert agent.outbox.status().backlog == 1  # not marked: sent again
        if late:  # as if the restart took longer than REPLAY_AFTER_S
            agent.outbox.replay_after_s = 0
        report = agent.syncer.sync_once()
        assert report.error is None
        assert report.counts == ({"duplicate": 1} if late else {"posted": 1})
        assert agent.outbox.status().backlog == 0
        assert len(posted_events(db, shop.tenant.id)) == 1
        assert on_hand(shop, "RAW") == Decimal(100000 - 5)
        agent.stop()


def test_same_id_other_payload_is_parked_and_the_rest_flow(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        login_and_issue(agent, "RAW", "2")
        assert agent.drain(timeout_s=20)
        (first,) = posted_events(db, shop.tenant.id)
        # a restored backup of the outbox, edited by hand: the sent event is pending
        # again with another quantity under the same id
        with sqlite3.connect(agent.config.outbox_path) as conn:
            conn.execute(
                "update event set state = 'pending', payload = replace(payload, '\"2\"', "
                "'\"7\"') where event_id = ?",
                (str(first.event_id),),
            )
        issue_scans(agent, "RAW", "1", 3)
        assert agent.drain(timeout_s=20)
        status = agent.outbox.status()
        assert status.parked_count == 1
        assert status.parked[0].code == "idempotency_key_reused"
        assert len(posted_events(db, shop.tenant.id)) == 4  # the first and three after
        assert on_hand(shop, "RAW") == Decimal(100000 - 2 - 3)
        agent.stop()


def test_poison_event_is_held_the_rest_post_and_it_posts_after_the_fix(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        # captured by a terminal before the order existed in the cloud
        poison = agent.outbox.capture(
            Capture(
                type="material_issue",
                payload={"work_order": "WO-NEW", "item": "RAW", "location": "WH", "quantity": "4"},
                device_id="scanner-ws-1",
                occurred_at=agent.clock(),
            )
        )
        login_and_issue(agent, "RAW", "1")
        acked = 1 + issue_scans(agent, "RAW", "1", 999)
        assert agent.drain(timeout_s=60)
        status = agent.outbox.status()
        assert status.held_count == 1 and status.held[0].event_id == poison.event_id
        assert "WO-NEW" in (status.held[0].message or "")
        assert on_hand(shop, "RAW") == Decimal(100000 - acked)
        shop.create(
            "/work-orders",
            {"code": "WO-NEW", "item": "TBL", "planned_quantity": "1", "release": True},
        )
        agent.outbox.retry(poison.event_id)  # `erp edge retry EVENT_ID`
        assert agent.drain(timeout_s=20)
        assert agent.outbox.status().held_count == 0
        assert on_hand(shop, "RAW") == Decimal(100000 - acked - 4)
        assert len(posted_events(db, shop.tenant.id)) == acked + 1
        agent.stop()


def fill_to_the_cap(agent: Any) -> int:
    """Issues until the outbox (its cap set just above what it holds) refuses one;
    answers how many were acknowledged, the login's issue included."""
    login_and_issue(agent, "RAW", "1")
    used = agent.outbox.status().bytes_used
    agent.outbox.disk_cap_bytes = used + 64 * 1024  # a nearly full disk
    refused = None
    acked = 1
    for _ in range(5000):
        agent.scan("ws-1", "RAW")
        agent.scan("ws-1", "1")
        answer = agent.scan("ws-1", "#OK")
        if not answer.ok:
            refused = answer
            break
        acked += 1
    assert refused is not None and "NOT SAVED" in refused.text and "full" in refused.text
    assert agent.outbox.status().full and agent.outbox.status().backlog == acked
    # the refused transaction is still there: the operator can confirm again later
    assert not agent.scan("ws-1", "#OK").ok
    return acked


def test_disk_cap_refuses_new_scans_evicts_nothing_and_resumes(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    server = CloudServer(db)
    # dedup_window_s = 0: what was delivered may go at once when space is short
    agent = make_agent_offline(tmp_path, server, shop, dedup_window_s=0)
    acked = fill_to_the_cap(agent)
    server.start()
    try:
        assert agent.drain(timeout_s=60)
        assert agent.outbox.status().full and agent.outbox.status().sent_count == acked
        # the scan that meets the cap purges what the cloud confirmed, and is saved
        assert agent.scan("ws-1", "#OK").ok
        assert agent.outbox.status().sent_count == 0
        assert agent.drain(timeout_s=20)
        assert len(posted_events(db, shop.tenant.id)) == acked + 1
        assert on_hand(shop, "RAW") == Decimal(100000 - acked - 1)
    finally:
        agent.stop()
        server.stop()


def test_after_an_outage_at_the_cap_the_agent_loop_purges_and_capture_resumes(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    """The cap never lifted: the agent delivered its backlog but kept every delivered
    row, so every scan after the outage was still refused."""
    server = CloudServer(db)
    agent = make_agent_offline(tmp_path, server, shop, dedup_window_s=0, purge_every_s=0.05)
    acked = fill_to_the_cap(agent)
    server.start()
    agent.start()  # the sync loop delivers, the purge loop deletes what was delivered
    try:
        deadline = time.monotonic() + 60
        while True:
            status = agent.outbox.status()
            if status.backlog == 0 and status.sent_count == 0 and not status.full:
                break
            assert time.monotonic() < deadline, f"never purged: {status}"
            agent.stop_event.wait(0.05)
        assert agent.scan("ws-1", "#OK").ok  # capture resumed
        assert issue_scans(agent, "RAW", "1", 20) == 20
        deadline = time.monotonic() + 30
        while len(posted_events(db, shop.tenant.id)) < acked + 21:
            assert time.monotonic() < deadline, "the scans after the outage did not post"
            agent.stop_event.wait(0.05)
        events = posted_events(db, shop.tenant.id)
        assert len(events) == acked + 21, "every acknowledged scan posted once"
        assert [e.seq for e in events] == sorted({e.seq for e in events}), "seq keeps rising"
        assert on_hand(shop, "RAW") == Decimal(100000 - acked - 21)
    finally:
        agent.stop()
        server.stop()


def test_clock_stepping_back_keeps_seq_order_and_both_times(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    from datetime import timedelta

    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        base = agent.clock()
        times = iter(
            [base, base, base, base, base, base, base - timedelta(hours=2)]
            + [base - timedelta(hours=2)] * 10
        )
        agent.clock = lambda: next(times)
        login_and_issue(agent, "RAW", "1")
        issue_scans(agent, "RAW", "1", 1)  # the edge clock stepped back two hours
        agent.clock = lambda: base
        assert agent.drain(timeout_s=20)
        rows = posted_events(db, shop.tenant.id)
        assert [r.status for r in rows] == ["posted", "posted"]
        assert rows[0].seq < rows[1].seq
        events = shop.get("/reports/journal").json()
        assert events  # both posted; occurred_at kept as the operator's time
        agent.stop()


def test_agent_killed_at_random_instants_every_acknowledged_scan_posts_once(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    import json
    import random
    import signal
    import subprocess
    import sys
    import time

    with cloud(db) as server:
        raw = edge_config(tmp_path, server.url, shop.tenant.api_key)
        agent = make_agent(tmp_path, server, shop)  # pulls the master data to the cache
        agent.stop()
        acked, rounds, rng = 0, 12, random.Random(7)
        for _ in range(rounds):
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.edge_kill_worker", json.dumps(raw)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "READY"
            time.sleep(rng.uniform(0.05, 0.4))
            worker.send_signal(signal.SIGKILL)
            out, _ = worker.communicate()
            acked += sum(1 for line in out.splitlines() if line.startswith("ACK"))
        assert acked > rounds  # the bursts really captured
        agent = make_agent(tmp_path, server, shop)
        with sqlite3.connect(agent.config.outbox_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            captured = conn.execute("select count(*) from event").fetchone()[0]
        assert agent.drain(timeout_s=120)
        agent.stop()
    posted = posted_events(db, shop.tenant.id)
    # every acknowledged scan, plus at most the one committed in each round just
    # before its kill, before its beep; each posted once
    assert acked <= len(posted) == captured <= acked + rounds
    assert all(r.status == "posted" for r in posted)
    assert on_hand(shop, "RAW") == Decimal(100000 - len(posted))
    assert shop.reconcile() == []


def test_backlog_and_live_scans_after_a_restart_all_post_in_capture_order(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    server = CloudServer(db)
    agent = make_agent_offline(tmp_path, server, shop)
    login_and_issue(agent, "RAW", "1")
    backlog = 1 + issue_scans(agent, "RAW", "1", 2999)
    status = agent.outbox.status()
    assert status.backlog == backlog and status.oldest_pending_age_s is not None
    agent.stop()
    server.start()
    try:
        agent = make_agent(tmp_path, server, shop)  # restarted with the backlog
        agent.start()
        login_and_issue(agent, "RAW", "1")  # live scans while the backlog drains
        live = 1 + issue_scans(agent, "RAW", "1", 199)
        assert live == 200
        deadline = time.monotonic() + 120
        while agent.outbox.status().backlog and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.outbox.status().backlog == 0
        agent.stop()
    finally:
        server.stop()
    rows = posted_events(db, shop.tenant.id)
    assert len(rows) == backlog + live and all(r.status == "posted" for r in rows)
    seqs = [r.seq for r in rows]
    assert len(set(seqs)) == len(seqs)
    # the cloud saw each device's events in capture order: occurred_at follows seq
    times = [r.occurred_at for r in rows]
    assert times == sorted(times)
    assert on_hand(shop, "RAW") == Decimal(100000 - backlog - live)
    assert shop.reconcile() == []


def test_heartbeat_tells_the_cloud_the_backlog_and_measures_the_clock(
    shop: Api, db: Engine, tmp_path: Path
) -> None:
    with cloud(db) as server:
        agent = make_agent(tmp_path, server, shop)
        login_and_issue(agent, "RAW", "1")
        agent.device_state = lambda: [{"device_id": "scanner-ws-1", "connected": True}]
        agent.heartbeat()
        assert agent.clock_offset_s is not None and abs(agent.clock_offset_s) < 5
        (seen,) = shop.get("/edge/agents").json()
        assert seen["edge_id"] == "edge-1" and seen["backlog"] == 1
        assert seen["oldest_pending_at"] is not None
        assert seen["devices"] == [{"device_id": "scanner-ws-1", "connected": True}]
        assert agent.drain(timeout_s=20)
        agent.heartbeat()
        (seen,) = shop.get("/edge/agents").json()
        assert seen["backlog"] == 0
        # the next capture records the measured offset with the event
        login_and_issue(agent, "RAW", "1")
        (pending,) = agent.outbox.next_batch(10)
        assert agent.outbox.wire(pending)["clock_synced"] is True
        agent.stop()
