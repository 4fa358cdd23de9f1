"""Serial barcode scanner bridge: framing, AIM identifiers, the serial reader.

Knows nothing of stock or accounts. The pty simulator lives in
``firmware_bridges.scanner.simulator`` (POSIX only, not imported here).
"""

from firmware_bridges.scanner.aim import SYMBOLOGY_NAMES, is_gs1, split_identifier, symbology_name
from firmware_bridges.scanner.answers import ACK, NAK, Answer, AnswerConfig
from firmware_bridges.scanner.errors import (
    ScannerConfigError,
    ScannerDisconnected,
    ScannerError,
    ScannerNotFound,
    ScannerStateError,
)
from firmware_bridges.scanner.frame import ScanFrame
from firmware_bridges.scanner.framing import (
    CR,
    CRLF,
    DEFAULT_TERMINATORS,
    LF,
    TAB,
    FrameParser,
    FramingConfig,
    FramingCounters,
)
from firmware_bridges.scanner.serial_port import (
    FrameHandler,
    ScannerStats,
    SerialScanner,
    SerialScannerConfig,
    open_serial_port,
    resolve_port,
)

__all__ = [
    "ACK",
    "CR",
    "CRLF",
    "DEFAULT_TERMINATORS",
    "LF",
    "NAK",
    "SYMBOLOGY_NAMES",
    "TAB",
    "Answer",
    "AnswerConfig",
    "FrameHandler",
    "FrameParser",
    "FramingConfig",
    "FramingCounters",
    "ScanFrame",
    "ScannerConfigError",
    "ScannerDisconnected",
    "ScannerError",
    "ScannerNotFound",
    "ScannerStateError",
    "ScannerStats",
    "SerialScanner",
    "SerialScannerConfig",
    "is_gs1",
    "open_serial_port",
    "resolve_port",
    "split_identifier",
    "symbology_name",
]
