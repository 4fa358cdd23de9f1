"""`erp edge ...`: run the agent, see its state, re-send a parked event, and provision
the MQTT identities of terminals and of the edge bridge on a dynsec broker."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.config import ConfigError, EdgeConfig, MqttConfig, load_config, load_mqtt_config
from edge_agent.outbox import Outbox
from firmware_bridges.terminal.dynsec import (
    DynsecAdmin,
    DynsecError,
    MqttIdentity,
    parse_device_id,
)

edge_app = typer.Typer(help="The shop-floor edge agent.", no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The agent's TOML config.")]


def _config(path: Path) -> EdgeConfig:
    try:
        return load_config(path)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


def _outbox(cfg: EdgeConfig) -> Outbox:
    """The agent's outbox, opened beside a running agent (SQLite WAL allows it)."""
    from edge_agent import __version__

    return Outbox(
        cfg.outbox_path,
        edge_id=cfg.edge_id,
        identity=cfg.edge_id,
        disk_cap_bytes=cfg.disk_cap_bytes,
        agent_version=__version__,
    )


@edge_app.command("run")
def run(config: ConfigOpt) -> None:
    """Capture from the configured devices and sync to the cloud until stopped."""
    from edge_agent.devices import DeviceHub

    # the agent's lines (a failing sync, a purge, a refused capture) go to stderr
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = _config(config)
    from edge_agent.agent import Agent

    agent = Agent(cfg)
    hub = DeviceHub(agent)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent.start()
    hub.start()
    typer.echo(
        f"edge {cfg.edge_id}: {len(cfg.stations)} workstation(s), syncing to {cfg.cloud_url}"
    )
    stop.wait()
    hub.stop()
    agent.stop()


@edge_app.command("status")
def status(config: ConfigOpt) -> None:
    """Backlog, last sync, and the parked and held events with their reasons."""
    with _outbox(_config(config)) as outbox:
        s = outbox.status()
    age = f", oldest {s.oldest_pending_age_s:.0f} s old" if s.oldest_pending_age_s else ""
    typer.echo(f"backlog: {s.backlog} event(s){age}")
    typer.echo(f"last sync: {s.last_sync_at or 'never'}; last good: {s.last_sync_ok_at or 'never'}")
    if s.last_sync_error:
        typer.echo(f"last error: {s.last_sync_error}")
    typer.echo(
        f"outbox: {s.bytes_used / 1e6:.1f} MB of {s.disk_cap_bytes / 1e6:.0f} MB"
        f"{' — FULL: scans are refused' if s.full else ''}"
    )
    for title, count, rows in (
        ("parked", s.parked_count, s.parked),
        ("held", s.held_count, s.held),
    ):
        typer.echo(f"{title}: {count}")
        for ev in rows:
            typer.echo(f"  {ev.event_id} seq {ev.seq} {ev.type}: {ev.code} — {ev.message}")


@edge_app.command("retry")
def retry(config: ConfigOpt, event_id: str) -> None:
    """Send a parked or held event again, with the same id (after fixing its cause)."""
    from edge_agent.outbox import OutboxError

    with _outbox(_config(config)) as outbox:
        try:
            outbox.retry(event_id)
        except OutboxError as error:
            typer.echo(f"error ({error.code}): {error}", err=True)
            raise typer.Exit(1) from error
    typer.echo(f"{event_id} will be sent again")


@edge_app.command("enroll")
def enroll(
    config: ConfigOpt,
    code: Annotated[str, typer.Argument(help="The one-time code from the portal or CLI.")],
    name: Annotated[str | None, typer.Option(help="The device's name (default: edge id).")] = None,
) -> None:
    """Exchange a one-time enrollment code for this edge's device key, written to the
    config's `cloud.api_key_file` (mode 600); the key is never shown."""
    import os
    import tomllib

    raw = tomllib.loads(config.read_text(encoding="utf-8"))
    cloud, edge = raw.get("cloud", {}), raw.get("edge", {})
    if "api_key_file" not in cloud or "url" not in cloud:
        typer.echo("error: the config needs [cloud] url and api_key_file to enroll", err=True)
        raise typer.Exit(2)
    key_file = config.parent / cloud["api_key_file"]
    try:
        device_id, key = enroll_device(cloud["url"], code, name or edge.get("id", "edge"))
    except EnrollmentRefused as error:
        typer.echo(f"error: enrollment refused: {error}", err=True)
        raise typer.Exit(1) from error
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    typer.echo(f"enrolled as device {device_id}; key written to {key_file}")


class EnrollmentRefused(Exception):
    pass


def enroll_device(cloud_url: str, code: str, name: str) -> tuple[str, str]:
    """Exchange a one-time enrollment code for (device id, device key)."""
    import httpx

    response = httpx.post(
        cloud_url.rstrip("/") + "/api/v1/devices/enroll",
        json={"code": code, "name": name},
        timeout=30,
    )
    if response.status_code != 201:
        raise EnrollmentRefused(response.json().get("detail", response.text))
    body = response.json()
    return body["device_id"], body["key"]


# -- MQTT identities on a default-deny broker (Mosquitto's dynamic security plugin) --------

mqtt_terminal_app = typer.Typer(
    help="MQTT identities of work-reporting terminals (Mosquitto dynsec).", no_args_is_help=True
)
mqtt_bridge_app = typer.Typer(
    help="The edge bridge's own MQTT identity (Mosquitto dynsec).", no_args_is_help=True
)
edge_app.add_typer(mqtt_terminal_app, name="mqtt-terminal")
edge_app.add_typer(mqtt_bridge_app, name="mqtt-bridge")

BrokerUrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="The broker, mqtt://host:port (default: [mqtt] url of --config)."),
]
MqttConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="The agent's TOML config ([mqtt] table).")
]
AdminOpt = Annotated[
    str,
    typer.Option(
        "--admin",
        envvar="ERP_MQTT_ADMIN_USER",
        help="The dynsec admin (password from $ERP_MQTT_ADMIN_PASSWORD, else asked).",
    ),
]
DeviceArg = Annotated[
    str, typer.Argument(help="SITE/LINE/DEVICE; the device name becomes its MQTT username.")
]


def _mqtt_config(path: Path) -> MqttConfig:
    try:
        return load_mqtt_config(path)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


def _dynsec(url: str | None, config: Path | None, admin: str) -> DynsecAdmin:
    """The admin's connection to the broker of --url, else of the config's [mqtt] url."""
    import os
    from urllib.parse import urlparse

    if url is None:
        if config is None:
            typer.echo("error: give the broker with --url mqtt://host:port or --config", err=True)
            raise typer.Exit(2)
        url = _mqtt_config(config).url
    broker = urlparse(url)
    password = os.environ.get("ERP_MQTT_ADMIN_PASSWORD") or typer.prompt(
        f"password of the MQTT admin {admin!r}", hide_input=True
    )
    return DynsecAdmin(broker.hostname or "127.0.0.1", broker.port or 1883, admin, password)


def _fail(error: DynsecError) -> typer.Exit:
    typer.echo(f"error ({error.code}): {error}", err=True)
    return typer.Exit(1)


def _echo_identity(title: str, identity: MqttIdentity, *, password: bool = True) -> None:
    typer.echo(title)
    typer.echo(f"  username   {identity.username}")
    if password:
        typer.echo(f"  password   {identity.password}")
    typer.echo(f"  client id  {identity.client_id}")
    typer.echo(f"  publish    {', '.join(identity.publish)}")
    typer.echo(f"  subscribe  {', '.join(identity.subscribe)}")


@mqtt_terminal_app.command("add")
def mqtt_terminal_add(
    device: DeviceArg,
    url: BrokerUrlOpt = None,
    config: MqttConfigOpt = None,
    admin: AdminOpt = "admin",
) -> None:
    """Create a terminal's MQTT identity: username = its device name, a random password
    (printed once: put it in the terminal now) and a role for its own topics only."""
    try:
        address = parse_device_id(device)
        with _dynsec(url, config, admin) as dynsec:
            dynsec.default_deny()
            identity = dynsec.add_terminal(address)
    except DynsecError as error:
        raise _fail(error) from error
    _echo_identity(
        f"MQTT identity of terminal {address.device_id} (the password is not shown again):",
        identity,
    )


@mqtt_terminal_app.command("remove")
def mqtt_terminal_remove(
    device: DeviceArg,
    url: BrokerUrlOpt = None,
    config: MqttConfigOpt = None,
    admin: AdminOpt = "admin",
) -> None:
    """Delete a terminal's MQTT identity; the broker disconnects it at once."""
    try:
        address = parse_device_id(device)
        with _dynsec(url, config, admin) as dynsec:
            dynsec.remove_terminal(address)
    except DynsecError as error:
        raise _fail(error) from error
    typer.echo(f"removed the MQTT identity of terminal {address.device_id}")


@mqtt_bridge_app.command("add")
def mqtt_bridge_add(config: ConfigOpt, url: BrokerUrlOpt = None, admin: AdminOpt = "admin") -> None:
    """Create this edge's bridge identity from the config's [mqtt] username, client_id
    and site. The password goes to [mqtt] password_file (mode 600) when there is one,
    otherwise it is printed once (for $ERP_EDGE_MQTT_PASSWORD)."""
    import os

    mqtt = _mqtt_config(config)
    if mqtt.username is None:
        typer.echo("error: set [mqtt] username (the bridge's MQTT username) first", err=True)
        raise typer.Exit(2)
    try:
        with _dynsec(url or mqtt.url, None, admin) as dynsec:
            dynsec.default_deny()
            identity = dynsec.add_bridge(mqtt.username, mqtt.client_id, mqtt.site)
    except DynsecError as error:
        raise _fail(error) from error
    title = f"MQTT identity of the edge bridge of site {mqtt.site}"
    if mqtt.password_file is None:
        _echo_identity(f"{title} (the password is not shown again):", identity)
        return
    fd = os.open(mqtt.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(identity.password + "\n")
    _echo_identity(f"{title}:", identity, password=False)
    typer.echo(f"  password   written to {mqtt.password_file}")


@mqtt_bridge_app.command("remove")
def mqtt_bridge_remove(
    config: ConfigOpt, url: BrokerUrlOpt = None, admin: AdminOpt = "admin"
) -> None:
    """Delete this edge's bridge identity; the broker disconnects the bridge at once."""
    mqtt = _mqtt_config(config)
    if mqtt.username is None:
        typer.echo("error: the config has no [mqtt] username", err=True)
        raise typer.Exit(2)
    try:
        with _dynsec(url or mqtt.url, None, admin) as dynsec:
            dynsec.remove_bridge(mqtt.username)
    except DynsecError as error:
        raise _fail(error) from error
    typer.echo(f"removed the MQTT identity {mqtt.username!r} of the edge bridge")
