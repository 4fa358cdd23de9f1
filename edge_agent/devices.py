"""Devices to the agent: the serial scanners of the workstations and the MQTT
work-reporting terminals. The bridges know bytes and messages; this module turns
their readings into session scans and captured events, and their answers back.

Terminals report work already done, so their reports are never refused for master
data the edge does not know: they are captured and the cloud holds what it cannot post
(the exception queue), rather than losing a finished batch. Each terminal report is
captured with its message id (`device_msg_id`), so a re-sent message is one event.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from edge_agent.agent import Agent
from edge_agent.config import StationConfig
from edge_agent.ids import device_msg_event_id
from edge_agent.outbox import Capture, OutboxError
from edge_agent.sessions import ScanProblem
from firmware_bridges.gs1.parse import Gs1Error
from firmware_bridges.gs1.reading import read_gs1
from firmware_bridges.scanner import Answer as ScannerAnswer
from firmware_bridges.scanner import (
    AnswerConfig,
    FramingConfig,
    ScanFrame,
    SerialScanner,
    SerialScannerConfig,
)
from firmware_bridges.terminal import Answer as TerminalAnswer
from firmware_bridges.terminal import (
    BridgeConfig,
    CounterTracker,
    CountMessage,
    TerminalBridge,
    TerminalReading,
)

log = logging.getLogger("edge_agent.devices")


class ScannerStation:
    """One workstation's serial scanner, answering each scan with ACK/NAK."""

    def __init__(self, agent: Agent, station: StationConfig) -> None:
        assert station.scanner is not None
        self.agent = agent
        self.station = station
        cfg = station.scanner
        self.scanner = SerialScanner(
            SerialScannerConfig(
                port=cfg.port,
                baudrate=cfg.baudrate,
                framing=FramingConfig(terminators=cfg.terminators),
                answers=AnswerConfig() if cfg.answers == "ack" else None,
            )
        )

    def on_frame(self, frame: ScanFrame) -> ScannerAnswer:
        """The session answers every scan, a refused GS1 reading too (firmware_bridges/
        gs1/reading.py): it knows whether the text is a badge or a code it has."""
        gs1, problem = None, None
        try:
            gs1 = read_gs1(frame.data, frame.symbology)
        except Gs1Error as error:
            problem = ScanProblem(error.code, error.message)
        raw = (frame.symbology or "") + frame.data.decode("latin-1")
        answer = self.agent.scan(
            self.station.station.id,
            frame.text,
            gs1=gs1,
            raw=raw,
            symbology=frame.symbology,
            problem=problem,
        )
        return ScannerAnswer(answer.ok, answer.text)

    def start(self) -> None:
        self.scanner.start(self.on_frame)

    def stop(self) -> None:
        self.scanner.stop()

    def state(self) -> dict[str, Any]:
        s = self.scanner.stats()
        return {
            "device_id": self.station.device_id,
            "kind": "serial_scanner",
            "connected": s.connected,
            "reconnects": s.reconnects,
            "dropped_partial": s.framing.dropped_partial,
        }


class Terminals:
    """MQTT work-reporting terminals → labour and completion events."""

    COUNTERS_META = "terminal-counters"

    def __init__(self, agent: Agent) -> None:
        mqtt = agent.config.mqtt
        assert mqtt is not None
        self.agent = agent
        self.mqtt = mqtt
        url = urlparse(mqtt.url)
        self.bridge = TerminalBridge(
            BridgeConfig(
                host=url.hostname or "127.0.0.1",
                port=url.port or 1883,
                site=mqtt.site,
                client_id=mqtt.client_id,
                username=mqtt.username,
                password=mqtt.password,
                mqtt_version=mqtt.version,
            ),
            self.handle,
        )
        saved = agent.outbox.meta_get(self.COUNTERS_META)
        self.counters = CounterTracker.from_state(json.loads(saved)) if saved else CounterTracker()

    # The bridge calls this on its network thread, one message at a time.
    def handle(self, reading: TerminalReading) -> TerminalAnswer:
        message = reading.message
        device_id = reading.device.device_id
        event_id = str(device_msg_event_id(self.agent.config.edge_id, device_id, message.msg_id))
        try:
            if message.type in ("start", "resume"):
                return self._start(reading)
            if self.agent.outbox.event(event_id) is not None:  # a re-send: saved already
                self._after_saved(reading)
                return TerminalAnswer(True, "OK (already saved)")
            if message.type in ("pause", "finish"):
                return self._stop(reading)
            if isinstance(message, CountMessage):  # type "count"
                return self._count(reading, message)
        except OutboxError as error:
            log.error("terminal %s: %s", device_id, error)
            return TerminalAnswer(False, f"NOT SAVED: {error.code}", error.code, retry=True)
        return TerminalAnswer(False, f"unknown report {message.type}", "unknown_type")

    def _station(self, reading: TerminalReading) -> StationConfig | None:
        terminals = self.mqtt.terminals
        station_id = terminals.get(reading.device.device_id) or terminals.get(reading.device.device)
        return self.agent.config.station(station_id) if station_id else None

    def _labour_key(self, reading: TerminalReading) -> str:
        m = reading.message
        return f"terminal-labour|{reading.device.device_id}|{m.badge}|{m.work_order}|{m.operation}"

    def _start(self, reading: TerminalReading) -> TerminalAnswer:
        key = self._labour_key(reading)
        if self.agent.outbox.meta_get(key) is None:
            self.agent.outbox.meta_set(key, reading.message.at.isoformat())
        return TerminalAnswer(True, f"started {reading.message.work_order}")

    def _stop(self, reading: TerminalReading) -> TerminalAnswer:
        started = self.agent.outbox.meta_get(self._labour_key(reading))
        if started is None and reading.message.type == "finish":
            return TerminalAnswer(True, "finished")  # after a pause: nothing left to book
        if started is None:
            return TerminalAnswer(False, "not started", "labour_not_started")
        station = self._station(reading)
        work_center = station.station.work_center if station else None
        if not work_center:
            return TerminalAnswer(False, "no work centre for this terminal", "no_work_center")
        m = reading.message
        payload = {
            "work_order": m.work_order,
            "work_center": work_center,
            "started_at": started,
            "stopped_at": m.at.isoformat(),
        }
        if m.operation:
            payload["operation"] = m.operation
        self._capture(reading, "labour", payload)
        self._after_saved(reading)
        return TerminalAnswer(True, f"{m.type} {m.work_order}")

    def _count(self, reading: TerminalReading, m: CountMessage) -> TerminalAnswer:
        deltas = self.counters.preview(reading.device.device_id, m.counter_epoch, m.counters())
        good = deltas.get("good", Decimal(0))
        scrap = sum((v for k, v in deltas.items() if k.startswith("scrap.")), Decimal(0))
        if good <= 0:
            # A completion needs good units; scrap alone waits for the next count, which
            # carries it (counters are cumulative).
            return TerminalAnswer(True, "OK (no new good units)")
        station = self._station(reading)
        order = self.agent.cache.data.work_order(m.work_order)
        # output goes where the workstation puts it, else where the order says
        location = (station and station.station.warehouse) or (order and order.warehouse)
        if not location:
            return TerminalAnswer(False, "no warehouse for this order", "no_location")
        payload: dict[str, Any] = {
            "work_order": m.work_order,
            "location": location,
            "quantity": str(good),
            "scrap_quantity": str(scrap),
        }
        reasons = {k[6:]: str(v) for k, v in deltas.items() if k.startswith("scrap.") and v}
        if reasons:
            payload["scrap_reasons"] = reasons
        self._capture(reading, "production_completion", payload)
        self._after_saved(reading)
        return TerminalAnswer(True, f"+{good} good, +{scrap} scrap")

    def _capture(self, reading: TerminalReading, type_: str, payload: dict[str, Any]) -> None:
        m = reading.message
        self.agent.capture(
            Capture(
                type=type_,
                payload=payload,
                device_id=reading.device.device_id,
                occurred_at=m.at,
                operator=m.badge,
                device_msg_id=m.msg_id,
                raw_scan=reading.raw.decode("utf-8", "replace")[:4096],
            )
        )

    def _after_saved(self, reading: TerminalReading) -> None:
        """What follows a saved report: counters advance, a stopped job's start goes."""
        m = reading.message
        if isinstance(m, CountMessage):  # type "count"
            self.counters.apply(reading.device.device_id, m.counter_epoch, m.counters())
            self.agent.outbox.meta_set(self.COUNTERS_META, json.dumps(self.counters.state()))
        elif m.type in ("pause", "finish"):
            self.agent.outbox.meta_delete(self._labour_key(reading))

    def start(self) -> None:
        self.bridge.start()

    def stop(self) -> None:
        self.bridge.stop()

    def state(self) -> list[dict[str, Any]]:
        return [
            {"device_id": device_id, "kind": "mqtt_terminal", "status": status.state}
            for device_id, status in self.bridge.device_statuses().items()
        ]


class DeviceHub:
    """All of an agent's devices; their state goes into the heartbeat."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.scanners = [ScannerStation(agent, s) for s in agent.config.stations if s.scanner]
        self.terminals = Terminals(agent) if agent.config.mqtt else None
        agent.device_state = self.state

    def start(self) -> None:
        for scanner in self.scanners:
            scanner.start()
        if self.terminals is not None:
            self.terminals.start()

    def stop(self) -> None:
        for scanner in self.scanners:
            scanner.stop()
        if self.terminals is not None:
            self.terminals.stop()

    def state(self) -> list[dict[str, Any]]:
        states = [s.state() for s in self.scanners]
        if self.terminals is not None:
            states += self.terminals.state()
        return states
