"""A work-reporting terminal in software, for tests and the demo.

It behaves like the real thing (PROTOCOL.md): every report gets its own msg id and goes
out at QoS 1, not retained; the terminal waits for the ack with that msg id on its
`down/ack` topic and re-sends the very same payload when none comes in time. Its status
is retained, "online" on connect, and "offline" is its last will. Counters are
cumulative within a `counter_epoch`; `reset_counter()` starts a new epoch from 0.

On a default-deny broker it logs in with the username and password that provisioning
gave it (dynsec.py); its client id is then the username, to which the broker binds it.
"""

import json
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridges.terminal.errors import AckTimeout, TerminalError
from firmware_bridges.terminal.messages import DeviceAddress

CHINA_TIME = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class TerminalAck:
    """An ack as the terminal received it on `down/ack`."""

    msg_id: str | None
    ok: bool
    text: str
    code: str | None = None
    retry: bool = False


class TerminalSimulator:
    """One terminal: `start()`, then `start_job`, `report_count`, `finish`…, `stop()`."""

    def __init__(
        self,
        host: str,
        port: int,
        address: DeviceAddress,
        *,
        badge: str = "E0001",
        ack_timeout_s: float = 2.0,
        max_attempts: int = 5,
        counter_epoch: int = 1,
        mqtt_version: int = 5,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(CHINA_TIME),
    ) -> None:
        self.host, self.port, self.address = host, port, address
        self.mqtt_version = mqtt_version
        self.username, self._password = username, password
        self.badge = badge
        self.ack_timeout_s = ack_timeout_s
        self.max_attempts = max_attempts
        self.counter_epoch = counter_epoch
        self.work_order: str | None = None
        self.operation: str | None = None
        self.good = self.rework = Decimal(0)
        self.scrap: dict[str, Decimal] = {}
        self._clock = clock
        self._boot = secrets.token_hex(3)
        self._next_msg = 0
        self._payloads: dict[str, tuple[str, bytes]] = {}  # msg_id -> (type, payload)
        self.sends: dict[str, int] = defaultdict(int)  # msg_id -> times published
        self._acks: dict[str | None, list[TerminalAck]] = defaultdict(list)
        self._acked = threading.Condition()
        self._ready = threading.Event()
        self._powered_off = False
        self._refused: str | None = None
        # On a dynsec broker the client id is bound to the username (dynsec.py).
        self.client_id = client_id or username or f"terminal-{address.device}-{self._boot}"
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self.mqtt_version == 5 else mqtt.MQTTv311,
        )
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        client.will_set(self.address.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 5)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> "TerminalSimulator":
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._ready.wait(timeout_s) or self._refused is not None:
            self._client.disconnect()
            self._client.loop_stop()
            if self._refused is not None:
                raise TerminalError(
                    f"terminal {self.address.device_id}: the broker at {self.host}:{self.port} "
                    f"refused {self._refused}; check its MQTT username, password and role",
                    code="broker_refused",
                )
            raise TerminalError(
                f"terminal {self.address.device_id} could not connect to "
                f"{self.host}:{self.port} within {timeout_s} s",
                code="broker_unreachable",
            )
        return self

    def stop(self) -> None:
        """A clean power-down: say "offline", then disconnect (no last will)."""
        if self._powered_off:
            return
        self._client.publish(self.address.status_topic, "offline", qos=1, retain=True)
        self._client.disconnect()
        self._client.loop_stop()

    def power_off(self) -> None:
        """Pull the plug: the connection drops without DISCONNECT, so the broker
        publishes the last will ("offline")."""
        self._powered_off = True
        self._client.loop_stop()
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, *args: Any
    ) -> None:
        if reason.is_failure:
            self._refused = f"its login ({reason})"
            self._ready.set()
            return
        client.subscribe(self.address.down_topic("+"), qos=1)
        client.publish(self.address.status_topic, "online", qos=1, retain=True)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, *args: Any
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self._refused = f"its subscription to {self.address.down_topic('+')} ({refused[0]})"
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/down/ack"):
            return
        try:
            body = json.loads(msg.payload)
            ack = TerminalAck(
                msg_id=body.get("msg_id"),
                ok=bool(body["ok"]),
                text=str(body.get("text", "")),
                code=body.get("code"),
                retry=bool(body.get("retry", False)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # a real terminal shows nothing for an ack it cannot read
        with self._acked:
            self._acks[ack.msg_id].append(ack)
            self._acked.notify_all()

    # -- sending -----------------------------------------------------------------------

    def acks_for(self, msg_id: str | None) -> list[TerminalAck]:
        with self._acked:
            return list(self._acks[msg_id])

    def send(self, type_: str, fields: dict[str, Any]) -> TerminalAck:
        """Send a new message; re-send the same payload until acked. Returns the ack."""
        self._next_msg += 1
        msg_id = f"{self.address.device}-{self._boot}-{self._next_msg:06d}"
        body = {
            "msg_id": msg_id,
            "badge": self.badge,
            "work_order": self.work_order,
            "operation": self.operation,
            "at": self._clock().isoformat(),
            **fields,
        }
        payload = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        self._payloads[msg_id] = (type_, payload)
        return self.resend(msg_id)

    def send_raw(self, type_: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """Publish any payload once, no re-send, no waiting for the edge's ack (for
        malformed messages and for tests of the broker's own redelivery)."""
        return self._client.publish(self.address.up_topic(type_), payload, qos=1)

    def resend(self, msg_id: str) -> TerminalAck:
        """Publish the stored message again (same msg id, same bytes) until a new ack
        for it arrives; an ack asking to retry is waited out and re-sent too."""
        type_, payload = self._payloads[msg_id]
        for _ in range(self.max_attempts):
            seen = len(self.acks_for(msg_id))
            self._client.publish(self.address.up_topic(type_), payload, qos=1)
            self.sends[msg_id] += 1
            ack = self._wait_ack(msg_id, seen)
            if ack is not None and not ack.retry:
                return ack
            if ack is not None:  # "not saved": wait a little, as a terminal would
                time.sleep(self.ack_timeout_s)
        raise AckTimeout(
            f"terminal {self.address.device_id}: no ack for {msg_id} after "
            f"{self.max_attempts} attempts of {self.ack_timeout_s} s; check the edge agent"
        )

    def _wait_ack(self, msg_id: str, seen: int) -> TerminalAck | None:
        deadline = time.monotonic() + self.ack_timeout_s
        with self._acked:
            while len(self._acks[msg_id]) <= seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._acked.wait(left)
            return self._acks[msg_id][-1]

    # -- what an operator does ---------------------------------------------------------

    def start_job(self, work_order: str, operation: str | None = None) -> TerminalAck:
        self.work_order, self.operation = work_order, operation
        return self.send("start", {})

    def pause(self, reason: str | None = None) -> TerminalAck:
        return self.send("pause", {"reason": reason})

    def resume(self) -> TerminalAck:
        return self.send("resume", {})

    def report_count(
        self,
        good: Decimal | int = 0,
        scrap: Decimal | int = 0,
        scrap_reason: str = "unspecified",
        rework: Decimal | int = 0,
        cycle_time_s: Decimal | None = None,
    ) -> TerminalAck:
        """Add to the cumulative counters and send them (all of them, cumulative)."""
        self.good += good
        self.rework += rework
        if scrap:
            self.scrap[scrap_reason] = self.scrap.get(scrap_reason, Decimal(0)) + scrap
        return self.send("count", self.counter_fields(cycle_time_s))

    def counter_fields(self, cycle_time_s: Decimal | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "counter_epoch": self.counter_epoch,
            "good": str(self.good),
            "rework": str(self.rework),
            "scrap": {reason: str(qty) for reason, qty in self.scrap.items()},
        }
        if cycle_time_s is not None:
            fields["cycle_time_s"] = str(cycle_time_s)
        return fields

    def reset_counter(self) -> None:
        """Counters back to 0 in a new epoch, as after an operator reset."""
        self.counter_epoch += 1
        self.good = self.rework = Decimal(0)
        self.scrap = {}

    def finish(self) -> TerminalAck:
        ack = self.send("finish", {})
        self.work_order = self.operation = None
        return ack
