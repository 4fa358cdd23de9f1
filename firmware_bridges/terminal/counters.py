"""Cumulative terminal counters -> deltas, so a re-send or a reset never counts twice.

A `count` message carries cumulative values (good, rework, scrap per reason) since the
start of its `counter_epoch`. The terminal increases its epoch, and persists it, every
time its counters go back to 0 (operator reset, new shift, firmware restart that lost
them). The rule, per device, per epoch, per counter name:

- the tracker keeps the highest value seen so far (0 for an epoch never seen);
- delta = max(0, value - highest); then highest = max(highest, value).

So a **new epoch starts from 0** (its first value counts in full), and a **lower or equal
value in the same epoch is a stale re-send** or an overtaken message: delta 0. Lost
messages cost nothing: the next cumulative value carries what they carried, and
messages may arrive in any order, across epochs too.

Bound: the last `max_epochs` epochs of each device are kept. Older ones are forgotten
and their number is remembered as a floor: a message for an epoch at or below the floor
is stale (delta 0) rather than counted again from 0.

The tracker is pure (no I/O). The edge agent persists `state()` in the same
transaction as the events it derives from `apply()`; if that transaction fails it must
`load()` the last committed state again, or use `preview()` and apply after commit.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from firmware_bridges.terminal.errors import CounterStateError

STATE_VERSION = 1
_NO_FLOOR = -1


@dataclass
class _DeviceCounters:
    floor_epoch: int = _NO_FLOOR  # highest forgotten epoch; epochs <= it are stale
    epochs: dict[int, dict[str, Decimal]] = field(default_factory=dict)


class CounterTracker:
    """Turns cumulative counters into deltas; see the module docstring for the rule."""

    def __init__(self, max_epochs: int = 16) -> None:
        if max_epochs < 1:
            raise ValueError("max_epochs must be at least 1")
        self.max_epochs = max_epochs
        self._devices: dict[str, _DeviceCounters] = {}

    def preview(
        self, device_id: str, epoch: int, counters: Mapping[str, Decimal]
    ) -> dict[str, Decimal]:
        """The deltas `apply` would return, without changing anything."""
        device = self._devices.get(device_id, _DeviceCounters())
        if epoch <= device.floor_epoch:
            return {name: Decimal(0) for name in counters}
        highest = device.epochs.get(epoch, {})
        return {
            name: max(Decimal(0), value - highest.get(name, Decimal(0)))
            for name, value in counters.items()
        }

    def apply(
        self, device_id: str, epoch: int, counters: Mapping[str, Decimal]
    ) -> dict[str, Decimal]:
        """Deltas of each named counter since what this tracker had seen; records the
        new highest values. Every name given is in the result (0 when nothing new)."""
        if any(value < 0 for value in counters.values()):
            raise ValueError("cumulative counters are never negative")
        deltas = self.preview(device_id, epoch, counters)
        device = self._devices.setdefault(device_id, _DeviceCounters())
        if epoch <= device.floor_epoch:
            return deltas
        highest = device.epochs.setdefault(epoch, {})
        for name, value in counters.items():
            highest[name] = max(highest.get(name, Decimal(0)), value)
        self._forget_old_epochs(device)
        return deltas

    def _forget_old_epochs(self, device: _DeviceCounters) -> None:
        while len(device.epochs) > self.max_epochs:
            oldest = min(device.epochs)
            del device.epochs[oldest]
            device.floor_epoch = max(device.floor_epoch, oldest)

    def state(self) -> dict[str, Any]:
        """A JSON-ready copy of everything the tracker knows (decimals as strings)."""
        return {
            "version": STATE_VERSION,
            "max_epochs": self.max_epochs,
            "devices": {
                device_id: {
                    "floor_epoch": device.floor_epoch,
                    "epochs": {
                        str(epoch): {name: str(value) for name, value in sorted(values.items())}
                        for epoch, values in sorted(device.epochs.items())
                    },
                }
                for device_id, device in sorted(self._devices.items())
            },
        }

    def load(self, state: Mapping[str, Any]) -> None:
        """Replace what the tracker knows with a `state()` taken earlier."""
        self._devices = _parse_state(state)
        kept = (len(device.epochs) for device in self._devices.values())
        self.max_epochs = max([self.max_epochs, *kept])

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "CounterTracker":
        tracker = cls(max_epochs=_int(state.get("max_epochs", 16), "max_epochs"))
        tracker.load(state)
        return tracker


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CounterStateError(f"counter state: {where} must be an integer, got {value!r}")
    return value


def _decimal(value: object, where: str) -> Decimal:
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise CounterStateError(f"counter state: {where} must be a decimal string, got {value!r}")
    return number


def _parse_state(state: Mapping[str, Any]) -> dict[str, _DeviceCounters]:
    if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
        raise CounterStateError(
            f"counter state: expected a mapping with version {STATE_VERSION}; "
            "restore one written by CounterTracker.state()"
        )
    devices = state.get("devices", {})
    if not isinstance(devices, Mapping):
        raise CounterStateError("counter state: devices must be a mapping")
    parsed = {}
    for device_id, device in devices.items():
        if not isinstance(device, Mapping) or not isinstance(device.get("epochs"), Mapping):
            raise CounterStateError(f"counter state: device {device_id!r} has no epochs mapping")
        epochs = {}
        for epoch, values in device["epochs"].items():
            where = f"{device_id} epoch {epoch}"
            if not str(epoch).isdigit() or not isinstance(values, Mapping):
                raise CounterStateError(f"counter state: bad epoch entry at {where}")
            epochs[int(epoch)] = {
                str(name): _decimal(value, f"{where} {name}") for name, value in values.items()
            }
        floor = _int(device.get("floor_epoch", _NO_FLOOR), f"{device_id} floor_epoch")
        parsed[str(device_id)] = _DeviceCounters(floor_epoch=floor, epochs=epochs)
    return parsed
