"""The terminal bridge's own small error hierarchy; each error has a stable snake_case
`code`. The host (the edge agent) translates these once, at its boundary."""


class TerminalError(Exception):
    """Base of every terminal-bridge error; `code` is stable, the message says what to do."""

    code = "terminal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class TerminalMessageError(TerminalError):
    """A message from a terminal that can never be accepted as sent.

    Codes: `bad_topic`, `unknown_type`, `too_large`, `bad_json`, `bad_field`.
    """

    code = "bad_message"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class CounterStateError(TerminalError):
    """A persisted counter state that cannot be loaded (`bad_counter_state`)."""

    code = "bad_counter_state"


class AckTimeout(TerminalError):
    """The simulator sent a message every allowed time and never got an ack."""

    code = "ack_timeout"


class DynsecError(TerminalError):
    """Provisioning MQTT identities on the broker's dynamic security plugin failed.

    Codes: `bad_username`, `client_exists`, `role_exists`, `unknown_client`,
    `admin_refused`, `broker_unreachable`, `no_dynsec`, `command_failed`.
    """

    code = "dynsec_error"
