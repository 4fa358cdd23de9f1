"""The exception queue's read models: the events held, rejected or voided, how many
wait, one event and the journal lines it booked. The portal's queue page and the API's
/exceptions list read the same functions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, and_, func, select

from cloud_api.db import models as m
from cloud_api.services import listing

T = m.SQLModel.metadata.tables


def open_exceptions(conn: Connection, tenant_id: uuid.UUID) -> dict[str, int]:
    """How many events wait in the exception queue, held and rejected."""
    ev = T["edge_event"]
    query = (
        select(ev.c.status, func.count())
        .where(ev.c.tenant_id == tenant_id, ev.c.status.in_(("held", "rejected")))
        .group_by(ev.c.status)
    )
    found = {"held": 0, "rejected": 0}
    found.update({status: int(n) for status, n in conn.execute(query)})
    return found


def exceptions_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    status: str,
    limit: int,
    offset: int = 0,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the events in `status` (held, rejected, voided), oldest first unless
    `newest_first`, and how many there are in all."""
    return listing.edge_events(conn, tenant_id, status, limit, offset, newest_first=newest_first)


def exceptions(
    conn: Connection, tenant_id: uuid.UUID, status: str, limit: int = 200
) -> list[dict[str, Any]]:
    """Held or rejected events, oldest first (voided ones, the latest first), as the
    portal's queue shows them; at most `limit` (open_exceptions counts all)."""
    rows, _ = exceptions_page(conn, tenant_id, status, limit, newest_first=status == "voided")
    return rows


def event(conn: Connection, tenant_id: uuid.UUID, event_id: uuid.UUID) -> dict[str, Any] | None:
    ev = T["edge_event"]
    row = (
        conn.execute(select(ev).where(ev.c.tenant_id == tenant_id, ev.c.event_id == event_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def entry_lines(
    conn: Connection, tenant_id: uuid.UUID, event_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The journal lines an event booked (its own entry and any revaluations it caused
    are found by the line's source event), with both account names."""
    jl, acc, je = T["journal_line"], T["account"], T["journal_entry"]
    rows = conn.execute(
        select(
            je.c.entry_date,
            je.c.kind,
            jl.c.entry_id,
            jl.c.line_no,
            jl.c.account_code,
            acc.c.name_zh,
            acc.c.name_en,
            jl.c.debit,
            jl.c.credit,
        )
        .select_from(je)
        .join(jl, and_(jl.c.tenant_id == je.c.tenant_id, jl.c.entry_id == je.c.id))
        .join(acc, and_(acc.c.tenant_id == jl.c.tenant_id, acc.c.code == jl.c.account_code))
        .where(je.c.tenant_id == tenant_id, je.c.event_id == event_id)
        .order_by(je.c.posted_at, jl.c.entry_id, jl.c.line_no)
    ).mappings()
    return [dict(r) for r in rows]
