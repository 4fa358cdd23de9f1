"""The default-deny broker: one MQTT identity per terminal on Mosquitto's dynamic
security plugin (firmware_bridges/terminal/dynsec.py, `erp edge mqtt-terminal`).

Everything runs against a real Mosquitto with the plugin on a free loopback port
(tests/mosquitto.py), provisioned through `$CONTROL/dynamic-security/v1` as its admin.
Each test asserts what must happen and what must not: anonymous clients are refused; a
provisioned terminal's report reaches the bridge; a terminal's publish on another
terminal's topic is dropped by the broker and reaches nobody, and it may not subscribe
to another terminal's answers; a removed terminal is disconnected and cannot log in
again; bad usernames are refused with `bad_username` before the broker is asked.
"""

import json
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from edge_agent.agent import Agent
from edge_agent.config import ConfigError, parse_config
from edge_agent.devices import DeviceHub
from firmware_bridges.terminal import (
    Answer,
    BridgeConfig,
    DeviceAddress,
    DynsecError,
    TerminalBridge,
    TerminalReading,
)
from firmware_bridges.terminal.dynsec import (
    ACL_TYPES,
    DynsecAdmin,
    MqttIdentity,
    parse_device_id,
)
from firmware_bridges.terminal.errors import TerminalError
from firmware_bridges.terminal.simulator import TerminalSimulator
from tests.mosquitto import (
    CI,
    DYNSEC_SETTINGS,
    BrokerError,
    MosquittoBroker,
    mosquitto_broker,  # noqa: F401  (fixture)
    mosquitto_dynsec_broker,  # noqa: F401  (fixture)
    start_broker,
)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_CONF = ROOT / "compose" / "mosquitto" / "mosquitto.conf"
NOT_AUTHORIZED = 135  # MQTT 5 reason code
BAD_CREDENTIALS = 134


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Probe:
    """A bare MQTT client that records what the broker answers it: CONNACK, SUBACK and
    PUBACK reason codes, messages, and being disconnected."""

    broker: MosquittoBroker
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    version: int = 5
    connack: Any = None
    disconnected: threading.Event = field(default_factory=threading.Event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    _acks: dict[int, Any] = field(default_factory=dict)
    _event: threading.Condition = field(default_factory=threading.Condition)

    def connect(self, timeout_s: float = 5.0) -> "Probe":
        protocol = mqtt.MQTTv5 if self.version == 5 else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol
        )
        if self.username is not None:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_subscribe = lambda c, u, mid, reasons, p: self._record(mid, reasons)
        self.client.on_publish = lambda c, u, mid, reason, p: self._record(mid, reason)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        with self._event:
            assert self._event.wait_for(lambda: self.connack is not None, timeout_s), "no CONNACK"
        if self.connack.is_failure:
            self.close()
        return self

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._event:
            self.connack = reason
            self._event.notify_all()

    def _record(self, mid: int, answer: Any) -> None:
        with self._event:
            self._acks[mid] = answer
            self._event.notify_all()

    def _answer(self, mid: int) -> Any:
        with self._event:
            assert self._event.wait_for(lambda: mid in self._acks, 5.0), f"no answer to {mid}"
            return self._acks[mid]

    def subscribe(self, topic: str) -> int:
        """The SUBACK's reason code (value) for one topic filter."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return int(self._answer(mid)[0].value)

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK's reason code (value; always 0 on MQTT 3.1.1)."""
        info = self.client.publish(topic, payload, qos=1)
        return int(self._answer(info.mid).value)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Reports:
    """The bridge's handler: keeps every reading, answers OK."""

    readings: list[TerminalReading] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, reading: TerminalReading) -> Answer:
        with self.lock:
            self.readings.append(reading)
        return Answer(ok=True, text="OK")

    def msg_ids(self) -> list[str]:
        with self.lock:
            return [r.message.msg_id for r in self.readings]

    def topics(self) -> list[str]:
        with self.lock:
            return [r.topic for r in self.readings]


def report(msg_id: str) -> bytes:
    body = {
        "msg_id": msg_id,
        "badge": "E1",
        "work_order": "WO-1",
        "at": "2024-05-06T08:30:00+08:00",
    }
    return json.dumps(body).encode()


class Floor:
    """One unique site on the session's dynsec broker: its bridge and terminals, all
    provisioned through the admin and stopped at the end of the test."""

    def __init__(self, broker: MosquittoBroker, admin: DynsecAdmin) -> None:
        self.broker, self.admin = broker, admin
        self.site = unique("s")
        self.reports = Reports()
        self._stops: list[Callable[[], None]] = []

    def address(self, device: str) -> DeviceAddress:
        return DeviceAddress(self.site, "L1", device)

    def provision(self, device: str) -> tuple[DeviceAddress, MqttIdentity]:
        address = self.address(unique(device))
        return address, self.admin.add_terminal(address)

    def bridge(self) -> TerminalBridge:
        client_id = f"erp-edge-{self.site}"
        identity = self.admin.add_bridge(f"edge-{self.site}", client_id, self.site)
        config = BridgeConfig(
            host=self.broker.host,
            port=self.broker.port,
            site=self.site,
            client_id=client_id,
            username=identity.username,
            password=identity.password,
        )
        bridge = TerminalBridge(config, self.reports)
        bridge.start()
        self._stops.append(lambda: bridge.stop(timeout_s=1))
        assert bridge.wait_connected(10), f"bridge refused:\n{self.broker.log_tail()}"
        return bridge

    def terminal(self, address: DeviceAddress, identity: MqttIdentity) -> TerminalSimulator:
        sim = TerminalSimulator(
            self.broker.host,
            self.broker.port,
            address,
            username=identity.username,
            password=identity.password,
        )
        sim.start()
        self._stops.append(sim.stop)
        return sim

    def probe(self, identity: MqttIdentity | None = None, **kw: Any) -> Probe:
        if identity is not None:
            kw = {"username": identity.username, "password": identity.password} | kw
            kw.setdefault("client_id", identity.client_id)
        probe = Probe(self.broker, **kw).connect()
        self._stops.append(probe.close)
        return probe

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()


@pytest.fixture
def admin(mosquitto_dynsec_broker: MosquittoBroker) -> Iterator[DynsecAdmin]:  # noqa: F811
    setup = mosquitto_dynsec_broker.dynsec
    assert setup is not None
    broker = mosquitto_dynsec_broker
    with DynsecAdmin(broker.host, broker.port, setup.admin_username, setup.admin_password) as a:
        a.default_deny()
        yield a


@pytest.fixture
def floor(mosquitto_dynsec_broker: MosquittoBroker, admin: DynsecAdmin) -> Iterator[Floor]:  # noqa: F811
    floor = Floor(mosquitto_dynsec_broker, admin)
    try:
        yield floor
    finally:
        floor.close()


# -- the broker denies by default -----------------------------------------------------


def test_default_acl_access_is_deny_for_every_type(
    admin: DynsecAdmin,
    mosquitto_dynsec_broker: MosquittoBroker,  # noqa: F811
) -> None:
    assert admin.default_acl_access() == dict.fromkeys(ACL_TYPES, False)
    # and saved, so it holds after a broker restart (`dynsec init` leaves two allowed)
    saved = json.loads(mosquitto_dynsec_broker.dynsec_file.read_text())
    assert saved["defaultACLAccess"] == dict.fromkeys(ACL_TYPES, False)


def test_anonymous_and_wrong_passwords_are_refused(floor: Floor) -> None:
    assert floor.probe().connack.value == NOT_AUTHORIZED
    assert floor.probe(version=3).connack.is_failure
    _, identity = floor.provision("T")
    wrong = floor.probe(username=identity.username, password="not-it", client_id=identity.client_id)
    assert wrong.connack.value in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    right = floor.probe(identity)
    assert not right.connack.is_failure


def test_a_client_id_is_bound_to_its_username(floor: Floor) -> None:
    """Nobody can connect under the bridge's client id and take over its persistent
    session (and the reports queued in it)."""
    floor.bridge()
    _, identity = floor.provision("T")
    hijack = floor.probe(identity, client_id=f"erp-edge-{floor.site}")
    assert hijack.connack.value == NOT_AUTHORIZED
    assert floor.probe(identity, client_id="another-id").connack.value == NOT_AUTHORIZED


# -- what a provisioned terminal may and may not do -------------------------------------


def test_a_provisioned_terminal_report_reaches_the_bridge(floor: Floor) -> None:
    bridge = floor.bridge()
    address, identity = floor.provision("T")
    assert identity.username == address.device == identity.client_id
    assert identity.publish == (address.up_topic("+"), address.status_topic)
    sim = floor.terminal(address, identity)
    ack = sim.start_job("WO-1")
    assert ack.ok
    assert floor.reports.msg_ids() == [ack.msg_id]
    assert floor.reports.readings[0].device == address
    wait_until(lambda: address.device_id in bridge.device_statuses(), 5, "the terminal's status")
    assert bridge.device_statuses()[address.device_id].state == "online"


@pytest.mark.parametrize("version", [5, 3])
def test_a_terminal_cannot_publish_on_another_terminals_topics(floor: Floor, version: int) -> None:
    bridge = floor.bridge()
    (mine, me), (theirs, them) = floor.provision("T"), floor.provision("U")
    victim = floor.probe(them)
    assert victim.subscribe(theirs.down_topic("+")) == 1
    probe = floor.probe(me, version=version)
    forged = [
        probe.publish(theirs.up_topic("start"), report("forged-1")),  # a report as U
        probe.publish(theirs.status_topic, b"online"),
        probe.publish(theirs.down_topic("ack"), b'{"msg_id": "x", "ok": true}'),  # as the edge
        probe.publish(mine.down_topic("ack"), b'{"msg_id": "x", "ok": true}'),
    ]
    if version == 5:  # MQTT 3.1.1 has no reason code in PUBACK: dropped all the same
        assert forged == [NOT_AUTHORIZED] * len(forged)
    # The broker drops them: the bridge gets the next, allowed report, never the forged.
    assert probe.publish(mine.up_topic("start"), report("mine-1")) == 0
    wait_until(lambda: "mine-1" in floor.reports.msg_ids(), 5, "the terminal's own report")
    time.sleep(0.2)  # what the broker passed on before the sentinel has arrived by now
    assert floor.reports.msg_ids() == ["mine-1"]
    assert floor.reports.topics() == [mine.up_topic("start")]
    assert bridge.stats().received == 1  # nothing else, not even a malformed report
    assert theirs.device_id not in bridge.device_statuses()
    assert victim.messages == []


def test_a_terminal_cannot_subscribe_to_other_topics(floor: Floor) -> None:
    (mine, me), (theirs, _) = floor.provision("T"), floor.provision("U")
    probe = floor.probe(me)
    assert probe.subscribe(mine.down_topic("+")) == 1  # granted QoS 1
    assert probe.subscribe(f"{floor.site}/edge/+/status") == 1
    for topic in (
        theirs.down_topic("+"),
        theirs.down_topic("ack"),
        theirs.up_topic("+"),
        f"{floor.site}/+/+/down/+",
        f"{floor.site}/#",
        "#",
        f"{mine.device_id}/down/#",  # wider than its role's down/+
    ):
        assert probe.subscribe(topic) == NOT_AUTHORIZED, topic


def test_the_bridge_answers_each_terminal_only_on_its_own_topic(floor: Floor) -> None:
    floor.bridge()
    (a, a_id), (b, b_id) = floor.provision("T"), floor.provision("U")
    sim_a, sim_b = floor.terminal(a, a_id), floor.terminal(b, b_id)
    ack = sim_a.start_job("WO-1")
    assert ack.ok
    assert sim_b.acks_for(ack.msg_id) == []
    assert sim_b.start_job("WO-2").ok


# -- removal ------------------------------------------------------------------------------


def test_a_removed_terminal_is_disconnected_and_cannot_connect(floor: Floor) -> None:
    address, identity = floor.provision("T")
    probe = floor.probe(identity)
    assert not probe.connack.is_failure
    floor.admin.remove_terminal(address)
    assert probe.disconnected.wait(5), "the broker did not disconnect the removed terminal"
    assert floor.probe(identity).connack.value == NOT_AUTHORIZED
    assert not floor.admin.client_exists(identity.username)
    with pytest.raises(DynsecError) as caught:
        floor.admin.remove_terminal(address)
    assert caught.value.code == "unknown_client"


def test_adding_a_terminal_twice_is_refused_and_keeps_the_first(floor: Floor) -> None:
    address, identity = floor.provision("T")
    with pytest.raises(DynsecError) as caught:
        floor.admin.add_terminal(DeviceAddress(floor.site, "L2", address.device))
    assert caught.value.code == "client_exists"
    assert not floor.probe(identity).connack.is_failure


# -- usernames ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["T+1", "T#", "#", "+", "T 1", "", "Tü", "x" * 65, "a:b"])
def test_bad_usernames_are_refused_before_the_broker_is_asked(floor: Floor, name: str) -> None:
    with pytest.raises(DynsecError) as caught:
        floor.admin.add_terminal(DeviceAddress(floor.site, "L1", name))
    assert caught.value.code == "bad_username"
    assert name[:10] in caught.value.message or not name
    with pytest.raises(DynsecError) as caught:
        floor.admin.add_bridge(name, "erp-edge-x", floor.site)
    assert caught.value.code == "bad_username"
    if name:
        assert not floor.admin.client_exists(name)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("plant1/L1/T/7", "bad_device_id"),  # a '/' in the device name: four levels
        ("plant1/L1/T+7", "bad_username"),
        ("plant1/L1/T#", "bad_username"),
        ("plant1/L#/T7", "bad_device_id"),
        ("plant1/edge/T7", "bad_device_id"),  # reserved for the edge's own status
        ("plant1/T7", "bad_device_id"),
    ],
)
def test_device_ids_are_checked(text: str, code: str) -> None:
    with pytest.raises(DynsecError) as caught:
        parse_device_id(text)
    assert caught.value.code == code
    assert parse_device_id("plant1/L1/T-7.a_b") == DeviceAddress("plant1", "L1", "T-7.a_b")


def test_a_slash_in_a_terminal_username_is_refused(admin: DynsecAdmin) -> None:
    with pytest.raises(DynsecError) as caught:
        admin.add_terminal(DeviceAddress("plant1", "L1", "T/7"))
    assert caught.value.code == "bad_username"
    assert "'/'" in caught.value.message
    assert not admin.client_exists("T/7")


def test_a_slash_in_a_bridge_username_is_refused(admin: DynsecAdmin) -> None:
    with pytest.raises(DynsecError) as caught:
        admin.add_bridge("edge/1", "erp-edge-1", "plant1")
    assert caught.value.code == "bad_username"
    assert "'/'" in caught.value.message
    assert not admin.client_exists("edge/1")


def test_a_terminal_with_a_wrong_password_says_so(floor: Floor) -> None:
    address, identity = floor.provision("T")
    sim = TerminalSimulator(
        floor.broker.host, floor.broker.port, address, username=identity.username, password="x"
    )
    with pytest.raises(TerminalError) as caught:
        sim.start(timeout_s=5)
    assert caught.value.code == "broker_refused"


def test_a_wrong_admin_password_is_refused(mosquitto_dynsec_broker: MosquittoBroker) -> None:  # noqa: F811
    broker = mosquitto_dynsec_broker
    with pytest.raises(DynsecError) as caught:
        DynsecAdmin(broker.host, broker.port, "admin", "wrong", timeout_s=5).connect()
    assert caught.value.code == "admin_refused"


def test_a_broker_without_dynsec_is_named_as_such(
    mosquitto_broker: MosquittoBroker,  # noqa: F811  (the anonymous one)
) -> None:
    broker = mosquitto_broker
    admin = DynsecAdmin(broker.host, broker.port, "admin", "x", timeout_s=1)
    with admin, pytest.raises(DynsecError) as caught:
        admin.default_deny()
    assert caught.value.code == "no_dynsec"
    assert "dynamic security plugin" in caught.value.message


def test_an_unreachable_broker_is_named_as_such() -> None:
    with pytest.raises(DynsecError) as caught:
        DynsecAdmin("127.0.0.1", 1, "admin", "x", timeout_s=1).connect()
    assert caught.value.code == "broker_unreachable"


# -- the CLI and the edge agent's config --------------------------------------------------


def erp(*args: str, env: dict[str, str]) -> Any:
    from erp.cli import app

    return CliRunner().invoke(app, ["edge", *args], env=env)


def edge_toml(tmp_path: Path, broker: MosquittoBroker, site: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[edge]
id = "{site}"
outbox = "outbox.sqlite3"
masterdata = "masterdata.json"
min_free_mb = 0

[cloud]
url = "http://127.0.0.1:9"
api_key = "tk_unused"

[mqtt]
url = "mqtt://{broker.host}:{broker.port}"
site = "{site}"
username = "edge-{site}"
password_file = "mqtt-password"
"""
    )
    return path


def test_cli_provisions_the_bridge_and_a_terminal_for_the_edge_agent(
    floor: Floor, tmp_path: Path
) -> None:
    broker, setup = floor.broker, floor.broker.dynsec
    assert setup is not None
    env = {"ERP_MQTT_ADMIN_PASSWORD": setup.admin_password}
    config = edge_toml(tmp_path, broker, floor.site)
    with pytest.raises(ConfigError, match="needs a password"):
        parse_config_file(config)

    result = erp("mqtt-bridge", "add", "-c", str(config), env=env)
    assert result.exit_code == 0, result.output
    password_file = tmp_path / "mqtt-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert password_file.read_text().strip() not in result.output

    device = f"{floor.site}/L1/{unique('T')}"
    result = erp("mqtt-terminal", "add", device, "-c", str(config), env=env)
    assert result.exit_code == 0, result.output
    printed = dict(
        line.strip().split(None, 1) for line in result.output.splitlines()[1:] if "  " in line
    )
    address = parse_device_id(device)
    assert printed["username"] == address.device

    agent = Agent(parse_config_file(config))
    hub = DeviceHub(agent)
    hub.start()
    try:
        assert hub.terminals is not None
        assert hub.terminals.bridge.wait_connected(10), broker.log_tail()
        sim = TerminalSimulator(
            broker.host,
            broker.port,
            address,
            username=printed["username"],
            password=printed["password"],
        ).start()
        wait_until(
            lambda: address.device_id in hub.terminals.bridge.device_statuses(),  # type: ignore[union-attr]
            5,
            "the terminal's status at the edge agent",
        )
        sim.stop()
    finally:
        hub.stop()
        agent.stop()

    result = erp(
        "mqtt-terminal", "remove", device, "--url", f"mqtt://{broker.host}:{broker.port}", env=env
    )
    assert result.exit_code == 0, result.output
    result = erp("mqtt-terminal", "remove", device, "-c", str(config), env=env)
    assert result.exit_code == 1
    assert "unknown_client" in result.output
    result = erp("mqtt-bridge", "remove", "-c", str(config), env=env)
    assert result.exit_code == 0, result.output


def test_cli_refuses_a_bad_device_name_with_its_code(floor: Floor) -> None:
    setup = floor.broker.dynsec
    assert setup is not None
    url = f"mqtt://{floor.broker.host}:{floor.broker.port}"
    env = {"ERP_MQTT_ADMIN_PASSWORD": setup.admin_password}
    result = erp("mqtt-terminal", "add", f"{floor.site}/L1/T#1", "--url", url, env=env)
    assert result.exit_code == 1
    assert "error (bad_username)" in result.output
    result = erp("mqtt-terminal", "add", f"{floor.site}/L1/T1", "--url", url, env={})
    assert result.exit_code != 0  # no admin password and no terminal to ask on
    assert not floor.admin.client_exists("T1")


def parse_config_file(path: Path) -> Any:
    from edge_agent.config import load_config

    return load_config(path)


def base_config(**mqtt: Any) -> dict[str, Any]:
    return {
        "edge": {"id": "e1"},
        "cloud": {"url": "http://127.0.0.1:9", "api_key": "k"},
        "mqtt": {"url": "mqtt://broker:1883", **mqtt},
    }


def test_config_carries_the_bridge_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ERP_EDGE_MQTT_PASSWORD", raising=False)
    anonymous = parse_config(base_config()).mqtt
    assert anonymous is not None and anonymous.username is None
    assert anonymous.url == "mqtt://broker:1883"

    (tmp_path / "pw").write_text("s3cret-Pw_1\n")
    mqtt = parse_config(base_config(username="edge-1", password_file="pw"), tmp_path).mqtt
    assert mqtt is not None
    assert (mqtt.username, mqtt.password) == ("edge-1", "s3cret-Pw_1")
    assert mqtt.url == "mqtt://broker:1883"  # the credentials are kept apart from it
    assert "s3cret" not in repr(mqtt)

    odd = parse_config(base_config(username="edge-1", password="p@ss:w/rd"), tmp_path).mqtt
    assert odd is not None and odd.password == "p@ss:w/rd"  # any character: not in a URL
    in_url = parse_config(base_config(url="mqtt://edge-1:p%40ss@broker:1883"), tmp_path).mqtt
    assert in_url is not None and (in_url.username, in_url.password) == ("edge-1", "p@ss")
    assert in_url.url == "mqtt://broker:1883"

    monkeypatch.setenv("ERP_EDGE_MQTT_PASSWORD", "from-env")
    mqtt = parse_config(base_config(username="edge-1", password_file="pw"), tmp_path).mqtt
    assert mqtt is not None and mqtt.password == "from-env"


@pytest.mark.parametrize(
    ("mqtt", "message"),
    [
        ({"username": "edge-1"}, "needs a password"),
        ({"username": "edge-1", "password_file": "missing"}, "needs a password"),
        ({"username": "edge/1", "password": "p"}, "not allowed in a username"),
        ({"username": "edge+1", "password": "p"}, "not allowed in a username"),
        ({"password": "p"}, "needs a username"),
        ({"url": "mqtt://u:p@broker:1883", "username": "edge-1", "password": "p"}, "not both"),
    ],
)
def test_config_refuses_unusable_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mqtt: dict[str, Any], message: str
) -> None:
    monkeypatch.delenv("ERP_EDGE_MQTT_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=message):
        parse_config(base_config(**mqtt), tmp_path)


# -- the compose broker --------------------------------------------------------------------


def settings_of(conf: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in conf.splitlines() if line and line[0] != "#")
    return {pair[0]: pair[1].strip() for pair in pairs if len(pair) == 2}


def test_compose_broker_shares_the_test_brokers_access_settings() -> None:
    shipped = settings_of(COMPOSE_CONF.read_text())
    for key, value in DYNSEC_SETTINGS.items():
        assert shipped.get(key) == value, f"compose mosquitto.conf: {key}"
    assert shipped["plugin"].endswith("/mosquitto_dynamic_security.so")
    assert shipped["plugin_opt_config_file"].startswith("/mosquitto/data/")  # the volume


def test_the_compose_broker_config_runs_and_refuses_anonymous_clients() -> None:
    """compose/mosquitto/mosquitto.conf itself, on this machine's Mosquitto (listener,
    paths and plugin moved here): it starts, refuses anonymous clients and serves the
    dynsec admin."""
    try:
        broker = start_broker(dynsec=True, template=COMPOSE_CONF)
    except BrokerError as error:
        if CI:
            pytest.fail(f"CI=true and the compose broker config does not run: {error}")
        pytest.skip(f"Mosquitto with dynsec not available: {error}")
    try:
        assert broker.dynsec is not None
        anonymous = Probe(broker).connect()
        assert anonymous.connack.value == NOT_AUTHORIZED
        setup = broker.dynsec
        with DynsecAdmin(broker.host, broker.port, "admin", setup.admin_password) as admin:
            admin.default_deny()
            assert admin.default_acl_access() == dict.fromkeys(ACL_TYPES, False)
        log = broker.log_path.read_text(errors="replace")
        assert "Error" not in log, log
    finally:
        broker.close()
