"""The serial scanner over real pyserial: pty pairs from the simulator, loop://, socket://.

Includes acceptance scenario 7: the device disappears mid-frame and comes back under
another name; the reader reconnects, the cut frame is dropped and counted, nothing is
delivered twice.
"""

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from firmware_bridges.scanner import (
    ACK,
    NAK,
    Answer,
    AnswerConfig,
    FramingConfig,
    ScanFrame,
    ScannerDisconnected,
    ScannerNotFound,
    ScannerStateError,
    SerialScanner,
    SerialScannerConfig,
    resolve_port,
)
from firmware_bridges.scanner.simulator import PtyScanner

DEADLINE_S = 15.0  # generous: only a failing test waits it out (CI shares 2 cores)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Host:
    """A stand-in for the edge agent: records frames, answers by rule."""

    def __init__(self, answer: Callable[[ScanFrame], Answer] = lambda f: Answer.good()) -> None:
        self.frames: list[ScanFrame] = []
        self._answer = answer

    def __call__(self, frame: ScanFrame) -> Answer:
        self.frames.append(frame)
        return self._answer(frame)

    def data(self) -> list[bytes]:
        return [f.data for f in self.frames]


def fast_config(port: str, **overrides: object) -> SerialScannerConfig:
    settings: dict = {
        "answers": AnswerConfig(),
        "reconnect_initial_s": 0.01,
        "reconnect_max_s": 0.05,
    }
    settings.update(overrides)
    return SerialScannerConfig(port=port, **settings)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[PtyScanner]:
    with PtyScanner(tmp_path) as scanner:
        yield scanner


@pytest.fixture
def running() -> Iterator[Callable[..., SerialScanner]]:
    started: list[SerialScanner] = []

    def start(config: SerialScannerConfig, host: Host) -> SerialScanner:
        scanner = SerialScanner(config)
        scanner.start(host)
        started.append(scanner)
        wait_for(lambda: scanner.stats().connected, "the port to open")
        return scanner

    yield start
    for scanner in started:
        scanner.stop()


# --- frames in, answers out ---------------------------------------------------------


def test_frames_in_ack_and_nak_out(sim: PtyScanner, running) -> None:
    host = Host(lambda f: Answer.good() if f.data.startswith(b"WO") else Answer.bad("unknown"))
    scanner = running(fast_config(str(sim.path)), host)
    sim.scan(b"WO-0001")
    assert sim.read_answers(DEADLINE_S) == ACK
    sim.scan(b"010703206980498810A1\x1d15210526", symbology="]C1")
    assert sim.read_answers(DEADLINE_S) == NAK
    assert [(f.symbology, f.data) for f in host.frames] == [
        ("]C0", b"WO-0001"),
        ("]C1", b"010703206980498810A1\x1d15210526"),
    ]
    stats = scanner.stats()
    assert (stats.frames_delivered, stats.answers_ok, stats.answers_not_ok) == (2, 1, 1)
    assert stats.device == str(Path(sim.device).resolve())


def test_fragmented_and_batched_writes(sim: PtyScanner, running) -> None:
    host = Host()
    running(fast_config(str(sim.path)), host)
    for byte in b"]C0FRAG-1\r":
        sim.send_raw(bytes([byte]))
    sim.send_raw(b"]C0B-1\r\n]C0B-2\r\x00]E05901234123457\n")
    assert sim.read_answers(DEADLINE_S, min_bytes=4) == ACK * 4
    assert host.data() == [b"FRAG-1", b"B-1", b"B-2", b"5901234123457"]


def test_answer_is_written_only_after_the_callback_returns(sim: PtyScanner, running) -> None:
    heard_before_return: list[bytes] = []

    def commit_then_answer(frame: ScanFrame) -> Answer:
        # While the host is still "committing", the scanner must not have beeped.
        heard_before_return.append(sim.read_answers(0.05))
        return Answer.good()

    running(fast_config(str(sim.path)), Host(commit_then_answer))
    sim.scan(b"WO-0001")
    assert sim.read_answers(DEADLINE_S) == ACK
    assert heard_before_return == [b""]


def test_failing_callback_gets_a_bad_answer_and_the_reader_survives(
    sim: PtyScanner, running
) -> None:
    def flaky(frame: ScanFrame) -> Answer:
        if frame.data == b"BOOM":
            raise RuntimeError("outbox full")
        return Answer.good()

    scanner = running(fast_config(str(sim.path)), Host(flaky))
    sim.scan(b"BOOM")
    assert sim.read_answers(DEADLINE_S) == NAK
    sim.scan(b"FINE")
    assert sim.read_answers(DEADLINE_S) == ACK
    stats = scanner.stats()
    assert (stats.callback_errors, stats.answers_not_ok, stats.answers_ok) == (1, 1, 1)


def test_beep_commands_and_answer_text(sim: PtyScanner, running) -> None:
    answers = AnswerConfig(good=b"\x1bG", bad=b"\x1bB", send_text=True)
    host = Host(lambda f: Answer.bad("no WO\r99") if f.data == b"X" else Answer.good())
    running(fast_config(str(sim.path), answers=answers), host)
    sim.scan(b"X")
    assert sim.read_answers(DEADLINE_S, min_bytes=10) == b"\x1bBno WO 99\r"
    sim.scan(b"Y")
    assert sim.read_answers(DEADLINE_S, min_bytes=2) == b"\x1bG"


def test_no_answers_configured_writes_nothing(sim: PtyScanner, running) -> None:
    host = Host()
    running(fast_config(str(sim.path), answers=None), host)
    sim.scan(b"QUIET")
    wait_for(lambda: host.data() == [b"QUIET"], "the frame")
    assert sim.read_answers(0.05) == b""


# --- scenario 7: unplug mid-frame, come back under another name -------------------


def unplug_mid_frame(sim: PtyScanner, scanner: SerialScanner) -> str:
    sim.send_raw(b"]C0LOT-")
    wait_for(lambda: scanner.stats().partial_bytes > 0, "the partial frame to be read")
    old_device = sim.device
    sim.unplug()
    wait_for(lambda: not scanner.stats().connected, "the disconnect to be noticed")
    return old_device


def test_scenario_7_reconnect_by_stable_path(sim: PtyScanner, running) -> None:
    host = Host()
    scanner = running(fast_config(str(sim.path)), host)
    sim.scan(b"WO-0001")
    assert sim.read_answers(DEADLINE_S) == ACK

    old_device = unplug_mid_frame(sim, scanner)
    time.sleep(0.1)  # several reopen attempts fail while the device is gone
    sim.replug()
    assert sim.device != old_device
    wait_for(lambda: scanner.stats().connected, "the reconnect")
    sim.scan(b"WO-0002")
    assert sim.read_answers(DEADLINE_S) == ACK

    assert host.data() == [b"WO-0001", b"WO-0002"]
    assert not any(b"LOT" in f.raw for f in host.frames)
    stats = scanner.stats()
    assert (stats.reconnects, stats.disconnects, stats.frames_delivered) == (1, 1, 2)
    assert stats.framing.dropped_partial == 1
    assert stats.open_failures >= 1
    assert stats.device == str(Path(sim.device).resolve())


def test_scenario_7_reconnect_by_glob_after_renumbering(tmp_path: Path, running) -> None:
    with PtyScanner(tmp_path, link_name="ttyACM0") as sim:
        host = Host()
        scanner = running(fast_config(str(tmp_path / "ttyACM*")), host)
        sim.scan(b"A")
        assert sim.read_answers(DEADLINE_S) == ACK
        unplug_mid_frame(sim, scanner)
        sim.replug(link_name="ttyACM1")
        wait_for(lambda: scanner.stats().connected, "the reconnect")
        sim.scan(b"B")
        assert sim.read_answers(DEADLINE_S) == ACK
        assert host.data() == [b"A", b"B"]
        assert (scanner.stats().reconnects, scanner.stats().framing.dropped_partial) == (1, 1)


def test_gives_up_after_the_configured_number_of_failed_opens(tmp_path: Path) -> None:
    config = fast_config(str(tmp_path / "absent"), max_reconnect_attempts=3)
    scanner = SerialScanner(config)
    scanner.start(Host())
    wait_for(lambda: scanner.stats().gave_up, "the reader to give up")
    stats = scanner.stats()
    assert (stats.open_failures, stats.connected) == (3, False)
    assert stats.last_error.startswith("scanner_not_found")
    scanner.stop()


def test_device_missing_at_start_is_found_when_plugged_in(tmp_path: Path, running) -> None:
    host = Host()
    scanner = SerialScanner(fast_config(str(tmp_path / "usb-Late-if00")))
    scanner.start(host)
    try:
        time.sleep(0.05)
        assert scanner.stats().connected is False
        with PtyScanner(tmp_path, link_name="usb-Late-if00") as sim:
            wait_for(lambda: scanner.stats().connected, "the first open")
            sim.scan(b"LATE")
            assert sim.read_answers(DEADLINE_S) == ACK
        assert scanner.stats().reconnects == 0  # a first open is not a reconnect
    finally:
        scanner.stop()


# --- synchronous use over loop:// ---------------------------------------------------


def test_loop_url_synchronous_poll() -> None:
    loop = serial.serial_for_url("loop://", timeout=0.01)
    config = SerialScannerConfig(port="loop://", answers=AnswerConfig())
    scanner = SerialScanner(config, opener=lambda target, cfg: loop)
    host = Host()
    with pytest.raises(ScannerStateError):
        scanner.poll(host)
    scanner.open()
    loop.write(b"]C0WO-0001\r]C1")
    assert scanner.poll(host) == 1
    assert loop.read(loop.in_waiting) == ACK  # the answer, read back before the scanner sees it
    loop.write(b"0107032069804988\r")
    assert scanner.poll(host) == 1
    assert host.data() == [b"WO-0001", b"0107032069804988"]
    assert [f.symbology for f in host.frames] == ["]C0", "]C1"]
    scanner.close()


def test_loop_url_without_opener_and_close_counts_a_partial() -> None:
    scanner = SerialScanner(SerialScannerConfig(port="loop://"))
    scanner.open()
    assert scanner.stats().connected
    assert scanner.poll(Host()) == 0
    scanner.close()
    assert scanner.stats().connected is False


def test_resolve_port() -> None:
    assert resolve_port("socket://10.0.0.7:4001") == "socket://10.0.0.7:4001"
    with pytest.raises(ScannerNotFound) as caught:
        resolve_port("/nonexistent/serial/by-id/usb-X")
    assert caught.value.code == "scanner_not_found"
    with pytest.raises(ScannerNotFound):
        resolve_port("/nonexistent/ttyACM*")


# --- socket:// (RS-485 / Ethernet serial gateways) ----------------------------------


def _accept_from(server: socket.socket, scanner) -> socket.socket:  # type: ignore[no-untyped-def]
    """The connection this scanner made. A port number is reused across the suite, and
    another test's scanner still retrying its old gateway may connect here first: that
    one is closed, not mistaken for ours."""
    wait_for(lambda: getattr(scanner._port, "_socket", None) is not None, "the reconnect")
    ours = scanner._port._socket.getsockname()
    while True:
        conn, peer = server.accept()
        if peer == ours:
            return conn
        conn.close()


def test_socket_url_reconnects_after_the_gateway_drops(running) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(DEADLINE_S)
        host = Host()
        scanner = running(
            fast_config(f"socket://{server.getsockname()[0]}:{server.getsockname()[1]}"), host
        )
        first, _ = server.accept()
        with first:
            first.settimeout(DEADLINE_S)
            first.sendall(b"]C0ONE\r")
            assert first.recv(1) == ACK
            first.sendall(b"]C0CUT-OFF")
            wait_for(lambda: scanner.stats().partial_bytes > 0, "the fragment to be read")
        wait_for(lambda: scanner.stats().disconnects == 1, "the drop to be noticed")
        second = _accept_from(server, scanner)
        with second:
            second.settimeout(DEADLINE_S)
            second.sendall(b"]C0TWO\r")
            assert second.recv(1) == ACK
    assert host.data() == [b"ONE", b"TWO"]
    stats = scanner.stats()
    assert (stats.reconnects, stats.framing.dropped_partial) == (1, 1)


def test_disconnected_error_code() -> None:
    assert ScannerDisconnected("gone").code == "scanner_disconnected"
    assert FramingConfig().max_frame_bytes == 4096
