"""One MQTT identity per terminal, on Mosquitto's dynamic security plugin (dynsec).

The broker denies by default: anonymous clients are refused (`allow_anonymous false`)
and dynsec's `defaultACLAccess` is false for all four ACL types, so a client may do
only what one of its roles allows. Invariants of what this module provisions:

- a terminal is one dynsec client whose **username is its device name** (1-64 of
  `A-Z a-z 0-9 _ . -`; `+`, `#` and `/` are refused), whose client id is bound to the
  same name, with a random password and a role of its own: publish only on its own
  `{site}/{line}/{device}/up/+` and `.../status`, subscribe and receive only its own
  `.../down/+` and its site's edge status `{site}/edge/+/status`;
- the edge bridge is one more client, its client id bound to the bridge's fixed one:
  subscribe and receive `{site}/+/+/up/+` and `{site}/+/+/status`, publish
  `{site}/+/+/down/+` and its own `{site}/edge/{client_id}/status`;
- every client id is bound, so no client can connect under the bridge's id and take
  over its persistent session (and its queued reports);
- ACL topics are literal per device, not `%u` patterns: the topic names the site and
  line too, and a terminal must not publish as the same device name elsewhere.

The tenant is never in a topic or a username: the edge's own credential decides it.

Provisioning talks to dynsec on its control topic `$CONTROL/dynamic-security/v1` with
the admin's credentials (made by `mosquitto_ctrl dynsec init`), one JSON batch of
commands per request, matched to its answer by `correlationData`.
"""

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridges.terminal.errors import DynsecError
from firmware_bridges.terminal.messages import SEGMENT, DeviceAddress

__all__ = [
    "ACL_TYPES",
    "CONTROL_TOPIC",
    "RESPONSE_TOPIC",
    "Acl",
    "DynsecAdmin",
    "DynsecError",
    "MqttIdentity",
    "bridge_acls",
    "bridge_role",
    "check_address",
    "check_username",
    "new_password",
    "parse_device_id",
    "terminal_acls",
    "terminal_role",
]

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
# The four default-access switches of setDefaultACLAccess; all false = default deny.
ACL_TYPES = ("publishClientSend", "publishClientReceive", "subscribe", "unsubscribe")
PASSWORD_BYTES = 24  # token_urlsafe: 32 characters of A-Z a-z 0-9 - _
MQTT_FORBIDDEN = "+#/"  # wildcards and the level separator


@dataclass(frozen=True)
class Acl:
    """One dynsec ACL: `acltype` is publishClientSend, publishClientReceive,
    subscribePattern or unsubscribePattern here; `topic` may hold `+` wildcards."""

    acltype: str
    topic: str
    allow: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow}


@dataclass(frozen=True)
class MqttIdentity:
    """What a client needs to connect, returned once: the broker keeps only a hash."""

    username: str
    password: str = field(repr=False)
    client_id: str
    role: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def check_username(name: str, what: str = "MQTT username") -> str:
    """`name` if it can be a username (and a topic level); DynsecError `bad_username`."""
    bad = sorted({c for c in name if c in MQTT_FORBIDDEN})
    if bad:
        raise DynsecError(
            f"{what} {name!r} contains {' '.join(bad)}: MQTT wildcards and '/' are not "
            "allowed in a username",
            code="bad_username",
        )
    if not SEGMENT.fullmatch(name):
        raise DynsecError(
            f"{what} {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -",
            code="bad_username",
        )
    return name


def parse_device_id(text: str) -> DeviceAddress:
    """`SITE/LINE/DEVICE` -> DeviceAddress, checked by `check_address`."""
    parts = text.split("/")
    if len(parts) != 3:
        raise DynsecError(
            f"device id {text!r} is not SITE/LINE/DEVICE (DEVICE must not contain '/')",
            code="bad_device_id",
        )
    return check_address(DeviceAddress(*parts))


def check_address(address: DeviceAddress) -> DeviceAddress:
    """`address` if its device name can be a username (`bad_username`) and its site and
    line are valid topic levels (`bad_device_id`)."""
    check_username(address.device, "device name")
    for name, value in (("site", address.site), ("line", address.line)):
        if not SEGMENT.fullmatch(value):
            raise DynsecError(
                f"{name} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ . -",
                code="bad_device_id",
            )
    if address.line == "edge":
        raise DynsecError(
            "the line name 'edge' is reserved for the edge's own status", code="bad_device_id"
        )
    return address


def terminal_role(username: str) -> str:
    return f"terminal-{username}"


def bridge_role(username: str) -> str:
    return f"edge-bridge-{username}"


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _read(*topics: str) -> Iterator[Acl]:
    """Subscribe to, receive from and unsubscribe from each topic filter."""
    for topic in topics:
        yield Acl("subscribePattern", topic)
        yield Acl("publishClientReceive", topic)
        yield Acl("unsubscribePattern", topic)


def terminal_acls(address: DeviceAddress) -> tuple[Acl, ...]:
    """A terminal's rights: its own up/status topics out, its own down topics and its
    site's edge status in; nothing else (the broker's default is deny)."""
    edge_status = f"{address.site}/edge/+/status"
    return (
        Acl("publishClientSend", address.up_topic("+")),
        Acl("publishClientSend", address.status_topic),
        *_read(address.down_topic("+"), edge_status),
    )


def bridge_acls(site: str, client_id: str) -> tuple[Acl, ...]:
    """The edge bridge's rights on one site: every terminal's reports and status in,
    answers out, and its own status (BridgeConfig's default topics)."""
    return (
        *_read(f"{site}/+/+/up/+", f"{site}/+/+/status"),
        Acl("publishClientSend", f"{site}/+/+/down/+"),
        Acl("publishClientSend", f"{site}/edge/{client_id}/status"),
    )


class DynsecAdmin:
    """A connection as the dynsec admin: `with DynsecAdmin(host, port, user, pw) as a:`.

    Each method sends one batch of commands and waits for its answer; a refused
    command raises DynsecError with the broker's reason in the message.
    """

    def __init__(
        self, host: str, port: int, username: str, password: str, *, timeout_s: float = 10.0
    ) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._answered = threading.Condition()
        self._connack = threading.Event()
        self._suback = threading.Event()
        self._refused: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"erp-dynsec-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- connection ----------------------------------------------------------------------

    def __enter__(self) -> "DynsecAdmin":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as error:
            raise DynsecError(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {error}",
                code="broker_unreachable",
            ) from error
        self._client.loop_start()
        if not self._connack.wait(self.timeout_s):
            self.close()
            raise DynsecError(
                f"no CONNACK from {self.host}:{self.port} in {self.timeout_s} s",
                code="broker_unreachable",
            )
        if self._refused is not None:
            self.close()
            raise DynsecError(
                f"the broker refused the admin login ({self._refused}): check the admin "
                "username and password",
                code="admin_refused",
            )
        self._client.subscribe(RESPONSE_TOPIC, qos=1)
        if not self._suback.wait(self.timeout_s):
            self.close()
            raise DynsecError(f"no SUBACK for {RESPONSE_TOPIC}", code="broker_unreachable")
        if self._refused is not None:
            self.close()
            raise DynsecError(
                f"{RESPONSE_TOPIC}: subscription refused ({self._refused}); is this the "
                "dynamic security plugin's admin?",
                code="admin_refused",
            )

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, *_: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._connack.set()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, *_: Any
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self._refused = refused[0]
        self._suback.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
            batch = str(responses[0]["correlationData"]).split(":", 1)[0]
        except (ValueError, KeyError, IndexError, TypeError):
            return  # another admin's answer without our correlation data
        with self._answered:
            self._answers[batch] = responses
            self._answered.notify_all()

    # -- commands ------------------------------------------------------------------------

    def run(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Send one batch; its responses in order (a failed one has an `error` key)."""
        batch = secrets.token_hex(8)
        tagged = [{**c, "correlationData": f"{batch}:{i}"} for i, c in enumerate(commands)]
        self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
        with self._answered:
            if not self._answered.wait_for(lambda: batch in self._answers, self.timeout_s):
                raise DynsecError(
                    f"no answer on {RESPONSE_TOPIC} within {self.timeout_s} s: is the "
                    "dynamic security plugin loaded, and is this its admin?",
                    code="no_dynsec",
                )
            return self._answers.pop(batch)

    def _check(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """run(), raising `command_failed` on the first refused command."""
        responses = self.run(*commands)
        for command, response in zip(commands, responses, strict=True):
            if "error" in response:
                raise DynsecError(
                    f"{command['command']} refused by the broker: {response['error']}",
                    code="command_failed",
                )
        return responses

    def default_deny(self) -> None:
        """defaultACLAccess false for all four types (idempotent)."""
        acls = [{"acltype": acltype, "allow": False} for acltype in ACL_TYPES]
        self._check({"command": "setDefaultACLAccess", "acls": acls})

    def default_acl_access(self) -> dict[str, bool]:
        (response,) = self._check({"command": "getDefaultACLAccess"})
        return {acl["acltype"]: bool(acl["allow"]) for acl in response["data"]["acls"]}

    def client_exists(self, username: str) -> bool:
        (response,) = self.run({"command": "getClient", "username": username})
        return "error" not in response

    def add_terminal(self, address: DeviceAddress) -> MqttIdentity:
        """Create the terminal's client and role; its password is in the result only."""
        acls = terminal_acls(check_address(address))
        return self._add_client(
            address.device,
            terminal_role(address.device),
            acls,
            f"terminal {address.device_id}",
        )

    def remove_terminal(self, address: DeviceAddress) -> None:
        """Delete the terminal's client (the broker disconnects it at once) and its role."""
        check_address(address)
        self._remove_client(address.device, terminal_role(address.device))

    def add_bridge(self, username: str, client_id: str, site: str) -> MqttIdentity:
        """Create the edge bridge's client for one site, bound to its fixed client id."""
        check_username(username)
        check_username(client_id, "bridge client id")
        check_username(site, "site")
        acls = bridge_acls(site, client_id)
        return self._add_client(
            username, bridge_role(username), acls, f"edge bridge of {site}", client_id
        )

    def remove_bridge(self, username: str) -> None:
        self._remove_client(check_username(username), bridge_role(username))

    def _add_client(
        self,
        username: str,
        role: str,
        acls: tuple[Acl, ...],
        text: str,
        client_id: str | None = None,
    ) -> MqttIdentity:
        if self.client_exists(username):
            raise DynsecError(
                f"MQTT username {username!r} exists already: remove it first, or give the "
                "device another name (device names are unique per broker)",
                code="client_exists",
            )
        (created,) = self.run(
            {"command": "createRole", "rolename": role, "acls": [a.to_json() for a in acls]}
        )
        if "error" in created:
            raise DynsecError(
                f"role {role!r}: {created['error']}; a role left from an earlier client? "
                "Remove it with the matching `remove` command",
                code="role_exists",
            )
        password = new_password()
        client = {
            "command": "createClient",
            "username": username,
            "password": password,
            "clientid": client_id or username,
            "textname": text,
            "roles": [{"rolename": role, "priority": 0}],
        }
        try:
            self._check(client)
        except DynsecError:
            self.run({"command": "deleteRole", "rolename": role})
            raise
        return MqttIdentity(
            username=username,
            password=password,
            client_id=client_id or username,
            role=role,
            publish=tuple(a.topic for a in acls if a.acltype == "publishClientSend"),
            subscribe=tuple(a.topic for a in acls if a.acltype == "subscribePattern"),
        )

    def _remove_client(self, username: str, role: str) -> None:
        client, role_answer = self.run(
            {"command": "deleteClient", "username": username},
            {"command": "deleteRole", "rolename": role},
        )
        if "error" in client and "error" in role_answer:
            raise DynsecError(
                f"no MQTT client {username!r} (and no role {role!r}) on this broker",
                code="unknown_client",
            )
