"""The MQTT work-reporting-terminal bridge (firmware_bridges/terminal).

Unit tests parse messages and turn cumulative counters into deltas (with hypothesis).
Integration tests run the bridge, the terminal simulator and a private Mosquitto
(tests/mosquitto.py) and check EDGE.md's acceptance scenarios 9 and 10: a re-sent
message id is one event with one ack per send; an agent killed before its commit loses
nothing, one killed after its commit but before the ack sees the redelivery as already
committed; and 2,000 QoS 1 messages queued while the agent is down all arrive.
"""

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridges.terminal import (
    Answer,
    BridgeConfig,
    CounterStateError,
    CounterTracker,
    CountMessage,
    DeviceAddress,
    PauseMessage,
    StartMessage,
    TerminalBridge,
    TerminalMessageError,
    TerminalReading,
    parse_payload,
    parse_up_topic,
)
from firmware_bridges.terminal.messages import msg_id_hint, parse_status_topic
from firmware_bridges.terminal.simulator import TerminalSimulator
from tests.mosquitto import BROKER_SETTINGS, MosquittoBroker, mosquitto_broker  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
AT = "2024-05-06T08:30:00+08:00"


def payload(type_: str = "start", **fields: Any) -> bytes:
    body: dict[str, Any] = {"msg_id": "T1-0001", "badge": "E1042", "work_order": "WO-42", "at": AT}
    if type_ == "count":
        body.update(counter_epoch=1, good=10)
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


# -- messages ------------------------------------------------------------------------


def test_parses_each_type_with_decimal_quantities() -> None:
    count = parse_payload(
        "count",
        payload(
            "count",
            msg_id=17,
            operation="20",
            good="118.5",
            rework=2,
            scrap={"burr": "3", "crack": 1},
            cycle_time_s="12.25",
        ),
    )
    assert isinstance(count, CountMessage)
    assert count.msg_id == "17"  # numeric ids are kept as text: re-sends still match
    assert count.counters() == {
        "good": Decimal("118.5"),
        "rework": Decimal(2),
        "scrap.burr": Decimal(3),
        "scrap.crack": Decimal(1),
    }
    assert count.scrap_total == Decimal(4)
    assert count.at.utcoffset() is not None and count.at.isoformat() == AT
    assert count.to_payload()["good"] == "118.5"  # JSON-ready, never a float
    assert count.to_payload()["type"] == "count"
    assert isinstance(parse_payload("start", payload()), StartMessage)
    pause = parse_payload("pause", payload(reason="no_material"))
    assert isinstance(pause, PauseMessage) and pause.reason == "no_material"
    for type_ in ("resume", "finish"):
        assert parse_payload(type_, payload()).type == type_


@pytest.mark.parametrize(
    ("type_", "raw", "code"),
    [
        ("count", payload("count", good=1.5), "bad_field"),  # a JSON float
        ("count", payload("count", good=1e3), "bad_field"),
        ("count", payload("count", good=-1), "bad_field"),
        ("count", payload("count", good="NaN"), "bad_field"),
        ("count", payload("count", good=True), "bad_field"),
        ("count", payload("count", good="1e3"), "bad_field"),
        ("count", payload("count", counter_epoch="2"), "bad_field"),
        ("count", payload("count", scrap={"Bad Reason": 1}), "bad_field"),
        ("count", payload("count", good=None), "bad_field"),  # required
        ("start", payload(at="2024-05-06T08:30:00"), "bad_field"),  # no offset
        ("start", payload(at=1715000000), "bad_field"),
        ("start", payload(badge=""), "bad_field"),
        ("start", payload(msg_id=None), "bad_field"),
        ("start", payload(type="finish"), "bad_field"),  # payload and topic disagree
        ("start", b"{not json", "bad_json"),
        ("start", b"\xff\xfe", "bad_json"),
        ("start", b"[1, 2]", "bad_json"),
        ("start", b"{}" + b" " * 20_000, "too_large"),
        ("reboot", payload(), "unknown_type"),
    ],
)
def test_refuses_bad_messages_with_a_code(type_: str, raw: bytes, code: str) -> None:
    with pytest.raises(TerminalMessageError) as caught:
        parse_payload(type_, raw)
    assert caught.value.code == code
    assert caught.value.message


def test_topics() -> None:
    address, type_ = parse_up_topic("plant1/L2/T7/up/count")
    assert address == DeviceAddress("plant1", "L2", "T7") and type_ == "count"
    assert address.down_topic("ack") == "plant1/L2/T7/down/ack"
    assert parse_status_topic("plant1/L2/T7/status").device_id == "plant1/L2/T7"
    for bad in ("plant1/L2/T7/down/ack", "plant1/L2/up/count", "a/b/c/d/up/x", "p/L 2/T/up/x"):
        with pytest.raises(TerminalMessageError) as caught:
            parse_up_topic(bad)
        assert caught.value.code == "bad_topic"


def test_msg_id_hint_of_a_malformed_message() -> None:
    assert msg_id_hint(payload("count", good=1.5)) == "T1-0001"
    assert msg_id_hint(b"garbage") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_parser_never_raises_anything_but_a_message_error(raw: bytes) -> None:
    for type_ in ("count", "start"):
        with contextlib.suppress(TerminalMessageError):
            parse_payload(type_, raw)


# -- counters ------------------------------------------------------------------------


def test_counter_rule() -> None:
    tracker = CounterTracker()
    good = lambda epoch, n: tracker.apply("T1", epoch, {"good": Decimal(n)})["good"]  # noqa: E731
    assert good(1, 10) == 10
    assert good(1, 10) == 0  # a re-send
    assert good(1, 7) == 0  # a stale (overtaken) message in the same epoch
    assert good(1, 15) == 5
    assert good(2, 4) == 4  # reset: the new epoch starts from 0
    assert good(1, 18) == 3  # a late message of the old epoch still counts what it adds
    assert good(2, 4) == 0
    assert tracker.apply("T2", 1, {"good": Decimal(3)}) == {"good": 3}  # per device


def test_counter_forgets_old_epochs_without_recounting_them() -> None:
    tracker = CounterTracker(max_epochs=2)
    for epoch in (1, 2, 3):
        tracker.apply("T1", epoch, {"good": Decimal(5)})
    assert tracker.state()["devices"]["T1"]["floor_epoch"] == 1
    assert tracker.apply("T1", 1, {"good": Decimal(9)}) == {"good": 0}  # forgotten: stale


def test_counter_state_round_trip_and_refusal() -> None:
    tracker = CounterTracker()
    tracker.apply("T1", 3, {"good": Decimal("2.5"), "scrap.burr": Decimal(1)})
    state = json.loads(json.dumps(tracker.state()))
    restored = CounterTracker.from_state(state)
    assert restored.state() == tracker.state()
    assert restored.apply("T1", 3, {"good": Decimal("2.5")}) == {"good": 0}
    for bad in ({}, {"version": 1, "devices": {"T1": {"epochs": {"x": {}}}}}):
        with pytest.raises(CounterStateError) as caught:
            CounterTracker().load(bad)
        assert caught.value.code == "bad_counter_state"
    bad_value = {"version": 1, "devices": {"T1": {"epochs": {"1": {"good": 1.5}}}}}
    with pytest.raises(CounterStateError):
        CounterTracker().load(bad_value)


# One step of a terminal's life: produce (good, scrap, rework) then report, or reset.
steps = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 50), st.integers(0, 5), st.integers(0, 3)),
        st.just("reset"),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, data=st.data())
def test_counter_deltas_sum_to_true_production(steps: list[Any], data: st.DataObject) -> None:
    """Every report delivered at least once, in any order, some of them several times,
    with counter resets and a save/restore of the tracker: the deltas add up to what
    was really produced, never more."""
    epoch, cumulative, reports = 1, [0, 0, 0], []
    true_total = [0, 0, 0]
    for step in steps:
        if step == "reset":
            epoch, cumulative = epoch + 1, [0, 0, 0]
            continue
        cumulative = [c + n for c, n in zip(cumulative, step, strict=True)]
        true_total = [t + n for t, n in zip(true_total, step, strict=True)]
        reports.append((epoch, dict(zip(("good", "scrap.x", "rework"), cumulative, strict=True))))
    resends = data.draw(st.lists(st.sampled_from(reports), max_size=20)) if reports else []
    delivered = data.draw(st.permutations(reports + resends))
    save_at = data.draw(st.integers(0, len(delivered)))

    tracker, summed = CounterTracker(max_epochs=64), [Decimal(0)] * 3
    for index, (report_epoch, counters) in enumerate(delivered):
        if index == save_at:  # the agent restarts: state persisted and loaded again
            tracker = CounterTracker.from_state(json.loads(json.dumps(tracker.state())))
        values = {name: Decimal(n) for name, n in counters.items()}
        deltas = tracker.apply("T1", report_epoch, values)
        summed = [s + deltas[name] for s, name in zip(summed, values, strict=True)]
    assert summed == [Decimal(n) for n in true_total]


def test_test_broker_matches_the_compose_broker() -> None:
    """The tests' broker must queue like the one we ship (and vice versa)."""
    conf = (ROOT / "compose" / "mosquitto" / "mosquitto.conf").read_text()
    shipped = dict(
        line.split(None, 1)
        for line in conf.splitlines()
        if line.strip() and not line.startswith("#") and " " in line.strip()
    )
    for key, value in BROKER_SETTINGS.items():
        assert shipped.get(key, "").strip() == value, f"compose mosquitto.conf: {key}"
    assert BROKER_SETTINGS["max_queued_messages"] == "0"


# -- integration: a fake durable outbox and a test rig -------------------------------


@dataclass
class MemoryOutbox:
    """The edge's outbox as the handler sees it: dedup by (device, msg_id), counters
    turned into deltas in the same 'transaction'."""

    fail: bool = False
    calls: list[TerminalReading] = field(default_factory=list)
    events: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)
    tracker: CounterTracker = field(default_factory=CounterTracker)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, reading: TerminalReading) -> Answer:
        with self.lock:
            self.calls.append(reading)
            if self.fail:
                raise OSError("disk I/O error")
            key = (reading.device.device_id, reading.message.msg_id)
            if key in self.events:
                return Answer(ok=True, text="ALREADY SAVED")
            message, deltas = reading.message, {}
            if isinstance(message, CountMessage):
                counters = message.counters()
                deltas = self.tracker.apply(key[0], message.counter_epoch, counters)
            self.events[key] = deltas
            return Answer(ok=True, text=f"OK {message.type}")

    def msg_ids(self) -> list[str]:
        with self.lock:
            return [reading.message.msg_id for reading in self.calls]

    def total(self, name: str) -> Decimal:
        with self.lock:
            return sum((d.get(name, Decimal(0)) for d in self.events.values()), Decimal(0))


class Rig:
    """Bridges and terminals on one unique site of the session broker; all stopped at
    the end of the test."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.broker = broker
        self.site = "s" + uuid.uuid4().hex[:10]
        self.client_id = f"edge-{self.site}"
        self._bridges: list[TerminalBridge] = []
        self._terminals: list[TerminalSimulator] = []
        self._processes: list[subprocess.Popen[str]] = []

    def config(self) -> BridgeConfig:
        return BridgeConfig(
            host=self.broker.host, port=self.broker.port, site=self.site, client_id=self.client_id
        )

    def bridge(self, handler: Callable[[TerminalReading], Answer]) -> TerminalBridge:
        bridge = TerminalBridge(self.config(), handler)
        self._bridges.append(bridge)
        bridge.start()
        assert bridge.wait_connected(10), "bridge did not connect to the test broker"
        return bridge

    def create_session(self) -> None:
        """Connect the bridge once, then leave: from now on the broker queues for it."""
        self.bridge(MemoryOutbox()).stop()

    def terminal(self, device: str = "T1", **kw: Any) -> TerminalSimulator:
        address = DeviceAddress(self.site, "L1", device)
        sim = TerminalSimulator(self.broker.host, self.broker.port, address, **kw)
        self._terminals.append(sim)
        return sim.start()

    def spawn_agent(self, mode: str, db: Path) -> "AgentProcess":
        agent = AgentProcess(self, mode, db)
        self._processes.append(agent.process)
        return agent

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for bridge in self._bridges:
            bridge.stop(timeout_s=1)
        for sim in self._terminals:
            sim.stop()


@pytest.fixture
def rig(mosquitto_broker: MosquittoBroker) -> Iterator[Rig]:  # noqa: F811
    rig = Rig(mosquitto_broker)
    try:
        yield rig
    finally:
        rig.close()


def status_watcher(rig: Rig, topic: str) -> tuple[mqtt.Client, list[str]]:
    """A plain client recording every payload published on `topic`."""
    seen: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, msg: seen.append(msg.payload.decode())
    client.connect(rig.broker.host, rig.broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, seen


# -- integration: the bridge ---------------------------------------------------------


def test_a_work_report_is_answered_after_the_handler(rig: Rig) -> None:
    outbox = MemoryOutbox()
    bridge = rig.bridge(outbox)
    sim = rig.terminal()
    assert sim.start_job("WO-42", "20").ok
    ack = sim.report_count(good=5, scrap=1, scrap_reason="burr", rework=2)
    assert ack.ok and ack.text == "OK count" and ack.code is None
    assert sim.report_count(good=3).ok
    assert sim.finish().ok

    assert outbox.total("good") == 8 and outbox.total("scrap.burr") == 1
    assert outbox.total("rework") == 2
    reading = outbox.calls[1]
    assert reading.device == DeviceAddress(rig.site, "L1", "T1")
    assert json.loads(reading.raw)["good"] == "5"  # raw bytes kept for audit
    assert reading.received_at.utcoffset() is not None
    stats = bridge.stats()
    assert (stats.received, stats.handled, stats.malformed, stats.handler_errors) == (4, 4, 0, 0)


def test_scenario_9_same_msg_id_three_times_one_event_three_acks(rig: Rig) -> None:
    outbox = MemoryOutbox()
    rig.bridge(outbox)
    sim = rig.terminal()
    sim.start_job("WO-42")
    first = sim.report_count(good=12)
    msg_id = first.msg_id
    assert msg_id is not None
    sim.resend(msg_id)
    sim.resend(msg_id)

    assert sim.sends[msg_id] == 3
    assert outbox.msg_ids().count(msg_id) == 3  # the handler sees the same id each time
    acks = sim.acks_for(msg_id)
    assert len(acks) == 3 and all(ack.ok for ack in acks)
    assert [ack.text for ack in acks] == ["OK count", "ALREADY SAVED", "ALREADY SAVED"]
    assert len(outbox.events) == 2  # the start and ONE count
    assert outbox.total("good") == 12


def test_terminal_resends_on_timeout_until_the_agent_is_back(rig: Rig) -> None:
    rig.create_session()
    sim = rig.terminal(ack_timeout_s=0.3, max_attempts=50)
    sim.work_order = "WO-42"
    result: queue.Queue[Any] = queue.Queue()
    sender = threading.Thread(target=lambda: result.put(sim.report_count(good=4)), daemon=True)
    sender.start()
    wait_until(lambda: sum(sim.sends.values()) >= 3, 5, "three sends without an ack")
    outbox = MemoryOutbox()
    rig.bridge(outbox)
    ack = result.get(timeout=10)
    assert ack.ok
    sent = sum(sim.sends.values())
    wait_until(lambda: len(outbox.msg_ids()) == sent, 5, "every queued copy")
    calls = outbox.msg_ids()
    assert len(calls) >= 3 and set(calls) == {ack.msg_id}  # every queued copy arrives…
    assert len(outbox.events) == 1 and outbox.total("good") == 4  # …one event, counted once


def test_malformed_message_is_answered_acked_and_never_redelivered(rig: Rig) -> None:
    outbox = MemoryOutbox()
    bridge = rig.bridge(outbox)
    sim = rig.terminal()
    sim.send_raw("count", payload("count", msg_id="bad-1", good=2.5))
    sim.send_raw("reboot", payload(msg_id="bad-2"))
    sim.send_raw("start", b"\x00garbage")
    wait_until(lambda: bridge.stats().malformed == 3, 5, "three malformed messages")
    wait_until(lambda: sim.acks_for("bad-2"), 5, "the answer to bad-2")
    [bad_1] = sim.acks_for("bad-1")
    assert not bad_1.ok and bad_1.code == "bad_field" and not bad_1.retry
    assert "good" in bad_1.text
    assert sim.acks_for("bad-2")[0].code == "unknown_type"
    assert bridge.stats().malformed_by_code == {"bad_field": 1, "unknown_type": 1, "bad_json": 1}
    assert outbox.calls == []
    bridge.stop()

    # They were acked: a new bridge on the same session gets only the next message.
    outbox2 = MemoryOutbox()
    bridge2 = rig.bridge(outbox2)
    sim.work_order = "WO-42"
    assert sim.resume().ok
    assert bridge2.stats().malformed == 0 and len(outbox2.calls) == 1


def test_handler_failure_is_not_acked_and_comes_back_after_restart(rig: Rig) -> None:
    failing = MemoryOutbox(fail=True)
    bridge = rig.bridge(failing)
    sim = rig.terminal()
    sim.send_raw("finish", payload(msg_id="m-1"))
    wait_until(lambda: sim.acks_for("m-1"), 5, "the 'not saved' answer")
    [answer] = sim.acks_for("m-1")
    assert (answer.ok, answer.code, answer.retry) == (False, "not_saved", True)
    assert bridge.stats().handler_errors == 1 and bridge.stats().handled == 0
    bridge.stop()

    outbox = MemoryOutbox()
    rig.bridge(outbox)  # the agent restarts with the same client id
    wait_until(lambda: outbox.events, 5, "the redelivered message")
    assert outbox.msg_ids() == ["m-1"] and outbox.calls[0].redelivered
    wait_until(lambda: len(sim.acks_for("m-1")) == 2, 5, "the ack after the commit")
    assert sim.acks_for("m-1")[1].ok


# -- scenario 10: the agent killed with SIGKILL around its commit ----------------------

AGENT = """
import sqlite3, sys, threading
from firmware_bridges.terminal import BridgeConfig, TerminalBridge

host, port, site, client_id, mode, db = sys.argv[1:]

def handler(reading):
    print("received", reading.message.msg_id, flush=True)
    if mode == "commit":
        con = sqlite3.connect(db)
        con.execute("INSERT INTO outbox VALUES (?, ?)",
                    (reading.device.device_id, reading.message.msg_id))
        con.commit()
        print("committed", reading.message.msg_id, flush=True)
    threading.Event().wait()  # SIGKILL arrives here: before the ack

config = BridgeConfig(host=host, port=int(port), site=site, client_id=client_id)
bridge = TerminalBridge(config, handler)
bridge.start()
print("ready" if bridge.wait_connected(10) else "not connected", flush=True)
threading.Event().wait()
"""


class AgentProcess:
    """The bridge in a subprocess whose handler never returns."""

    def __init__(self, rig: Rig, mode: str, db: Path) -> None:
        script = db.parent / "agent.py"
        script.write_text(AGENT)
        args = [rig.broker.host, str(rig.broker.port), rig.site, rig.client_id, mode, str(db)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, line: str, timeout_s: float = 10) -> None:
        try:
            got = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"agent printed nothing within {timeout_s} s") from None
        assert got == line, f"agent printed {got!r}, expected {line!r}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(5) == -signal.SIGKILL


def make_outbox_db(path: Path) -> Path:
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE outbox (device_id TEXT, msg_id TEXT, PRIMARY KEY (device_id, msg_id))"
        )
    return path


def sqlite_handler(db: Path, seen: list[tuple[str, bool, bool]]) -> Callable[..., Answer]:
    """A committing handler that dedups by (device, msg_id) in the outbox table."""

    def handler(reading: TerminalReading) -> Answer:
        with sqlite3.connect(db) as con:
            cursor = con.execute(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?)",
                (reading.device.device_id, reading.message.msg_id),
            )
        duplicate = cursor.rowcount == 0
        seen.append((reading.message.msg_id, reading.redelivered, duplicate))
        return Answer(ok=True, text="ALREADY SAVED" if duplicate else "SAVED")

    return handler


def outbox_rows(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT device_id, msg_id FROM outbox").fetchall()


@pytest.mark.parametrize("mode", ["block", "commit"], ids=["before_commit", "after_commit"])
def test_scenario_10_agent_killed_around_commit(rig: Rig, tmp_path: Path, mode: str) -> None:
    db = make_outbox_db(tmp_path / "outbox.sqlite3")
    bridge_status, statuses = status_watcher(rig, rig.config().own_status_topic)
    agent = rig.spawn_agent(mode, db)
    agent.expect("ready")
    wait_until(lambda: statuses[-1:] == ["online"], 5, "the agent's online status")

    # A terminal that sends once and never re-sends: only the broker can redeliver.
    sim = rig.terminal()
    sim.send_raw("count", payload("count", msg_id="m-1")).wait_for_publish(5)
    agent.expect("received m-1")
    if mode == "commit":
        agent.expect("committed m-1")
    agent.kill()
    assert sim.acks_for("m-1") == []  # the agent died before it could answer
    wait_until(lambda: statuses[-1:] == ["offline"], 5, "the agent's last will")

    seen: list[tuple[str, bool, bool]] = []
    rig.bridge(sqlite_handler(db, seen))  # a new agent, same client id
    wait_until(lambda: sim.acks_for("m-1"), 10, "the ack after redelivery")
    assert seen == [("m-1", True, mode == "commit")]  # redelivered; a duplicate if committed
    assert outbox_rows(db) == [(f"{rig.site}/L1/T1", "m-1")]  # nothing lost, nothing twice
    [ack] = sim.acks_for("m-1")
    assert ack.ok and ack.text == ("ALREADY SAVED" if mode == "commit" else "SAVED")
    bridge_status.loop_stop()
    bridge_status.disconnect()


# -- the broker queue: nothing dropped while the agent is down -------------------------


def publish_counts(sim: TerminalSimulator, n: int, prefix: str) -> None:
    infos = [
        sim.send_raw("count", payload("count", msg_id=f"{prefix}-{i:05d}", good=i))
        for i in range(n)
    ]
    for info in infos:
        info.wait_for_publish(10)


def test_2000_messages_queued_while_the_agent_is_down_all_arrive(rig: Rig) -> None:
    rig.create_session()
    sims = [rig.terminal(f"T{k}") for k in range(4)]
    for k, sim in enumerate(sims):
        publish_counts(sim, 500, f"T{k}")

    outbox = MemoryOutbox()
    bridge = rig.bridge(outbox)
    wait_until(lambda: len(outbox.events) >= 2000, 20, "2,000 queued messages")
    expected = {(f"{rig.site}/L1/T{k}", f"T{k}-{i:05d}") for k in range(4) for i in range(500)}
    assert set(outbox.events) == expected  # every one, none dropped by the broker queue
    assert bridge.stats().received == 2000  # and none twice


def test_queued_messages_survive_a_broker_restart(rig: Rig) -> None:
    rig.create_session()
    sim = rig.terminal()
    publish_counts(sim, 100, "P")
    rig.broker.restart()  # persistence: sessions and their queues come back

    outbox = MemoryOutbox()
    rig.bridge(outbox)
    wait_until(lambda: len(outbox.events) == 100, 10, "100 messages after the broker restart")
    assert sorted(msg_id for _, msg_id in outbox.events) == [f"P-{i:05d}" for i in range(100)]


def test_bridge_reconnects_after_a_broker_restart(rig: Rig) -> None:
    outbox = MemoryOutbox()
    bridge = rig.bridge(outbox)
    sim = rig.terminal(ack_timeout_s=1.0, max_attempts=10)
    sim.start_job("WO-42")
    rig.broker.restart()
    wait_until(lambda: bridge.stats().connects >= 2, 10, "the bridge to reconnect")
    assert bridge.wait_connected(5) and bridge.stats().disconnects >= 1
    assert sim.report_count(good=7).ok  # the terminal reconnected too and is answered
    assert outbox.total("good") == 7 and len(outbox.events) == 2


# -- device status and last will ---------------------------------------------------------


def test_device_status_and_last_wills(rig: Rig) -> None:
    bridge_status, statuses = status_watcher(rig, rig.config().own_status_topic)
    bridge = rig.bridge(MemoryOutbox())
    wait_until(lambda: statuses[-1:] == ["online"], 5, "the bridge's retained online")

    sim = rig.terminal("T1")
    device_id = f"{rig.site}/L1/T1"
    wait_until(lambda: device_id in bridge.device_statuses(), 5, "T1 online")
    assert bridge.device_statuses()[device_id].state == "online"
    sim.power_off()  # no DISCONNECT: the broker publishes T1's last will
    wait_until(lambda: bridge.device_statuses()[device_id].state == "offline", 5, "T1's will")

    bridge.stop()
    wait_until(lambda: statuses[-1:] == ["offline"], 5, "the bridge's offline status")
    # A bridge started later learns the retained status of devices it never saw online.
    late = rig.bridge(MemoryOutbox())
    wait_until(lambda: device_id in late.device_statuses(), 5, "the retained status")
    assert late.device_statuses()[device_id].state == "offline"
    assert f"{rig.site}/edge/{rig.client_id}" not in late.device_statuses()  # not itself
    bridge_status.loop_stop()
    bridge_status.disconnect()
