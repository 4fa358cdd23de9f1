"""A simulated serial barcode scanner on a pseudo-terminal, for tests and demos.

The host opens the pty's slave side with real pyserial, exactly as it would open
``/dev/ttyACM0``; the simulator writes scans into the master side and reads the
host's answers from it. A symlink in a directory plays the role of
``/dev/serial/by-id/...``: ``unplug()`` removes it and closes the pty (the host's
reads fail), ``replug()`` creates a new pty with another name and points the link
at it, like a USB device re-enumerating.
"""

import os
import pty
import select
import shutil
import tempfile
import time
import tty
from pathlib import Path
from types import TracebackType

DEFAULT_LINK_NAME = "usb-Simulated_Barcode_Scanner_0001-if00"


class PtyScanner:
    """One simulated scanner. Not thread-safe: drive it from one thread."""

    def __init__(
        self, link_dir: str | Path | None = None, link_name: str = DEFAULT_LINK_NAME
    ) -> None:
        self._own_dir = link_dir is None
        self._dir = Path(link_dir or tempfile.mkdtemp(prefix="pty-scanner-"))
        self._link_name = link_name
        self._master: int | None = None
        self._slave: int | None = None
        self._device: str | None = None
        self._last_device: str | None = None
        self._plug()

    def __enter__(self) -> "PtyScanner":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The stable path to configure on the host (a symlink to the current pty)."""
        return self._dir / self._link_name

    @property
    def device(self) -> str | None:
        """The pty the link points at now (``/dev/pts/N``); None while unplugged."""
        return self._device

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def scan(self, data: bytes, symbology: str | None = "]C0", terminator: bytes = b"\r") -> None:
        """Send one scan the way a scanner frames it: identifier, data, terminator."""
        identifier = symbology.encode("ascii") if symbology else b""
        self.send_raw(identifier + data + terminator)

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (fragments, garbage, NULs) to the host."""
        master = self._require_master()
        view = memoryview(data)
        while view:
            written = os.write(master, view)
            view = view[written:]

    def read_answers(self, timeout_s: float, min_bytes: int = 1) -> bytes:
        """Bytes the host wrote back: waits until ``min_bytes`` arrived or ``timeout_s``.

        Whatever else is already waiting is returned too; ``b""`` if nothing came.
        """
        master = self._require_master()
        deadline = time.monotonic() + timeout_s
        received = bytearray()
        while True:
            wait_s = 0.0 if len(received) >= min_bytes else deadline - time.monotonic()
            ready, _, _ = select.select([master], [], [], max(wait_s, 0.0))
            chunk = _read_available(master) if ready else b""
            received += chunk
            if chunk:
                continue
            if len(received) >= min_bytes or time.monotonic() >= deadline:
                return bytes(received)
            if ready:
                # Readable but empty: the host has no slave open (EIO). Do not spin.
                time.sleep(0.005)

    def unplug(self) -> None:
        """The device disappears: its link goes and the host's reads fail."""
        if self._master is None:
            return
        self.path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._device = None

    def replug(self, link_name: str | None = None) -> None:
        """The device comes back on a new pty (another name), optionally another link."""
        self.unplug()
        if link_name is not None:
            self._link_name = link_name
        self._plug()

    def close(self) -> None:
        self.unplug()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _plug(self) -> None:
        master, slave = pty.openpty()
        if os.ttyname(slave) == self._last_device:
            # The kernel reused the number; take the next pty so the name changes.
            spare = (master, slave)
            master, slave = pty.openpty()
            for fd in spare:
                os.close(fd)
        # Raw mode: no echo, no CR->LF translation, bytes pass as they are.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self._device = self._last_device = os.ttyname(slave)
        temporary = self._dir / f".{self._link_name}.new"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(self._device)
        os.replace(temporary, self.path)  # atomic: the host never sees a half-made link

    def _require_master(self) -> int:
        if self._master is None:
            raise RuntimeError("the simulated scanner is unplugged")
        return self._master


def _read_available(master: int) -> bytes:
    try:
        return os.read(master, 4096)
    except OSError:
        # EIO: the host has not opened the slave (or closed it); nothing to read.
        return b""
