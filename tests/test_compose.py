"""compose/compose.yml must only run `erp` commands and options that exist.

A renamed CLI command or option would otherwise only show up when the stack
is started; here it fails the ordinary test run.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE_DIR = Path(__file__).resolve().parent.parent / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yml"
MOSQUITTO_CONF_IN_CONTAINER = "/mosquitto/config/mosquitto.conf"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _erp_commands() -> list[tuple[str, list[str]]]:
    """(service, argv after `erp`) for every service whose command runs `erp`."""
    found = []
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if command is None:
            continue
        assert isinstance(command, list), f"service {name!r}: use list form for `command:`"
        if command and command[0] == "erp":
            found.append((name, [str(arg) for arg in command[1:]]))
    return found


ERP_COMMANDS = _erp_commands()


@pytest.fixture(scope="module")
def erp_cli() -> Any:
    import typer

    from erp.cli import app

    return typer.main.get_command(app)


def test_core_services_exist() -> None:
    services = _compose()["services"]
    for name in ("api", "migrate", "postgres", "mosquitto"):
        assert name in services, f"compose.yml has no {name!r} service"


@pytest.mark.parametrize(("service", "argv"), ERP_COMMANDS, ids=[s for s, _ in ERP_COMMANDS])
def test_compose_command_exists_in_cli(erp_cli: Any, service: str, argv: list[str]) -> None:
    # Duck-typed: recent Typer vendors its own click, so its groups are not
    # `click.Group` instances; a group is whatever has a `commands` dict.
    def is_group(cmd: Any) -> bool:
        return isinstance(getattr(cmd, "commands", None), dict)

    cmd, path = erp_cli, ["erp"]
    args = list(argv)
    # Descend through groups while the next word is a subcommand name.
    while is_group(cmd) and args and not args[0].startswith("-"):
        name = args.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, (
            f"service {service!r} runs `{' '.join([*path, name])}`, but `{' '.join(path)}` "
            f"has no command {name!r} (has: {sorted(cmd.commands)})"
        )
        cmd, path = sub, [*path, name]
    assert not is_group(cmd), (
        f"service {service!r} runs `{' '.join(path)}`, which is a command group, not a command"
    )

    known = {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}
    for arg in args:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            assert option in known, (
                f"service {service!r} passes {option} to `{' '.join(path)}`, "
                f"which only accepts {sorted(o for o in known if o.startswith('--'))}"
            )


def test_erp_services_found() -> None:
    services = {service for service, _ in ERP_COMMANDS}
    assert {"api", "migrate"} <= services, f"expected api and migrate to run `erp`, got {services}"


def test_mosquitto_config_does_not_drop_queued_messages() -> None:
    mosquitto = _compose()["services"]["mosquitto"]
    mounts = [str(v).split(":") for v in mosquitto.get("volumes", [])]
    sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == MOSQUITTO_CONF_IN_CONTAINER]
    assert sources, f"mosquitto service does not mount a config at {MOSQUITTO_CONF_IN_CONTAINER}"

    conf = (COMPOSE_DIR / sources[0]).read_text()
    settings = {}
    for line in conf.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            settings[key] = value.strip()
    # Mosquitto's default (1000) silently drops QoS 1 messages once a slow
    # subscriber's queue is full; 0 means unlimited.
    assert settings.get("max_queued_messages") == "0", (
        f"{sources[0]}: set `max_queued_messages 0` (got {settings.get('max_queued_messages')!r})"
    )


def _conf_settings(path: Path) -> dict[str, str]:
    settings = {}
    for line in path.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            settings[key] = value.strip()
    return settings


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source, for `source:target[:mode]` volumes."""
    parts = [str(v).split(":") for v in service.get("volumes", [])]
    return {p[1]: p[0] for p in parts if len(p) >= 2}


def test_mosquitto_denies_by_default_with_dynsec() -> None:
    services = _compose()["services"]
    mosquitto, init = services["mosquitto"], services["mosquitto-init"]
    settings = _conf_settings(COMPOSE_DIR / _mounts(mosquitto)[MOSQUITTO_CONF_IN_CONTAINER])
    assert settings.get("allow_anonymous") == "false"
    assert settings.get("plugin") == "/usr/lib/mosquitto_dynamic_security.so"  # in the image
    dynsec_file = settings["plugin_opt_config_file"]
    # The broker rewrites the file on every change: it must be on the data volume, which
    # the init service writes it to first (same volume, same image, same path).
    data = [target for target in _mounts(mosquitto) if dynsec_file.startswith(target + "/")]
    assert data, f"{dynsec_file} is not on a volume of the mosquitto service"
    assert _mounts(init)[data[0]] == _mounts(mosquitto)[data[0]]
    assert init["image"] == mosquitto["image"]
    assert "mosquitto_ctrl dynsec init $$F admin" in " ".join(init["command"])
    assert f"F={dynsec_file};" in " ".join(init["command"])
    assert "MQTT_ADMIN_PASSWORD" in init["environment"]
    assert mosquitto["depends_on"]["mosquitto-init"] == {
        "condition": "service_completed_successfully"
    }


def test_edge_bridge_has_its_own_identity_with_a_writable_password_file() -> None:
    import tomllib

    edge = _compose()["services"]["edge"]
    mounts = _mounts(edge)
    config_in_container = next(t for t, s in mounts.items() if s.endswith("edge.toml"))
    mqtt = tomllib.loads((COMPOSE_DIR / mounts[config_in_container]).read_text())["mqtt"]
    assert mqtt["username"]
    password_file = mqtt["password_file"]
    volumes = [t for t, s in mounts.items() if not s.startswith(".")]  # named, writable
    assert any(password_file.startswith(t + "/") for t in volumes), (
        f"{password_file} must be on a named volume of the edge service, where "
        "`erp edge mqtt-bridge add` can write it"
    )


def test_mqtt_provisioning_commands_exist(erp_cli: Any) -> None:
    edge = erp_cli.commands["edge"]
    for group in ("mqtt-terminal", "mqtt-bridge"):
        assert set(edge.commands[group].commands) == {"add", "remove"}
