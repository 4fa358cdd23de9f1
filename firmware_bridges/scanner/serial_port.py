"""A barcode scanner on a serial port (RS-232, USB CDC-ACM, or a pyserial URL).

Two ways to drive it, never both on one instance:
- synchronous: ``open()``, then ``poll(on_frame)`` in the caller's loop, ``close()``;
- threaded: ``start(on_frame)`` runs a reader thread that reconnects by itself;
  ``stop()`` joins it.

Invariants: each frame read from the device is handed to ``on_frame`` exactly once, in
order, and its answer is written only after ``on_frame`` returned; a frame cut by a
disconnect is dropped and counted, never delivered; reopening never replays bytes.
"""

import glob
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from firmware_bridges.scanner.answers import Answer, AnswerConfig
from firmware_bridges.scanner.errors import (
    ScannerConfigError,
    ScannerDisconnected,
    ScannerError,
    ScannerNotFound,
    ScannerStateError,
)
from firmware_bridges.scanner.frame import ScanFrame
from firmware_bridges.scanner.framing import FrameParser, FramingConfig, FramingCounters

log = logging.getLogger(__name__)

FrameHandler = Callable[[ScanFrame], Answer]


@dataclass(frozen=True)
class SerialScannerConfig:
    """Where the scanner is and how it talks.

    ``port`` is a device path (prefer ``/dev/serial/by-id/...``: it survives
    re-enumeration), a glob such as ``/dev/serial/by-id/usb-Acme*`` (first match in
    sorted order, looked up again on every reconnect), or a pyserial URL
    (``socket://host:port`` for RS-485/Ethernet gateways, ``loop://`` for tests).
    Line settings are 8N1. Reconnect delays double from ``reconnect_initial_s`` up to
    ``reconnect_max_s``; ``max_reconnect_attempts`` (None: keep trying) bounds how many
    failed opens in a row the reader thread accepts before it gives up.
    """

    port: str
    baudrate: int = 9600
    framing: FramingConfig = field(default_factory=FramingConfig)
    answers: AnswerConfig | None = None
    read_timeout_s: float = 0.05
    write_timeout_s: float = 1.0
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 5.0
    max_reconnect_attempts: int | None = None

    def __post_init__(self) -> None:
        if not self.port:
            raise ScannerConfigError("port must name a device path, glob or pyserial URL")
        if not 0 < self.read_timeout_s <= 1:
            raise ScannerConfigError("read_timeout_s must be in (0, 1]: it paces gap checks")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ScannerConfigError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if self.max_reconnect_attempts is not None and self.max_reconnect_attempts < 1:
            raise ScannerConfigError("max_reconnect_attempts must be at least 1 or None")


@dataclass(frozen=True)
class ScannerStats:
    """A consistent snapshot of the scanner's state and counters (which only grow).

    ``device`` is the node last opened (the target of a by-id link), kept after a
    disconnect so logs show what went away; ``partial_bytes`` is a gauge.
    """

    port: str
    device: str | None
    connected: bool
    gave_up: bool
    last_error: str | None
    partial_bytes: int
    reconnects: int
    disconnects: int
    open_failures: int
    frames_delivered: int
    answers_ok: int
    answers_not_ok: int
    answers_lost: int
    callback_errors: int
    framing: FramingCounters


_COUNTER_NAMES = (
    "reconnects",
    "disconnects",
    "open_failures",
    "frames_delivered",
    "answers_ok",
    "answers_not_ok",
    "answers_lost",
    "callback_errors",
)

PortOpener = Callable[[str, SerialScannerConfig], serial.SerialBase]


def open_serial_port(target: str, config: SerialScannerConfig) -> serial.SerialBase:
    """Open ``target`` with pyserial; ``exclusive`` so two agents never split one stream."""
    return serial.serial_for_url(
        target,
        baudrate=config.baudrate,
        timeout=config.read_timeout_s,
        write_timeout=config.write_timeout_s,
        exclusive=True,
    )


def resolve_port(spec: str) -> str:
    """The path or URL to open now for ``spec``; raises ScannerNotFound when none exists."""
    if "://" in spec:
        return spec
    if any(ch in spec for ch in "*?["):
        matches = sorted(glob.glob(spec))
        if not matches:
            raise ScannerNotFound(f"no device matches {spec!r}; is the scanner plugged in?")
        return matches[0]
    if not os.path.exists(spec):
        raise ScannerNotFound(f"{spec!r} does not exist; is the scanner plugged in?")
    return spec


class SerialScanner:
    """Reads frames from one scanner, hands them to the host, writes the answers back."""

    def __init__(
        self,
        config: SerialScannerConfig,
        *,
        opener: PortOpener = open_serial_port,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._opener = opener  # a seam for tests and for ports needing special setup
        self._clock = clock
        self._parser = FrameParser(config.framing)
        self._lock = threading.Lock()  # guards the parser, counters and port state
        self._port: serial.SerialBase | None = None
        self._device: str | None = None
        self._lost = False  # a connection was lost: the next successful open reconnects
        self._gave_up = False
        self._last_error: str | None = None
        self._counts = dict.fromkeys(_COUNTER_NAMES, 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> SerialScannerConfig:
        return self._config

    def stats(self) -> ScannerStats:
        with self._lock:
            return ScannerStats(
                port=self._config.port,
                device=self._device,
                connected=self._port is not None,
                gave_up=self._gave_up,
                last_error=self._last_error,
                partial_bytes=self._parser.partial_bytes,
                framing=self._parser.counters(),
                **self._counts,
            )

    def open(self) -> None:
        """Find the device (path, glob or URL) and open it.

        Raises ScannerNotFound when nothing matches, ScannerDisconnected when it
        cannot be opened.
        """
        if self._port is not None:
            raise ScannerStateError("the scanner port is already open")
        target = resolve_port(self._config.port)
        try:
            port = self._opener(target, self._config)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ScannerDisconnected(f"cannot open {target!r}: {exc}") from exc
        with self._lock:
            self._port = port
            self._device = _device_name(target)
            if self._lost:
                self._counts["reconnects"] += 1
                self._lost = False
        log.info("scanner %s open on %s", self._config.port, self._device)

    def close(self) -> None:
        """Close the port; a partial frame is dropped (and counted), as on a disconnect."""
        with self._lock:
            port, self._port = self._port, None
            self._parser.reset()
        if port is not None:
            _close_quietly(port)

    def poll(self, on_frame: FrameHandler) -> int:
        """Read what the device sent (waiting up to ``read_timeout_s``), deliver the frames.

        Returns the number of frames delivered. On a lost port the partial frame is
        dropped and counted, the port closed, and ScannerDisconnected raised.
        """
        port = self._port
        if port is None:
            raise ScannerStateError("open() the scanner before poll()")
        try:
            data = port.read(port.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            self._lose_port(exc)
            raise ScannerDisconnected(f"{self._config.port} went away: {exc}") from exc
        now_s = self._clock()
        with self._lock:
            frames = self._parser.feed(data, now_s)
        for frame in frames:
            self._deliver(port, frame, on_frame)
        return len(frames)

    def start(self, on_frame: FrameHandler) -> None:
        """Run the reader thread: open with back-off, poll, reconnect when the port goes."""
        if self._thread is not None:
            raise ScannerStateError("the scanner is already started")
        self._stop.clear()
        self._gave_up = False
        self._thread = threading.Thread(
            target=self._run, args=(on_frame,), name=f"scanner:{self._config.port}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the reader thread and close the port; returns once the thread has ended."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise ScannerStateError(f"reader thread did not stop within {timeout_s} s")
        self.close()

    def _run(self, on_frame: FrameHandler) -> None:
        while not self._stop.is_set():
            if not self._connect_with_backoff():
                return
            self._pump(on_frame)

    def _pump(self, on_frame: FrameHandler) -> None:
        while not self._stop.is_set():
            try:
                self.poll(on_frame)
            except ScannerDisconnected:
                return

    def _connect_with_backoff(self) -> bool:
        """Open the port, retrying with doubling delays; False on stop or give-up."""
        delay_s = self._config.reconnect_initial_s
        failures = 0
        while not self._stop.is_set():
            try:
                self.open()
                return True
            except ScannerError as exc:
                failures += 1
                self._note_open_failure(exc)
            limit = self._config.max_reconnect_attempts
            if limit is not None and failures >= limit:
                with self._lock:
                    self._gave_up = True
                log.error("scanner %s: giving up after %d failed opens", self._config.port, limit)
                return False
            self._stop.wait(delay_s)
            delay_s = min(delay_s * 2, self._config.reconnect_max_s)
        return False

    def _deliver(self, port: serial.SerialBase, frame: ScanFrame, on_frame: FrameHandler) -> None:
        try:
            answer = on_frame(frame)
            if not isinstance(answer, Answer):
                raise TypeError(f"on_frame must return an Answer, got {answer!r}")
        except Exception:
            # The host could not commit the scan: a bad-read answer makes the operator
            # scan again, and the reader keeps running for the next scan.
            log.exception("scanner %s: on_frame failed", self._config.port)
            answer = Answer.bad("host error")
            self._count("callback_errors")
        self._count("frames_delivered")
        self._count("answers_ok" if answer.ok else "answers_not_ok")
        self._send_answer(port, answer)

    def _send_answer(self, port: serial.SerialBase, answer: Answer) -> None:
        if self._config.answers is None:
            return
        try:
            port.write(self._config.answers.bytes_for(answer))
            port.flush()
        except (serial.SerialException, OSError) as exc:
            # The scan is committed; only the beep is lost. The next read notices
            # the dead port and reconnects.
            log.warning("scanner %s: answer lost: %s", self._config.port, exc)
            self._count("answers_lost")

    def _lose_port(self, exc: Exception) -> None:
        with self._lock:
            port, self._port = self._port, None
            self._parser.reset()
            self._lost = True
            self._last_error = str(exc)
            self._counts["disconnects"] += 1
        if port is not None:
            _close_quietly(port)
        log.warning("scanner %s disconnected: %s", self._config.port, exc)

    def _note_open_failure(self, exc: ScannerError) -> None:
        with self._lock:
            self._counts["open_failures"] += 1
            self._last_error = f"{exc.code}: {exc.message}"

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


def _device_name(target: str) -> str:
    # The real node behind a by-id symlink, so logs show what it enumerated as.
    return target if "://" in target else os.path.realpath(target)


def _close_quietly(port: serial.SerialBase) -> None:
    try:
        port.close()
    except (serial.SerialException, OSError) as exc:
        log.debug("closing a dead port failed: %s", exc)
