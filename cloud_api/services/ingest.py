"""Ingest: a batch of events, one transaction, one result per event.

Each event is validated and planned first, then valued by the engine in memory; its
rows are buffered only once it has fully succeeded, so a bad event leaves nothing
behind and never sinks its neighbours. The batch commits once. Retries of the whole
batch (deadlock, serialization failure, a concurrent duplicate) are safe because the
event ids make posting idempotent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from cloud_api.db import models as m
from cloud_api.domain import posting_rules as rules
from cloud_api.domain.clock import (
    event_window_of,
    first_day_of_next_month,
    local_date,
    now_utc,
    period_of,
    utc,
)
from cloud_api.domain.engine import ChargeRecord, MoveRecord, Outcome
from cloud_api.domain.engine import Engine as ValuationEngine
from cloud_api.domain.money import ZERO, unit_cost
from cloud_api.domain.pools import StockPool, WipPool
from cloud_api.errors import Conflict, Forbidden, Held, NotFound, Rejected
from cloud_api.services import snapshots, waits_on
from cloud_api.services.ingest_guard import (
    BATCH_ERRORS,
    FlushFailed,
    PoisonedEvent,
    as_refusal,
    buffer_sizes,
    check_storable,
    poisoned,
)
from cloud_api.services.reservations import ReservationBook
from cloud_api.services.store import MasterDataStore, RowBuffer, SqlHistory, TenantContext
from cloud_api.settings import get_settings
from contract import (
    EVENT_ADAPTER,
    TRANSPORT_FIELDS,
    Event,
    EventResult,
    PurchaseReceipt,
    ResultStatus,
    Reversal,
)
from tenant.rbac import EVENT_ACTIONS, QUEUE_ACTIONS, can, device_may_send

T = m.SQLModel.metadata.tables
RETRIES = 5
log = logging.getLogger(__name__)


# Optional payload fields added after events were first stored: left out of the hash
# while unset, so an edge retry of an event stored before the field existed still
# matches its stored hash (a duplicate, not an idempotency conflict).
LATER_OPTIONAL_FIELDS = (
    "expiry",
    "started_at",
    "stopped_at",
    "scrap_reasons",
    "operation",
    "delivery_note",
)


def payload_hash(event: Event) -> str:
    """Hash of what the event says; `replayed` and the edge's audit fields are
    transport, not content."""
    body = event.model_dump(mode="json", exclude=set(TRANSPORT_FIELDS))
    for name in LATER_OPTIONAL_FIELDS:
        if body["payload"].get(name, "") is None:
            del body["payload"][name]
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for err in error.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def closed_periods(conn: Connection, tenant_id: uuid.UUID) -> set[str]:
    fp = T["fiscal_period"]
    return set(
        conn.scalars(select(fp.c.code).where(fp.c.tenant_id == tenant_id, fp.c.status == "closed"))
    )


def open_posting_date(day: date, closed: set[str]) -> date:
    """The day itself if its period is open, else the first day of the next open one."""
    for _ in range(1200):
        if period_of(day) not in closed:
            return day
        day = first_day_of_next_month(day)
    raise Held("period_locked", "no open period to book into")


# the exception queue's open statuses: re-sent, re-posted or voided, never dropped
OPEN = ("held", "rejected")
# refusals that say who asks may not do it, not that the event is wrong
NOT_THEIR_RIGHT = frozenset({"forbidden", "journal_not_allowed", "sod_violation"})
# counts what a transaction posted toward the tenant's month (subscriptions.count_posted)
Meter = Callable[[Connection, uuid.UUID, int, datetime], None]


class IngestService:
    def __init__(self, db: Engine, meter: Meter | None = None) -> None:
        self.db, self.meter = db, meter

    def ingest(
        self,
        tenant: TenantContext,
        raw_events: list[Any],
        actor: Actor | None = None,
        hold: bool = True,
    ) -> list[EventResult]:
        """Post a batch in one transaction. The meter counts what posted in the same
        transaction, so the count commits or rolls back with the postings: a batch from
        the edge, a held event re-posted from the queue, a close or a reversal alike.
        `actor` is who sent it: recorded on each event, and checked on reversals.
        `hold=False` keeps nothing of an event that cannot post now (a synchronous
        caller answers the reason instead of filling the exception queue)."""
        for attempt in range(RETRIES):
            try:
                with self.db.begin() as conn:
                    results = Batch(conn, tenant, actor, hold).run(raw_events)
                    posted = sum(1 for r in results if r.status == ResultStatus.posted)
                    if self.meter is not None and posted:
                        self.meter(conn, tenant.id, posted, now_utc())
            except (IntegrityError, OperationalError) as error:
                if attempt == RETRIES - 1 or not _retryable(error):
                    raise
                continue
            from cloud_api.services import held  # (held imports this module)

            # committed: the held events that this batch's postings may clear post now
            held.after_ingest(self, tenant, raw_events, results)
            return results
        raise AssertionError("unreachable")

    def repost(
        self, tenant: TenantContext, event_id: uuid.UUID, actor: Actor | None = None
    ) -> EventResult:
        """Try a held or rejected event again, as it was sent; `actor`, who asks, is
        the one a reversal's rights and segregation of duties are checked against. A
        device's event stays bound to the device's site, whoever re-posts it."""
        with self.db.connect() as conn:
            row = event_row(conn, tenant.id, event_id)
            site = _sender_site(conn, tenant.id, row.posted_by if row is not None else None)
        _require_open(row, event_id)
        if site is not None and actor is not None:
            actor = replace(actor, site=site)
        result = self.ingest(tenant, [json.loads(row.payload)], actor)[0]
        if result.status == ResultStatus.rejected and result.code in NOT_THEIR_RIGHT:
            raise Forbidden(result.code, result.message or "not allowed for this role")
        return result

    def void(
        self, tenant: TenantContext, event_id: uuid.UUID, reason: str, actor: Actor | None = None
    ) -> None:
        """Take a held or rejected event out of the queue for good, with a reason. Who
        asks needs the right to make that kind of event (a production clerk does not
        void a receipt); the row is locked, so a concurrent re-post posts it or this
        voids it, never both."""
        with self.db.begin() as conn:
            row = event_row(conn, tenant.id, event_id, lock=True)
            _require_open(row, event_id)
            _may_act_on(actor, row.type)
            ev = T["edge_event"]
            conn.execute(
                ev.update()
                .where(
                    ev.c.tenant_id == tenant.id,
                    ev.c.event_id == event_id,
                    ev.c.status.in_(OPEN),
                )
                .values(status="voided", code="voided", message=reason)
            )


def _sender_site(conn: Connection, tenant_id: uuid.UUID, sent_by: str | None) -> str | None:
    """The site of the device that sent an event (`posted_by` device:<id>), if one did."""
    kind, _, ident = (sent_by or "").partition(":")
    if kind != "device":
        return None
    try:
        device_id = uuid.UUID(ident)
    except ValueError:
        return None
    d = T["device"]
    found = conn.scalar(select(d.c.site).where(d.c.tenant_id == tenant_id, d.c.id == device_id))
    return str(found) if found is not None else None


def _may_act_on(actor: Actor | None, event_type: str) -> None:
    if actor is None or actor.kind != "user":
        return
    action = QUEUE_ACTIONS.get(event_type)
    if action is not None and not can(actor.role or "", action):
        kind = event_type.replace("_", " ")
        raise Forbidden("forbidden", f"the role {actor.role} may not void a {kind}")


def _require_open(row: Any, event_id: uuid.UUID) -> None:
    if row is None:
        raise NotFound("unknown_event", f"no event {event_id}")
    if row.status not in OPEN:
        raise Conflict(
            "not_held",
            f"event {event_id} is {row.status}; only a held or rejected event can be "
            "re-posted or voided",
        )


def _order_ids(moves: list[MoveRecord], charges: list[ChargeRecord]) -> set[uuid.UUID]:
    """The work orders the records post to."""
    ids = {mv.work_order_id for mv in moves if mv.work_order_id is not None}
    return ids | {ch.work_order_id for ch in charges}


def _takes_free_stock(mv: MoveRecord) -> bool:
    """Moves that must leave other orders' reservations alone (a count or scrap is
    what physically happened and is never refused for a reservation)."""
    return mv.kind in ("issue", "shipment") and mv.source.internal


def _retryable(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True  # a concurrent batch posted the same event id first
    code = getattr(error.orig, "sqlstate", None)
    return code in {"40001", "40P01"} or "database is locked" in str(error)


def event_row(
    conn: Connection, tenant_id: uuid.UUID, event_id: uuid.UUID, lock: bool = False
) -> Any:
    ev = T["edge_event"]
    query = select(ev).where(ev.c.tenant_id == tenant_id, ev.c.event_id == event_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


@dataclass(frozen=True)
class Actor:
    """Who sends events: a portal user (with their role), a device or the API key."""

    kind: str  # user, device, api_key
    id: str
    role: str | None = None
    scopes: frozenset[str] | None = None  # a device's (tenant/security/keys.py)
    site: str | None = None  # a device's: it moves stock at this site's locations only
    # a held event's sender that is gone or revoked since (services/held.py): refused
    revoked: bool = False

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"


REVERSAL_SOD = (
    "whoever posted an entry may not reverse it: another owner or finance manager must "
    "(an owner may waive this for a one-person company in the settings)"
)


class Batch:
    def __init__(
        self,
        conn: Connection,
        tenant: TenantContext,
        actor: Actor | None = None,
        hold: bool = True,
    ) -> None:
        self.conn, self.tenant, self.actor, self.hold = conn, tenant, actor, hold
        self.now = now_utc()
        self.window = event_window_of(get_settings())
        self._start()

    def _start(self) -> None:
        """The batch's working state, fresh (again, when it runs again without an
        event that poisoned it)."""
        self.buffer = RowBuffer()
        self.md = MasterDataStore(self.conn, self.tenant, self.buffer, self._lots_in_stock)
        self.history = SqlHistory(self.conn, self.tenant, self.md, self.buffer)
        self.engine = ValuationEngine(self.history)
        snapshots.hold_periods(self.conn, self.tenant.id)
        self.closed = closed_periods(self.conn, self.tenant.id)
        self.reservations = ReservationBook(self.conn, self.tenant, self.now)
        self.active_orders: set[uuid.UUID] = set()
        self.closed_orders: set[uuid.UUID] = set()
        self.prepared: dict[uuid.UUID, tuple[rules.Plan, list[MoveRecord], list[ChargeRecord]]] = {}

    def run(self, raw_events: list[Any]) -> list[EventResult]:
        """Post the batch inside a savepoint. An event that fails after the engine took
        it (ingest_guard.PoisonedEvent) may leave the batch half-applied: back to the
        savepoint, and the batch runs again with that event refused up front. Each
        round refuses one more event, so this ends."""
        poisoned: dict[uuid.UUID, PoisonedEvent] = {}
        while True:
            savepoint = self.conn.begin_nested()
            try:
                results = self._run(raw_events, poisoned)
            except PoisonedEvent as error:
                savepoint.rollback()
                if error.event_id in poisoned:  # pragma: no cover - refused up front
                    raise AssertionError(f"event {error.event_id} poisoned twice") from error
                poisoned[error.event_id] = error
                self._start()
                continue
            savepoint.commit()
            return results

    def _run(
        self, raw_events: list[Any], poisoned: dict[uuid.UUID, PoisonedEvent]
    ) -> list[EventResult]:
        results: list[EventResult | None] = [None] * len(raw_events)
        parsed: list[tuple[int, Event, str]] = []
        for index, raw in enumerate(raw_events):
            try:
                event = EVENT_ADAPTER.validate_python(raw)
                digest = payload_hash(event)
            except ValidationError as error:
                results[index] = _invalid(raw, describe_validation_error(error))
                continue
            except Exception as error:  # junk no validator foresaw: this event alone
                log.warning("event %s unreadable", _raw_id(raw), exc_info=error)
                results[index] = _invalid(
                    raw, f"the event could not be read ({type(error).__name__})"
                )
                continue
            parsed.append((index, event, digest))
        existing = self._existing_rows({e.event_id for _, e, _ in parsed})
        todo = self._triage(parsed, existing, results)
        todo = self._set_aside(todo, poisoned, existing, results)
        self.md.prefetch_items({getattr(e.payload, "item", "") for _, e, _ in todo} - {""})
        self.md.prefetch_work_orders(
            {getattr(e.payload, "work_order", "") for _, e, _ in todo} - {""}
        )
        todo.sort(key=lambda t: (utc(t[1].occurred_at), t[1].event_id))
        self._prepare(event for _, event, _ in todo)
        for index, event, digest in todo:
            results[index] = self.post(event, digest, existing.get(event.event_id))
        self.buffer.flush(self.conn)
        self.history.save(self.engine.slots)
        self.reservations.flush()
        self._save_order_statuses()
        self._fill_duplicates(results)
        return [r for r in results if r is not None]

    # -- idempotency -----------------------------------------------------------
    def _existing_rows(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
        if not ids:
            return {}
        ev = T["edge_event"]
        query = select(ev).where(ev.c.tenant_id == self.tenant.id, ev.c.event_id.in_(sorted(ids)))
        if self.conn.dialect.name == "postgresql":
            # a re-send, a re-post and a void of one queued event take turns: the
            # second sees what the first did (posted, voided), never a stale "held"
            query = query.with_for_update()
        rows = self.conn.execute(query).all()
        return {row.event_id: row for row in rows}

    def _triage(
        self,
        parsed: Iterable[tuple[int, Event, str]],
        existing: dict[uuid.UUID, Any],
        results: list[EventResult | None],
    ) -> list[tuple[int, Event, str]]:
        todo: list[tuple[int, Event, str]] = []
        seen: dict[uuid.UUID, str] = {}  # event id -> payload digest, earlier in the batch
        for index, event, digest in parsed:
            row = existing.get(event.event_id)
            earlier = seen.get(event.event_id)
            known_digest = row.payload_sha256 if row is not None else earlier
            if known_digest is not None and known_digest != digest:
                results[index] = EventResult(
                    event_id=str(event.event_id),
                    status=ResultStatus.conflict,
                    code="idempotency_key_reused",  # SAAS.md case 9
                    message="this event id was already used with another payload; "
                    "make a new id for a new event",
                )
            elif earlier is not None or (row is not None and row.status not in OPEN):
                results[index] = EventResult(
                    event_id=str(event.event_id), status=ResultStatus.duplicate
                )
            else:
                todo.append((index, event, digest))
            seen[event.event_id] = digest
        return todo

    def _set_aside(
        self,
        todo: list[tuple[int, Event, str]],
        poisoned: dict[uuid.UUID, PoisonedEvent],
        existing: dict[uuid.UUID, Any],
        results: list[EventResult | None],
    ) -> list[tuple[int, Event, str]]:
        """Refuse up front the events that poisoned an earlier round of this batch."""
        if not poisoned:
            return todo
        left = []
        for index, event, digest in todo:
            bad = poisoned.get(event.event_id)
            if bad is None:
                left.append((index, event, digest))
                continue
            row = existing.get(event.event_id)
            if self.hold:
                self._keep_exception(event, digest, row, bad.status, bad.code, bad.message)
            results[index] = EventResult(
                event_id=str(event.event_id),
                status=ResultStatus(bad.status),
                code=bad.code,
                message=bad.message,
            )
        return left

    def _fill_duplicates(self, results: list[EventResult | None]) -> None:
        dupes = [r for r in results if r is not None and r.status == ResultStatus.duplicate]
        if not dupes:
            return
        ids = {uuid.UUID(r.event_id) for r in dupes if r.event_id}
        rows = self._existing_rows(ids)
        mv = T["stock_move"]
        moves: dict[uuid.UUID, list[str]] = {}
        for move in self.conn.execute(
            select(mv.c.event_id, mv.c.id)
            .where(mv.c.tenant_id == self.tenant.id, mv.c.event_id.in_(sorted(ids)))
            .order_by(mv.c.line_no)
        ):
            moves.setdefault(move.event_id, []).append(str(move.id))
        for result in dupes:
            row = rows[uuid.UUID(result.event_id)]  # type: ignore[arg-type]
            result.original_status = (
                ResultStatus(row.status) if row.status in ("posted", *OPEN) else None
            )
            result.code, result.message = row.code, row.message
            result.journal_entry_id = str(row.journal_entry_id) if row.journal_entry_id else None
            result.move_ids = moves.get(row.event_id, [])

    # -- posting ---------------------------------------------------------------
    def _prepare(self, events: Iterable[Event]) -> None:
        """Plan the batch up front so that its pools load (and lock) in one go. A
        reversal (its original may post in this batch) is planned when it posts. An
        event whose plan reads the ledger (a count; a completion that backflushes) is
        planned here only to know its pools, and again when it posts, after the events
        before it; so is an event whose plan fails, to report why."""
        records: list[MoveRecord | ChargeRecord] = []
        for event in events:
            if isinstance(event, Reversal):
                continue
            try:
                plan = self.plan(event)
                moves, charges = self.records(event, plan, utc(event.occurred_at))
                if not rules.plan_reads_ledger(event, self.md):
                    self.prepared[event.event_id] = (plan, moves, charges)
            except BATCH_ERRORS:
                raise
            except Exception:  # planned again when it posts, to say why
                continue
            records += moves
            records += charges
        self.engine.preload(records)
        self.reservations.load(
            {
                (r.item_id, r.source.id)
                for r in records
                if isinstance(r, MoveRecord) and _takes_free_stock(r)
            }
        )

    def post(self, event: Event, digest: str, row: Any) -> EventResult:
        try:
            plan, moves, charges, outcome, entry_date = self._value(event)
        except Held as held:
            if self.hold:  # a synchronous caller (the portal) answers 409 and keeps nothing
                self._keep_exception(event, digest, row, "held", held.code, held.message)
            return EventResult(
                event_id=str(event.event_id),
                status=ResultStatus.held,
                code=held.code,
                message=held.message,
            )
        except Rejected as rejected:
            # kept for the exception queue too (the edge parks its copy): someone must
            # see a wrong scan, and a fix to master data may let it post after all. A
            # queued event re-posted by someone without the right stays as it was.
            if self.hold and not (row is not None and rejected.code in NOT_THEIR_RIGHT):
                self._keep_exception(
                    event, digest, row, "rejected", rejected.code, rejected.message
                )
            return EventResult(
                event_id=str(event.event_id),
                status=ResultStatus.rejected,
                code=rejected.code,
                message=rejected.message,
            )
        before = buffer_sizes(self.buffer.rows)
        try:
            entry_id = self._book(event, plan, moves, charges, outcome, entry_date)
            self._record_posted(event, digest, row, entry_id)
            self._follow_orders(event, moves, charges)
            self._keep_lot(event)
            check_storable(self.buffer.rows, before, self.engine, [*moves, *charges], outcome)
        except BATCH_ERRORS:
            raise
        except Exception as error:  # the engine took it: the batch runs again without it
            raise poisoned(event.event_id, error) from error
        return EventResult(
            event_id=str(event.event_id),
            status=ResultStatus.posted,
            journal_entry_id=str(entry_id) if entry_id else None,
            move_ids=[str(mv.id) for mv in moves],
        )

    def _value(
        self, event: Event
    ) -> tuple[rules.Plan, list[MoveRecord], list[ChargeRecord], Outcome, date]:
        """Check, plan and value one event: Held or Rejected when it cannot post, with
        nothing of it kept (the engine restores its pools itself when it fails). Any
        other exception is this event's refusal too (ingest_guard.as_refusal), never
        the batch's; a database error still goes to the batch's retry loop."""
        try:
            occurred = utc(event.occurred_at)
            refusal = self.window.refusal(occurred, self.now, event.clock_offset_s)
            if refusal is not None:
                raise Rejected("occurred_at_out_of_range", refusal)
            entry_date = local_date(occurred, self.tenant.timezone)
            if period_of(entry_date) in self.closed:
                raise Held(
                    "period_locked",  # SAAS.md's code; the period is closed (locked)
                    f"the period {period_of(entry_date)} is closed; "
                    "it posts once the period is reopened (or void it and post it with the right "
                    "date)",
                )
            prepared = self.prepared.pop(event.event_id, None)
            if prepared is None:
                plan = self.plan(event)
                moves, charges = self.records(event, plan, occurred)
            else:
                plan, moves, charges = prepared
            self._check_orders_still_open(moves, charges)
            self._check_reserved(moves)
            self._check_completion_quantity(moves)
            return plan, moves, charges, self.engine.post([*moves, *charges]), entry_date
        except (Held, Rejected):
            raise
        except Exception as error:
            raise as_refusal(event.event_id, error) from error

    def _flush(self) -> None:
        """Write the rows buffered so far, mid-batch. They are earlier events': a failure
        here is the batch's (ingest_guard.FlushFailed), never the event being planned."""
        try:
            self.buffer.flush(self.conn)
        except BATCH_ERRORS:
            raise
        except Exception as error:
            raise FlushFailed("writing the batch's rows failed") from error

    def _lots_in_stock(self, item_id: uuid.UUID, location_id: uuid.UUID) -> dict[str, Decimal]:
        """On hand now per lot, with this batch's postings so far (the engine's pool)."""
        pool = self.engine.slot(("stock", item_id, location_id)).pool
        assert isinstance(pool, StockPool)
        return dict(pool.lots)

    def _keep_lot(self, event: Event) -> None:
        """A posted receipt of a lot keeps the lot's master data (the `lot` table)."""
        if isinstance(event, PurchaseReceipt) and event.payload.lot:
            self.buffer.add_lot(
                self.tenant.id,
                self.md.item(event.payload.item).id,
                event.payload.lot,
                utc(event.occurred_at),
                event.payload.expiry,
            )

    # -- work orders and their reservations ---------------------------------------
    def _check_orders_still_open(
        self, moves: list[MoveRecord], charges: list[ChargeRecord]
    ) -> None:
        """An event planned before an earlier event of the batch closed its order."""
        for order_id in _order_ids(moves, charges):
            order = self.md.work_order_by_id(order_id)
            if order.status not in rules.POSTABLE_STATUSES:
                raise Held(
                    "work_order_closed",
                    f"work order {order.code} is {order.status}; post to an open order instead",
                )

    def _check_reserved(self, moves: list[MoveRecord]) -> None:
        """Stock that other work orders hold is not free for this issue or shipment."""
        if self.tenant.allow_issue_from_reserved:
            return
        for mv in moves:
            if not mv.is_new or not _takes_free_stock(mv):
                continue
            pool = (mv.item_id, mv.source.id)
            others = self.reservations.held(pool, excluding_order=mv.work_order_id)
            stock = self.engine.slot(("stock", *pool)).pool
            assert isinstance(stock, StockPool)  # a "stock" key holds a stock pool
            on_hand = stock.quantity
            if others > 0 and on_hand >= mv.quantity and on_hand - mv.quantity < others:
                item = self.md.item_by_id(mv.item_id).code
                free = max(on_hand - others, ZERO)
                raise Held(
                    "reserved_for_other_orders",
                    f"only {free} of {item} in {mv.source.code} is free: {on_hand} on hand, "
                    f"{others} reserved for other work orders; receive more, or release or "
                    "close those orders",
                    on_hand=str(on_hand),
                    reserved=str(others),
                )

    def _check_completion_quantity(self, moves: list[MoveRecord]) -> None:
        """A completion may go beyond the planned quantity only within the tenant's
        tolerance; beyond it the event is held (raise the planned quantity, or use
        another order). Counted in event time, like stock: the units completed (net of
        reversed completions) as of this completion and at every later point of the
        order's timeline, so a late completion is judged by what had been made by then
        and cannot push later ones over: the books do not depend on arrival order."""
        for mv in moves:
            if not (mv.is_new and mv.kind == "completion" and mv.source.kind == "production"):
                continue
            assert mv.work_order_id is not None  # a completion from production has its order
            pool = self.engine.slot(("wip", mv.work_order_id)).pool
            assert isinstance(pool, WipPool)
            limit = pool.planned_quantity * (1 + self.tenant.completion_tolerance)
            made = self._most_made_from(mv)
            if made > limit:
                order = self.md.work_order_by_id(mv.work_order_id)
                raise Held(
                    "completion_exceeds_order",
                    f"completing {mv.quantity + mv.scrap_quantity} more (scrap included) of work "
                    f"order {order.code} would make {made}, beyond its planned "
                    f"{pool.planned_quantity} and the tolerance of {limit}",
                    completed=str(pool.completed_quantity),
                    limit=str(limit),
                )

    def _most_made_from(self, new: MoveRecord) -> Decimal:
        """The most units (good + scrap) the order will have completed at any point of
        its timeline from `new` on, `new` included. The order's WIP pool holds the units
        completed over its whole timeline (this batch's postings included), so what was
        made just before `new` is that less what the completions after `new` make. Those
        are read only when the pool has a record after `new` (a late completion): a
        completion in time order reads nothing, however long the order's history."""
        assert new.work_order_id is not None
        slot = self.engine.slot(("wip", new.work_order_id))
        assert isinstance(slot.pool, WipPool)
        in_order = slot.position is not None and slot.position < new.position
        later = [] if in_order else self._completions_after(new)
        running = slot.pool.completed_quantity - sum(later, ZERO)
        running += new.quantity + new.scrap_quantity
        most = running
        for units in later:
            running += units
            most = max(most, running)
        return most

    def _completions_after(self, new: MoveRecord) -> list[Decimal]:
        """The units each completion of `new`'s order after `new` makes (negative: one
        reversed back into WIP), in event time. Reads the order's completions from
        `new`'s time on (ix_move_work_order), after flushing what this batch wrote."""
        self._flush()
        mv = T["stock_move"]
        production = self.md.production_location().id
        rows = self.conn.execute(
            select(
                mv.c.occurred_at,
                mv.c.event_id,
                mv.c.line_no,
                mv.c.quantity,
                mv.c.scrap_quantity,
                mv.c.from_location_id,
            ).where(
                mv.c.tenant_id == self.tenant.id,
                mv.c.work_order_id == new.work_order_id,
                mv.c.kind == "completion",
                mv.c.occurred_at >= new.position[0],
            )
        )
        steps = []
        for r in rows:
            position = (utc(r.occurred_at), r.event_id, r.line_no)
            if position > new.position:
                units = r.quantity + r.scrap_quantity
                made = r.from_location_id == production  # else reversed back into WIP
                steps.append((position, units if made else -units))
        steps.sort(key=lambda step: step[0])
        return [units for _, units in steps]

    def _follow_orders(
        self, event: Event, moves: list[MoveRecord], charges: list[ChargeRecord]
    ) -> None:
        """What a posted event does to its work order: an issue confirms (consumes) the
        order's reservation; any posting puts a released order in progress; a close
        releases what the order still holds and closes it."""
        for mv in moves:
            if mv.kind == "issue" and mv.work_order_id and mv.source.internal:
                self.reservations.consume(mv.work_order_id, (mv.item_id, mv.source.id), mv.quantity)
        orders = _order_ids(moves, charges)
        if event.type == "work_order_close":
            for order_id in orders:
                self.reservations.release_order(order_id)
                self.md.set_order_status(order_id, "closed")
                self.closed_orders.add(order_id)
        else:
            self.active_orders |= orders

    def _save_order_statuses(self) -> None:
        wo = T["work_order"]
        where = [wo.c.tenant_id == self.tenant.id]
        wip = {
            key[1]: slot.pool
            for key, slot in self.engine.slots.items()
            if key[0] == "wip" and isinstance(slot.pool, WipPool)
        }
        done = {o for o, pool in wip.items() if pool.completed_quantity >= pool.planned_quantity}
        undone = set(wip) - done  # a completion reversed or revalued away
        for ids, before, after, extra in (
            (self.active_orders, ("released",), "in_progress", {}),
            (done, ("released", "in_progress"), "completed", {}),
            (undone, ("completed",), "in_progress", {}),
            (self.closed_orders, tuple(rules.POSTABLE_STATUSES), "closed", {"closed_at": self.now}),
        ):
            if ids:
                self.conn.execute(
                    update(wo)
                    .where(*where, wo.c.id.in_(sorted(ids)), wo.c.status.in_(before))  # type: ignore[arg-type]
                    .values(status=after, **extra)
                )

    def plan(self, event: Event) -> rules.Plan:
        self._may_send(event)
        if isinstance(event, Reversal):
            return self._reversal_plan(event)
        if event.type == "journal_entry":
            self._may_post_journal()
        plan = rules.RULES[event.type](event, self.md)  # type: ignore[operator]
        self._at_own_site(plan)
        return plan  # type: ignore[no-any-return]

    def _at_own_site(self, plan: rules.Plan) -> None:
        """A device enrolled at a site moves stock in that site's warehouses and bins
        only (SAAS.md: enrollment is scoped to tenant + site)."""
        site = self.actor.site if self.actor is not None else None
        if site is None:
            return
        for move in plan.moves:
            for place in (move.source, move.destination):
                if place.internal and place.site != site:
                    raise Rejected(
                        "location_outside_site",
                        f"location {place.code} is at site {place.site}; this device is "
                        f"enrolled at site {site}",
                    )

    def _may_send(self, event: Event) -> None:
        """The RBAC matrix's rows for a person's events: stock movements are the
        warehouse's (and the owner's), work-order progress production's. A device sends
        what its scopes allow (a receiving handheld: stock; a work-reporting terminal:
        progress); the API key and the system act for the owner."""
        actor, kind = self.actor, event.type.value.replace("_", " ")
        if actor is not None and actor.revoked:
            who = actor.kind.replace("_", " ")
            raise Rejected("forbidden", f"the {who} that sent this {kind} is revoked or gone")
        scopes = actor.scopes if actor is not None and actor.kind == "device" else None
        if scopes is not None and not device_may_send(scopes, event.type.value):
            raise Rejected("forbidden", f"this device is not enrolled to post a {kind}")
        action = EVENT_ACTIONS.get(event.type.value)
        if actor is None or actor.kind != "user" or action is None:
            return
        if not can(actor.role or "", action):
            raise Rejected("forbidden", f"the role {actor.role} may not post a {kind}")

    def _may_post_journal(self) -> None:
        """The RBAC matrix's "draft / post journal": owners, finance managers and
        accountants; a device posts only what its events' rules book."""
        actor = self.actor
        if actor is None or actor.kind == "api_key":
            return
        if actor.kind == "device":
            raise Rejected("journal_not_allowed", "a device cannot post a manual journal entry")
        if not can(actor.role or "", "journal.post"):
            raise Rejected("forbidden", f"the role {actor.role} may not post journal entries")

    def records(
        self, event: Event, plan: rules.Plan, occurred: datetime
    ) -> tuple[list[MoveRecord], list[ChargeRecord]]:
        moves = [
            MoveRecord(
                id=uuid.uuid4(),
                position=(occurred, event.event_id, spec.line_no),
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
                uuid.uuid4(),
                (occurred, event.event_id, ch.line_no),
                ch.work_order.id,
                ch.value,
                is_new=True,
            )
            for ch in plan.charges
        ]
        return moves, charges

    def _reversal_plan(self, event: Reversal) -> rules.Plan:
        self._flush()
        target = event.payload.reverses_event_id
        ev = T["edge_event"]
        query = select(ev).where(ev.c.tenant_id == self.tenant.id, ev.c.event_id == target)
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        original = self.conn.execute(query).first()
        if original is None or original.status != "posted":
            raise Held(
                "event_not_posted",
                f"event {target} is not posted (yet); a reversal "
                "waits until the original has posted",
            )
        self._may_reverse(original)
        if original.type == "reversal":
            raise Rejected(
                "cannot_reverse_reversal",
                "a reversal cannot be reversed; post the original event again with a new id",
            )
        if original.type == "work_order_close":
            raise Rejected(
                "cannot_reverse_close",
                "a closed work order cannot be reopened; post further costs to another order",
            )
        if original.reversed_by is not None:
            raise Rejected(
                "already_reversed", f"event {target} was already reversed by {original.reversed_by}"
            )
        if utc(event.occurred_at) <= original.occurred_at:
            raise Rejected(
                "reversal_before_original", "a reversal must occur after the event it reverses"
            )
        plan = rules.Plan(
            f"reversal of {original.type} {target}: {event.payload.reason}",
            reverses_event_id=target,
        )
        mv, ch = T["stock_move"], T["wip_charge"]
        for row in self.conn.execute(
            select(mv)
            .where(mv.c.tenant_id == self.tenant.id, mv.c.event_id == target)
            .order_by(mv.c.line_no)
        ):
            plan.moves.append(
                rules.MoveSpec(
                    line_no=row.line_no,
                    kind=row.kind,
                    item=self.md.item_by_id(row.item_id),
                    lot=row.lot,
                    source=self.md.location_by_id(row.to_location_id),
                    destination=self.md.location_by_id(row.from_location_id),
                    quantity=row.quantity,
                    basis="mirror",
                    mirrors_move_id=row.id,
                    scrap_quantity=row.scrap_quantity,
                    work_order=self.md.work_order_by_id(row.work_order_id)
                    if row.work_order_id
                    else None,
                )
            )
        base = len(plan.moves)
        for row in self.conn.execute(
            select(ch)
            .where(ch.c.tenant_id == self.tenant.id, ch.c.event_id == target)
            .order_by(ch.c.line_no)
        ):
            credit = rules.PAYROLL if row.cost_element == "labour" else rules.OVERHEAD
            plan.charges.append(
                rules.ChargeSpec(
                    base + row.line_no,
                    self.md.work_order_by_id(row.work_order_id),
                    row.work_center_id,
                    row.cost_element,
                    -row.hours,
                    row.rate,
                    -row.value,
                    credit,
                )
            )
        orders = {spec.work_order for spec in plan.moves if spec.work_order is not None}
        for order in orders | {spec.work_order for spec in plan.charges}:
            if order.status not in rules.POSTABLE_STATUSES:
                raise Held(
                    "work_order_closed",
                    f"work order {order.code} is {order.status}; its postings can no longer "
                    "be reversed",
                )
        plan.raw_lines = self._mirrored_event_lines(original.journal_entry_id)
        return plan

    def _mirrored_event_lines(self, entry_id: uuid.UUID | None) -> list[dict[str, object]]:
        if entry_id is None:
            return []
        jl = T["journal_line"]
        rows = self.conn.execute(
            select(jl)
            .where(
                jl.c.tenant_id == self.tenant.id, jl.c.entry_id == entry_id, jl.c.origin == "event"
            )
            .order_by(jl.c.line_no)
        ).mappings()
        mirrored = []
        for row in rows:
            line = {
                k: v
                for k, v in row.items()
                if k not in ("tenant_id", "entry_id", "line_no", "event_id")
            }
            line["debit"], line["credit"] = row["credit"], row["debit"]
            mirrored.append(line)
        return mirrored

    # -- rows --------------------------------------------------------------------
    def _keep_exception(
        self, event: Event, digest: str, row: Any, status: str, code: str, message: str
    ) -> None:
        """Keep an event that did not post in the exception queue (held: it may post
        once something else happens; rejected: the event itself is wrong as the
        master data stands), or update it there after another attempt. A held one
        keeps what it waits for (services/waits_on.py), so a trigger finds it."""
        waits = waits_on.of_event(code, event, self.tenant.timezone) if status == "held" else None
        if row is not None:
            self.buffer.event_updates.append(
                {
                    "tenant_id": self.tenant.id,
                    "event_id": event.event_id,
                    "status": status,
                    "code": code,
                    "message": message,
                    "attempts": row.attempts + 1,
                    "waits_on": waits,
                }
            )
            return
        new = self._event_row(event, digest, status, code, message)
        new["waits_on"] = waits
        self.buffer.add("edge_event", new)

    def _record_posted(
        self, event: Event, digest: str, row: Any, entry_id: uuid.UUID | None
    ) -> None:
        if row is not None:
            self.buffer.event_updates.append(
                {
                    "tenant_id": self.tenant.id,
                    "event_id": event.event_id,
                    "status": "posted",
                    "code": None,
                    "message": None,
                    "journal_entry_id": entry_id,
                    "attempts": row.attempts + 1,
                    "posted_at": self.now,
                    # on whose authority it posted at last: a re-post's asker (so
                    # segregation of duties holds them to it), else who sent it
                    "posted_by": self.actor.ref if self.actor else row.posted_by,
                }
            )
        else:
            new = self._event_row(event, digest, "posted", None, None)
            new.update(journal_entry_id=entry_id, posted_at=self.now)
            self.buffer.add("edge_event", new)
        if isinstance(event, Reversal):
            self.buffer.event_updates.append(
                {
                    "tenant_id": self.tenant.id,
                    "event_id": event.payload.reverses_event_id,
                    "reversed_by": event.event_id,
                }
            )

    def _may_reverse(self, original: Any) -> None:
        """The RBAC matrix's "reverse posted journal" and its segregation of duties:
        no device; among users only owners and finance managers, and never the one who
        posted the original unless the owner waived it. The API key (an integration
        acting for the owner) and the system's own reversals are not a person."""
        actor = self.actor
        if actor is None or actor.kind == "api_key":
            return
        if actor.kind == "device":
            raise Rejected(
                "reversal_not_allowed",
                "a device cannot reverse a posted entry; the office reverses it in the portal",
            )
        if not can(actor.role or "", "journal.reverse"):
            raise Rejected("forbidden", f"the role {actor.role} may not reverse a posted entry")
        if original.posted_by == actor.ref and not self.tenant.reversal_sod_waived:
            raise Rejected("sod_violation", REVERSAL_SOD)

    def _event_row(
        self, event: Event, digest: str, status: str, code: str | None, message: str | None
    ) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant.id,
            "event_id": event.event_id,
            "device_id": event.device_id,
            "seq": event.seq,
            "type": event.type.value,
            "occurred_at": utc(event.occurred_at),
            "operator": event.operator,
            "replayed": event.replayed,
            "payload": event.model_dump_json(),
            "payload_sha256": digest,
            "status": status,
            "code": code,
            "message": message,
            "journal_entry_id": None,
            "reversed_by": None,
            "posted_by": self.actor.ref if self.actor else None,
            "attempts": 1,
            "received_at": self.now,
            "posted_at": None,
            "waits_on": None,
        }

    def _book(
        self,
        event: Event,
        plan: rules.Plan,
        moves: list[MoveRecord],
        charges: list[ChargeRecord],
        outcome: Outcome,
        entry_date: date,
    ) -> uuid.UUID | None:
        """Write the event's moves, charges and journal entry, and the revaluation
        entries for the later moves it changed."""
        entry_id = uuid.uuid4()
        lines: list[dict[str, Any]] = []
        for spec, record in zip(plan.moves, moves, strict=True):
            value = outcome.values[record.id]
            self.buffer.add("stock_move", self._move_row(record, spec, value))
            for line in rules.journal_lines_of_move(
                spec.item, spec.source, spec.destination, value
            ):
                lines.append(
                    self._line(
                        line, record, event.event_id, customer=spec.customer, supplier=spec.supplier
                    )
                )
        for charge, charged in zip(plan.charges, charges, strict=True):
            self.buffer.add(
                "wip_charge",
                {
                    "tenant_id": self.tenant.id,
                    "id": charged.id,
                    "event_id": event.event_id,
                    "line_no": charge.line_no,
                    "occurred_at": charged.position[0],
                    "work_order_id": charge.work_order.id,
                    "work_center_id": charge.work_center_id,
                    "cost_element": charge.cost_element,
                    "hours": charge.hours,
                    "rate": charge.rate,
                    "value": charge.value,
                },
            )
            for line in rules.journal_lines_of_charge(charge):
                lines.append(
                    {
                        **_blank_line(),
                        "account_code": line.account,
                        "debit": line.debit,
                        "credit": line.credit,
                        "work_order_id": charge.work_order.id,
                        "work_center_id": charge.work_center_id,
                        "cost_element": charge.cost_element,
                        "origin": "charge",
                    }
                )
        for line in plan.lines:
            lines.append(
                {
                    **_blank_line(),
                    "account_code": line.account,
                    "debit": line.debit,
                    "credit": line.credit,
                    "item_id": line.item.id if line.item else None,
                    "customer_id": line.customer.id if line.customer else None,
                    "supplier_id": line.supplier.id if line.supplier else None,
                    "origin": "event",
                }
            )
        lines += [{**_blank_line(), **raw} for raw in plan.raw_lines]
        booked = self._entry(
            entry_id,
            event.event_id,
            "reversal" if plan.reverses_event_id else "event",
            entry_date,
            plan.memo,
            lines,
        )
        self._book_revaluations(event, outcome)
        return entry_id if booked else None

    def _move_row(self, record: MoveRecord, spec: rules.MoveSpec, value: Decimal) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant.id,
            "id": record.id,
            "event_id": record.position[1],
            "line_no": record.position[2],
            "occurred_at": record.position[0],
            "posted_at": self.now,
            "item_id": record.item_id,
            "lot": record.lot,
            "from_location_id": record.source.id,
            "to_location_id": record.destination.id,
            "quantity": record.quantity,
            "unit_cost": unit_cost(value, record.quantity),
            "value": value,
            "kind": record.kind,
            "basis": record.basis,
            "work_order_id": record.work_order_id,
            "mirrors_move_id": record.mirrors_move_id,
            "scrap_quantity": record.scrap_quantity,
        }

    def _line(
        self,
        line: rules.LineSpec,
        record: MoveRecord,
        event_id: uuid.UUID,
        customer: Any = None,
        supplier: Any = None,
    ) -> dict[str, Any]:
        internal = record.destination if record.destination.internal else record.source
        on_wip = line.account == rules.WIP
        return {
            **_blank_line(),
            "account_code": line.account,
            "debit": line.debit,
            "credit": line.credit,
            "item_id": record.item_id,
            "location_id": internal.id if internal.internal else None,
            "work_order_id": record.work_order_id if on_wip else None,
            "customer_id": customer.id if customer else None,
            "supplier_id": supplier.id if supplier else None,
            "move_id": record.id,
            "event_id": event_id,
            "cost_element": "material" if on_wip else None,
            "origin": "move",
        }

    def _entry(
        self,
        entry_id: uuid.UUID,
        event_id: uuid.UUID,
        kind: str,
        entry_date: date,
        memo: str,
        lines: list[dict[str, Any]],
    ) -> bool:
        lines = [ln for ln in lines if ln["debit"] or ln["credit"]]
        if not lines:
            return False
        debit = sum((ln["debit"] for ln in lines), ZERO)
        credit = sum((ln["credit"] for ln in lines), ZERO)
        if debit != credit:
            raise AssertionError(f"unbalanced entry for {event_id}: {debit} != {credit}")
        self.buffer.add(
            "journal_entry",
            {
                "tenant_id": self.tenant.id,
                "id": entry_id,
                "event_id": event_id,
                "kind": kind,
                "entry_date": entry_date,
                "period": period_of(entry_date),
                "memo": memo[:200],
                "reverses_entry_id": None,
                "posted_at": self.now,
            },
        )
        for n, line in enumerate(lines, start=1):
            line.update(
                tenant_id=self.tenant.id,
                entry_id=entry_id,
                line_no=n,
                event_id=line.get("event_id") or event_id,
            )
            self.buffer.add("journal_line", line)
        return True

    def _book_revaluations(self, event: Event, outcome: Outcome) -> None:
        """One revaluation entry per day affected, in that day's period or, if it is
        closed, the first open one; never by editing the posted moves. Each revalued
        move keeps its own stock_revaluation row (its effective value); the entry's
        lines sum the moves' changes per item, locations, work order and direction,
        so a late event that revalues 100,000 moves of a pool books a few lines, not
        200,000 (and always some: the entry each stock_revaluation row names exists)."""
        by_day: dict[date, list[Any]] = {}
        for change in outcome.changes.values():
            day = local_date(change.move.position[0], self.tenant.timezone)
            by_day.setdefault(open_posting_date(day, self.closed), []).append(change)
        for day, changes in sorted(by_day.items()):
            entry_id = uuid.uuid4()
            summed: dict[tuple[Any, ...], tuple[MoveRecord, Decimal]] = {}
            for change in changes:
                record, delta = change.move, change.new_value - change.old_value
                self.buffer.add(
                    "stock_revaluation",
                    {
                        "tenant_id": self.tenant.id,
                        "id": uuid.uuid4(),
                        "move_id": record.id,
                        "delta_value": delta,
                        "cause_event_id": event.event_id,
                        "journal_entry_id": entry_id,
                        "posted_at": self.now,
                    },
                )
                key = (
                    record.item_id,
                    record.source.id,
                    record.destination.id,
                    record.work_order_id,
                    delta > 0,  # ups and downs apart: a sum never nets to no line at all
                )
                first, total = summed.get(key, (record, ZERO))
                summed[key] = (first, total + delta)
            lines = []
            for record, total in summed.values():
                item = self.md.item_by_id(record.item_id)
                for spec in rules.journal_lines_of_move(
                    item, record.source, record.destination, total
                ):
                    line = self._line(spec, record, event.event_id)
                    line["move_id"] = None  # one line for many moves: see stock_revaluation
                    lines.append(line)
            self._entry(
                entry_id,
                event.event_id,
                "revaluation",
                day,
                f"revaluation of {len(changes)} later move(s) after a late event",
                lines,
            )


def _blank_line() -> dict[str, Any]:
    return {
        "item_id": None,
        "location_id": None,
        "work_order_id": None,
        "work_center_id": None,
        "customer_id": None,
        "supplier_id": None,
        "move_id": None,
        "event_id": None,
        "cost_element": None,
        "origin": "event",
    }


def _invalid(raw: Any, message: str) -> EventResult:
    return EventResult(
        event_id=_raw_id(raw), status=ResultStatus.rejected, code="invalid_event", message=message
    )


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, dict) and isinstance(raw.get("event_id"), str):
        return raw["event_id"][:64]
    return None
