"""The demo's shop floor: an edge agent with simulated devices, driven through a day.

Two handhelds, a workstation scanner and the dispatch desk's scanner are pty-backed
serial scanners (real pyserial
on the agent's side); two work-reporting terminals talk MQTT to an embedded broker
(amqtt, MQTT 3.1.1) or to the broker at MQTT_URL. The agent runs as in production
(`DeviceHub` + sync loop); its clock and the terminals' follow the demo's day, so the
events carry the times of the day they play.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.devices import DeviceHub
from firmware_bridges.scanner.simulator import PtyScanner
from firmware_bridges.terminal import DeviceAddress
from firmware_bridges.terminal.simulator import TerminalSimulator

ACK = b"\x06"
SITE = "oak"


class DayClock:
    """The demo's time: a day that the script moves forward (`at("08:05")`)."""

    def __init__(self, day: datetime) -> None:
        self.day = day
        self.moment = day

    def at(self, hhmm: str) -> None:
        hour, minute = map(int, hhmm.split(":"))
        self.moment = self.day.replace(hour=hour, minute=minute)

    def now(self) -> datetime:
        return self.moment


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt in a thread of its own (its asyncio loop), on a free loopback port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.loop = asyncio.new_event_loop()
        self.broker: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="demo-broker")

    def _run(self) -> None:
        from amqtt.broker import Broker

        logging.getLogger("amqtt").setLevel(logging.ERROR)  # its start-up chatter
        asyncio.set_event_loop(self.loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        self.broker = Broker(config, loop=self.loop)
        self.loop.run_until_complete(self.broker.start())
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the embedded MQTT broker did not start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@dataclass
class Floor:
    """What the floor did: answers the devices got, by device."""

    acked: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def count(self, device: str, ok: bool, what: str) -> None:
        if ok:
            self.acked[device] = self.acked.get(device, 0) + 1
        else:
            self.refused.append(f"{device}: {what}")


class ShopFloor:
    """The agent, its devices and the simulators, started and stopped together."""

    def __init__(self, cloud_url: str, api_key: str, day: datetime, workdir: Path) -> None:
        self.clock = DayClock(day)
        self.floor = Floor()
        self.workdir = workdir
        self.cloud_url, self.api_key = cloud_url, api_key
        self._stack = contextlib.ExitStack()
        self.scanners: dict[str, PtyScanner] = {}
        self.terminals: dict[str, TerminalSimulator] = {}

    def __enter__(self) -> ShopFloor:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        host, port, version = self._broker()
        links = self.workdir / "by-id"
        links.mkdir(parents=True, exist_ok=True)
        for name in ("WS-01", "WS-03", "HH-01", "HH-02"):
            self.scanners[name] = self._stack.enter_context(PtyScanner(links, name))
        config = parse_config(self._config(host, port, version))
        agent = Agent(config, clock=self.clock.now)
        self._stack.callback(agent.stop)
        agent.pull_master_data(full=True)
        hub = DeviceHub(agent)
        hub.start()
        self._stack.callback(hub.stop)
        agent.start()
        self.agent, self.hub = agent, hub
        assert hub.terminals is not None
        if not hub.terminals.bridge.wait_connected(20):
            raise RuntimeError("the edge agent could not subscribe at the MQTT broker")
        _wait(lambda: all(s.scanner.stats().connected for s in hub.scanners), "scanners")
        for name in ("TERM-CUT", "TERM-ASSY"):
            sim = TerminalSimulator(
                host,
                port,
                DeviceAddress(SITE, "line1", name),
                badge="B-03",
                mqtt_version=version,
                clock=self.clock.now,
                ack_timeout_s=5.0,
            ).start(timeout_s=20)
            self._stack.callback(sim.stop)
            self.terminals[name] = sim

    def _broker(self) -> tuple[str, int, int]:
        url = os.environ.get("MQTT_URL")
        if url:
            parsed = urlparse(url)
            return parsed.hostname or "127.0.0.1", parsed.port or 1883, 5
        broker = EmbeddedBroker()
        broker.start()
        self._stack.callback(broker.stop)
        return "127.0.0.1", broker.port, 3

    def _config(self, host: str, port: int, version: int) -> dict[str, Any]:
        def scanner(name: str) -> dict[str, Any]:
            return {"port": str(self.scanners[name].path), "answers": "ack"}

        return {
            "edge": {
                "id": "edge-oak-1",
                "outbox": str(self.workdir / "outbox.sqlite3"),
                "masterdata": str(self.workdir / "masterdata.json"),
                "min_free_mb": 0,
            },
            "cloud": {"url": self.cloud_url, "api_key": self.api_key, "heartbeat_s": 5},
            "mqtt": {
                "url": f"mqtt://{host}:{port}",
                "site": SITE,
                "client_id": f"erp-edge-demo-{os.getpid()}",
                "version": version,
                "terminals": {"TERM-CUT": "WS-CUT", "TERM-ASSY": "WS-ASSY"},
            },
            "workstations": [
                {"id": "WS-01", "warehouse": "WH-RAW", "scanner": scanner("WS-01")},
                {"id": "WS-03", "warehouse": "WH-FG", "mode": "ship", "scanner": scanner("WS-03")},
                {
                    "id": "HH-01",
                    "warehouse": "WH-RAW",
                    "supplier": "S-TIMBER",
                    "mode": "receive",
                    "scanner": scanner("HH-01"),
                },
                {
                    "id": "HH-02",
                    "warehouse": "WH-RAW",
                    "supplier": "S-HARDWARE",
                    "mode": "receive",
                    "scanner": scanner("HH-02"),
                },
                {"id": "WS-CUT", "warehouse": "WH-RAW", "work_center": "CUT"},
                {"id": "WS-ASSY", "warehouse": "WH-FG", "work_center": "ASSY"},
            ],
        }

    # -- what people do on the floor ------------------------------------------
    def scan(self, device: str, *scans: str | tuple[str, str]) -> None:
        """Scans at a scanner; each answer is read back (ACK or NAK) as the beep."""
        sim = self.scanners[device]
        for scan in scans:
            text, symbology = scan if isinstance(scan, tuple) else (scan, "]C0")
            sim.scan(text.encode("latin-1"), symbology=symbology)
            answer = sim.read_answers(timeout_s=10.0, min_bytes=1)[:1]
            confirmed = text == "#OK"
            if answer != ACK:
                self.floor.count(device, False, f"{text!r} refused")
            elif confirmed:
                self.floor.count(device, True, text)

    def terminal(self, name: str) -> TerminalSimulator:
        return self.terminals[name]

    def report(self, name: str, ack: Any, makes_event: bool = True) -> None:
        """A terminal's answer: a report that makes an event counts when acked."""
        if not ack.ok:
            self.floor.count(name, False, f"{ack.msg_id}: {ack.text}")
        elif makes_event:
            self.floor.count(name, True, ack.msg_id)

    def drain(self) -> bool:
        self.agent.syncer.wake.set()
        deadline = time.monotonic() + 60
        while self.agent.outbox.status().backlog:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def edge_figures(self) -> dict[str, int]:
        status = self.agent.outbox.status()
        return {
            "acknowledged": sum(self.floor.acked.values()),
            "captured": status.sent_count
            + status.backlog
            + status.held_count
            + status.parked_count,
            "delivered": status.sent_count,
            "held": status.held_count,
            "parked": status.parked_count,
            "backlog": status.backlog,
        }


def _wait(predicate: Any, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def shop_floor(cloud_url: str, api_key: str, day: datetime) -> Iterator[ShopFloor]:
    with (
        tempfile.TemporaryDirectory(prefix="erp-demo-edge-") as tmp,
        ShopFloor(cloud_url, api_key, day, Path(tmp)) as floor,
    ):
        yield floor
