"""What the cloud gives edge agents besides the ingest endpoint: the master data they
validate scans against offline, pulled incrementally, and their heartbeats.

Incremental pull: every master row carries `changed_at` (set on insert and on every
update). A pull returns the rows changed at or after `since` and a new cursor a little
before the time the pull started, so a row whose transaction committed while the pull
ran is sent again next time rather than missed; the edge upserts by code, so a row
sent twice is harmless. A pull without `since` is full. Closed, cancelled and
inactive rows are sent too (with their status), so the edge can drop them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from cloud_api.api.schemas import EdgeHeartbeat
from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc, utc
from cloud_api.domain.posting_rules import POSTABLE_STATUSES
from cloud_api.services.store import TenantContext, upsert

T = m.SQLModel.metadata.tables
# How far before the pull's start the next cursor points: longer than any master-data
# transaction, so one that committed late is sent again rather than missed.
CURSOR_OVERLAP = timedelta(seconds=30)
EDGE_LOCATION_KINDS = ("warehouse", "bin")


def master_data(
    conn: Connection, tenant: TenantContext, since: datetime | None, site: str | None = None
) -> dict[str, Any]:
    """What an edge validates scans against; a device's (`site`) has its own site's
    warehouses and bins only, so a scan of another site's is refused on the floor."""
    started = now_utc()
    loc = T["location"]
    at_site = [loc.c.site == site] if site is not None else []
    since = utc(since) if since is not None else None
    return {
        "full": since is None,
        "cursor": (started - CURSOR_OVERLAP).isoformat(),
        "server_time": started.isoformat(),
        "items": _items(conn, tenant, since),
        "locations": _rows(
            conn,
            tenant,
            "location",
            since,
            ("code", "name", "kind", "site"),
            loc.c.kind.in_(EDGE_LOCATION_KINDS),
            *at_site,
        ),
        "work_centers": _rows(conn, tenant, "work_center", since, ("code", "name")),
        "operators": _rows(conn, tenant, "operator", since, ("code", "name", "active")),
        # parties are few and carry no changed_at: sent whole with every pull
        "suppliers": _rows(conn, tenant, "supplier", None, ("code", "name")),
        "customers": _rows(conn, tenant, "customer", None, ("code", "name")),
        "work_orders": _work_orders(conn, tenant, since),
    }


def _changed(table: str, since: datetime | None) -> list[Any]:
    return [] if since is None else [T[table].c.changed_at >= since]


def _rows(
    conn: Connection,
    tenant: TenantContext,
    table: str,
    since: datetime | None,
    columns: tuple[str, ...],
    *where: Any,
) -> list[dict[str, Any]]:
    t = T[table]
    query = (
        select(*(t.c[c] for c in columns))
        .where(t.c.tenant_id == tenant.id, *where, *_changed(table, since))
        .order_by(t.c.code)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def _items(conn: Connection, tenant: TenantContext, since: datetime | None) -> list[dict[str, Any]]:
    it = T["item"]
    query = (
        select(
            it.c.code,
            it.c.name,
            it.c.unit,
            it.c.kind,
            it.c.lot_tracked,
            it.c.issue_method,
            it.c.gtin,
            it.c.purchase_price,
            it.c.sale_price,
        )
        .where(it.c.tenant_id == tenant.id, *_changed("item", since))
        .order_by(it.c.code)
    )
    return [_decimals_as_text(dict(row)) for row in conn.execute(query).mappings()]


def _work_orders(
    conn: Connection, tenant: TenantContext, since: datetime | None
) -> list[dict[str, Any]]:
    """Orders with their snapshotted components. A full pull sends only the orders
    that can take postings; an incremental one every changed order, with `postable`
    telling the edge whether to keep it."""
    wo, it, loc = T["work_order"], T["item"], T["location"]
    where = [wo.c.tenant_id == tenant.id, *_changed("work_order", since)]
    if since is None:
        where.append(wo.c.status.in_(sorted(POSTABLE_STATUSES)))
    query = (
        select(
            wo.c.id,
            wo.c.code,
            wo.c.status,
            wo.c.planned_quantity,
            it.c.code.label("item"),
            loc.c.code.label("warehouse"),
        )
        .join(it, (it.c.tenant_id == wo.c.tenant_id) & (it.c.id == wo.c.item_id))
        .outerjoin(loc, (loc.c.tenant_id == wo.c.tenant_id) & (loc.c.id == wo.c.warehouse_id))
        .where(*where)
        .order_by(wo.c.code)
    )
    orders = [dict(row) for row in conn.execute(query).mappings()]
    components = _components(conn, tenant, [o["id"] for o in orders])
    for order in orders:
        order_id = order.pop("id")
        order["postable"] = order["status"] in POSTABLE_STATUSES
        order["planned_quantity"] = str(order["planned_quantity"])
        order["components"] = components.get(order_id, [])
    return orders


def _components(
    conn: Connection, tenant: TenantContext, order_ids: list[Any]
) -> dict[Any, list[dict[str, Any]]]:
    if not order_ids:
        return {}
    wc, it, loc = T["work_order_component"], T["item"], T["location"]
    query = (
        select(
            wc.c.work_order_id,
            it.c.code.label("item"),
            loc.c.code.label("location"),
            wc.c.planned_quantity,
            it.c.issue_method,
            it.c.lot_tracked,
        )
        .join(it, (it.c.tenant_id == wc.c.tenant_id) & (it.c.id == wc.c.item_id))
        .join(loc, (loc.c.tenant_id == wc.c.tenant_id) & (loc.c.id == wc.c.location_id))
        .where(wc.c.tenant_id == tenant.id, wc.c.work_order_id.in_(order_ids))
        .order_by(wc.c.work_order_id, wc.c.line_no)
    )
    found: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(query).mappings():
        line = _decimals_as_text(dict(row))
        found[line.pop("work_order_id")].append(line)
    return found


def _decimals_as_text(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if key in ("planned_quantity", "purchase_price", "sale_price") and value is not None:
            row[key] = str(value)
    return row


def record_heartbeat(
    conn: Connection, tenant: TenantContext, body: EdgeHeartbeat
) -> dict[str, Any]:
    """Keep the edge's state; answer the server time so the edge can measure its own
    clock offset (the offset stored here is the edge's view, corrected by nothing)."""
    received = now_utc()
    offset_s = (utc(body.sent_at) - received).total_seconds()
    upsert(
        conn,
        T["edge_agent"],
        [
            {
                "tenant_id": tenant.id,
                "edge_id": body.edge_id,
                "agent_version": body.agent_version,
                "last_seen_at": received,
                "backlog": body.backlog,
                "oldest_pending_at": utc(body.oldest_pending_at)
                if body.oldest_pending_at
                else None,
                "parked": body.parked,
                "held": body.held,
                "clock_offset_s": offset_s,
                "last_sync_error": body.last_sync_error,
                "devices": json.dumps(body.devices),
            }
        ],
        ["tenant_id", "edge_id"],
    )
    return {"server_time": received.isoformat(), "clock_offset_s": offset_s}


def list_agents(conn: Connection, tenant: TenantContext) -> list[dict[str, Any]]:
    ag = T["edge_agent"]
    rows = conn.execute(
        select(ag).where(ag.c.tenant_id == tenant.id).order_by(ag.c.edge_id)
    ).mappings()
    now = now_utc()
    agents = []
    for row in rows:
        agent = {k: v for k, v in row.items() if k != "tenant_id"}
        agent["devices"] = json.loads(agent["devices"])
        agent["seconds_since_seen"] = (now - utc(row["last_seen_at"])).total_seconds()
        agents.append(agent)
    return agents
