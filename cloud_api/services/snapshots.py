"""Snapshots of every cost pool at a period's end, taken when the period closes: the
close's starting point (periodic average, CLOSE.md) and where a late event dated in
the next period starts its replay. The engine also snapshots a pool every
`valuation_snapshot_every` records as it posts (store.SqlHistory.save)."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, or_, select, text

from cloud_api.db import models as m
from cloud_api.domain.clock import first_day_of_next_month, utc
from cloud_api.domain.engine import PoolKey, state_upto
from cloud_api.errors import Held
from cloud_api.services.store import MasterDataStore, RowBuffer, SqlHistory, TenantContext

T = m.SQLModel.metadata.tables
LAST_EVENT = uuid.UUID(int=2**128 - 1)  # after every event of the same instant
LAST_LINE = 2**31 - 1


# pg_advisory_xact_lock's two-key space: (this, the tenant's hash) guards its periods
PERIODS_LOCK = 0x5045


def hold_periods(conn: Connection, tenant_id: uuid.UUID, exclusive: bool = False) -> None:
    """Hold the tenant's periods until the transaction ends: shared by a posting batch,
    which reads which periods are closed and posts accordingly; exclusive by a close,
    which so waits for the batches that read the period open and then snapshots what
    they posted, and keeps new ones out until it commits. (SQLite has one writer.)"""
    if conn.dialect.name != "postgresql":
        return
    how = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(
        text(f"SELECT {how}(:space, hashtext(:tenant))"),
        {"space": PERIODS_LOCK, "tenant": str(tenant_id)},
    )


def period_end(tenant: TenantContext, code: str) -> datetime:
    """The first instant after the period (YYYY-MM) in the tenant's time zone, in UTC."""
    year, month = (int(part) for part in code.split("-"))
    first = datetime(year, month, 1).date()
    start_of_next = datetime.combine(
        first_day_of_next_month(first), time(), ZoneInfo(tenant.timezone)
    )
    return utc(start_of_next)


def snapshot_period_end(conn: Connection, tenant: TenantContext, code: str) -> int:
    """Snapshot every pool as it stood at the end of period `code`, where it has had
    records since its last snapshot before then. Returns how many pools had a state
    to keep there."""
    buffer = RowBuffer()
    md = MasterDataStore(conn, tenant, buffer, lambda item, location: {})
    history = SqlHistory(conn, tenant, md, buffer)
    end = period_end(tenant, code)
    upto = (end - timedelta(microseconds=1), LAST_EVENT, LAST_LINE)  # before `end`
    taken = 0
    for key in _pools_before(conn, tenant, end):
        try:
            slot = state_upto(history, key, upto)
        except Held:  # a pool the replay refuses now (negative stock since disallowed):
            continue  # no snapshot, so late events replay it from an earlier one
        taken += history.keep_snapshot(key, slot)
    return taken


def _pools_before(conn: Connection, tenant: TenantContext, end: datetime) -> list[PoolKey]:
    """The stock pools with a record, and the work orders with a move or a charge
    before `end` (a pool's snapshot at `end` has nothing to keep otherwise)."""
    vp, wb, mv, ch = T["valuation_pool"], T["wip_balance"], T["stock_move"], T["wip_charge"]
    keys: list[PoolKey] = [
        ("stock", r.item_id, r.location_id)
        for r in conn.execute(
            select(vp.c.item_id, vp.c.location_id).where(
                vp.c.tenant_id == tenant.id, vp.c.last_occurred_at.is_not(None)
            )
        )
    ]

    def before_end(table: Any) -> Any:
        return (
            select(table.c.work_order_id)
            .where(
                table.c.tenant_id == tenant.id,
                table.c.work_order_id == wb.c.work_order_id,
                table.c.occurred_at < end,
            )
            .exists()
        )

    keys += [
        ("wip", order)
        for order in conn.scalars(
            select(wb.c.work_order_id).where(
                wb.c.tenant_id == tenant.id, or_(before_end(mv), before_end(ch))
            )
        )
    ]
    return keys
