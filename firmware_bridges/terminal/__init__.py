"""MQTT bridge for work-reporting terminals (报工终端); see PROTOCOL.md.

Knows nothing of stock, accounts or the outbox: it parses terminal messages, hands each
to the host's handler, and acknowledges only after the handler returns.
"""

from firmware_bridges.terminal.bridge import (
    Answer,
    BridgeConfig,
    BridgeStats,
    DeviceStatus,
    Handler,
    TerminalBridge,
    TerminalReading,
)
from firmware_bridges.terminal.counters import CounterTracker
from firmware_bridges.terminal.errors import (
    AckTimeout,
    CounterStateError,
    DynsecError,
    TerminalError,
    TerminalMessageError,
)
from firmware_bridges.terminal.messages import (
    CountMessage,
    DeviceAddress,
    FinishMessage,
    PauseMessage,
    ResumeMessage,
    StartMessage,
    TerminalMessage,
    parse_payload,
    parse_up_topic,
)

__all__ = [
    "AckTimeout",
    "Answer",
    "BridgeConfig",
    "BridgeStats",
    "CountMessage",
    "CounterStateError",
    "CounterTracker",
    "DeviceAddress",
    "DeviceStatus",
    "DynsecError",
    "FinishMessage",
    "Handler",
    "PauseMessage",
    "ResumeMessage",
    "StartMessage",
    "TerminalBridge",
    "TerminalError",
    "TerminalMessage",
    "TerminalMessageError",
    "TerminalReading",
    "parse_payload",
    "parse_up_topic",
]
