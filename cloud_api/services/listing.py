"""Reading one page of a list in SQL: the rows of the slice and how many rows the whole
list has (for the API's X-Total-Count; cloud_api/api/paging.py). The query carries
its own stable ORDER BY (a unique key last), so pages neither overlap nor skip."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, func, select

from cloud_api.db import models as m

T = m.SQLModel.metadata.tables


def fetch_page(
    conn: Connection, query: Select[Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The rows `offset` .. `offset + limit` of `query`, as dicts, and the total."""
    total = conn.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return [dict(row) for row in rows], int(total or 0)


def edge_events(
    conn: Connection,
    tenant_id: Any,
    status: str,
    limit: int,
    offset: int,
    newest_first: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """The exception queue (edge events held, rejected or voided), oldest first; or
    the latest received first (the portal's list of what was voided)."""
    ev = T["edge_event"]
    query = (
        select(
            ev.c.event_id,
            ev.c.device_id,
            ev.c.seq,
            ev.c.type,
            ev.c.occurred_at,
            ev.c.operator,
            ev.c.code,
            ev.c.message,
            ev.c.attempts,
            ev.c.received_at,
            ev.c.payload,
        )
        .where(ev.c.tenant_id == tenant_id, ev.c.status == status)
        .order_by(
            *(
                (ev.c.received_at.desc(), ev.c.event_id)
                if newest_first
                else (ev.c.occurred_at, ev.c.event_id)
            )
        )
    )
    return fetch_page(conn, query, limit, offset)


def audit_log(
    conn: Connection, tenant_id: Any, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The audit log, newest first (as export.audit_rows), a page of it."""
    log = T["audit_log"]
    query = (
        select(log).where(log.c.tenant_id == tenant_id).order_by(log.c.at.desc(), log.c.id.desc())
    )
    rows, total = fetch_page(conn, query, limit, offset)
    return [{k: v for k, v in row.items() if k != "tenant_id"} for row in rows], total
