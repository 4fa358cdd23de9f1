"""What is left of the portal's own reads: a member's role, the member count, and the
codes a label form offers. The figures (stock, finance, the queue, devices,
production) moved to cloud_api/reporting, shared with the API; the language writes and
the owner count moved to cloud_api/services/users.py (REDESIGN §4 steps 3 and 4).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, select

from cloud_api.db import models as m

T = m.SQLModel.metadata.tables


# -- members -------------------------------------------------------------------------


def role_of(conn: Connection, tenant_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    ms = T["membership"]
    return conn.scalar(  # type: ignore[no-any-return]
        select(ms.c.role).where(ms.c.tenant_id == tenant_id, ms.c.user_id == user_id)
    )


def member_count(conn: Connection, tenant_id: uuid.UUID) -> int:
    ms = T["membership"]
    return int(conn.scalar(select(func.count()).where(ms.c.tenant_id == tenant_id)) or 0)


# -- labels --------------------------------------------------------------------------

LABEL_ROWS = 1000  # the most codes of one kind a label form offers
INTERNAL_LOCATION_KINDS = ("warehouse", "bin")


def label_items(conn: Connection, tenant_id: uuid.UUID) -> Sequence[Any]:
    item = T["item"]
    query = select(item.c.code, item.c.name, item.c.gtin).where(item.c.tenant_id == tenant_id)
    return conn.execute(query.order_by(item.c.code).limit(LABEL_ROWS)).all()


def label_locations(conn: Connection, tenant_id: uuid.UUID) -> Sequence[Any]:
    """The internal locations (the others are virtual: nobody scans them)."""
    loc = T["location"]
    query = select(loc.c.code, loc.c.name).where(
        loc.c.tenant_id == tenant_id, loc.c.kind.in_(INTERNAL_LOCATION_KINDS)
    )
    return conn.execute(query.order_by(loc.c.code).limit(LABEL_ROWS)).all()


def label_work_orders(conn: Connection, tenant_id: uuid.UUID) -> Sequence[Any]:
    """The newest work orders with their item and planned quantity."""
    wo, item = T["work_order"], T["item"]
    query = (
        select(wo.c.code, wo.c.status, wo.c.planned_quantity, item.c.code.label("item_code"))
        .select_from(wo)
        .join(item, and_(item.c.tenant_id == wo.c.tenant_id, item.c.id == wo.c.item_id))
        .where(wo.c.tenant_id == tenant_id)
        .order_by(wo.c.created_at.desc(), wo.c.code)
    )
    return conn.execute(query.limit(LABEL_ROWS)).all()


def label_operators(conn: Connection, tenant_id: uuid.UUID) -> Sequence[Any]:
    op = T["operator"]
    query = select(op.c.code, op.c.name).where(op.c.tenant_id == tenant_id, op.c.active)
    return conn.execute(query.order_by(op.c.code).limit(LABEL_ROWS)).all()


def label_lots(conn: Connection, tenant_id: uuid.UUID) -> Sequence[Any]:
    """The lots with their item's code, GTIN and unit, expiry and quantity on hand (in
    every location, from the stock balances)."""
    lot, item, sb = T["lot"], T["item"], T["stock_balance"]
    on_hand = (
        select(func.sum(sb.c.quantity))
        .where(sb.c.tenant_id == lot.c.tenant_id, sb.c.item_id == lot.c.item_id)
        .where(sb.c.lot == lot.c.lot)
        .scalar_subquery()
    )
    query = (
        select(
            lot.c.lot,
            lot.c.expiry,
            item.c.code.label("item_code"),
            item.c.gtin,
            item.c.unit,
            on_hand.label("quantity"),
        )
        .select_from(lot)
        .join(item, and_(item.c.tenant_id == lot.c.tenant_id, item.c.id == lot.c.item_id))
        .where(lot.c.tenant_id == tenant_id)
        .order_by(item.c.code, lot.c.lot)
    )
    return conn.execute(query.limit(LABEL_ROWS)).all()
