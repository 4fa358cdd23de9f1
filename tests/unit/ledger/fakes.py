"""In-memory adapters for the ledger's two ports, so the posting rules and the valuation
engine run in unit tests without a database.

- `FakeMasterData` implements `posting_rules.MasterData`: a small workshop's items,
  locations, work centres, work orders (with backflushed components), parties and
  chart, and the stock questions a rule may ask (`on_hand`, `lots_on_hand`,
  `output_location`), answered from the moves the `FakeHistory` holds.
- `FakeHistory` implements `engine.History` the way `store.SqlHistory` does: moves and
  charges with their effective value (as booked plus revaluations), pool caches, and
  snapshots taken every `snapshot_every` records or on demand (`keep_snapshot`). Each
  read hands out fresh objects, as rows read from a database are. It logs its reads
  (`reads`) and snapshot rewrites (`rewrites`) so a test can see how far a replay went.
- `FakeBooks` is the unit of work around them (what `services.ingest.Batch` does with
  a database): plan an event with its rule, value it with the engine, keep the moves
  and the journal lines, book the revaluations of a late event. Reversals are planned
  here, as the service does today (posting_rules has no reversal rule).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cloud_api.domain import posting_rules as rules
from cloud_api.domain.clock import utc
from cloud_api.domain.engine import (
    ChargeRecord,
    Engine,
    History,
    MoveRecord,
    Outcome,
    Pool,
    PoolKey,
    Position,
    Record,
    Slot,
    Snapshot,
    pool_keys,
)
from cloud_api.domain.money import ZERO
from cloud_api.domain.pools import StockPool, WipPool
from cloud_api.domain.posting_rules import MasterData
from cloud_api.domain.refs import (
    ComponentRef,
    ItemRef,
    LocationRef,
    LotStock,
    PartyRef,
    WorkCenterRef,
    WorkOrderRef,
)
from cloud_api.errors import Held, Rejected
from contract import EVENT_ADAPTER, Event, Reversal

BASE_TIME = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
VIRTUAL_KINDS = ("supplier", "customer", "production", "adjustment", "scrap", "variance")

# The default chart's codes the workshop uses (cloud_api/services/chart.py), and two
# expense accounts for manual entries.
CHART = frozenset(
    {
        rules.BANK,
        rules.RECEIVABLES,
        rules.RAW_MATERIALS,
        rules.FINISHED_GOODS,
        rules.PENDING_LOSSES,
        rules.PAYABLES,
        rules.GOODS_RECEIVED_NOT_INVOICED,
        rules.PAYROLL,
        rules.VAT,
        rules.WIP,
        rules.OVERHEAD,
        rules.REVENUE,
        rules.COST_OF_SALES,
        "6602",  # 管理费用 administrative expenses
        "6603",  # 财务费用 finance costs
    }
)


def _id(name: str) -> uuid.UUID:
    """A stable id per code, so two runs of a history name the same things alike."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"unit-ledger/{name}")


# -- master data -------------------------------------------------------------------------
@dataclass
class FakeMasterData:
    """posting_rules.MasterData over dicts; unknown codes are Held('unknown_…'), as the
    database-backed store answers."""

    items: dict[str, ItemRef] = field(default_factory=dict)
    locations: dict[str, LocationRef] = field(default_factory=dict)
    work_orders: dict[str, WorkOrderRef] = field(default_factory=dict)
    work_centers: dict[str, WorkCenterRef] = field(default_factory=dict)
    customers: dict[str, PartyRef] = field(default_factory=dict)
    suppliers: dict[str, PartyRef] = field(default_factory=dict)
    operator_rates: dict[str, Decimal] = field(default_factory=dict)
    backflush: dict[uuid.UUID, list[ComponentRef]] = field(default_factory=dict)
    # (item code, lot) -> (expiry, first received at): the lot master data
    lot_data: dict[tuple[str, str], tuple[date | None, datetime | None]] = field(
        default_factory=dict
    )
    policy: str = "cost_of_sales"
    chart: frozenset[str] = CHART
    # the stock ledger the stock questions read (FakeBooks shares its history's)
    moves: list[MoveRecord] = field(default_factory=list)

    # -- building ------------------------------------------------------------------------
    def add_item(
        self,
        code: str,
        method: str = "moving_average",
        *,
        lot_tracked: bool = False,
        stock_account: str = rules.RAW_MATERIALS,
    ) -> ItemRef:
        ref = ItemRef(
            _id(f"item/{code}"),
            code,
            method,
            lot_tracked,
            stock_account,
            rules.COST_OF_SALES,
            rules.REVENUE,
        )
        self.items[code] = ref
        return ref

    def add_location(self, code: str, kind: str) -> LocationRef:
        ref = LocationRef(_id(f"location/{code}"), code, kind)
        self.locations[code] = ref
        return ref

    def add_work_order(
        self, code: str, item: str, planned: str, status: str = "released"
    ) -> WorkOrderRef:
        ref = WorkOrderRef(
            _id(f"work_order/{code}"), code, self.items[item].id, Decimal(planned), status
        )
        self.work_orders[code] = ref
        return ref

    def add_component(self, order: str, item: str, location: str, planned: str) -> None:
        """A backflushed component of `order`: `planned` for the order's whole quantity."""
        ref = self.work_orders[order]
        components = self.backflush.setdefault(ref.id, [])
        components.append(
            ComponentRef(
                len(components) + 1, self.items[item], self.locations[location], Decimal(planned)
            )
        )

    def set_status(self, order: str, status: str) -> None:
        self.work_orders[order] = replace(self.work_orders[order], status=status)

    # -- the MasterData protocol ---------------------------------------------------------
    def item(self, code: str) -> ItemRef:
        return _known(self.items, code, "unknown_item", "item")

    def item_by_id(self, item_id: uuid.UUID) -> ItemRef:
        return _by_id(self.items.values(), item_id, "unknown_item")

    def location(self, code: str) -> LocationRef:
        return _known(self.locations, code, "unknown_location", "location")

    def location_by_id(self, location_id: uuid.UUID) -> LocationRef:
        return _by_id(self.locations.values(), location_id, "unknown_location")

    def virtual_location(self, kind: str) -> LocationRef:
        for location in self.locations.values():
            if location.kind == kind:
                return location
        raise Held("missing_virtual_location", f"the tenant has no {kind} location")

    def work_order(self, code: str) -> WorkOrderRef:
        return _known(self.work_orders, code, "unknown_work_order", "work order")

    def work_order_by_id(self, work_order_id: uuid.UUID) -> WorkOrderRef:
        return _by_id(self.work_orders.values(), work_order_id, "unknown_work_order")

    def production_location(self) -> LocationRef:
        return self.virtual_location("production")

    def work_center(self, code: str) -> WorkCenterRef:
        return _known(self.work_centers, code, "unknown_work_center", "work centre")

    def customer(self, code: str) -> PartyRef:
        return _known(self.customers, code, "unknown_customer", "customer")

    def supplier(self, code: str) -> PartyRef:
        return _known(self.suppliers, code, "unknown_supplier", "supplier")

    def on_hand(self, item: ItemRef, location: LocationRef, lot: str, at: datetime) -> Decimal:
        """Quantity on hand just before `at` (moves strictly earlier), as the store says."""
        total = ZERO
        for move in self.moves:
            if move.item_id == item.id and move.lot == lot and move.position[0] < at:
                total += _signed_quantity(move, location)
        return total

    def backflush_components(self, order: WorkOrderRef) -> list[ComponentRef]:
        return list(self.backflush.get(order.id, []))

    def variance_policy(self) -> str:
        return self.policy

    def accounts(self) -> set[str]:
        return set(self.chart)

    def control_accounts(self) -> set[str]:
        return {*(item.stock_account for item in self.items.values()), rules.WIP}

    def operator_rate(self, code: str) -> Decimal | None:
        return self.operator_rates.get(code)

    def output_location(self, order: WorkOrderRef, at: datetime) -> LocationRef | None:
        """Where the order's latest completion before `at` put its goods."""
        done = [
            move
            for move in self.moves
            if move.work_order_id == order.id
            and move.kind == "completion"
            and move.source.kind == "production"
            and move.position[0] < at
        ]
        return max(done, key=lambda move: move.position).destination if done else None

    def lots_on_hand(self, item: ItemRef, location: LocationRef) -> list[LotStock]:
        quantities: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for move in self.moves:
            if move.item_id == item.id and move.lot:
                quantities[move.lot] += _signed_quantity(move, location)
        return [
            LotStock(lot, quantity, *self.lot_data.get((item.code, lot), (None, None)))
            for lot, quantity in sorted(quantities.items())
            if quantity > 0
        ]


def _known(table: dict[str, Any], code: str, problem: str, what: str) -> Any:
    if code not in table:
        raise Held(problem, f"{what} {code} does not exist; it posts once it is created")
    return table[code]


def _by_id(refs: Iterable[Any], ref_id: uuid.UUID, problem: str) -> Any:
    for ref in refs:
        if ref.id == ref_id:
            return ref
    raise Held(problem, f"no master data with id {ref_id}")


def _signed_quantity(move: MoveRecord, location: LocationRef) -> Decimal:
    return move.quantity * ((move.destination.id == location.id) - (move.source.id == location.id))


def workshop() -> FakeMasterData:
    """The integration tests' workshop (tests/factory.setup_workshop), in memory: RAW
    (moving average), BOLT (FIFO), GLUE (lot-tracked), TBL (finished goods); warehouse
    WH and bin B1; supplier SUP, customer CUS; work centre WC (labour 40/h, overhead
    10/h); WO1 (10 TBL) and WO2 (5 TBL) released, WO-DRAFT a draft, WO-DONE closed;
    operator SENIOR whose grade pays 55/h."""
    md = FakeMasterData()
    md.add_item("RAW")
    md.add_item("BOLT", "fifo")
    md.add_item("GLUE", lot_tracked=True)
    md.add_item("TBL", stock_account=rules.FINISHED_GOODS)
    md.add_location("WH", "warehouse")
    md.add_location("B1", "bin")
    for kind in VIRTUAL_KINDS:
        md.add_location(kind.upper(), kind)
    md.suppliers["SUP"] = PartyRef(_id("supplier/SUP"), "SUP")
    md.customers["CUS"] = PartyRef(_id("customer/CUS"), "CUS")
    md.work_centers["WC"] = WorkCenterRef(_id("work_center/WC"), "WC", Decimal(40), Decimal(10))
    md.add_work_order("WO1", "TBL", "10")
    md.add_work_order("WO2", "TBL", "5")
    md.add_work_order("WO-DRAFT", "TBL", "5", status="draft")
    md.add_work_order("WO-DONE", "TBL", "5", status="closed")
    md.operator_rates["SENIOR"] = Decimal(55)
    return md


# -- events --------------------------------------------------------------------------------
def at(minutes: float) -> datetime:
    return BASE_TIME + timedelta(minutes=minutes)


def make_event(
    type_: str,
    minutes: float,
    payload: dict[str, Any],
    *,
    event_id: uuid.UUID | None = None,
    operator: str | None = None,
) -> Event:
    """A contract event, validated as the API validates it."""
    return EVENT_ADAPTER.validate_python(
        {
            "event_id": event_id or uuid.uuid4(),
            "device_id": "unit",
            "seq": 1,
            "type": type_,
            "occurred_at": at(minutes),
            "operator": operator,
            "payload": payload,
        }
    )


def receipt(minutes: float, item: str, quantity: str, price: str, **kw: Any) -> Event:
    payload = {"supplier": "SUP", "item": item, "location": "WH", "quantity": quantity}
    return _event("purchase_receipt", minutes, {**payload, "unit_price": price}, kw)


def issue(minutes: float, item: str, quantity: str, wo: str = "WO1", **kw: Any) -> Event:
    payload = {"work_order": wo, "item": item, "location": "WH", "quantity": quantity}
    return _event("material_issue", minutes, payload, kw)


def material_return(minutes: float, item: str, quantity: str, wo: str = "WO1", **kw: Any) -> Event:
    payload = {"work_order": wo, "item": item, "location": "WH", "quantity": quantity}
    return _event("material_return", minutes, payload, kw)


def labour(minutes: float, hours: str, wo: str = "WO1", **kw: Any) -> Event:
    payload = {"work_order": wo, "work_center": "WC", "hours": hours}
    return _event("labour", minutes, payload, kw)


def completion(minutes: float, quantity: str, wo: str = "WO1", **kw: Any) -> Event:
    payload = {"work_order": wo, "location": "WH", "quantity": quantity}
    return _event("production_completion", minutes, payload, kw)


def shipment(minutes: float, item: str, quantity: str, price: str, **kw: Any) -> Event:
    payload = {"customer": "CUS", "item": item, "location": "WH", "quantity": quantity}
    return _event("sales_shipment", minutes, {**payload, "unit_price": price}, kw)


def count(minutes: float, item: str, counted: str, **kw: Any) -> Event:
    payload = {"item": item, "location": "WH", "counted_quantity": counted}
    return _event("stock_count", minutes, payload, kw)


def close(minutes: float, wo: str = "WO1", **kw: Any) -> Event:
    return _event("work_order_close", minutes, {"work_order": wo}, kw)


def reversal(minutes: float, original: Event, **kw: Any) -> Event:
    payload = {"reverses_event_id": original.event_id, "reason": "wrong scan"}
    return _event("reversal", minutes, payload, kw)


def _event(type_: str, minutes: float, payload: dict[str, Any], kw: dict[str, Any]) -> Event:
    """`event_id` and `operator` go on the envelope; any other keyword into the payload
    (lot, location, scrap_quantity, vat_rate, unit_cost...)."""
    event_id, operator = kw.pop("event_id", None), kw.pop("operator", None)
    return make_event(type_, minutes, {**payload, **kw}, event_id=event_id, operator=operator)


# -- history -------------------------------------------------------------------------------
def _copy(record: Record) -> Record:
    return replace(record) if isinstance(record, ChargeRecord) else replace(record, pools=None)


class FakeHistory:
    """engine.History in memory, kept the way store.SqlHistory keeps it."""

    def __init__(
        self, md: FakeMasterData, *, snapshot_every: int = 100, allow_negative: bool = False
    ) -> None:
        self.md, self.snapshot_every, self.allow_negative = md, snapshot_every, allow_negative
        self.moves: dict[uuid.UUID, MoveRecord] = {}  # as booked (value when posted)
        self.charges: list[ChargeRecord] = []
        self.deltas: dict[uuid.UUID, Decimal] = {}
        self.cache: dict[PoolKey, tuple[Pool, Position | None, int]] = {}
        self.snapshots: dict[PoolKey, dict[Position, Snapshot]] = defaultdict(dict)
        self.reads: list[tuple[PoolKey, Position | None, Position | None, int]] = []
        self.rewrites: list[tuple[PoolKey, Position]] = []

    # -- the History protocol ------------------------------------------------------------
    def load_slots(self, keys: list[PoolKey]) -> dict[PoolKey, Slot]:
        slots = {}
        for key in keys:
            if key in self.cache:
                pool, position, since = self.cache[key]
                slots[key] = Slot(pool.clone(), position, since_snapshot=since)
            else:
                slots[key] = Slot(self.empty_pool(key))
        return slots

    def empty_pool(self, key: PoolKey) -> Pool:
        if key[0] == "stock":
            item, location = self.md.item_by_id(key[1]), self.md.location_by_id(key[2])  # type: ignore[arg-type]
            label = f"{item.code} in {location.code}"
            return StockPool(item.valuation_method, label, self.allow_negative)
        order = self.md.work_order_by_id(key[1])  # type: ignore[arg-type]
        return WipPool(f"work order {order.code}", order.planned_quantity)

    def snapshot_before(self, key: PoolKey, position: Position) -> Snapshot | None:
        return self.snapshots_around(key, position)[0]

    def snapshots_around(
        self, key: PoolKey, position: Position
    ) -> tuple[Snapshot | None, list[Position]]:
        kept = sorted(self.snapshots[key])
        before = [p for p in kept if p < position]
        base = self.snapshot_at(key, before[-1]) if before else None
        return base, [p for p in kept if p >= position]

    def rewind_reads(
        self, wants: Mapping[PoolKey, Position]
    ) -> dict[PoolKey, tuple[Snapshot | None, list[Position], list[Record]]]:
        """Per pool: its newest snapshot before the position, the positions of those at
        or after it, and its records from that snapshot up to the first one ahead."""
        found = {}
        for key, position in wants.items():
            base, ahead = self.snapshots_around(key, position)
            after = None if base is None else base.position
            found[key] = (base, ahead, self.records(key, after, ahead[0] if ahead else None))
        return found

    def snapshot_at(self, key: PoolKey, position: Position) -> Snapshot:
        stored = self.snapshots[key][position]
        return Snapshot(stored.id, stored.position, stored.pool.clone())

    def rewrite_snapshot(self, key: PoolKey, snapshot: Snapshot) -> None:
        assert snapshot.position in self.snapshots[key], "only a kept snapshot is rewritten"
        self.snapshots[key][snapshot.position] = Snapshot(
            snapshot.id, snapshot.position, snapshot.pool.clone()
        )
        self.rewrites.append((key, snapshot.position))

    def records(
        self, key: PoolKey, after: Position | None, upto: Position | None = None
    ) -> list[Record]:
        kept: list[Record] = [*self.moves.values(), *self.charges]
        found = [
            self._effective(record)
            for record in kept
            if key in pool_keys(record)
            and (after is None or record.position > after)
            and (upto is None or record.position <= upto)
        ]
        found.sort(key=lambda record: record.position)
        self.reads.append((key, after, upto, len(found)))
        return found

    def mirrors_of(self, move_ids: list[uuid.UUID], after: Position) -> list[Record]:
        wanted = set(move_ids)
        found = [
            self._effective(move)
            for move in self.moves.values()
            if move.mirrors_move_id in wanted and move.position > after
        ]
        return sorted(found, key=lambda record: record.position)

    def effective_value(self, move_id: uuid.UUID) -> Decimal:
        booked = self.moves[move_id].value
        assert booked is not None
        return booked + self.deltas.get(move_id, ZERO)

    # -- the adapter's own side (store.SqlHistory.save and the ingest's rows) --------------
    def _effective(self, record: Record) -> Record:
        copy = _copy(record)
        if isinstance(copy, MoveRecord):
            copy.value = self.effective_value(copy.id)
        return copy

    def keep(self, records: list[Record], outcome: Outcome) -> None:
        """Keep a posted event's records at the values the engine gave them, and the
        changes to later moves as revaluations (never by editing the booked value)."""
        for record in records:
            kept = _copy(record)
            kept.is_new = False
            if isinstance(kept, MoveRecord):
                kept.value = outcome.values[kept.id]
                self.moves[kept.id] = kept
                self.md.moves.append(kept)
            else:
                self.charges.append(kept)
        for change in outcome.changes.values():
            delta = change.new_value - change.old_value
            self.deltas[change.move.id] = self.deltas.get(change.move.id, ZERO) + delta

    def save(self, slots: dict[PoolKey, Slot]) -> None:
        """Cache the pools; snapshot each that has had `snapshot_every` new records
        since its last, at its last record (keeping one already there)."""
        for key, slot in slots.items():
            if slot.since_snapshot >= self.snapshot_every and slot.position is not None:
                self.keep_snapshot(key, slot)
                slot.since_snapshot = 0
            self.cache[key] = (slot.pool.clone(), slot.position, slot.since_snapshot)

    def keep_snapshot(self, key: PoolKey, slot: Slot) -> None:
        assert slot.position is not None
        if slot.position not in self.snapshots[key]:
            snapshot = Snapshot(uuid.uuid4(), slot.position, slot.pool.clone())
            self.snapshots[key][slot.position] = snapshot

    def snapshot_now(self, key: PoolKey) -> Position:
        """Snapshot the cached pool at its last record (as a period close does)."""
        pool, position, since = self.cache[key]
        slot = Slot(pool, position, since_snapshot=since)
        self.keep_snapshot(key, slot)
        assert position is not None
        return position


def _conforms(md: FakeMasterData, history: FakeHistory) -> tuple[MasterData, History]:
    """The fakes implement the ports (mypy checks this; it is never called)."""
    return md, history


class WithoutSnapshots:
    """A view of a history with no snapshot at all: replays start from the first
    record (the oracle the snapshotted state is compared with)."""

    def __init__(self, history: FakeHistory) -> None:
        self.history = history

    def __getattr__(self, name: str) -> Any:
        return getattr(self.history, name)

    def snapshot_before(self, key: PoolKey, position: Position) -> Snapshot | None:
        return None

    def snapshots_around(
        self, key: PoolKey, position: Position
    ) -> tuple[Snapshot | None, list[Position]]:
        return None, []


# -- the unit of work ----------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """A journal line as booked: origin says which part of the posting made it."""

    event_id: uuid.UUID
    origin: str  # move, charge, event, revaluation
    account: str
    debit: Decimal
    credit: Decimal


@dataclass
class Result:
    event_id: uuid.UUID
    status: str  # posted, held, rejected
    code: str | None = None


class FakeBooks:
    """Posts events as services.ingest.Batch does, in memory: plan with the rule, value
    with the engine (one engine per batch), keep what posted, book the lines."""

    def __init__(
        self,
        md: FakeMasterData | None = None,
        *,
        snapshot_every: int = 100,
        allow_negative: bool = False,
    ) -> None:
        self.md = md or workshop()
        self.history = FakeHistory(
            self.md, snapshot_every=snapshot_every, allow_negative=allow_negative
        )
        self.lines: list[Line] = []
        self.plans: dict[uuid.UUID, rules.Plan] = {}
        self.move_ids: dict[uuid.UUID, list[uuid.UUID]] = {}
        self.events: dict[uuid.UUID, Event] = {}
        self.reversed_by: dict[uuid.UUID, uuid.UUID] = {}
        self.outcomes: dict[uuid.UUID, Outcome] = {}

    def post(self, *events: Event) -> list[Result]:
        """One batch: each event posts or is refused on its own."""
        engine = Engine(self.history)
        results = [self._post_one(engine, event) for event in events]
        self.history.save(engine.slots)
        return results

    def post_ok(self, *events: Event) -> None:
        """Post, one batch per event, and insist every event posts."""
        for event in events:
            (result,) = self.post(event)
            assert result.status == "posted", result

    def _post_one(self, engine: Engine, event: Event) -> Result:
        try:
            plan = self.plan(event)
            moves, charges = records_of(event, plan)
            outcome = engine.post([*moves, *charges])
        except Held as held:
            return Result(event.event_id, "held", held.code)
        except Rejected as rejected:
            return Result(event.event_id, "rejected", rejected.code)
        self.history.keep([*moves, *charges], outcome)
        self._book(event, plan, moves, outcome)
        return Result(event.event_id, "posted")

    def plan(self, event: Event) -> rules.Plan:
        if isinstance(event, Reversal):
            return self.reversal_plan(event)
        return rules.RULES[event.type](event, self.md)  # type: ignore[operator]

    def reversal_plan(self, event: Reversal) -> rules.Plan:
        """What services.ingest.Batch._reversal_plan builds: each move mirrored (sides
        swapped, valued as the move it reverses is now), each charge negated, the
        event's own lines with debit and credit swapped."""
        target = event.payload.reverses_event_id
        original = self.events.get(target)
        if original is None:
            raise Held("event_not_posted", f"event {target} is not posted (yet)")
        if target in self.reversed_by:
            raise Rejected("already_reversed", f"event {target} was already reversed")
        if event.occurred_at <= original.occurred_at:
            raise Rejected("reversal_before_original", "a reversal must follow its original")
        kept = self.plans[target]
        plan = rules.Plan(f"reversal of {target}", reverses_event_id=target)
        for spec, move_id in zip(kept.moves, self.move_ids[target], strict=True):
            plan.moves.append(
                replace(
                    spec,
                    source=spec.destination,
                    destination=spec.source,
                    basis="mirror",
                    fixed_value=None,
                    mirrors_move_id=move_id,
                )
            )
        base = len(plan.moves)
        for charge in kept.charges:
            plan.charges.append(
                replace(
                    charge,
                    line_no=base + charge.line_no,
                    hours=-charge.hours,
                    value=-charge.value,
                )
            )
        plan.lines = [replace(line, debit=line.credit, credit=line.debit) for line in kept.lines]
        return plan

    def _book(
        self, event: Event, plan: rules.Plan, moves: list[MoveRecord], outcome: Outcome
    ) -> None:
        self.plans[event.event_id] = plan
        self.move_ids[event.event_id] = [move.id for move in moves]
        self.events[event.event_id] = event
        self.outcomes[event.event_id] = outcome
        if plan.reverses_event_id is not None:
            self.reversed_by[plan.reverses_event_id] = event.event_id
        if event.type == "work_order_close":  # as ingest.Batch._follow_orders does
            self.md.set_status(event.payload.work_order, "closed")  # type: ignore[union-attr]
        specs: list[tuple[str, rules.LineSpec]] = []
        for spec, move in zip(plan.moves, moves, strict=True):
            value = outcome.values[move.id]
            for line in rules.journal_lines_of_move(
                spec.item, spec.source, spec.destination, value
            ):
                specs.append(("move", line))
        for charge in plan.charges:
            specs += [("charge", line) for line in rules.journal_lines_of_charge(charge)]
        specs += [("event", line) for line in plan.lines]
        for change in outcome.changes.values():
            item = self.md.item_by_id(change.move.item_id)
            delta = change.new_value - change.old_value
            for line in rules.journal_lines_of_move(
                item, change.move.source, change.move.destination, delta
            ):
                specs.append(("revaluation", line))
        self.lines += [
            Line(event.event_id, origin, line.account, line.debit, line.credit)
            for origin, line in specs
            if line.debit or line.credit  # as ingest.Batch._entry drops lines of nothing
        ]

    # -- reading the books -----------------------------------------------------------------
    def entry(self, event: Event, origin: str | None = None) -> list[tuple[str, Decimal, Decimal]]:
        """The event's lines (of one origin, or all), as (account, debit, credit)."""
        return [
            (line.account, line.debit, line.credit)
            for line in self.lines
            if line.event_id == event.event_id and (origin is None or line.origin == origin)
        ]

    def balances(self) -> dict[str, Decimal]:
        """Debit minus credit per account, accounts that net to zero left out."""
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for line in self.lines:
            totals[line.account] += line.debit - line.credit
        return {account: total for account, total in sorted(totals.items()) if total != 0}

    def pool(self, item: str, location: str = "WH") -> StockPool:
        pool = self.history.cache[stock_key(self.md, item, location)][0]
        assert isinstance(pool, StockPool)
        return pool

    def wip(self, order: str = "WO1") -> WipPool:
        pool = self.history.cache[wip_key(self.md, order)][0]
        assert isinstance(pool, WipPool)
        return pool

    def values(self, event: Event) -> list[Decimal]:
        """The effective values of the event's moves now, in line order."""
        return [self.history.effective_value(move_id) for move_id in self.move_ids[event.event_id]]


def stock_key(md: FakeMasterData, item: str, location: str = "WH") -> PoolKey:
    return ("stock", md.items[item].id, md.locations[location].id)


def wip_key(md: FakeMasterData, order: str = "WO1") -> PoolKey:
    return ("wip", md.work_orders[order].id)


def records_of(event: Event, plan: rules.Plan) -> tuple[list[MoveRecord], list[ChargeRecord]]:
    """The engine's records of a plan, as ingest.Batch.records makes them (with ids
    fixed by the event and line, so two runs of one history name its moves alike)."""
    moves = [
        MoveRecord(
            id=uuid.uuid5(event.event_id, f"move/{spec.line_no}"),
            position=(utc(event.occurred_at), event.event_id, spec.line_no),
            kind=spec.kind,
            item_id=spec.item.id,
            lot=spec.lot,
            source=spec.source,
            destination=spec.destination,
            quantity=spec.quantity,
            basis=spec.basis,
            work_order_id=spec.work_order.id if spec.work_order else None,
            mirrors_move_id=spec.mirrors_move_id,
            fixed_value=spec.fixed_value,
            scrap_quantity=spec.scrap_quantity,
            is_new=True,
        )
        for spec in plan.moves
    ]
    charges = [
        ChargeRecord(
            uuid.uuid5(event.event_id, f"charge/{charge.line_no}"),
            (utc(event.occurred_at), event.event_id, charge.line_no),
            charge.work_order.id,
            charge.value,
            is_new=True,
        )
        for charge in plan.charges
    ]
    return moves, charges
