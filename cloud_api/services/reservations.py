"""Stock reservations of work orders: try (hold at release), confirm (consume by the
order's issues), cancel (release at close or cancel).

A reservation resolves exactly once: it leaves `held` for `consumed` (its issues took
all of it) or `released` (close or cancel gave back what was left), and never returns.
Available stock = on hand − what open reservations still hold. An issue or a shipment
may not take stock that other work orders hold unless the tenant allows it.

Reservations are about now, not about a point in event time: a back-dated issue
consumes the order's reservation like any other, and the check compares with the
stock on hand now.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from cloud_api.db import models as m
from cloud_api.domain.money import ZERO
from cloud_api.services.store import TenantContext

T = m.SQLModel.metadata.tables
Pool = tuple[uuid.UUID, uuid.UUID]  # (item, location)


@dataclass
class Hold:
    id: uuid.UUID
    work_order_id: uuid.UUID
    line_no: int
    item_id: uuid.UUID
    location_id: uuid.UUID
    quantity: Decimal
    consumed: Decimal = ZERO
    released: Decimal = ZERO
    status: str = "held"
    resolved_at: datetime | None = None
    is_new: bool = False
    dirty: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.consumed - self.released


class ReservationBook:
    """The open reservations of some pools (or of some orders), read once per unit of
    work, locked on PostgreSQL, changed in memory and written by `flush`."""

    def __init__(self, conn: Connection, tenant: TenantContext, now: datetime) -> None:
        self.conn, self.tenant, self.now = conn, tenant, now
        self.by_pool: dict[Pool, list[Hold]] = defaultdict(list)
        self.loaded: set[Pool] = set()
        self.lock = conn.dialect.name == "postgresql"

    # -- reading ---------------------------------------------------------------
    def load(self, pools: set[Pool]) -> None:
        missing = sorted(pools - self.loaded)
        if not missing:
            return
        rv = T["reservation"]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            query = (
                select(rv)
                .where(
                    rv.c.tenant_id == self.tenant.id,
                    rv.c.status == "held",
                    tuple_(rv.c.item_id, rv.c.location_id).in_(chunk),
                )
                .order_by(rv.c.id)
            )
            for row in self.conn.execute(query.with_for_update() if self.lock else query):
                self._keep(row)
        self.loaded.update(missing)

    def load_order(self, work_order_id: uuid.UUID) -> None:
        """Load the pools an order holds stock in."""
        rv = T["reservation"]
        pools = self.conn.execute(
            select(rv.c.item_id, rv.c.location_id)
            .where(
                rv.c.tenant_id == self.tenant.id,
                rv.c.work_order_id == work_order_id,
                rv.c.status == "held",
            )
            .distinct()
        )
        self.load({(row.item_id, row.location_id) for row in pools})

    def _keep(self, row: Any) -> None:
        self.by_pool[(row.item_id, row.location_id)].append(
            Hold(
                row.id,
                row.work_order_id,
                row.line_no,
                row.item_id,
                row.location_id,
                row.quantity,
                row.consumed,
                row.released,
                row.status,
            )
        )

    def held(self, pool: Pool, excluding_order: uuid.UUID | None = None) -> Decimal:
        """What open reservations still hold in `pool` (those of one order left out)."""
        self.load({pool})
        return sum(
            (h.remaining for h in self.by_pool[pool] if h.work_order_id != excluding_order),
            ZERO,
        )

    # -- try, confirm, cancel ----------------------------------------------------
    def hold(self, work_order_id: uuid.UUID, line_no: int, pool: Pool, quantity: Decimal) -> Hold:
        hold = Hold(uuid.uuid4(), work_order_id, line_no, pool[0], pool[1], quantity, is_new=True)
        self.by_pool[pool].append(hold)
        return hold

    def consume(self, work_order_id: uuid.UUID, pool: Pool, quantity: Decimal) -> None:
        """An issue to the order takes from its own reservations first."""
        self.load({pool})
        for hold in self.by_pool[pool]:
            if quantity <= 0:
                return
            if hold.work_order_id != work_order_id or hold.status != "held":
                continue
            take = min(quantity, hold.remaining)
            hold.consumed += take
            quantity -= take
            hold.dirty = True
            if hold.remaining == 0:
                hold.status, hold.resolved_at = "consumed", self.now

    def release_order(self, work_order_id: uuid.UUID) -> None:
        """Close or cancel: what the order still holds goes back to free stock."""
        self.load_order(work_order_id)
        for holds in self.by_pool.values():
            for hold in holds:
                if hold.work_order_id == work_order_id and hold.status == "held":
                    hold.released += hold.remaining
                    hold.status, hold.resolved_at, hold.dirty = "released", self.now, True

    # -- writing ---------------------------------------------------------------
    def flush(self) -> None:
        rv = T["reservation"]
        holds = [h for holds in self.by_pool.values() for h in holds]
        new = [
            {
                "tenant_id": self.tenant.id,
                "id": h.id,
                "work_order_id": h.work_order_id,
                "line_no": h.line_no,
                "item_id": h.item_id,
                "location_id": h.location_id,
                "quantity": h.quantity,
                "consumed": h.consumed,
                "released": h.released,
                "status": h.status,
                "created_at": self.now,
                "resolved_at": h.resolved_at,
            }
            for h in holds
            if h.is_new
        ]
        if new:
            self.conn.execute(insert(rv), new)
        changed = [
            {
                "b_id": h.id,
                "consumed": h.consumed,
                "released": h.released,
                "status": h.status,
                "resolved_at": h.resolved_at,
            }
            for h in holds
            if h.dirty and not h.is_new
        ]
        if changed:
            self.conn.execute(
                update(rv).where(rv.c.tenant_id == self.tenant.id, rv.c.id == bindparam("b_id")),
                changed,
            )
        for h in holds:
            h.is_new = h.dirty = False
