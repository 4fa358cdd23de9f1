"""The scanner bridge's own exceptions: each carries a stable snake_case ``code``.

The host translates these once at its boundary; nothing here knows about stock,
accounts or HTTP.
"""


class ScannerError(Exception):
    """Base class: ``code`` is stable and machine-readable, the message is for people."""

    code = "scanner_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ScannerConfigError(ScannerError):
    """A framing, answer or port setting is unusable; fix the configuration."""

    code = "scanner_config_invalid"


class ScannerNotFound(ScannerError):
    """No device matches the configured path or glob (unplugged, or not enumerated yet)."""

    code = "scanner_not_found"


class ScannerDisconnected(ScannerError):
    """The port could not be opened, or vanished while in use."""

    code = "scanner_disconnected"


class ScannerStateError(ScannerError):
    """An operation was called in the wrong state (e.g. ``start`` twice, ``poll`` unopened)."""

    code = "scanner_bad_state"
