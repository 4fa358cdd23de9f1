"""The MQTT bridge between work-reporting terminals and the edge agent.

Contract (see PROTOCOL.md): a terminal message is acknowledged, on MQTT and to the
terminal, only after the host's handler has made it durable.

    message -> parse -> TerminalReading -> handler(reading) -> Answer
            -> publish the answer on .../down/ack -> PUBACK (client.ack)

- The handler runs on the MQTT network thread, one message at a time, in arrival order.
  It commits the reading to the edge's durable outbox and returns an `Answer`. It must be
  idempotent by `(reading.device.device_id, reading.message.msg_id)`: the broker
  redelivers what was not acked, and terminals re-send what they got no ack for.
- If the handler raises, nothing is acked on MQTT: the broker keeps the message in the
  persistent session and redelivers it when the bridge reconnects (after an agent
  restart). The terminal is told "not saved" and re-sends it itself.
- A message that can never succeed (bad topic, bad JSON, bad field) is answered with
  the error, acked, logged and counted.

The session is persistent: fixed client id, MQTT v5 `clean_start=False` and a long
session expiry, so QoS 1 messages that arrive while the agent is down, or were delivered
but not acked when it died, come (again) when it is back.
"""

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware_bridges.terminal.errors import TerminalMessageError
from firmware_bridges.terminal.messages import (
    DeviceAddress,
    TerminalMessage,
    msg_id_hint,
    parse_payload,
    parse_status_topic,
    parse_up_topic,
)

log = logging.getLogger(__name__)

ONLINE = "online"
OFFLINE = "offline"
THIRTY_DAYS_S = 30 * 24 * 3600


@dataclass(frozen=True)
class TerminalReading:
    """One parsed terminal message, as the bridge hands it to the host."""

    device: DeviceAddress
    message: TerminalMessage
    topic: str
    raw: bytes  # the payload exactly as received, for audit
    received_at: datetime  # edge clock, UTC
    redelivered: bool  # MQTT DUP flag: the broker sent this one before


@dataclass(frozen=True)
class Answer:
    """What the handler tells the terminal. `retry=True` asks the terminal to send the
    same message again later (nothing was recorded); `text` fits a small display."""

    ok: bool
    text: str
    code: str | None = None
    retry: bool = False


Handler = Callable[[TerminalReading], Answer]
NOT_SAVED = Answer(ok=False, text="NOT SAVED - RETRY", code="not_saved", retry=True)


@dataclass(frozen=True)
class DeviceStatus:
    state: str  # "online" / "offline" (the device's last will)
    since: datetime  # edge clock, UTC, when the bridge learned it


@dataclass(frozen=True)
class BridgeConfig:
    host: str
    site: str
    client_id: str  # fixed per edge: the broker keeps the session under it
    port: int = 1883
    up_filter: str | None = None  # default "{site}/+/+/up/+"
    status_filter: str | None = None  # default "{site}/+/+/status"
    status_topic: str | None = None  # the bridge's own; default "{site}/edge/{client_id}/status"
    session_expiry_s: int = THIRTY_DAYS_S
    keepalive_s: int = 30
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    username: str | None = None
    password: str | None = None
    # 5, or 3 for MQTT 3.1.1 brokers (the demo's embedded one): the persistent session
    # is then `clean_session=False` and lasts as long as the broker keeps it.
    mqtt_version: int = 5

    @property
    def up_subscription(self) -> str:
        return self.up_filter or f"{self.site}/+/+/up/+"

    @property
    def status_subscription(self) -> str:
        return self.status_filter or f"{self.site}/+/+/status"

    @property
    def own_status_topic(self) -> str:
        return self.status_topic or f"{self.site}/edge/{self.client_id}/status"


@dataclass(frozen=True)
class BridgeStats:
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    received: int = 0  # terminal messages (not status) received, redeliveries included
    redelivered: int = 0  # of those, with the MQTT DUP flag
    handled: int = 0  # handler returned: answered and acked
    handler_errors: int = 0  # handler raised: answered "not saved", NOT acked
    malformed: int = 0  # answered with the error and acked
    malformed_by_code: dict[str, int] = field(default_factory=dict)
    status_updates: int = 0


class TerminalBridge:
    """Subscribes to terminal topics and drives `handler`; see the module docstring."""

    def __init__(
        self,
        config: BridgeConfig,
        handler: Handler,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._handler = handler
        self._clock = clock
        self._lock = threading.Lock()
        self._stats = BridgeStats()
        self._malformed: Counter[str] = Counter()
        self._devices: dict[str, DeviceStatus] = {}
        self._connected = threading.Event()  # connected and subscribed
        self._subscribe_mid: int | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        config = self.config
        v5 = config.mqtt_version == 5
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        client.will_set(config.own_status_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and keep reconnecting until `stop()`."""
        if self.config.mqtt_version == 5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.config.session_expiry_s
            self._client.connect_async(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:
            self._client.connect_async(
                self.config.host, self.config.port, keepalive=self.config.keepalive_s
            )
        self._client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        """True once connected and subscribed (SUBACK received); False if not within
        `timeout_s`."""
        return self._connected.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say "offline", disconnect (the broker keeps the session) and stop the thread."""
        if self._connected.is_set():
            info = self._client.publish(self.config.own_status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError):
                log.warning("could not publish the offline status before disconnecting")
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- what the host can look at -----------------------------------------------------

    def stats(self) -> BridgeStats:
        with self._lock:
            return replace(
                self._stats,
                connected=self._connected.is_set(),
                malformed_by_code=dict(self._malformed),
            )

    def device_statuses(self) -> dict[str, DeviceStatus]:
        """Last known status of each device, by device id `site/line/device`."""
        with self._lock:
            return dict(self._devices)

    def _count(self, **increments: int) -> None:
        with self._lock:
            values = {name: getattr(self._stats, name) + n for name, n in increments.items()}
            self._stats = replace(self._stats, **values)

    # -- paho callbacks (network thread) ---------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected (session present: %s)", flags.session_present)
        topics = (self.config.up_subscription, self.config.status_subscription)
        if self.config.mqtt_version == 5:
            wanted: list[tuple[str, Any]] = [(t, SubscribeOptions(qos=1)) for t in topics]
        else:  # MQTT 3.1.1 subscribes with a plain QoS
            wanted = [(t, 1) for t in topics]
        _, self._subscribe_mid = client.subscribe(wanted)
        client.publish(self.config.own_status_topic, ONLINE, qos=1, retain=True)
        self._count(connects=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("broker refused the terminal subscriptions: %s", ", ".join(refused))
            return
        self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self._connected.is_set():
            log.warning("disconnected from the broker: %s", reason)
        self._connected.clear()
        self._count(disconnects=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            error = TerminalMessageError("bad_topic", "topic is not UTF-8")
            self._reject(msg, "<non-UTF-8 topic>", None, error)
            return
        if mqtt.topic_matches_sub(self.config.status_subscription, topic):
            self._on_status(msg, topic)
        else:
            self._on_report(msg, topic)

    def _on_report(self, msg: mqtt.MQTTMessage, topic: str) -> None:
        self._count(received=1, redelivered=int(bool(msg.dup)))
        try:
            device, type_ = parse_up_topic(topic)
        except TerminalMessageError as error:
            self._reject(msg, topic, None, error)
            return
        try:
            message = parse_payload(type_, msg.payload)
        except TerminalMessageError as error:
            self._reject(msg, topic, device, error)
            return
        reading = TerminalReading(
            device=device,
            message=message,
            topic=topic,
            raw=bytes(msg.payload),
            received_at=self._clock(),
            redelivered=bool(msg.dup),
        )
        try:
            answer = self._handler(reading)
        except Exception:
            # Not durable: no PUBACK, so the broker redelivers after a reconnect.
            log.exception("handler failed for %s msg_id=%s", device.device_id, message.msg_id)
            self._count(handler_errors=1)
            self._answer(device, message.msg_id, NOT_SAVED)
            return
        self._answer(device, message.msg_id, answer)
        self._ack(msg)
        self._count(handled=1)

    def _reject(
        self,
        msg: mqtt.MQTTMessage,
        topic: str,
        device: DeviceAddress | None,
        error: TerminalMessageError,
    ) -> None:
        """A message that can never succeed: answer the error (when the topic says to
        whom), ack it so it is not redelivered forever, log and count it."""
        log.warning("malformed terminal message on %s: %s: %s", topic, error.code, error)
        if device is not None:
            answer = Answer(ok=False, text=error.message[:120], code=error.code)
            self._answer(device, msg_id_hint(msg.payload), answer)
        self._ack(msg)
        with self._lock:
            self._malformed[error.code] += 1
        self._count(malformed=1)

    def _answer(self, device: DeviceAddress, msg_id: str | None, answer: Answer) -> None:
        body: dict[str, Any] = {"msg_id": msg_id, "ok": answer.ok, "text": answer.text}
        if answer.code is not None:
            body["code"] = answer.code
        if answer.retry:
            body["retry"] = True
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        self._client.publish(device.down_topic("ack"), payload, qos=1, retain=False)

    def _ack(self, msg: mqtt.MQTTMessage) -> None:
        if msg.qos > 0:
            self._client.ack(msg.mid, msg.qos)

    def _on_status(self, msg: mqtt.MQTTMessage, topic: str) -> None:
        if topic != self.config.own_status_topic:
            self._record_status(topic, msg.payload)
        self._ack(msg)

    def _record_status(self, topic: str, payload: bytes | bytearray) -> None:
        try:
            device = parse_status_topic(topic)
        except TerminalMessageError as error:
            log.warning("ignored status on %r: %s", topic, error)
            return
        state = payload.decode("utf-8", "replace").strip().lower()
        with self._lock:
            if not state:  # retained status cleared: the device was decommissioned
                self._devices.pop(device.device_id, None)
            elif state in (ONLINE, OFFLINE):
                self._devices[device.device_id] = DeviceStatus(state, self._clock())
            else:
                log.warning("ignored status %r of %s", state[:32], device.device_id)
                return
            self._stats = replace(self._stats, status_updates=self._stats.status_updates + 1)
