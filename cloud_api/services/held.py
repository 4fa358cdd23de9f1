"""Held events re-post themselves once what they waited for has happened.

With offline edges, arrival order is routinely not event order: an issue arrives
before the receipt of its material, a scan before its work order was created or
released, a late event after its period was closed. Such an event is *held*; when the
missing thing happens, the held events that waited for it are tried again at once,
with their own id and payload, through the normal ingest path:

- after an ingest batch commits postings (stock came into a warehouse; an original
  posted that a reversal waits for; a close released reservations), in follow-up
  transactions right after the commit, so the batch's own latency stays bounded;
- after a master-data change (an item, location, work centre or work order created,
  an order released, a period reopened), in the same transaction as the change.

Rules (what makes the books independent of arrival order):
- only `held` events whose hold code the trigger may clear (`Wake`), and among them
  only those whose own keys match what happened (the item that got stock, the order
  released...), oldest event time first; each batch posts in event-time order;
- at most `PASS_EVENTS` events per pass and `MAX_PASSES` passes per trigger (a bound
  on every loop); a pass that posted something wakes what that posting may clear
  (a completion that now posts lets the shipment of its product post), and a sweep
  that posted something starts over, so an earlier event unblocked by a later one is
  not left behind; what the bound leaves is taken by the next trigger, never lost;
- each event is posted as its own sender (its device's site and scopes, its user's
  role; a sender revoked since is refused), so re-posting never grants what sending
  did not; a pass posts one batch per run of consecutive events of one sender, so
  events post in event-time order across senders too;
- the held events a trigger may clear are found by one indexed query on what each
  waits for (edge_event.waits_on, services/waits_on.py), never by reading them all;
- an event that still cannot post stays held with its (possibly new) reason;
  one that is wrong for a person to fix becomes `rejected` as any re-post would.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, or_, select

from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc
from cloud_api.domain.refs import INTERNAL_KINDS
from cloud_api.services import waits_on
from cloud_api.services.store import TenantContext
from contract import EventResult, ResultStatus

if TYPE_CHECKING:
    from cloud_api.services.ingest import Actor, IngestService

T = m.SQLModel.metadata.tables
log = logging.getLogger(__name__)

PASS_EVENTS = 200  # held events re-posted per pass (one batch per run of one sender's)
MAX_PASSES = 10  # passes per trigger; the rest waits for the next trigger
ANY = waits_on.ANY
STOCK_CODES = waits_on.STOCK_CODES  # hold codes a posting of the item's stock may clear

# hold code -> the keys of what happened that may clear it (ANY: whatever is held so)
Wake = dict[str, set[str]]

# set while re-posting, so the re-posts' own ingest does not start another round
_REPOSTING: ContextVar[bool] = ContextVar("erp_held_reposting", default=False)


# -- what happened ------------------------------------------------------------------
def item_created(code: str) -> Wake:
    return {"unknown_item": {f"item:{code}"}}


def location_created(code: str) -> Wake:
    return {"unknown_location": {f"location:{code}"}}


def work_center_created(code: str) -> Wake:
    return {"unknown_work_center": {f"work_center:{code}"}}


def work_order_created(code: str) -> Wake:
    """A draft: its events stay held, now for `work_order_not_released`."""
    return {"unknown_work_order": {f"work_order:{code}"}}


def work_order_released(code: str) -> Wake:
    key = {f"work_order:{code}"}
    return {"unknown_work_order": set(key), "work_order_not_released": set(key)}


def period_reopened(code: str) -> Wake:
    return {"period_locked": {f"period:{code}"}}


def reservations_released() -> Wake:
    """An order cancelled: the stock it held is free for the others' issues."""
    return {"reserved_for_other_orders": {ANY}}


def merge(into: Wake, more: Wake) -> Wake:
    for code, keys in more.items():
        into.setdefault(code, set()).update(keys)
    return into


def posted_wake(conn: Connection, tenant_id: uuid.UUID, posted: dict[uuid.UUID, str]) -> Wake:
    """What the events just posted (id -> type) may clear: stock of the items they
    brought into a warehouse or bin; the reversals waiting for them; reservations a
    close released."""
    if not posted:
        return {}
    wake: Wake = {"event_not_posted": {f"event:{event_id}" for event_id in posted}}
    mv, loc, item = T["stock_move"], T["location"], T["item"]
    received = conn.scalars(
        select(item.c.code)
        .distinct()
        .select_from(
            mv.join(
                loc, and_(loc.c.tenant_id == mv.c.tenant_id, loc.c.id == mv.c.to_location_id)
            ).join(item, and_(item.c.tenant_id == mv.c.tenant_id, item.c.id == mv.c.item_id))
        )
        .where(
            mv.c.tenant_id == tenant_id,
            mv.c.event_id.in_(sorted(posted)),
            loc.c.kind.in_(sorted(INTERNAL_KINDS)),
        )
    ).all()
    if received:
        for code in STOCK_CODES:
            wake[code] = {f"item:{c}" for c in received}
    if "work_order_close" in posted.values():
        wake.setdefault("reserved_for_other_orders", set()).add(ANY)
    return wake


# -- what a held event waits for -----------------------------------------------------
@dataclass
class Candidate:
    event_id: uuid.UUID
    occurred_at: datetime
    sender: str | None
    raw: dict[str, Any]


def _woken(wake: Wake) -> Any:
    """The SQL condition of the held rows `wake` may clear: by hold code, the rows
    whose stored key (edge_event.waits_on) is one of the woken keys or `*`; every row
    of a code woken with `*`."""
    ev = T["edge_event"]
    terms = []
    for code, keys in sorted(wake.items()):
        if not keys:
            continue
        if ANY in keys:
            terms.append(ev.c.code == code)
        else:
            terms.append(and_(ev.c.code == code, ev.c.waits_on.in_(sorted({*keys, ANY}))))
    return or_(*terms) if terms else None


def waiting(
    conn: Connection,
    tenant: TenantContext,
    wake: Wake,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[Candidate]:
    """Up to `limit` held events the wake may clear, oldest event time first, after
    the `after` position: one query on the index of what held events wait for
    (ix_edge_event_waits_on), which reads only the matching rows however many other
    events are held."""
    ev = T["edge_event"]
    woken = _woken(wake)
    if woken is None:
        return []
    query = select(ev.c.event_id, ev.c.occurred_at, ev.c.payload, ev.c.posted_by).where(
        ev.c.tenant_id == tenant.id, ev.c.status == "held", woken
    )
    if after is not None:
        at, event_id = after
        query = query.where(
            or_(ev.c.occurred_at > at, and_(ev.c.occurred_at == at, ev.c.event_id > event_id))
        )
    rows = conn.execute(query.order_by(ev.c.occurred_at, ev.c.event_id).limit(limit)).all()
    return [
        Candidate(row.event_id, row.occurred_at, row.posted_by, json.loads(row.payload))
        for row in rows
    ]


def any_waiting(conn: Connection, tenant_id: uuid.UUID, codes: Iterable[str]) -> bool:
    """The cheap test every batch pays: is anything held for one of these codes?"""
    ev = T["edge_event"]
    return (
        conn.scalar(
            select(ev.c.event_id)
            .where(ev.c.tenant_id == tenant_id, ev.c.status == "held", ev.c.code.in_(sorted(codes)))
            .limit(1)
        )
        is not None
    )


def sender(conn: Connection, tenant_id: uuid.UUID, posted_by: str | None) -> Actor | None:
    """Who sent a held event, as the ingest checks them now: a device with its scopes
    and site, a user with their role, the tenant API key or an API token; None when
    nobody was recorded. A sender that is gone or revoked since (a deleted or revoked
    device, a revoked key or token) is `revoked`: its events are refused `forbidden`
    and stay held for a person, never posted on an authority that no longer is."""
    from cloud_api.services.ingest import Actor

    kind, _, ident = (posted_by or "").partition(":")
    if kind == "device":
        d = T["device"]
        row = conn.execute(
            select(d.c.scopes, d.c.site, d.c.revoked_at).where(
                d.c.tenant_id == tenant_id, d.c.id == _uuid(ident)
            )
        ).first()
        if row is None or row.revoked_at is not None:
            return Actor("device", ident, scopes=frozenset(), revoked=True)
        return Actor("device", ident, scopes=frozenset(row.scopes.split()), site=row.site)
    if kind == "user":
        ms = T["membership"]
        role = conn.scalar(
            select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == _uuid(ident))
        )
        return Actor("user", ident, role=role or "")
    if kind == "api_key":
        from cloud_api.services.tenants import has_api_key

        return Actor(kind, ident, revoked=not has_api_key(conn, tenant_id))
    if kind == "api_token":
        tk = T["api_token"]
        scopes = conn.scalar(
            select(tk.c.scopes).where(
                tk.c.tenant_id == tenant_id, tk.c.keyid == ident, tk.c.revoked_at.is_(None)
            )
        )
        live = scopes is not None and "events:post" in scopes.split()
        return Actor(kind, ident, revoked=not live)
    if kind:
        return Actor(kind, ident)
    return None


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


# -- the passes ------------------------------------------------------------------------
Post = Callable[["Actor | None", list[dict[str, Any]]], list[EventResult]]


@dataclass
class Report:
    """What one trigger did: events tried, posted, and passes run."""

    tried: int = 0
    posted: int = 0
    passes: int = 0
    results: list[EventResult] = field(default_factory=list)


def run_passes(
    reading: Callable[[], Any],
    post: Post,
    tenant: TenantContext,
    wake: Wake,
    *,
    pass_events: int | None = None,
    max_passes: int | None = None,
) -> Report:
    """Re-post what `wake` may clear, pass by pass (see the module doc). `reading()`
    gives a context manager of a connection to read with; `post` posts one sender's
    events and answers their results."""
    pass_events = pass_events or PASS_EVENTS
    max_passes = max_passes or MAX_PASSES
    report, after, progress = Report(), None, False
    while report.passes < max_passes and wake:
        with reading() as conn:
            found = waiting(conn, tenant, wake, pass_events, after)
            actors = {c.sender: sender(conn, tenant.id, c.sender) for c in found}
        if not found:
            if not (progress and after is not None):
                break
            after, progress = None, False  # something posted: sweep again from the oldest
            continue
        report.passes += 1
        after = (found[-1].occurred_at, found[-1].event_id)
        posted = _post_runs(found, actors, post, report)
        if posted:
            progress = True
            with reading() as conn:
                merge(wake, posted_wake(conn, tenant.id, posted))
    return report


def _runs(found: list[Candidate]) -> Iterator[list[Candidate]]:
    """The candidates (in event-time order) cut into runs of consecutive events of one
    sender: posted run by run, the events post in event-time order across senders, as
    the history sent in order would have (its FIFO costs, its stock at each time)."""
    run: list[Candidate] = []
    for candidate in found:
        if run and candidate.sender != run[0].sender:
            yield run
            run = []
        run.append(candidate)
    if run:
        yield run


def _post_runs(
    found: list[Candidate],
    actors: dict[str | None, Actor | None],
    post: Post,
    report: Report,
) -> dict[uuid.UUID, str]:
    """One ingest batch per run of one sender's events (`_runs`), in event-time order."""
    posted: dict[uuid.UUID, str] = {}
    for run in _runs(found):
        results = post(actors[run[0].sender], [c.raw for c in run])
        types = {str(c.event_id): c.raw.get("type", "") for c in run}
        for result in results:
            if result.status == ResultStatus.posted and result.event_id:
                posted[uuid.UUID(result.event_id)] = types.get(result.event_id, "")
        report.tried += len(run)
        report.results += results
    report.posted += len(posted)
    return posted


@contextmanager
def _reposting() -> Iterator[None]:
    token = _REPOSTING.set(True)
    try:
        yield
    finally:
        _REPOSTING.reset(token)


# -- the triggers ----------------------------------------------------------------------
def after_ingest(
    service: IngestService,
    tenant: TenantContext,
    raw_events: list[Any],
    results: list[EventResult],
) -> Report | None:
    """Called by IngestService.ingest after its commit: re-post what the batch's
    postings may clear, in follow-up transactions. Never fails the batch (it is
    committed): a failure here is logged, and the events stay held for the next
    trigger or a person."""
    if _REPOSTING.get():
        return None  # a re-post's own batch: the pass loop carries on from it
    ids = {r.event_id for r in results if r.status == ResultStatus.posted and r.event_id}
    if not ids:
        return None
    types = {
        uuid.UUID(raw["event_id"]): str(raw.get("type", ""))
        for raw in raw_events
        if isinstance(raw, dict) and raw.get("event_id") in ids
    }
    try:
        with _reposting():
            with service.db.connect() as conn:
                if not any_waiting(conn, tenant.id, [*STOCK_CODES, "event_not_posted"]):
                    return None
                wake = posted_wake(conn, tenant.id, types)
            return run_passes(
                service.db.connect,
                lambda actor, raws: service.ingest(tenant, raws, actor),
                tenant,
                wake,
            )
    except Exception:  # the batch is committed; its answer must not turn into a 500
        log.exception("re-posting held events for tenant %s failed", tenant.id)
        return None


def after_change(conn: Connection, tenant: TenantContext, wake: Wake) -> Report | None:
    """Called by a master-data change inside its transaction: re-post what the change
    may clear, in the same transaction (in a savepoint: a failure here keeps the
    change and leaves the events held)."""
    if _REPOSTING.get() or not any_waiting(conn, tenant.id, wake):
        return None
    from cloud_api.services.ingest import Batch
    from cloud_api.services.subscriptions import count_posted

    @contextmanager
    def same_connection() -> Iterator[Connection]:
        yield conn

    def post(actor: Actor | None, raws: list[dict[str, Any]]) -> list[EventResult]:
        results = Batch(conn, tenant, actor).run(raws)
        posted = sum(1 for r in results if r.status == ResultStatus.posted)
        count_posted(conn, tenant.id, posted, now_utc())  # as IngestService's meter
        return results

    savepoint = conn.begin_nested()
    try:
        with _reposting():
            report = run_passes(same_connection, post, tenant, dict(wake))
    except Exception:  # the change stands; the events stay held for the next trigger
        savepoint.rollback()
        log.exception("re-posting held events for tenant %s failed", tenant.id)
        return None
    savepoint.commit()
    return report
