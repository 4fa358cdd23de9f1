"""Thermal printers: raw TCP (port 9100) and serial (any pyserial URL).

`send` either hands every byte to the printer or raises `PrinterUnavailable`; its
`maybe_sent` says whether some bytes may already have left (then only an operator
can tell whether a label came out). Raw 9100 has no acknowledgement: "sent" means
the printer's TCP stack took the bytes, not that a label is on the peel bar.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Protocol
from urllib.parse import urlsplit

import serial

from edge_agent.labels.errors import PrinterUnavailable

DRAIN_S = 1.0  # how long to wait for the printer to close its side after our last byte


class Printer(Protocol):
    def send(self, zpl: bytes) -> None:
        """Deliver one print format; raise `PrinterUnavailable` when it cannot."""
        ...


class TcpPrinter:
    """A printer's raw port (JetDirect / 9100)."""

    def __init__(self, host: str, port: int = 9100, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s

    def __repr__(self) -> str:
        return f"TcpPrinter({self.host!r}, {self.port})"

    def send(self, zpl: bytes) -> None:
        name = f"tcp://{self.host}:{self.port}"
        try:
            connection = socket.create_connection((self.host, self.port), self.timeout_s)
        except OSError as exc:
            raise PrinterUnavailable(name, f"cannot connect: {exc}", maybe_sent=False) from exc
        with connection:
            try:
                connection.sendall(zpl)
                connection.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise PrinterUnavailable(name, f"send failed: {exc}", maybe_sent=True) from exc
            _drain(connection)


def _drain(connection: socket.socket) -> None:
    """Read until the printer closes (bounded): closing with unread input would reset
    the connection, and a reset can discard bytes the printer has not yet read."""
    connection.settimeout(DRAIN_S)
    with contextlib.suppress(OSError):
        for _ in range(64):
            if not connection.recv(4096):
                return


class SerialPrinter:
    """A printer on a serial port: a device path or any pyserial URL
    (`/dev/serial/by-id/...`, `socket://gateway:4001`, `rfc2217://...`)."""

    def __init__(self, url: str, *, baudrate: int = 9600, timeout_s: float = 5.0) -> None:
        self.url, self.baudrate, self.timeout_s = url, baudrate, timeout_s

    def __repr__(self) -> str:
        return f"SerialPrinter({self.url!r})"

    def send(self, zpl: bytes) -> None:
        try:
            port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=self.timeout_s,
                write_timeout=self.timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PrinterUnavailable(self.url, f"cannot open: {exc}", maybe_sent=False) from exc
        with port:
            try:
                written = port.write(zpl)
                port.flush()
            except (serial.SerialException, OSError) as exc:
                raise PrinterUnavailable(self.url, f"write failed: {exc}", maybe_sent=True) from exc
            if written is not None and written != len(zpl):
                raise PrinterUnavailable(
                    self.url, f"wrote {written} of {len(zpl)} bytes", maybe_sent=True
                )


def printer_from_url(url: str, *, baudrate: int = 9600, timeout_s: float = 5.0) -> Printer:
    """`tcp://host[:9100]` is a raw TCP printer; anything else goes to pyserial."""
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError(f"printer URL {url!r} has no host")
        return TcpPrinter(parts.hostname, parts.port or 9100, timeout_s)
    return SerialPrinter(url, baudrate=baudrate, timeout_s=timeout_s)
