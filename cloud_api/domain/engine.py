"""The valuation engine: applies an event's moves to the cost pools, in event time.

Moves are ordered by their position (occurred_at, event id, line), so the books do
not depend on the order in which events arrive. An event that arrives late rewinds
only the pools it touches to just before its position and replays their later
moves; a replayed move whose value changes is recorded as a change (booked by the
caller as a revaluation, never by editing the posted move), and the pool on the
other side of that move is rewound in turn (the work order it was issued to, the
warehouse a completion went to...). The replay re-checks every later outbound move,
so availability holds for the whole timeline after a late event.

A late event costs what it changes, not the history before it: a pool is rewound
from its newest snapshot before the event (a pool's state is snapshotted every N
records, store.SqlHistory.save), and its later records are read a window at a time,
up to its next snapshot. There the replayed state is compared with the snapshot: the
same state means no later record of the pool can change through it, so its replay
stops and it keeps the state it had; a different one rewrites the snapshot (kept
only if the event posts) and reads the next window, twice as many snapshots on.

Pure: the database is reached only through the `History` port.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from cloud_api.domain.pools import StockPool, WipPool
from cloud_api.domain.refs import LocationRef
from cloud_api.errors import Held

Position = tuple[datetime, uuid.UUID, int]
PoolKey = tuple[Hashable, ...]
_END = (datetime.max.replace(tzinfo=UTC), uuid.UUID(int=(1 << 128) - 1), 1 << 62)  # after all


@dataclass(slots=True)
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
    # its pools (source side, destination side), worked out once (see `sides`)
    pools: tuple[PoolKey | None, PoolKey | None] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass(slots=True)
class ChargeRecord:
    id: uuid.UUID
    position: Position
    work_order_id: uuid.UUID
    value: Decimal
    is_new: bool = False


Record = MoveRecord | ChargeRecord


Pool = StockPool | WipPool


@dataclass
class Slot:
    pool: Pool
    position: Position | None = None  # last record applied
    replay_from: Position | None = None
    dirty: bool = False
    since_snapshot: int = 0  # new records applied since the pool's last snapshot
    # while replaying: the snapshots not reached yet, oldest first; the last one up to
    # which the records were read (None: all of them); how many snapshots the next
    # read spans
    ahead: list[Position] = field(default_factory=list)
    read_to: Position | None = None
    window: int = 1

    def end_replay(self) -> None:
        self.replay_from, self.ahead, self.read_to, self.window = None, [], None, 1


@dataclass(frozen=True)
class Snapshot:
    """A pool as it stood after the record at `position`."""

    id: uuid.UUID
    position: Position
    pool: Pool


class History(Protocol):
    def load_slots(self, keys: list[PoolKey]) -> dict[PoolKey, Slot]: ...
    def empty_pool(self, key: PoolKey) -> Pool: ...
    def snapshot_before(self, key: PoolKey, position: Position) -> Snapshot | None:
        """The newest snapshot of the pool strictly before `position`."""
        ...

    def rewind_reads(
        self, wants: Mapping[PoolKey, Position]
    ) -> dict[PoolKey, tuple[Snapshot | None, list[Position], list[Record]]]:
        """For each pool, what rewinding it to its position reads: `snapshot_before`,
        the positions of its snapshots at or after the position (oldest first), and
        its records after that snapshot up to and including the first of those (all
        that follow when there is none), in position order. One round of reads for
        any number of pools."""
        ...

    def snapshot_at(self, key: PoolKey, position: Position) -> Snapshot: ...
    def rewrite_snapshot(self, key: PoolKey, snapshot: Snapshot) -> None:
        """Keep `snapshot`'s new state (a posted late event changed it)."""
        ...

    def records(
        self, key: PoolKey, after: Position | None, upto: Position | None = None
    ) -> list[Record]:
        """The pool's records after `after` (None: from its first) up to and including
        `upto` (None: to its last), in position order."""
        ...

    def mirrors_of(self, move_ids: list[uuid.UUID], after: Position) -> list[Record]:
        """The moves after `after` that mirror (reverse) any of `move_ids`."""
        ...

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


class _Key(tuple[Hashable, ...]):
    """A pool key that hashes once: a replay looks its pools up several times per
    record, and a tuple of UUIDs hashes them (in Python) on every lookup. Equal to,
    and hashed like, the plain tuple."""

    _hash: int

    def __new__(cls, *parts: Hashable) -> _Key:
        key = super().__new__(cls, parts)
        key._hash = tuple.__hash__(key)
        return key

    def __hash__(self) -> int:
        return self._hash


def pool_keys(record: Record) -> list[PoolKey]:
    if isinstance(record, ChargeRecord):
        return [_Key("wip", record.work_order_id)]
    return [k for k in sides(record) if k]


def sides(move: MoveRecord) -> tuple[PoolKey | None, PoolKey | None]:
    """The pools of the move's source and destination (None: not a pool)."""
    if move.pools is None:
        move.pools = (side_key(move, move.source), side_key(move, move.destination))
    return move.pools


def side_key(move: MoveRecord, location: LocationRef) -> PoolKey | None:
    if location.internal:
        return _stock_key(move.item_id, location.id)
    if location.kind == "production":
        return _Key("wip", move.work_order_id)
    return None


_STOCK_KEYS: dict[tuple[int, int], _Key] = {}


def _stock_key(item_id: uuid.UUID, location_id: uuid.UUID) -> _Key:
    """One key object per pool (a replay reads thousands of moves of a few pools),
    found by the UUIDs' ints, which hash in C."""
    ints = (item_id.int, location_id.int)
    key = _STOCK_KEYS.get(ints)
    if key is None:
        if len(_STOCK_KEYS) > 100_000:
            _STOCK_KEYS.clear()
        key = _STOCK_KEYS[ints] = _Key("stock", item_id, location_id)
    return key


def value_sides(move: MoveRecord) -> tuple[PoolKey | None, ...]:
    """The pools whose state sets the move's value (see `_Run.value_of`)."""
    basis = move.basis
    if basis == "fixed":
        return ()
    if basis == "pool_in":
        return (sides(move)[1],)
    if basis in ("mirror", "residual_stock"):  # the original's pools; both pools
        return sides(move)
    return (sides(move)[0],)


def same_state(a: Pool, b: Pool) -> bool:
    """Whether two states of one pool value every later record alike."""
    if isinstance(a, StockPool) and isinstance(b, StockPool):
        return (
            a.quantity == b.quantity
            and a.value == b.value
            and a.last_unit_cost == b.last_unit_cost
            and _nonzero(a.lots) == _nonzero(b.lots)
            and a.layers == b.layers
        )
    if isinstance(a, WipPool) and isinstance(b, WipPool):
        return (
            a.value == b.value
            and a.completed_quantity == b.completed_quantity
            and a.good_quantity == b.good_quantity
            and _nonzero(a.materials) == _nonzero(b.materials)
        )
    return False


def _nonzero(values: Mapping[Any, Any]) -> dict[Any, Any]:
    return {k: v for k, v in values.items() if v and v != (0, 0)}


def state_upto(history: History, key: PoolKey, upto: Position) -> Slot:
    """The pool after its records up to and including `upto`, replayed from its newest
    snapshot before (a period's end, for the close's snapshot)."""
    base = history.snapshot_before(key, upto)
    slot = Slot(
        history.empty_pool(key) if base is None else base.pool.clone(),
        None if base is None else base.position,
    )
    for record in history.records(key, slot.position, upto):
        _apply(slot, key, record, _booked(record))
    return slot


class Engine:
    """Holds the pools of one unit of work (an ingest batch) in memory."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.slots: dict[PoolKey, Slot] = {}
        self._saved: dict[PoolKey, tuple[Pool, Position | None]] | None = None

    def preload(self, records: list[Record]) -> None:
        """Load the pools these records will touch in one go (an optimisation: `slot`
        loads whatever was not preloaded)."""
        self.preload_keys({key for record in records for key in pool_keys(record)})

    def preload_keys(self, keys: Iterable[PoolKey]) -> None:
        missing = [key for key in keys if key not in self.slots]
        if missing:
            self.slots.update(self.history.load_slots(missing))

    def slot(self, key: PoolKey) -> Slot:
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = self.history.load_slots([key])[key]
        if self._saved is not None and key not in self._saved:
            self._saved[key] = (slot.pool.clone(), slot.position)
        return slot

    def post(self, records: list[Record]) -> Outcome:
        """Apply one event's new records; all or nothing."""
        self._saved = {}
        run = _Run(self)
        try:
            run.execute(records)
        except BaseException:
            for key, (pool, position) in self._saved.items():
                self.slots[key].pool, self.slots[key].position = pool, position
            raise
        finally:
            for key in self._saved:
                slot = self.slots[key]
                slot.end_replay()
            self._saved = None
        for snapshot_key, snapshot in run.rewritten.items():
            self.history.rewrite_snapshot(snapshot_key[0], snapshot)
        for record in records:
            for key in pool_keys(record):
                self.slots[key].since_snapshot += 1
        return run.outcome

    def saved(self, key: PoolKey) -> tuple[Pool, Position | None]:
        """The pool as it stood before the event being posted."""
        assert self._saved is not None
        pool, position = self._saved[key]
        return pool.clone(), position


@dataclass(frozen=True)
class _Checkpoint:
    """Where a replaying pool meets its next snapshot."""

    key: PoolKey
    position: Position


@dataclass
class _Window:
    """A pool's later records, read in one go and replayed in order for as long as
    nothing else in the heap comes first (a long replay of one pool then costs no heap
    operation per record)."""

    records: list[Record]
    key: PoolKey  # the pool replaying them
    next: int = 0


RECORD, CHECKPOINT = 0, 1  # at one position, the record first, then the snapshot after it
PREFETCH_POOLS = 256  # at most, read ahead for one cascade


class _Run:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heap: list[tuple[Position, int, int, Record | _Window | _Checkpoint]] = []
        self.queued: set[int] = set()
        self.counter = itertools.count()
        self.outcome = Outcome()
        # snapshots this event's replay changed, kept only if it posts
        self.rewritten: dict[tuple[PoolKey, Position], Snapshot] = {}
        # a cascade's rewinds read ahead, per pool: the position it was read for and
        # what `History.rewind_reads` gave; valid for a rewind at or after it, up to
        # its first snapshot ahead
        self.prefetched: dict[
            PoolKey, tuple[Position, Snapshot | None, list[Position], list[Record]]
        ] = {}
        self.read_ahead_once: set[PoolKey] = set()
        self.windows = 0  # windows queued so far
        self.current: _Window | None = None  # the window being replayed
        # what was queued at the last read-ahead
        self.scanned: tuple[int, _Window | None] = (0, None)

    def push(self, record: Record) -> None:
        if record.id.int not in self.queued:  # the int: hashed in C, not by UUID.__hash__
            self.queued.add(record.id.int)
            heapq.heappush(self.heap, (record.position, RECORD, next(self.counter), record))

    def push_window(self, key: PoolKey, records: list[Record]) -> None:
        """Queue records in position order, those not queued yet."""
        fresh = [record for record in records if record.id.int not in self.queued]
        self.queued.update(record.id.int for record in fresh)
        if fresh:
            window = _Window(fresh, key)
            heapq.heappush(self.heap, (fresh[0].position, RECORD, next(self.counter), window))
            self.windows += 1

    def replay(self, window: _Window) -> None:
        records, heap = window.records, self.heap
        n = window.next
        self.current = window
        while True:
            window.next = n
            self.process(records[n])
            n += 1
            if n == len(records):
                self.current = None
                return
            position = records[n].position
            if heap and (heap[0][0], heap[0][1]) < (position, RECORD):
                window.next = n
                heapq.heappush(heap, (position, RECORD, next(self.counter), window))
                self.current = None
                return

    def execute(self, records: list[Record]) -> None:
        for record in records:
            self.push(record)
        for record in records:
            for key in pool_keys(record):
                slot = self.engine.slot(key)
                if slot.position is not None and slot.position > record.position:
                    self.rewind(key, record.position)
        while self.heap:
            _, _, _, entry = heapq.heappop(self.heap)
            if isinstance(entry, _Window):
                self.replay(entry)
            elif isinstance(entry, _Checkpoint):
                self.checkpoint(entry)
            else:
                self.process(entry)

    def active(self, key: PoolKey | None, record: Record) -> bool:
        if key is None:
            return False
        if record.is_new:
            return True
        start = self.engine.slot(key).replay_from
        return start is not None and start < record.position

    def rewind(self, key: PoolKey, position: Position) -> None:
        """Rebuild the pool as it stood just before `position`, from its newest
        snapshot before it; queue what follows, up to its next snapshot."""
        slot = self.engine.slot(key)
        if slot.replay_from is not None and slot.replay_from <= position:
            return
        history = self.engine.history
        base, ahead, records = self.reads(key, position)
        slot.ahead = list(ahead)
        if base is not None:
            base = self.rewritten.get((key, base.position), base)
        fresh = Slot(
            history.empty_pool(key) if base is None else base.pool.clone(),
            None if base is None else base.position,
        )
        # read from the snapshot to the first snapshot ahead (or the end)
        upto = slot.ahead[0] if slot.ahead else None
        later = []
        for record in records:
            if record.position < position:
                _apply(fresh, key, record, _booked(record))
            elif record.position > position:
                later.append(record)
        slot.pool, slot.position, slot.replay_from = fresh.pool, fresh.position, position
        slot.dirty = True
        slot.window = 1
        self.queue(key, slot, later, upto)

    def reads(
        self, key: PoolKey, position: Position
    ) -> tuple[Snapshot | None, list[Position], list[Record]]:
        """What rewinding the pool to `position` reads: read ahead by the cascade when
        that read still holds (its snapshot before is the newest before `position`
        and its records reach it), else read now."""
        got = self.prefetched.pop(key, None)
        if got is not None:
            read_for, base, ahead, records = got
            if read_for <= position and (not ahead or position <= ahead[0]):
                return base, ahead, records
        return self.engine.history.rewind_reads({key: position})[key]

    def read_cascade_ahead(self) -> None:
        """A replayed move changed value, so the pool on its other side is about to be
        rewound: the other moves queued probably change too. Read ahead, in one round,
        for the pools those moves would rewind if they did: the other side of each
        queued move whose value the replaying pool sets (an issue's work order, not
        the material it came from), from its first such move. A cascade through many
        pools then costs a few queries per step, not a few per pool. Done again only
        once more moves are queued; a replay that changes nothing never reads ahead."""
        if self.scanned[0] == self.windows and self.scanned[1] is self.current:
            return  # nothing queued since: the same pools, all read ahead once
        self.scanned = (self.windows, self.current)
        first: dict[PoolKey, Position] = {}
        windows = [entry for _, _, _, entry in self.heap if isinstance(entry, _Window)]
        if self.current is not None:
            windows.append(self.current)
        for window in windows:
            replaying = window.key
            for record in window.records[window.next :]:
                if isinstance(record, MoveRecord) and replaying in value_sides(record):
                    for key in sides(record):
                        if key not in (replaying, None) and record.position < first.get(key, _END):
                            first[key] = record.position
        wants = {
            k: p for k, p in first.items() if k not in self.read_ahead_once and self.idle(k, p)
        }
        if not wants:
            return
        if len(wants) > PREFETCH_POOLS:
            wants = dict(sorted(wants.items(), key=lambda kv: kv[1])[:PREFETCH_POOLS])
        self.engine.preload_keys(list(wants))
        wants = {k: p for k, p in wants.items() if self.idle(k, p)}
        self.read_ahead_once.update(wants)
        for key, read in self.engine.history.rewind_reads(wants).items():
            self.prefetched[key] = (wants[key], *read)

    def idle(self, key: PoolKey, position: Position) -> bool:
        """Whether a rewind of the pool to `position` may still come: it is not
        replaying from there already, and (when loaded) has records after it."""
        slot = self.engine.slots.get(key)
        if slot is None:
            return True
        if slot.replay_from is not None and slot.replay_from <= position:
            return False
        return slot.position is not None and slot.position >= position

    def read_ahead(self, key: PoolKey, slot: Slot, after: Position) -> None:
        """Read the pool's records after `after` up to the snapshot `slot.window`
        snapshots on (all that follow when there are fewer) and queue them. The
        window doubles each time, so a long replay reads its records in a few
        queries, and a short one reads little past where it stops."""
        upto = slot.ahead[slot.window - 1] if len(slot.ahead) >= slot.window else None
        self.queue(key, slot, self.engine.history.records(key, after, upto), upto)

    def queue(self, key: PoolKey, slot: Slot, records: list[Record], upto: Position | None) -> None:
        """Queue records read up to `upto` (None: the pool's last), and a checkpoint at
        each snapshot on the way."""
        self.push_window(key, records)
        for position in slot.ahead[: slot.window]:
            heapq.heappush(
                self.heap, (position, CHECKPOINT, next(self.counter), _Checkpoint(key, position))
            )
        slot.read_to, slot.window = upto, slot.window * 2

    def checkpoint(self, mark: _Checkpoint) -> None:
        """The replay of a pool reached one of its snapshots. The same state: nothing
        later in the pool changes through it, so its replay stops and the pool keeps
        the state it had before the event. Otherwise the snapshot takes the replayed
        state and, past the last snapshot read, the next window is read."""
        key, slot = mark.key, self.engine.slot(mark.key)
        if not slot.ahead or slot.ahead[0] != mark.position or slot.replay_from is None:
            return  # a checkpoint of an earlier rewind of this pool
        slot.ahead.pop(0)
        stored = self.rewritten.get((key, mark.position)) or self.engine.history.snapshot_at(
            key, mark.position
        )
        if same_state(slot.pool, stored.pool):
            slot.pool, slot.position = self.engine.saved(key)
            slot.end_replay()
            self.queue_mirrors(key, mark.position)
            return
        self.rewritten[(key, mark.position)] = Snapshot(stored.id, mark.position, slot.pool.clone())
        if mark.position == slot.read_to:
            self.read_ahead(key, slot, mark.position)

    def process(self, record: Record) -> None:
        if isinstance(record, ChargeRecord):
            wip: PoolKey = _Key("wip", record.work_order_id)
            if self.active(wip, record):
                _apply(self.engine.slot(wip), wip, record, record.value)
            return
        src, dst = sides(record)
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
                    if key not in self.prefetched:
                        self.read_cascade_ahead()
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

    def queue_mirrors(self, key: PoolKey, after: Position) -> None:
        """A reversal takes its value from the move it mirrors, not from its pools: a
        pool that stopped replaying would leave the reversal of a move this event
        revalued at its old value. Queue those reversals after `after` (processing one
        whose value changes rewinds its pools again)."""
        changed = [c.move.id for c in self.outcome.changes.values() if key in sides(c.move)]
        if changed:
            for record in self.engine.history.mirrors_of(changed, after):
                self.push(record)

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
    if sides(record)[0] == key:
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
