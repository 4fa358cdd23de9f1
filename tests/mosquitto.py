"""A private Mosquitto broker for the test session.

The broker that may already run on 127.0.0.1:1883 has the default configuration, whose
`max_queued_messages 1000` silently drops QoS 1 messages for a slow or absent
subscriber. So the tests start their own `mosquitto` on a free loopback port with the
durability settings of compose/mosquitto/mosquitto.conf (`BROKER_SETTINGS`, checked
against that file by the tests), persistence in a temporary directory, and stop it at
the end of the session.

Use it from a test module:

    from tests.mosquitto import mosquitto_broker  # noqa: F401  (pytest fixture)

    def test_x(mosquitto_broker: MosquittoBroker) -> None:
        connect(mosquitto_broker.host, mosquitto_broker.port)

`mosquitto_dynsec_broker` is a second one that denies by default, like the compose
broker: anonymous clients refused, Mosquitto's dynamic security plugin loaded with a
file made by `mosquitto_ctrl dynsec init` (its admin in `broker.dynsec`). Provision
clients through it with firmware_bridges/terminal/dynsec.py.

Without the `mosquitto` binary (or, for the dynsec broker, the plugin and
`mosquitto_ctrl`, which Debian ships in the same `mosquitto` package) the tests skip
with the reason, or fail when CI=true (CI must never pass by skipping).
"""

import atexit
import getpass
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Durability settings shared with compose/mosquitto/mosquitto.conf. 0 = no limit on the
# per-client queue: the default 1000 drops QoS 1 messages without a word.
BROKER_SETTINGS = {
    "persistence": "true",
    "max_queued_messages": "0",
    "max_inflight_messages": "20",
}
# The compose broker's access settings (compose/mosquitto/mosquitto.conf), which the
# dynsec test broker shares; paths differ, so only these are compared.
DYNSEC_SETTINGS = {"allow_anonymous": "false", "per_listener_settings": "false"}
DYNSEC_PLUGIN = "mosquitto_dynamic_security.so"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class BrokerError(RuntimeError):
    """The private broker could not be started; str() says why."""


def find_mosquitto() -> str | None:
    """The mosquitto binary from PATH or the usual sbin directories."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_dynsec_plugin() -> str | None:
    """Mosquitto's dynamic security plugin: Debian's multiarch path, or /usr/lib (the
    eclipse-mosquitto image), or /usr/local/lib (a source build)."""
    candidates = [
        *sorted(glob.glob(f"/usr/lib/*/{DYNSEC_PLUGIN}")),
        f"/usr/lib/{DYNSEC_PLUGIN}",
        f"/usr/local/lib/{DYNSEC_PLUGIN}",
    ]
    return next((path for path in candidates if os.path.isfile(path)), None)


def find_mosquitto_ctrl() -> str | None:
    return shutil.which("mosquitto_ctrl") or next(
        (
            p
            for p in ("/usr/bin/mosquitto_ctrl", "/usr/local/bin/mosquitto_ctrl")
            if os.access(p, os.X_OK)
        ),
        None,
    )


@dataclass(frozen=True)
class DynsecSetup:
    """The plugin, `mosquitto_ctrl`, and the admin that `dynsec init` creates."""

    plugin: str
    ctrl: str
    admin_username: str = "admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)

    @classmethod
    def find(cls) -> "DynsecSetup":
        plugin, ctrl = find_dynsec_plugin(), find_mosquitto_ctrl()
        if plugin is None:
            raise BrokerError(
                f"Mosquitto's dynamic security plugin ({DYNSEC_PLUGIN}) is not installed; "
                "on Debian it ships with the `mosquitto` package"
            )
        if ctrl is None:
            raise BrokerError("`mosquitto_ctrl` is not installed (Debian: package `mosquitto`)")
        return cls(plugin, ctrl)

    def init_file(self, path: Path) -> None:
        """`mosquitto_ctrl dynsec init`: the file with the admin (once; kept on restart)."""
        if path.exists():
            return
        done = subprocess.run(
            [self.ctrl, "dynsec", "init", str(path), self.admin_username, self.admin_password],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not path.exists():
            raise BrokerError(f"mosquitto_ctrl dynsec init failed: {done.stderr or done.stdout}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _access(dynsec: DynsecSetup | None, dynsec_file: Path) -> str:
    if dynsec is None:
        return "allow_anonymous true"
    settings = "\n".join(f"{key} {value}" for key, value in DYNSEC_SETTINGS.items())
    return f"{settings}\nplugin {dynsec.plugin}\nplugin_opt_config_file {dynsec_file}"


def _config(port: int, data_dir: Path, log_path: Path, access: str) -> str:
    settings = "\n".join(f"{key} {value}" for key, value in BROKER_SETTINGS.items())
    return f"""\
# Written by tests/mosquitto.py for one test session.
{access}
listener {port} 127.0.0.1
persistence_location {data_dir}/
# Queued messages must survive a restart() even if the broker is killed: save often.
autosave_interval 1
{settings}
log_dest file {log_path}
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %H:%M:%S
# As root, mosquitto would switch to the `mosquitto` user, who cannot write here.
user {getpass.getuser()}
"""


def _adapt(
    template: str, port: int, data_dir: Path, log_path: Path, plugin_lines: dict[str, str]
) -> str:
    """A shipped config (compose's) made runnable here: its listener, paths and plugin
    moved to this machine and this session; every other setting kept as shipped."""
    local = {
        "listener": f"listener {port} 127.0.0.1",
        "persistence_location": f"persistence_location {data_dir}/",
        **plugin_lines,
    }
    lines = [local.get(line.split(" ", 1)[0], line) for line in template.splitlines()]
    return "\n".join(
        [*lines, f"log_dest file {log_path}", "log_type all", f"user {getpass.getuser()}", ""]
    )


@dataclass
class MosquittoBroker:
    """A running private broker; `restart()` keeps port, persistence and sessions."""

    binary: str
    base: Path
    host: str = "127.0.0.1"
    port: int = 0
    dynsec: DynsecSetup | None = None  # None: anonymous access, no ACLs
    template: Path | None = None  # a shipped config to run instead of the generated one
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf_path(self) -> Path:
        return self.base / "mosquitto.conf"

    @property
    def dynsec_file(self) -> Path:
        return self.base / "data" / "dynamic-security.json"

    @property
    def log_path(self) -> Path:
        return self.base / "mosquitto.log"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        if self.process is not None:
            return
        if not self.port:
            self.port = _free_port()
        data_dir = self.base / "data"
        data_dir.mkdir(exist_ok=True)
        if self.dynsec is not None:
            self.dynsec.init_file(self.dynsec_file)
        self.conf_path.write_text(self._config_text(data_dir))
        with (self.base / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_accepting()

    def _config_text(self, data_dir: Path) -> str:
        if self.template is None:
            access = _access(self.dynsec, self.dynsec_file)
            return _config(self.port, data_dir, self.log_path, access)
        plugin_lines = {}
        if self.dynsec is not None:
            plugin_lines = {
                "plugin": f"plugin {self.dynsec.plugin}",
                "plugin_opt_config_file": f"plugin_opt_config_file {self.dynsec_file}",
            }
        template = self.template.read_text()
        return _adapt(template, self.port, data_dir, self.log_path, plugin_lines)

    def _wait_accepting(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                stderr = (self.base / "stderr.log").read_text(errors="replace").strip()
                raise BrokerError(
                    f"mosquitto exited at start (port {self.port} taken?): "
                    f"{stderr}\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not accept on port {self.port} in {START_TIMEOUT_S} s")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistence file first."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port with the same persistence."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_broker(*, dynsec: bool = False, template: Path | None = None) -> MosquittoBroker:
    """Start a private broker (default deny with `dynsec`; `template`: run that config
    file, adapted by `_adapt`); BrokerError if mosquitto (or the plugin) is missing or
    will not start."""
    binary = find_mosquitto()
    if binary is None:
        raise BrokerError("the `mosquitto` binary is not installed (apt-get install mosquitto)")
    setup = DynsecSetup.find() if dynsec else None
    base = Path(tempfile.mkdtemp(prefix="erp-mosquitto-"))
    broker = MosquittoBroker(binary=binary, base=base, dynsec=setup, template=template)
    try:
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


def _session_broker(*, dynsec: bool) -> Iterator[MosquittoBroker]:
    try:
        broker = start_broker(dynsec=dynsec)
    except BrokerError as error:
        if CI:
            pytest.fail(f"CI=true and the private Mosquitto broker is not usable: {error}")
        pytest.skip(f"Mosquitto not available: {error}")
    atexit.register(broker.close)  # in case the session dies before teardown
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[MosquittoBroker]:
    """The session's private Mosquitto, anonymous access (see the module docstring)."""
    yield from _session_broker(dynsec=False)


@pytest.fixture(scope="session")
def mosquitto_dynsec_broker() -> Iterator[MosquittoBroker]:
    """The session's private default-deny Mosquitto with the dynsec plugin."""
    yield from _session_broker(dynsec=True)
