"""The edge agent's configuration: one TOML file (see `docs/edge.example.toml`).

The device credential may be given inline (`cloud.api_key`), in a file
(`cloud.api_key_file`, e.g. written by enrollment) or in ERP_EDGE_API_KEY; the
environment wins, so a secret need not sit in the file. The same goes for the MQTT
bridge's password on a default-deny broker: `mqtt.password_file` or
ERP_EDGE_MQTT_PASSWORD (wins), with `mqtt.username`; without a username the bridge
connects anonymously (the demo's embedded broker).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from edge_agent.sessions import MODES, Workstation
from firmware_bridges.terminal.dynsec import DynsecError, check_username

TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


class ConfigError(Exception):
    code = "bad_config"


@dataclass(frozen=True)
class ScannerConfig:
    port: str  # a stable path (/dev/serial/by-id/...), a glob, or a pyserial URL
    baudrate: int = 9600
    terminators: tuple[bytes, ...] = (b"\r",)
    answers: str = "none"  # none | ack (ACK/NAK bytes)


@dataclass(frozen=True)
class StationConfig:
    station: Workstation
    scanner: ScannerConfig | None = None
    device_id: str = ""


@dataclass(frozen=True)
class MqttConfig:
    url: str = DEFAULT_MQTT_URL  # the broker, without credentials

    site: str = "plant"
    client_id: str = ""
    version: int = 5  # 3 for an MQTT 3.1.1 broker (the demo's embedded one)
    # terminal device id → workstation id (its warehouse and work centre)
    terminals: dict[str, str] = field(default_factory=dict)
    # The bridge's own dynsec client (`erp edge mqtt-bridge add`); None = anonymous.
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None  # where `erp edge mqtt-bridge add` writes it


@dataclass(frozen=True)
class EdgeConfig:
    edge_id: str
    cloud_url: str
    api_key: str
    outbox_path: Path
    masterdata_path: Path
    disk_cap_bytes: int = 512 * 1024 * 1024
    min_free_bytes: int = 64 * 1024 * 1024
    # delivered events: kept this long after the cloud confirmed them, and never purged
    # within dedup_window of their capture (outbox/retention.py); purged this often
    keep_sent_s: float = 24 * 3600.0
    dedup_window_s: float = 15 * 60.0
    purge_every_s: float = 60.0
    batch_size: int = 500
    heartbeat_s: float = 30.0
    masterdata_refresh_s: float = 60.0
    stations: tuple[StationConfig, ...] = ()
    mqtt: MqttConfig | None = None

    def station(self, station_id: str) -> StationConfig:
        for s in self.stations:
            if s.station.id == station_id:
                return s
        raise ConfigError(f"no workstation {station_id!r} in the config")


def load_config(path: str | Path) -> EdgeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    return parse_config(raw, base=path.parent)


def load_mqtt_config(path: str | Path) -> MqttConfig:
    """Only the [mqtt] table (with the edge id), the password optional: what the MQTT
    provisioning commands need, before the bridge has a password."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    if "mqtt" not in raw:
        raise ConfigError(f"{path} has no [mqtt] table")
    edge_id = _text(_table(raw, "edge"), "id", "edge")
    return _mqtt(raw["mqtt"], edge_id, path.parent, need_password=False)


def parse_config(raw: dict[str, Any], base: Path = Path(".")) -> EdgeConfig:
    edge, cloud = _table(raw, "edge"), _table(raw, "cloud")
    edge_id = _text(edge, "id", "edge")
    return EdgeConfig(
        edge_id=edge_id,
        cloud_url=_text(cloud, "url", "cloud"),
        api_key=_api_key(cloud, base),
        outbox_path=base / edge.get("outbox", f"var/edge/{edge_id}/outbox.sqlite3"),
        masterdata_path=base / edge.get("masterdata", f"var/edge/{edge_id}/masterdata.json"),
        disk_cap_bytes=int(edge.get("disk_cap_mb", 512)) * 1024 * 1024,
        min_free_bytes=int(edge.get("min_free_mb", 64)) * 1024 * 1024,
        keep_sent_s=_seconds(edge, "keep_sent_s", 24 * 3600),
        dedup_window_s=_seconds(edge, "dedup_window_s", 15 * 60),
        purge_every_s=_seconds(edge, "purge_every_s", 60, positive=True),
        batch_size=int(cloud.get("batch_size", 500)),
        heartbeat_s=float(cloud.get("heartbeat_s", 30)),
        masterdata_refresh_s=float(cloud.get("masterdata_refresh_s", 60)),
        stations=tuple(_station(s) for s in raw.get("workstations", [])),
        mqtt=_mqtt(raw["mqtt"], edge_id, base) if "mqtt" in raw else None,
    )


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"the config needs a [{name}] table")
    return value


def _seconds(edge: dict[str, Any], key: str, default: float, positive: bool = False) -> float:
    value = edge.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[edge] {key} must be a number of seconds, got {value!r}")
    if not 0 <= value < float("inf") or (positive and value == 0):
        raise ConfigError(f"[edge] {key} must be {'above' if positive else 'at least'} 0")
    return float(value)


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f'[{where}] needs {key} = "..."')
    return value


def _api_key(cloud: dict[str, Any], base: Path) -> str:
    if os.environ.get("ERP_EDGE_API_KEY"):
        return os.environ["ERP_EDGE_API_KEY"]
    if "api_key_file" in cloud:
        return (base / cloud["api_key_file"]).read_text(encoding="utf-8").strip()
    return _text(cloud, "api_key", "cloud")


def _station(raw: dict[str, Any]) -> StationConfig:
    station_id = _text(raw, "id", "workstations")
    mode = raw.get("mode", "issue")
    if mode not in MODES:
        raise ConfigError(f"workstation {station_id}: mode must be one of {', '.join(MODES)}")
    station = Workstation(
        id=station_id,
        warehouse=_text(raw, "warehouse", f"workstation {station_id}"),
        work_center=raw.get("work_center"),
        supplier=raw.get("supplier"),
        mode=mode,
        step_timeout_s=float(raw.get("step_timeout_s", 120)),
    )
    scanner = None
    if "scanner" in raw:
        s = raw["scanner"]
        names = s.get("terminators", ["CR"])
        unknown = [n for n in names if n not in TERMINATORS]
        if unknown:
            raise ConfigError(f"workstation {station_id}: unknown terminators {unknown}")
        scanner = ScannerConfig(
            port=_text(s, "port", f"workstation {station_id} scanner"),
            baudrate=int(s.get("baudrate", 9600)),
            terminators=tuple(TERMINATORS[n] for n in names),
            answers=s.get("answers", "none"),
        )
    return StationConfig(station, scanner, raw.get("device_id", f"scanner-{station_id}"))


def _mqtt(raw: dict[str, Any], edge_id: str, base: Path, need_password: bool = True) -> MqttConfig:
    url = raw.get("url", DEFAULT_MQTT_URL)
    username, password = _mqtt_credentials(raw, base, need_password)
    parsed = urlparse(url)
    if parsed.username is not None:  # credentials in the URL: kept apart from it
        if username is not None:
            raise ConfigError("[mqtt]: give the credentials in url or as username, not both")
        username, password = unquote(parsed.username), unquote(parsed.password or "") or None
        url = parsed._replace(netloc=parsed.netloc.rpartition("@")[2]).geturl()
    return MqttConfig(
        url=url,
        site=raw.get("site", "plant"),
        client_id=raw.get("client_id", f"erp-edge-{edge_id}"),
        version=int(raw.get("version", 5)),
        terminals=dict(raw.get("terminals", {})),
        username=username,
        password=password,
        password_file=base / raw["password_file"] if "password_file" in raw else None,
    )


def _mqtt_credentials(
    raw: dict[str, Any], base: Path, need_password: bool
) -> tuple[str | None, str | None]:
    """(username, password) of the bridge: the password from $ERP_EDGE_MQTT_PASSWORD,
    else `password_file`, else `password`; (None, None) for an anonymous bridge."""
    username = raw.get("username")
    if username is None:
        if "password" in raw or "password_file" in raw:
            raise ConfigError("[mqtt]: a password needs a username")
        return None, None
    try:
        check_username(str(username), "[mqtt] username")
    except DynsecError as error:
        raise ConfigError(str(error)) from error
    password = (
        os.environ.get("ERP_EDGE_MQTT_PASSWORD") or _password_file(raw, base) or raw.get("password")
    )
    if not password:
        if need_password:
            raise ConfigError(
                f"[mqtt] username {username!r} needs a password (password_file, or "
                "$ERP_EDGE_MQTT_PASSWORD): `erp edge mqtt-bridge add` makes one"
            )
        return str(username), None
    return str(username), password


def _password_file(raw: dict[str, Any], base: Path) -> str | None:
    if "password_file" not in raw:
        return None
    try:
        return (base / raw["password_file"]).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None  # not provisioned yet
    except OSError as error:
        raise ConfigError(f"[mqtt] password_file: {error}") from error
