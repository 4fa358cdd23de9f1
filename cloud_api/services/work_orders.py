"""Work orders: create, release (BOM snapshot and reservations), cancel, read.

Close is an event (`work_order_close`) posted through the ingest, because it moves
value: see posting_rules.work_order_close. The lifecycle is

    draft → released → in_progress → completed → closed,  or draft/released → cancelled

`in_progress` and `completed` follow from postings (services.ingest); an order takes
postings while released, in progress or completed.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, tuple_, update

from cloud_api.api import schemas
from cloud_api.db import models as m
from cloud_api.domain import bom as bom_domain
from cloud_api.domain.clock import now_utc
from cloud_api.domain.money import ZERO, qty
from cloud_api.domain.refs import INTERNAL_KINDS
from cloud_api.errors import Conflict, NotFound, Rejected
from cloud_api.services import held
from cloud_api.services.masterdata import id_of
from cloud_api.services.reports import _kinds
from cloud_api.services.reservations import ReservationBook
from cloud_api.services.store import TenantContext

T = m.SQLModel.metadata.tables
DEFAULT_WAREHOUSE = "WH"
OUTPUT_KINDS = frozenset({"completion", "settlement"})  # what leaves WIP; the rest is material


def wip_sign(
    kinds: dict[uuid.UUID, tuple[str, str]], from_location_id: uuid.UUID, to_location_id: uuid.UUID
) -> int:
    """+1 for a move into the production location (the order's WIP), −1 for one out
    of it, 0 otherwise. By direction, not by kind: a reversal keeps its original's
    kind with the locations swapped, so it nets its original out. `kinds` is
    reports._kinds (location id → (code, kind))."""
    into = kinds[to_location_id][1] == "production"
    out_of = kinds[from_location_id][1] == "production"
    return int(into) - int(out_of)


def create_work_order(
    conn: Connection, tenant: TenantContext, body: schemas.WorkOrderCreate
) -> dict[str, Any]:
    item_id = id_of(conn, tenant, "item", body.item)
    warehouse_id = _warehouse(conn, tenant, body.warehouse)
    wo = T["work_order"]
    if conn.scalar(select(wo.c.id).where(wo.c.tenant_id == tenant.id, wo.c.code == body.code)):
        raise Conflict("work_order_exists", f"work order {body.code} already exists")
    conn.execute(
        insert(wo).values(
            tenant_id=tenant.id,
            id=uuid.uuid4(),
            code=body.code,
            item_id=item_id,
            planned_quantity=body.planned_quantity,
            status="draft",
            warehouse_id=warehouse_id,
            created_at=now_utc(),
        )
    )
    if body.release:
        return release(conn, tenant, body.code, body.allow_shortages)
    held.after_change(conn, tenant, held.work_order_created(body.code))
    return read(conn, tenant, body.code)


def release(
    conn: Connection, tenant: TenantContext, code: str, allow_shortages: bool
) -> dict[str, Any]:
    """Snapshot the item's active BOM and reserve its components (try). A component
    that cannot be fully reserved makes the release fail with the list of shortages,
    unless `allow_shortages`, when what is available is reserved and the rest shown."""
    order = _order(conn, tenant, code, lock=True)
    if order.status != "draft":
        raise Conflict("work_order_not_draft", f"work order {code} is {order.status}, not draft")
    bom_id, components = _snapshot(conn, tenant, order)
    book = ReservationBook(conn, tenant, now_utc())
    pools = sorted({(c["item_id"], c["location_id"]) for c in components})
    on_hand = _on_hand(conn, tenant, pools)
    book.load(set(pools))
    free = {pool: on_hand.get(pool, ZERO) - book.held(pool) for pool in pools}
    shortages = []
    for c in components:
        pool = (c["item_id"], c["location_id"])
        reserve = qty(max(min(c["planned_quantity"], free[pool]), ZERO))
        free[pool] -= reserve
        c["reserved"] = reserve
        if reserve < c["planned_quantity"]:
            shortages.append(c)
    if shortages and not allow_shortages:
        names = _item_codes(conn, tenant, [c["item_id"] for c in shortages])
        raise Conflict(
            "components_short",
            "not enough free stock to reserve: "
            + "; ".join(
                f"{names[c['item_id']]} needs {c['planned_quantity']}, {c['reserved']} free "
                f"(short {c['planned_quantity'] - c['reserved']})"
                for c in shortages
            )
            + "; receive the stock, or release with allow_shortages",
            shortages=[
                {
                    "item": names[c["item_id"]],
                    "required": str(c["planned_quantity"]),
                    "available": str(c["reserved"]),
                    "short": str(c["planned_quantity"] - c["reserved"]),
                }
                for c in shortages
            ],
        )
    if components:
        conn.execute(
            insert(T["work_order_component"]),
            [
                {k: v for k, v in c.items() if k != "reserved"} | {"tenant_id": tenant.id}
                for c in components
            ],
        )
    for c in components:
        if c["reserved"] > 0:
            book.hold(order.id, c["line_no"], (c["item_id"], c["location_id"]), c["reserved"])
    book.flush()
    _set_status(conn, tenant, order.id, "released", released_at=now_utc(), bom_id=bom_id)
    held.after_change(conn, tenant, held.work_order_released(code))
    return read(conn, tenant, code)


def cancel(conn: Connection, tenant: TenantContext, code: str) -> dict[str, Any]:
    """Cancel an order nothing has been posted to; its reservations are released."""
    order = _order(conn, tenant, code, lock=True)
    if order.status not in ("draft", "released"):
        raise Conflict(
            "work_order_not_cancellable",
            f"work order {code} is {order.status}; only a draft or released order can be "
            "cancelled (close it instead)",
        )
    mv, ch = T["stock_move"], T["wip_charge"]
    posted = conn.scalar(
        select(func.count())
        .select_from(mv)
        .where(mv.c.tenant_id == tenant.id, mv.c.work_order_id == order.id)
    ) or conn.scalar(
        select(func.count())
        .select_from(ch)
        .where(ch.c.tenant_id == tenant.id, ch.c.work_order_id == order.id)
    )
    if posted:
        raise Conflict(
            "work_order_has_postings",
            f"work order {code} already has postings; return its material and close it instead",
        )
    book = ReservationBook(conn, tenant, now_utc())
    book.release_order(order.id)
    book.flush()
    _set_status(conn, tenant, order.id, "cancelled", closed_at=now_utc())
    held.after_change(conn, tenant, held.reservations_released())
    return read(conn, tenant, code)


def read(conn: Connection, tenant: TenantContext, code: str) -> dict[str, Any]:
    """The order with its components (planned, issued, reserved) and reservations;
    every quantity to 6 places. Issued = the net of the order's material moves into
    its WIP (wip_sign; completions and settlements excluded), reversals netted out."""
    order = _order(conn, tenant, code)
    kinds = _kinds(conn, tenant.id)
    locations = {loc_id: loc_code for loc_id, (loc_code, _) in kinds.items()}
    woc, rv, mv = T["work_order_component"], T["reservation"], T["stock_move"]
    issued: dict[uuid.UUID, Decimal] = {}
    for row in conn.execute(
        select(
            mv.c.item_id,
            mv.c.from_location_id,
            mv.c.to_location_id,
            func.sum(mv.c.quantity).label("q"),
        )
        .where(
            mv.c.tenant_id == tenant.id,
            mv.c.work_order_id == order.id,
            mv.c.kind.not_in(sorted(OUTPUT_KINDS)),
        )
        .group_by(mv.c.item_id, mv.c.from_location_id, mv.c.to_location_id)
    ):
        sign = wip_sign(kinds, row.from_location_id, row.to_location_id)
        issued[row.item_id] = issued.get(row.item_id, ZERO) + sign * Decimal(row.q)
    holds = conn.execute(
        select(rv)
        .where(rv.c.tenant_id == tenant.id, rv.c.work_order_id == order.id)
        .order_by(rv.c.line_no)
    ).all()
    lines = conn.execute(
        select(woc)
        .where(woc.c.tenant_id == tenant.id, woc.c.work_order_id == order.id)
        .order_by(woc.c.line_no)
    ).all()
    # The codes of the items shown, not of the tenant's whole catalogue.
    names = _item_codes(
        conn, tenant, sorted({order.item_id, *(r.item_id for r in [*holds, *lines])})
    )
    reservations = [
        {
            "line_no": r.line_no,
            "item": names[r.item_id],
            "location": locations[r.location_id],
            "quantity": qty(r.quantity),
            "consumed": qty(r.consumed),
            "released": qty(r.released),
            "held": qty(r.quantity - r.consumed - r.released),
            "status": r.status,
        }
        for r in holds
    ]
    held = {r["line_no"]: r["held"] for r in reservations}
    components = [
        {
            "line_no": c.line_no,
            "item": names[c.item_id],
            "location": locations[c.location_id],
            "planned_quantity": qty(c.planned_quantity),
            "issued_quantity": qty(issued.get(c.item_id, ZERO)),
            "reserved_quantity": qty(held.get(c.line_no, ZERO)),
            "short_quantity": qty(
                max(
                    c.planned_quantity - issued.get(c.item_id, ZERO) - held.get(c.line_no, ZERO),
                    ZERO,
                )
            ),
        }
        for c in lines
    ]
    return {
        "id": order.id,
        "code": order.code,
        "item": names[order.item_id],
        "planned_quantity": qty(order.planned_quantity),
        "status": order.status,
        "warehouse": locations.get(order.warehouse_id) if order.warehouse_id else None,
        "bom_id": order.bom_id,
        "created_at": order.created_at,
        "released_at": order.released_at,
        "closed_at": order.closed_at,
        "components": components,
        "reservations": reservations,
    }


def status_of(conn: Connection, tenant: TenantContext, code: str) -> str:
    return str(_order(conn, tenant, code).status)


# -- helpers ------------------------------------------------------------------------
def code_of(conn: Connection, tenant: TenantContext, ref: str) -> str:
    """The code of the order `ref` names: its id (a UUID), else its code."""
    wo = T["work_order"]
    try:
        by = wo.c.id == uuid.UUID(ref)
    except ValueError:
        by = wo.c.code == ref
    code = conn.scalar(select(wo.c.code).where(wo.c.tenant_id == tenant.id, by))
    if code is None:
        raise NotFound("unknown_work_order", f"work order {ref} does not exist")
    return str(code)


def _order(conn: Connection, tenant: TenantContext, code: str, lock: bool = False) -> Any:
    wo = T["work_order"]
    query = select(wo).where(wo.c.tenant_id == tenant.id, wo.c.code == code)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("unknown_work_order", f"work order {code} does not exist")
    return row


def _set_status(
    conn: Connection, tenant: TenantContext, order_id: uuid.UUID, status: str, **values: Any
) -> None:
    wo = T["work_order"]
    conn.execute(
        update(wo)
        .where(wo.c.tenant_id == tenant.id, wo.c.id == order_id)
        .values(status=status, **values)
    )


def _warehouse(conn: Connection, tenant: TenantContext, code: str | None) -> uuid.UUID:
    loc = T["location"]
    row = conn.execute(
        select(loc.c.id, loc.c.kind).where(
            loc.c.tenant_id == tenant.id, loc.c.code == (code or DEFAULT_WAREHOUSE)
        )
    ).first()
    if row is None:
        raise NotFound("unknown_location", f"location {code or DEFAULT_WAREHOUSE} does not exist")
    if row.kind not in INTERNAL_KINDS:
        raise Rejected(
            "location_not_internal",
            f"location {code} is a {row.kind} location; a work order works from a warehouse",
        )
    return row.id  # type: ignore[no-any-return]


def _snapshot(
    conn: Connection, tenant: TenantContext, order: Any
) -> tuple[uuid.UUID | None, list[dict[str, Any]]]:
    """The order's components from the item's active BOM (none without a BOM), for
    its planned quantity with scrap, as bom.Bom.requirement rounds them."""
    b, ln = T["bom"], T["bom_line"]
    bom = conn.execute(
        select(b.c.id, b.c.output_quantity).where(
            b.c.tenant_id == tenant.id, b.c.item_id == order.item_id, b.c.status == "active"
        )
    ).first()
    if bom is None:
        return None, []
    components = []
    for row in conn.execute(
        select(ln)
        .where(and_(ln.c.tenant_id == tenant.id, ln.c.bom_id == bom.id))
        .order_by(ln.c.line_no)
    ):
        line = bom_domain.BomLine(str(row.item_id), row.quantity, row.scrap_factor)
        need = bom_domain.Bom(str(order.item_id), (line,), bom.output_quantity).requirement(
            line, order.planned_quantity
        )
        components.append(
            {
                "work_order_id": order.id,
                "line_no": row.line_no,
                "item_id": row.item_id,
                "location_id": order.warehouse_id,
                "planned_quantity": need,
            }
        )
    return bom.id, components


def _on_hand(
    conn: Connection, tenant: TenantContext, pools: list[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """On hand now per pool, from the pool cache, locked like the ingest locks it."""
    if not pools:
        return {}
    vp = T["valuation_pool"]
    query = (
        select(vp.c.item_id, vp.c.location_id, vp.c.quantity)
        .where(vp.c.tenant_id == tenant.id, tuple_(vp.c.item_id, vp.c.location_id).in_(pools))
        .order_by(vp.c.item_id, vp.c.location_id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {(r.item_id, r.location_id): r.quantity for r in conn.execute(query)}


def _item_codes(
    conn: Connection, tenant: TenantContext, ids: list[uuid.UUID]
) -> dict[uuid.UUID, str]:
    item = T["item"]
    return {
        r.id: r.code
        for r in conn.execute(
            select(item.c.id, item.c.code).where(item.c.tenant_id == tenant.id, item.c.id.in_(ids))
        )
    }
