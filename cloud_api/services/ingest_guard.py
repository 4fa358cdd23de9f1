"""What keeps one event from failing its batch (issue 15, item 1).

An ingest batch posts many events in one transaction; an exception that escapes one
event's processing used to fail the batch, on every retry, so every event queued
behind it on the edge stayed pending. Three guards, used by ingest.Batch:

- `as_refusal`: an unexpected exception while an event is validated, planned or
  valued (before anything of it is kept: the valuation engine restores its pools
  itself when it fails) becomes that event's own refusal; a database error is not
  one, it still goes to the batch's retry loop.
- `check_storable`: after the engine valued an event, every amount and quantity it
  wrote (its rows, the pools it changed) must fit the columns that keep them, on
  SQLite (a scaled 64-bit integer) and on PostgreSQL alike; otherwise the batch would
  fail at the final flush, with no event to blame. An event that would not fit is
  `amount_out_of_range`.
- `PoisonedEvent`: a failure after the engine took the event (booking its rows) can
  leave the batch's state half-applied, so the batch is rolled back to its savepoint
  and run again with that event refused up front.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cloud_api.db import models as m
from cloud_api.db.types import ScaledDecimal
from cloud_api.domain.engine import ChargeRecord, Engine, MoveRecord, Outcome, PoolKey, pool_keys
from cloud_api.domain.pools import StockPool, WipPool
from cloud_api.errors import ErpError, Held, Rejected

log = logging.getLogger(__name__)
T = m.SQLModel.metadata.tables

INTERNAL_ERROR = "internal_error"
OUT_OF_RANGE = "amount_out_of_range"
INTERNAL_MESSAGE = (
    "the cloud could not process this event (an internal error, logged with the event "
    "id); the rest of the batch went on. Keep it, and re-post it once support has looked"
)
# The largest magnitude each scale may hold. Quantities and unit costs (6 places):
# what SQLite's scaled 64-bit integer keeps (PostgreSQL's NUMERIC(24, 6) holds more).
# Amounts (2 places): well below the column's 9.2e16, so that the day totals and the
# balances that add many amounts up keep room too.
LIMITS = {6: Decimal(2**63 - 1).scaleb(-6), 2: Decimal(10) ** 14}


class FlushFailed(Exception):
    """Writing the batch's buffered rows failed mid-batch: the rows are earlier events',
    so it is the batch's failure, not the event being planned when it happened."""


# what fails the batch (its retry loop decides), never one event in its place
BATCH_ERRORS = (SQLAlchemyError, FlushFailed)


class PoisonedEvent(Exception):
    """An event failed after the engine took it: the batch runs again without it."""

    def __init__(self, event_id: uuid.UUID, status: str, code: str, message: str) -> None:
        super().__init__(f"{event_id}: {code}")
        self.event_id, self.status, self.code, self.message = event_id, status, code, message


def as_refusal(event_id: uuid.UUID, error: Exception) -> ErpError:
    """The refusal an exception raised while an event was processed stands for: a held
    or rejected event keeps its own; another ERP error (a NotFound from a lookup...)
    is a rejection with its code; anything else is logged, `internal_error`."""
    if isinstance(error, BATCH_ERRORS):
        raise error  # the database's (a deadlock, a lost connection): the batch retries
    if isinstance(error, Held | Rejected):
        return error
    if isinstance(error, ErpError):
        return Rejected(error.code, error.message)
    log.error("event %s failed in ingest", event_id, exc_info=error)
    return Rejected(INTERNAL_ERROR, INTERNAL_MESSAGE)


def poisoned(event_id: uuid.UUID, error: Exception) -> PoisonedEvent:
    refusal = as_refusal(event_id, error)
    status = "held" if isinstance(refusal, Held) else "rejected"
    return PoisonedEvent(event_id, status, refusal.code, refusal.message)


# -- the columns' ranges ---------------------------------------------------------------


def _decimal_columns(table: str) -> list[tuple[str, int]]:
    return [
        (column.name, column.type.scale)
        for column in T[table].columns
        if isinstance(column.type, ScaledDecimal)
    ]


_COLUMNS: dict[str, list[tuple[str, int]]] = {}


_QUANTA = {scale: Decimal(1).scaleb(-scale) for scale in LIMITS}


def _fits(value: Decimal | None, scale: int) -> bool:
    """Within the scale's limit and with no more places (the hot path: one call per
    figure an event writes)."""
    if value is None:
        return True
    limit = LIMITS[scale]
    try:
        return -limit <= value <= limit and value.quantize(_QUANTA[scale]) == value
    except (InvalidOperation, TypeError):  # NaN, or not a number at all
        return False


def _refuse(what: str, value: Decimal | None) -> Rejected:
    return Rejected(
        OUT_OF_RANGE,
        f"{what} would be {value}, beyond what the books keep "
        f"(quantities and unit costs up to {LIMITS[6]:f}, amounts up to {LIMITS[2]:f})",
    )


def buffer_sizes(rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Where each table's buffered rows end now: what an event adds comes after."""
    return {table: len(buffered) for table, buffered in rows.items()}


def check_storable(
    rows: dict[str, list[dict[str, Any]]],
    before: dict[str, int],
    engine: Engine,
    records: Iterable[MoveRecord | ChargeRecord],
    outcome: Outcome,
) -> None:
    """Raise Rejected(amount_out_of_range) if a row the event added since `before`,
    or a pool it changed, holds an amount or a quantity its column cannot keep."""
    for table, buffered in rows.items():
        columns = _COLUMNS.get(table)
        if columns is None:
            columns = _COLUMNS[table] = _decimal_columns(table)
        start = before.get(table, 0)
        if not columns or start == len(buffered):
            continue
        for row in buffered[start:]:
            for name, scale in columns:
                if not _fits(row.get(name), scale):
                    raise _refuse(f"{table}.{name}", row.get(name))
    records = [*records, *(change.move for change in outcome.changes.values())]
    lots: dict[PoolKey, set[str]] = {}
    items: dict[PoolKey, set[Any]] = {}
    for record in records:
        for key in pool_keys(record):
            if isinstance(record, MoveRecord):
                lots.setdefault(key, set()).add(record.lot)
                items.setdefault(key, set()).add(record.item_id)
            else:
                lots.setdefault(key, set())
    for key, its_lots in lots.items():
        slot = engine.slots.get(key)
        if slot is not None:
            _check_pool(slot.pool, its_lots, items.get(key, set()))


def _check_pool(pool: StockPool | WipPool, lots: set[str], items: set[Any]) -> None:
    """The figures of a pool the event changed, as they will be saved (the lots and
    WIP materials the event moved; the others did not change)."""
    if isinstance(pool, StockPool):
        figures = [
            ("stock quantity", pool.quantity, 6),
            ("stock value", pool.value, 2),
            ("last unit cost", pool.last_unit_cost, 6),
            *(("lot quantity", pool.lots.get(lot), 6) for lot in lots),
        ]
    else:
        figures = [
            ("WIP value", pool.value, 2),
            ("completed quantity", pool.completed_quantity, 6),
            ("good quantity", pool.good_quantity, 6),
        ]
        for item in items:
            quantity, value = pool.materials.get(item, (None, None))
            figures += [("WIP material quantity", quantity, 6), ("WIP material value", value, 2)]
    for what, value, scale in figures:
        if not _fits(value, scale):
            raise _refuse(f"the {what} of {pool.label}", value)
