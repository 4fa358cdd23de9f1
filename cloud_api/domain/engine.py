"""The valuation engine: applies an event's moves to the cost pools, in event time.

Moves are ordered by their position (occurred_at, event id, line), so the books do
not depend on the order in which events arrive. An event that arrives late rewinds
only the pools it touches to just before its position and replays their later
moves; a replayed move whose value changes is recorded as a change (booked by the
caller as a revaluation, never by editing the posted move), and the pool on the
other side of that move is rewound in turn (the work order it was issued to, the
warehouse a completion went to...). The replay re-checks every later outbound move,
so availability holds for the whole timeline after a late event.

Pure: the database is reached only through the `History` port.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from cloud_api.domain.pools import StockPool, WipPool
from cloud_api.domain.refs import LocationRef
from cloud_api.errors import Held

Position = tuple[datetime, uuid.UUID, int]
PoolKey = tuple[Hashable, ...]


@dataclass
class MoveRecord:
    id: uuid.UUID
    position: Position
    kind: str
    item_id: uuid.UUID
    lot: str
    source: LocationRef
    destination: LocationRef
    quantity: Decimal
    basis: str
    work_order_id: uuid.UUID | None = None
    mirrors_move_id: uuid.UUID | None = None
    fixed_value: Decimal | None = None
    scrap_quantity: Decimal = Decimal(0)  # a completion's scrapped units
    value: Decimal | None = None  # effective value as booked; None for a new move
    is_new: bool = False


@dataclass
class ChargeRecord:
    id: uuid.UUID
    position: Position
    work_order_id: uuid.UUID
    value: Decimal
    is_new: bool = False


Record = MoveRecord | ChargeRecord


@dataclass
class Slot:
    pool: StockPool | WipPool
    position: Position | None = None  # last record applied
    replay_from: Position | None = None
    dirty: bool = False


class History(Protocol):
    def load_slots(self, keys: list[PoolKey]) -> dict[PoolKey, Slot]: ...
    def empty_pool(self, key: PoolKey) -> StockPool | WipPool: ...
    def records(self, key: PoolKey) -> list[Record]: ...
    def effective_value(self, move_id: uuid.UUID) -> Decimal: ...


@dataclass
class Change:
    move: MoveRecord
    old_value: Decimal
    new_value: Decimal


@dataclass
class Outcome:
    values: dict[uuid.UUID, Decimal] = field(default_factory=dict)
    changes: dict[uuid.UUID, Change] = field(default_factory=dict)


def pool_keys(record: Record) -> list[PoolKey]:
    if isinstance(record, ChargeRecord):
        return [("wip", record.work_order_id)]
    return [k for k in (side_key(record, record.source), side_key(record, record.destination)) if k]


def side_key(move: MoveRecord, location: LocationRef) -> PoolKey | None:
    if location.internal:
        return ("stock", move.item_id, location.id)
    if location.kind == "production":
        return ("wip", move.work_order_id)
    return None


class Engine:
    """Holds the pools of one unit of work (an ingest batch) in memory."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.slots: dict[PoolKey, Slot] = {}
        self._saved: dict[PoolKey, tuple[StockPool | WipPool, Position | None]] | None = None

    def preload(self, records: list[Record]) -> None:
        """Load the pools these records will touch in one go (an optimisation: `slot`
        loads whatever was not preloaded)."""
        keys = {key for record in records for key in pool_keys(record)}
        missing = [key for key in keys if key not in self.slots]
        if missing:
            self.slots.update(self.history.load_slots(missing))

    def slot(self, key: PoolKey) -> Slot:
        if key not in self.slots:
            self.slots[key] = self.history.load_slots([key])[key]
        slot = self.slots[key]
        if self._saved is not None and key not in self._saved:
            self._saved[key] = (slot.pool.clone(), slot.position)
        return slot

    def post(self, records: list[Record]) -> Outcome:
        """Apply one event's new records; all or nothing."""
        self._saved = {}
        run = _Run(self)
        try:
            run.execute(records)
            return run.outcome
        except BaseException:
            for key, (pool, position) in self._saved.items():
                self.slots[key].pool, self.slots[key].position = pool, position
            raise
        finally:
            for key in self._saved:
                self.slots[key].replay_from = None
            self._saved = None


class _Run:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heap: list[tuple[Position, int, Record]] = []
        self.queued: set[uuid.UUID] = set()
        self.counter = itertools.count()
        self.outcome = Outcome()

    def push(self, record: Record) -> None:
        if record.id not in self.queued:
            self.queued.add(record.id)
            heapq.heappush(self.heap, (record.position, next(self.counter), record))

    def execute(self, records: list[Record]) -> None:
        for record in records:
            self.push(record)
        for record in records:
            for key in pool_keys(record):
                slot = self.engine.slot(key)
                if slot.position is not None and slot.position > record.position:
                    self.rewind(key, record.position)
        while self.heap:
            _, _, record = heapq.heappop(self.heap)
            self.process(record)

    def active(self, key: PoolKey | None, record: Record) -> bool:
        if key is None:
            return False
        if record.is_new:
            return True
        start = self.engine.slot(key).replay_from
        return start is not None and start < record.position

    def rewind(self, key: PoolKey, position: Position) -> None:
        """Rebuild the pool as it stood just before `position`; queue what follows."""
        slot = self.engine.slot(key)
        if slot.replay_from is not None and slot.replay_from <= position:
            return
        fresh = Slot(self.engine.history.empty_pool(key))
        for record in self.engine.history.records(key):
            if record.position < position:
                _apply(fresh, key, record, _booked(record))
            elif record.position > position:
                self.push(record)
        slot.pool, slot.position, slot.replay_from = fresh.pool, fresh.position, position
        slot.dirty = True

    def process(self, record: Record) -> None:
        if isinstance(record, ChargeRecord):
            key = ("wip", record.work_order_id)
            if self.active(key, record):
                _apply(self.engine.slot(key), key, record, record.value)
            return
        src, dst = side_key(record, record.source), side_key(record, record.destination)
        src_on, dst_on = self.active(src, record), self.active(dst, record)
        if record.basis == "residual_stock" and (src_on or dst_on):
            # its value reads both pools as they stood at its position: replay both
            for key, on in ((src, src_on), (dst, dst_on)):
                if key is not None and not on:
                    self.rewind(key, record.position)
            src_on, dst_on = src is not None, dst is not None
        value, src_done = self.value_of(record, src, dst, src_on, dst_on)
        if not record.is_new and value != record.value:
            assert record.value is not None
            self.outcome.changes[record.id] = Change(record, record.value, value)
            for key, on in ((src, src_on), (dst, dst_on)):
                if key is not None and not on:
                    self.rewind(key, record.position)
            src_on, dst_on = src is not None, dst is not None
        if record.is_new:
            self.outcome.values[record.id] = value
        if src_on and not src_done:
            assert src is not None
            _apply_out(self.engine.slot(src), src, record, value)
        if dst_on:
            assert dst is not None
            _apply_in(self.engine.slot(dst), dst, record, value)

    def value_of(
        self,
        record: MoveRecord,
        src: PoolKey | None,
        dst: PoolKey | None,
        src_on: bool,
        dst_on: bool,
    ) -> tuple[Decimal, bool]:
        """The move's value, and whether computing it already took it out of the source."""
        basis = record.basis
        if basis == "fixed":
            assert record.fixed_value is not None
            return record.fixed_value, False
        if basis == "mirror":
            assert record.mirrors_move_id is not None
            return self.current_value(record.mirrors_move_id), False
        if basis == "pool_in":
            if not dst_on:
                return _stored(record), False
            assert dst is not None
            return _inbound_at_cost(self.engine.slot(dst), record), False
        if not src_on:
            return _stored(record), False
        assert src is not None
        slot = self.engine.slot(src)
        if basis == "residual_stock":
            assert dst is not None and isinstance(slot.pool, WipPool)
            stock = self.engine.slot(dst).pool
            assert isinstance(stock, StockPool)
            return slot.pool.residual_on_hand_value(stock.quantity), False
        return _value_from_source(slot, src, record)

    def current_value(self, move_id: uuid.UUID) -> Decimal:
        if move_id in self.outcome.changes:
            return self.outcome.changes[move_id].new_value
        if move_id in self.outcome.values:
            return self.outcome.values[move_id]
        return self.engine.history.effective_value(move_id)


def _stored(record: MoveRecord) -> Decimal:
    assert record.value is not None, "a new move is always valued by its own pools"
    return record.value


def _inbound_at_cost(slot: Slot, record: MoveRecord) -> Decimal:
    assert isinstance(slot.pool, StockPool)
    value = slot.pool.inbound_value_at_current_cost(record.quantity)
    if value is None:
        raise Held(
            "item_has_no_cost",
            f"{slot.pool.label} has no unit cost yet (no receipt); give unit_cost on the count "
            "or post the first receipt",
        )
    return value


def _value_from_source(slot: Slot, key: PoolKey, record: MoveRecord) -> tuple[Decimal, bool]:
    pool = slot.pool
    if record.basis == "pool":
        assert isinstance(pool, StockPool)
        value = pool.issue(record.quantity, record.lot)
        _advance(slot, record)
        return value, True
    assert isinstance(pool, WipPool)
    if record.basis == "wip_return":
        return pool.return_value(record.item_id, record.quantity), False
    if record.basis == "wip_completion":
        return pool.completion_value(record.quantity, record.scrap_quantity), False
    if record.basis == "wip_residual":
        return pool.value, False
    raise AssertionError(f"unknown basis {record.basis}")


def _booked(record: Record) -> Decimal:
    """While rebuilding a pool, a record is worth what it was booked at."""
    assert record.value is not None
    return record.value


def _apply(slot: Slot, key: PoolKey, record: Record, value: Decimal) -> None:
    if isinstance(record, ChargeRecord):
        assert isinstance(slot.pool, WipPool)
        slot.pool.charge(value)
        _advance(slot, record)
        return
    if side_key(record, record.source) == key:
        if record.basis == "pool":
            assert isinstance(slot.pool, StockPool)
            slot.pool.issue(record.quantity, record.lot)
            _advance(slot, record)
        else:
            _apply_out(slot, key, record, value)
    else:
        _apply_in(slot, key, record, value)


def _apply_out(slot: Slot, key: PoolKey, record: MoveRecord, value: Decimal) -> None:
    pool = slot.pool
    if isinstance(pool, StockPool):
        pool.remove(record.quantity, value, record.lot, record.mirrors_move_id)
    elif record.kind == "completion":
        pool.complete(record.quantity + record.scrap_quantity, value, record.quantity)
    elif record.kind == "settlement":
        pool.settle(value)
    else:
        pool.take_material(record.item_id, record.quantity, value)
    _advance(slot, record)


def _apply_in(slot: Slot, key: PoolKey, record: MoveRecord, value: Decimal) -> None:
    pool = slot.pool
    if isinstance(pool, StockPool) and record.kind == "settlement":
        pool.revalue(value, record.id)  # a closed order's residual into its goods
    elif isinstance(pool, StockPool):
        pool.receive(record.quantity, value, record.lot, record.id)
    elif record.kind == "completion":  # a completion reversed back into work in progress
        pool.complete(-(record.quantity + record.scrap_quantity), -value, -record.quantity)
    else:
        pool.add_material(record.item_id, record.quantity, value)
    _advance(slot, record)


def _advance(slot: Slot, record: Record) -> None:
    slot.dirty = True
    if slot.position is None or record.position > slot.position:
        slot.position = record.position
