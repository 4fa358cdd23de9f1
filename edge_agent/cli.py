"""`erp edge ...`: run the agent, see its state, re-send a parked event."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.config import ConfigError, EdgeConfig, load_config
from edge_agent.outbox import Outbox

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
