"""Workstation sessions kept across an agent restart (issue 15, item 6): the badge, the
order and the half-done transaction come back, with the idle timeout still applying;
a timed-out transaction does not. Simulated restarts (new objects over the same file),
an agent stopped and started again, and an agent process killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.agent import LABOUR_META, Agent
from edge_agent.config import parse_config
from edge_agent.session_store import (
    SessionStore,
    session_store_path,
    state_from_json,
    state_to_json,
)
from edge_agent.sessions import ScanInput, Session, SessionState, Workstation
from tests.edge_harness import edge_config
from tests.unit.edge.test_sessions import MASTER_DATA, STATION, T0, Label, master_data, run

HANDHELD = Workstation(id="hh", warehouse="WH", supplier="SUP", mode="receive")


def restart(path: Path, station: Workstation, now: Any) -> tuple[Session, SessionStore]:
    """What an agent start does for one workstation: a fresh session, resumed."""
    session = Session(station, master_data())
    store = SessionStore(path)
    store.attach({station.id: session}, now)
    return session, store


def test_a_session_is_resumed_after_a_restart_with_its_half_done_transaction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    s, store = restart(path, STATION, T0)
    run(s, "B-1", "WO1", "RAW")
    assert s.state.step == "quantity"
    store.close()  # the agent goes down; nothing in memory survives
    later = T0 + timedelta(seconds=90)  # within the 120 s step timeout
    s, store = restart(path, STATION, later)
    assert (s.state.operator, s.state.mode, s.state.step) == ("B-1", "issue", "quantity")
    assert s.state.data == {"work_order": "WO1", "item": "RAW"}
    *_, done = run(s, "2", "#OK", at=later)  # no badge, no order, no item again
    assert done.draft is not None and done.draft.operator == "B-1"
    assert done.draft.payload["quantity"] == "2" and done.draft.payload["work_order"] == "WO1"
    store.close()
    s, store = restart(path, STATION, later)  # after the issue: still at the order
    assert (s.state.step, s.state.data) == ("item", {"work_order": "WO1"})
    store.close()


def test_a_receipt_label_keeps_its_typed_values_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    s, store = restart(path, HANDHELD, T0)
    label = Label(gtin="05901234123457", lot="L7", expiry=date(2027, 5, 31), quantity=Decimal(24))
    run(s, "B-1", "WH", ScanInput("]C1...", label))
    assert s.state.step == "confirm"
    store.close()
    s, store = restart(path, HANDHELD, T0 + timedelta(seconds=5))
    assert s.state.data["quantity"] == Decimal(24) and s.state.data["expiry"] == date(2027, 5, 31)
    (done,) = run(s, "#OK", at=T0 + timedelta(seconds=5))
    assert done.draft is not None
    assert done.draft.payload["quantity"] == "24" and done.draft.payload["expiry"] == "2027-05-31"
    store.close()


def test_a_transaction_that_timed_out_while_the_agent_was_down_is_not_resumed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.sqlite3"
    s, store = restart(path, STATION, T0)
    run(s, "B-1", "WO1", "RAW")
    store.close()
    late = T0 + timedelta(seconds=121)
    s, store = restart(path, STATION, late)
    # as `tick` would have done had the agent been up: the badge stays, the rest goes
    assert (s.state.operator, s.state.step, s.state.data) == ("B-1", "work_order", {})
    (refused,) = run(s, "2", at=late)
    assert not refused.answer.ok and "quantity" not in s.state.data
    store.close()
    s, store = restart(path, STATION, T0)  # the drop was written: not back later
    assert (s.state.step, s.state.data) == ("work_order", {})
    store.close()


def test_undo_and_timeouts_are_written_too(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    s, store = restart(path, STATION, T0)
    run(s, "B-1", "WO1", "RAW", "1")
    (confirm,) = run(s, "#OK")
    assert confirm.draft is not None
    s.undo()  # the outbox refused the draft: back at the confirm step, on disk too
    assert SessionStore(path).load(STATION.id) == s.state
    assert s.state.step == "confirm"
    s.tick(T0 + timedelta(seconds=200))
    reread = SessionStore(path).load(STATION.id)
    assert reread is not None and (reread.step, reread.data) == ("work_order", {})
    store.close()


def test_the_store_is_wal_with_synchronous_full_and_writes_only_changes(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    s, store = restart(path, STATION, T0)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    run(s, "B-1", "WO1")
    changes = store._conn.total_changes
    assert s.tick(T0 + timedelta(seconds=1)) is None  # the 1 s loop: nothing written
    assert store._conn.total_changes == changes
    store.close()


def test_an_unreadable_row_starts_the_workstation_fresh(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    s, store = restart(path, STATION, T0)
    run(s, "B-1", "WO1")
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE workstation_session SET state = \'{"mode": "issue"\'')
    s, store = restart(path, STATION, T0)
    assert (s.state.operator, s.state.step) == (None, "badge")
    run(s, "B-1")
    assert store.load(STATION.id) == s.state  # and it is saved again
    store.close()


states = st.builds(
    SessionState,
    operator=st.one_of(st.none(), st.text(max_size=12)),
    mode=st.sampled_from(["issue", "complete", "labour", "receive", "ship"]),
    step=st.sampled_from(["badge", "work_order", "item", "lot", "quantity", "confirm"]),
    data=st.dictionaries(
        st.sampled_from(["work_order", "item", "lot", "quantity", "expiry", "good", "scrap"]),
        st.one_of(
            st.text(max_size=20),
            st.decimals(allow_nan=False, allow_infinity=False, places=6),
            st.dates(),
        ),
    ),
    last_activity=st.one_of(st.none(), st.datetimes(timezones=st.just(T0.tzinfo))),
    labour=st.dictionaries(st.text(max_size=20), st.text(max_size=30), max_size=3),
)


@given(states)
def test_property_the_state_round_trips_with_its_types(state: SessionState) -> None:
    back = state_from_json(state_to_json(state))
    assert back == state
    assert {k: type(v) for k, v in back.data.items()} == {k: type(v) for k, v in state.data.items()}
    assert {k: str(v) for k, v in back.data.items()} == {  # Decimal("2.50") stays 2.50
        k: str(v) for k, v in state.data.items()
    }


# -- the agent itself --------------------------------------------------------------


def agent_config(tmp_path: Path) -> Any:
    """ws-1 and hh-1 (edge_harness), no cloud: the master data are in the cache file."""
    raw = edge_config(tmp_path, "http://127.0.0.1:9", "unused")
    return parse_config(raw), raw


def new_agent(tmp_path: Path, clock: Any = None) -> Agent:
    config, _ = agent_config(tmp_path)
    agent = Agent(config, clock=clock) if clock else Agent(config)
    agent.cache.apply(MASTER_DATA)
    return agent


def test_an_agent_restart_keeps_the_badge_and_the_order(tmp_path: Path) -> None:
    agent = new_agent(tmp_path)
    for text in ("B-1", "#ISSUE", "WO1", "RAW"):
        assert agent.scan("ws-1", text).ok, text
    assert agent.scan("hh-1", "B-1").ok
    agent.stop()
    assert session_store_path(agent.config.outbox_path).exists()
    agent = new_agent(tmp_path)
    answer = agent.scan("ws-1", "3")
    assert answer.ok and "#OK" in answer.text  # no "scan your badge first"
    assert agent.scan("ws-1", "#OK").ok
    assert agent.sessions["hh-1"].state.operator == "B-1"
    (event,) = agent.outbox.next_batch(10)
    assert (event.operator, event.payload["quantity"], event.payload["item"]) == ("B-1", "3", "RAW")
    agent.stop()


def test_an_agent_restart_after_the_timeout_drops_the_transaction(tmp_path: Path) -> None:
    agent = new_agent(tmp_path, clock=lambda: T0)
    for text in ("B-1", "WO1", "RAW"):
        assert agent.scan("ws-1", text).ok, text
    agent.stop()
    agent = new_agent(tmp_path, clock=lambda: T0 + timedelta(minutes=10))
    session = agent.sessions["ws-1"]
    assert (session.state.operator, session.state.step, session.state.data) == (
        "B-1",
        "work_order",
        {},
    )
    assert not agent.scan("ws-1", "3").ok
    agent.stop()


def test_a_labour_start_survives_an_agent_restart(tmp_path: Path) -> None:
    # #START gives no event, so the outbox meta never had it: only this store does
    agent = new_agent(tmp_path, clock=lambda: T0)
    for text in ("B-1", "#LABOUR", "WO1", "#START"):
        assert agent.scan("ws-1", text).ok, text
    assert agent.outbox.meta_get(LABOUR_META.format(station="ws-1")) is None
    agent.stop()
    agent = new_agent(tmp_path, clock=lambda: T0 + timedelta(hours=2))
    for text in ("WO1",):
        assert agent.scan("ws-1", text).ok, text
    stop = agent.scan("ws-1", "#STOP")
    assert stop.ok, stop
    (event,) = agent.outbox.next_batch(10)
    assert event.payload["started_at"] == T0.isoformat()
    agent.stop()


def test_an_agent_killed_with_sigkill_resumes_the_session(tmp_path: Path) -> None:
    config, raw = agent_config(tmp_path)
    agent = Agent(config)
    agent.cache.apply(MASTER_DATA)  # the cache file the worker reads
    agent.stop()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.edge_session_worker", json.dumps(raw)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    try:
        assert worker.stdout.readline().strip() == "READY"  # badge, order, item scanned
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    agent = Agent(config)
    assert agent.scan("ws-1", "4").ok
    assert agent.scan("ws-1", "#OK").ok
    (event,) = agent.outbox.next_batch(10)
    assert (event.operator, event.payload["quantity"]) == ("B-1", "4")
    agent.stop()
