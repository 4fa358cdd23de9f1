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

Without the `mosquitto` binary the tests skip with the reason, or fail when CI=true
(CI must never pass by skipping).
"""

import atexit
import getpass
import os
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(port: int, data_dir: Path, log_path: Path) -> str:
    settings = "\n".join(f"{key} {value}" for key, value in BROKER_SETTINGS.items())
    return f"""\
# Written by tests/mosquitto.py for one test session.
listener {port} 127.0.0.1
allow_anonymous true
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


@dataclass
class MosquittoBroker:
    """A running private broker; `restart()` keeps port, persistence and sessions."""

    binary: str
    base: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf_path(self) -> Path:
        return self.base / "mosquitto.conf"

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
        self.conf_path.write_text(_config(self.port, data_dir, self.log_path))
        with (self.base / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_accepting()

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


def start_broker() -> MosquittoBroker:
    """Start a private broker; BrokerError if mosquitto is missing or will not start."""
    binary = find_mosquitto()
    if binary is None:
        raise BrokerError("the `mosquitto` binary is not installed (apt-get install mosquitto)")
    broker = MosquittoBroker(binary=binary, base=Path(tempfile.mkdtemp(prefix="erp-mosquitto-")))
    try:
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[MosquittoBroker]:
    """The session's private Mosquitto (see the module docstring)."""
    try:
        broker = start_broker()
    except BrokerError as error:
        if CI:
            pytest.fail(f"CI=true and the private Mosquitto broker is not usable: {error}")
        pytest.skip(f"Mosquitto not available: {error}")
    atexit.register(broker.close)  # in case the session dies before teardown
    try:
        yield broker
    finally:
        broker.close()
