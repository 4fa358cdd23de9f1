"""Events built for one action of a person or an integration, posted at once.

A reversal, a manual journal entry, work-order progress and a work order's close are
not sent by an edge: the API builds the event from the request and posts it now,
through the same ingest as every other event (rules, segregation of duties, periods).
It is posted (or was already: the id is the idempotency key), or refused with its
reason and nothing kept.
"""

import uuid
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

from sqlalchemy import Engine

from cloud_api.api import schemas
from cloud_api.domain.clock import now_utc
from cloud_api.domain.posting_rules import POSTABLE_STATUSES
from cloud_api.errors import Conflict, Forbidden, NotFound, Rejected
from cloud_api.services import subscriptions, work_orders
from cloud_api.services.ingest import Actor, IngestService, event_row
from cloud_api.services.store import TenantContext
from contract import EventResult, ResultStatus

# a rejected reversal's reasons that are the state of things, not a malformed request
REFUSED_BY_STATE = frozenset(
    {
        "already_reversed",
        "cannot_reverse_reversal",
        "cannot_reverse_close",
        "idempotency_key_reused",
    }
)


def post_now(
    ingest: IngestService, tenant: TenantContext, event: dict[str, Any], actor: Actor
) -> EventResult:
    """Post one event synchronously: posted (or already posted), else refused with its
    reason and nothing kept: 403 for a role or segregation of duties, 422 for a bad
    entry, 409 for what the state forbids now (a closed period, already reversed...)."""
    (result,) = ingest.ingest(tenant, [event], actor=actor, hold=False)
    if result.status in (ResultStatus.posted, ResultStatus.duplicate):
        return result
    code, message = result.code or "not_posted", result.message or "not posted"
    if code in ("sod_violation", "forbidden", "journal_not_allowed"):
        raise Forbidden(code, message)
    if result.status == ResultStatus.rejected and code not in REFUSED_BY_STATE:
        raise Rejected(code, message)
    raise Conflict(code, message)


def _event(event_id: uuid.UUID | None, device: str, type_: str, at: datetime, payload: Any) -> Any:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "device_id": device,
        "seq": 0,
        "type": type_,
        "occurred_at": at.isoformat(),
        "payload": payload,
    }


def reverse_event(
    db: Engine,
    ingest: IngestService,
    tenant: TenantContext,
    event_id: uuid.UUID,
    body: schemas.ReverseEvent,
    actor: Actor,
) -> EventResult:
    """Reverse a posted event by a linked reversal (404 unknown_event)."""
    with db.connect() as conn:
        if event_row(conn, tenant.id, event_id) is None:
            raise NotFound("unknown_event", f"no event {event_id}")
    payload = {"reverses_event_id": str(event_id), "reason": body.reason}
    at = body.occurred_at or now_utc()
    return post_now(
        ingest, tenant, _event(body.reversal_id, "portal", "reversal", at, payload), actor
    )


def post_journal_entry(
    ingest: IngestService, tenant: TenantContext, body: schemas.JournalEntryCreate, actor: Actor
) -> EventResult:
    """A manual journal entry, dated at noon UTC of its `entry_date`."""
    at = datetime.combine(body.entry_date, dtime(12), tzinfo=UTC)
    lines = [line.model_dump(mode="json") for line in body.lines]
    event = _event(
        body.entry_id, "portal", "journal_entry", at, {"memo": body.memo, "lines": lines}
    )
    return post_now(ingest, tenant, event, actor)


def check_progress(body: schemas.WorkOrderProgress) -> None:
    """What a progress request may not carry: the order (it is the path's), an own id
    without the time it happened (a repeat must be the same event)."""
    if "work_order" in body.payload:
        raise Rejected("work_order_in_body", "the work order comes from the path")
    if body.event_id is not None and body.occurred_at is None:
        raise Rejected(
            "occurred_at_required",
            "an event with its own id carries when it happened, so a repeat is the same",
        )


def progress_target(db: Engine, tenant: TenantContext, work_order: str) -> str:
    """The code of the order progress is reported on (by id or code; 404), once the
    subscription allows ingest now."""
    with db.connect() as conn:
        subscriptions.check_ingest(conn, tenant, now_utc())
        return work_orders.code_of(conn, tenant, work_order)


def report_progress(
    ingest: IngestService,
    tenant: TenantContext,
    code: str,
    body: schemas.WorkOrderProgress,
    actor: Actor,
    device: str,
) -> EventResult:
    """A completion or hours on the order `code`, posted now."""
    payload = {**body.payload, "work_order": code}
    at = body.occurred_at or now_utc()
    return post_now(ingest, tenant, _event(body.event_id, device, body.type, at, payload), actor)


def close_work_order(
    db: Engine,
    ingest: IngestService,
    tenant: TenantContext,
    code: str,
    reason: str | None,
    actor: Actor,
) -> dict[str, Any]:
    """Post the order's `work_order_close` (its residual WIP settled); refused without
    writing anything when the order is not open. The order as it is now, with the
    close's journal entry."""
    with db.connect() as conn:
        status = work_orders.status_of(conn, tenant, code)
    if status not in POSTABLE_STATUSES:
        raise Conflict("work_order_not_open", f"work order {code} is {status}; it cannot be closed")
    payload = {"work_order": code, "reason": reason}
    event = _event(None, "portal", "work_order_close", now_utc(), payload)
    (result,) = ingest.ingest(tenant, [event], actor=actor)
    if result.status != ResultStatus.posted:
        raise Conflict(result.code or "close_not_posted", result.message or "not posted")
    with db.connect() as conn:
        return work_orders.read(conn, tenant, code) | {"journal_entry_id": result.journal_entry_id}
