"""The devices' read models: how many are online, the edges' backlog and parked
events (from their heartbeats), and how many devices are live (not revoked)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from cloud_api.db import models as m
from cloud_api.domain.clock import utc

T = m.SQLModel.metadata.tables
ONLINE_WITHIN = timedelta(minutes=5)


@dataclass(frozen=True)
class DeviceCounts:
    online: int
    offline: int
    backlog: int  # events waiting in the edges' outboxes, from their heartbeats


def device_counts(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> DeviceCounts:
    d, ag = T["device"], T["edge_agent"]
    live = conn.execute(
        select(d.c.last_seen_at).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    ).scalars()
    online = offline = 0
    for seen in live:
        if seen is not None and utc(seen) >= now - ONLINE_WITHIN:
            online += 1
        else:
            offline += 1
    backlog = conn.scalar(select(func.sum(ag.c.backlog)).where(ag.c.tenant_id == tenant_id))
    return DeviceCounts(online, offline, int(backlog or 0))


def parked_on_edges(conn: Connection, tenant_id: uuid.UUID) -> int:
    """Events the edges hold parked (refused before they could be read, or in conflict
    with an id already used), as their last heartbeats said."""
    ag = T["edge_agent"]
    return int(conn.scalar(select(func.sum(ag.c.parked)).where(ag.c.tenant_id == tenant_id)) or 0)


def live_devices(conn: Connection, tenant_id: uuid.UUID) -> int:
    d = T["device"]
    query = select(func.count()).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    return int(conn.scalar(query) or 0)
