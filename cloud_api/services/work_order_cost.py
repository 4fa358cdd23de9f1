"""The cost of a work order: what was planned, what it collected and where it went.

Actual figures are read from the ledgers alone: stock moves at their effective value
(booked value + revaluations, as reports._effective_moves gives it) and WIP charges.
A move counts into the order's WIP when it goes to the production location and out
of it when it comes from there (work_orders.wip_sign, the rule the order's issued
quantities follow too), so a reversal nets out its original whatever its kind.
Hence, to the cent,

    incurred  = material + labour + overhead
    wip_value = incurred − completed − settled   (= reports.wip_by_work_order)

Planned figures come from what the release snapshotted: the components with their
scrap (work_order_component) and the routing of the BOM version released
(bom_operation of work_order.bom_id) for the planned quantity, as the BOM explosion
computes it (domain.bom.routing_load). Labour and overhead are planned at the work
centres' current rates.

There is no standard-cost table yet: the *standard* unit cost of a component is its
current average cost, the value ÷ quantity of its valuation pool in the order's
warehouse (its last unit cost when the pool is empty; none when it never had stock).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from cloud_api.db import models as m
from cloud_api.domain import bom as bom_domain
from cloud_api.domain.money import ZERO, money, qty, unit_cost
from cloud_api.services.reports import _effective_moves, _kinds
from cloud_api.services.store import TenantContext
from cloud_api.services.work_orders import OUTPUT_KINDS, _order, wip_sign

T = m.SQLModel.metadata.tables
STOCK_LOCATION_KINDS = frozenset({"warehouse", "bin"})


@dataclass
class Flow:
    """Net quantity and value of one item into the order's WIP, for one move kind."""

    item_id: uuid.UUID
    kind: str
    quantity: Decimal
    value: Decimal


@dataclass
class CentreLine:
    """Planned and actual hours and cost of one cost element at one work centre."""

    work_center: str | None
    planned_hours: Decimal = ZERO
    planned_cost: Decimal = ZERO
    actual_hours: Decimal = ZERO
    actual_cost: Decimal = ZERO

    def as_dict(self) -> dict[str, Any]:
        return {
            "work_center": self.work_center,
            "planned_hours": qty(self.planned_hours),
            "planned_cost": money(self.planned_cost),
            "actual_hours": qty(self.actual_hours),
            "actual_cost": money(self.actual_cost),
            "variance_hours": qty(self.actual_hours - self.planned_hours),
            "variance_cost": money(self.actual_cost - self.planned_cost),
        }


def cost_report(conn: Connection, tenant: TenantContext, code: str) -> dict[str, Any]:
    """The order's header, materials, labour, overhead and totals (see the module
    docstring). Read it in one snapshot, or the figures may not add up."""
    order = _order(conn, tenant, code)
    flows = _flows(conn, tenant, order.id)
    materials = _materials(conn, tenant, order, flows)
    labour, overhead = _centre_lines(conn, tenant, order)
    completed_quantity, _ = _leaving(flows, "completion")
    return {
        "code": order.code,
        "item": _item_codes(conn, tenant, [order.item_id])[order.item_id],
        "status": order.status,
        "planned_quantity": order.planned_quantity,
        "completed_quantity": qty(completed_quantity),
        "scrap_quantity": qty(_scrap_quantity(conn, tenant, order.id)),
        "materials": materials,
        "labour": [line.as_dict() for line in labour],
        "overhead": [line.as_dict() for line in overhead],
        "totals": _totals(order, flows, materials, labour, overhead, completed_quantity),
    }


# -- reading the ledgers ----------------------------------------------------------


def _flows(conn: Connection, tenant: TenantContext, order_id: uuid.UUID) -> list[Flow]:
    kinds = _kinds(conn, tenant.id)
    moves = _effective_moves(tenant.id, work_order_id=order_id)
    out: dict[tuple[uuid.UUID, str], Flow] = {}
    for r in conn.execute(
        select(moves.c.item_id, moves.c.kind, moves.c.from_location_id, moves.c.to_location_id)
        .add_columns(moves.c.quantity, moves.c.effective)
        .where(moves.c.work_order_id == order_id)
    ):
        sign = wip_sign(kinds, r.from_location_id, r.to_location_id)
        kind = r.kind
        if kind == "settlement" and kinds[r.to_location_id][1] in STOCK_LOCATION_KINDS:
            kind = "settlement_to_stock"  # variance policy finished_goods
        flow = out.setdefault((r.item_id, kind), Flow(r.item_id, kind, ZERO, ZERO))
        flow.quantity += sign * r.quantity
        flow.value += sign * Decimal(r.effective)
    return list(out.values())


def _charges(
    conn: Connection, tenant: TenantContext, order_id: uuid.UUID
) -> dict[tuple[str, uuid.UUID | None], tuple[Decimal, Decimal]]:
    """(cost element, work centre) → (hours, value); a reversed report nets out."""
    ch = T["wip_charge"]
    out: dict[tuple[str, uuid.UUID | None], tuple[Decimal, Decimal]] = {}
    for r in conn.execute(
        select(ch.c.cost_element, ch.c.work_center_id, ch.c.hours, ch.c.value).where(
            ch.c.tenant_id == tenant.id, ch.c.work_order_id == order_id
        )
    ):
        hours, value = out.get((r.cost_element, r.work_center_id), (ZERO, ZERO))
        out[(r.cost_element, r.work_center_id)] = (hours + r.hours, value + r.value)
    return out


def _scrap_quantity(conn: Connection, tenant: TenantContext, order_id: uuid.UUID) -> Decimal:
    """The scrap reported on the order's completion events that stand (not reversed)."""
    ev, mv = T["edge_event"], T["stock_move"]
    completion_events = select(mv.c.event_id).where(
        mv.c.tenant_id == tenant.id, mv.c.work_order_id == order_id, mv.c.kind == "completion"
    )
    payloads = conn.scalars(
        select(ev.c.payload).where(
            ev.c.tenant_id == tenant.id,
            ev.c.event_id.in_(completion_events),
            ev.c.type == "production_completion",
            ev.c.status == "posted",
            ev.c.reversed_by.is_(None),
        )
    )
    return sum(
        (Decimal(json.loads(p)["payload"].get("scrap_quantity", "0")) for p in payloads), ZERO
    )


def _leaving(flows: list[Flow], kind: str) -> tuple[Decimal, Decimal]:
    """Net quantity and value that left the WIP by moves of `kind` (reversals net)."""
    chosen = [f for f in flows if f.kind == kind]
    # ZERO − x rather than −x: never a negative zero ("-0.00") in the answer
    return (
        ZERO - sum((f.quantity for f in chosen), ZERO),
        ZERO - sum((f.value for f in chosen), ZERO),
    )


def _item_codes(
    conn: Connection, tenant: TenantContext, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    item = T["item"]
    rows = conn.execute(
        select(item.c.id, item.c.code).where(item.c.tenant_id == tenant.id, item.c.id.in_(set(ids)))
    )
    return {r.id: r.code for r in rows}


# -- materials --------------------------------------------------------------------


def _materials(
    conn: Connection, tenant: TenantContext, order: Any, flows: list[Flow]
) -> list[dict[str, Any]]:
    """Planned components in line order, then unplanned items issued, by code."""
    planned = _planned_components(conn, tenant, order.id)
    actual: dict[uuid.UUID, tuple[Decimal, Decimal]] = defaultdict(lambda: (ZERO, ZERO))
    for f in flows:
        if f.kind not in OUTPUT_KINDS and f.kind != "settlement_to_stock":
            q, v = actual[f.item_id]
            actual[f.item_id] = (q + f.quantity, v + f.value)
    codes = _item_codes(conn, tenant, [*planned, *actual])
    unplanned = sorted(set(actual) - set(planned), key=lambda item_id: codes[item_id])
    items = [*planned, *unplanned]
    standard = _standard_costs(conn, tenant, items, order.warehouse_id)
    return [
        _material_line(codes[i], planned.get(i, ZERO), standard.get(i), *actual[i]) for i in items
    ]


def _material_line(
    item: str,
    planned_quantity: Decimal,
    standard_unit_cost: Decimal | None,
    actual_quantity: Decimal,
    actual_value: Decimal,
) -> dict[str, Any]:
    """Usage variance = actual − planned quantity, valued at the actual unit cost (at
    the standard one when nothing is issued net, so there is no actual cost); price
    variance = the rest, so planned value + usage + price variance = actual value."""
    actual_unit_cost = unit_cost(actual_value, actual_quantity) if actual_quantity > 0 else None
    planned_value = _times(planned_quantity, standard_unit_cost)
    variance = actual_quantity - planned_quantity
    usage_value = _times(
        variance, standard_unit_cost if actual_unit_cost is None else actual_unit_cost
    )
    return {
        "item": item,
        "planned_quantity": qty(planned_quantity),
        "standard_unit_cost": standard_unit_cost,
        "planned_value": planned_value,
        "actual_quantity": qty(actual_quantity),
        "actual_value": money(actual_value),
        "actual_unit_cost": actual_unit_cost,
        "usage_variance_quantity": qty(variance),
        "usage_variance_value": usage_value,
        "price_variance_value": (
            None
            if planned_value is None or usage_value is None
            else money(actual_value - planned_value - usage_value)
        ),
    }


def _planned_components(
    conn: Connection, tenant: TenantContext, order_id: uuid.UUID
) -> dict[uuid.UUID, Decimal]:
    woc = T["work_order_component"]
    planned: dict[uuid.UUID, Decimal] = {}
    for r in conn.execute(
        select(woc.c.item_id, woc.c.planned_quantity)
        .where(woc.c.tenant_id == tenant.id, woc.c.work_order_id == order_id)
        .order_by(woc.c.line_no)
    ):
        planned[r.item_id] = planned.get(r.item_id, ZERO) + r.planned_quantity
    return planned


def _standard_costs(
    conn: Connection,
    tenant: TenantContext,
    items: list[uuid.UUID],
    warehouse_id: uuid.UUID | None,
) -> dict[uuid.UUID, Decimal | None]:
    """The current average cost per item in the warehouse (see the module docstring)."""
    if not items or warehouse_id is None:
        return {}
    vp = T["valuation_pool"]
    rows = conn.execute(
        select(vp.c.item_id, vp.c.quantity, vp.c.value, vp.c.last_unit_cost).where(
            vp.c.tenant_id == tenant.id,
            vp.c.location_id == warehouse_id,
            vp.c.item_id.in_(items),
        )
    )
    return {
        r.item_id: unit_cost(r.value, r.quantity) if r.quantity > 0 else r.last_unit_cost
        for r in rows
    }


# -- labour and overhead ----------------------------------------------------------


def _centre_lines(
    conn: Connection, tenant: TenantContext, order: Any
) -> tuple[list[CentreLine], list[CentreLine]]:
    """Labour and overhead per work centre: the routing's centres in its order, then
    any other centre charged, by code."""
    centres = _work_centres(conn, tenant)
    loads = _planned_loads(conn, tenant, order, centres)
    labour: dict[str | None, CentreLine] = {
        ld.work_center: CentreLine(ld.work_center, ld.hours, ld.labour_cost) for ld in loads
    }
    overhead: dict[str | None, CentreLine] = {
        ld.work_center: CentreLine(ld.work_center, ld.hours, ld.overhead_cost) for ld in loads
    }
    charges = [
        (element, None if centre_id is None else centres[centre_id].code, hours, value)
        for (element, centre_id), (hours, value) in _charges(conn, tenant, order.id).items()
    ]
    for element, code, hours, value in sorted(charges, key=lambda c: c[1] or ""):
        lines = labour if element == "labour" else overhead
        line = lines.setdefault(code, CentreLine(code))
        line.actual_hours += hours
        line.actual_cost += value
    return list(labour.values()), list(overhead.values())


def _work_centres(conn: Connection, tenant: TenantContext) -> dict[uuid.UUID, Any]:
    wc = T["work_center"]
    rows = conn.execute(
        select(wc.c.id, wc.c.code, wc.c.labour_rate, wc.c.overhead_rate).where(
            wc.c.tenant_id == tenant.id
        )
    )
    return {r.id: r for r in rows}


def _planned_loads(
    conn: Connection, tenant: TenantContext, order: Any, centres: dict[uuid.UUID, Any]
) -> list[bom_domain.WorkCenterLoad]:
    """The routing of the BOM version released, for the planned quantity."""
    if order.bom_id is None:
        return []
    op = T["bom_operation"]
    operations = [
        bom_domain.Operation(
            r.seq, centres[r.work_center_id].code, r.setup_minutes, r.minutes_per_unit
        )
        for r in conn.execute(
            select(op).where(op.c.tenant_id == tenant.id, op.c.bom_id == order.bom_id)
        )
    ]
    rates = {c.code: bom_domain.Rates(c.labour_rate, c.overhead_rate) for c in centres.values()}
    return bom_domain.routing_load(operations, order.planned_quantity, rates)


# -- totals -----------------------------------------------------------------------


def _totals(
    order: Any,
    flows: list[Flow],
    materials: list[dict[str, Any]],
    labour: list[CentreLine],
    overhead: list[CentreLine],
    completed_quantity: Decimal,
) -> dict[str, Any]:
    """Unit cost = completed value ÷ good quantity completed; with the variance
    settled at close added, once the order is closed."""
    material = sum((line["actual_value"] for line in materials), ZERO)
    labour_cost = sum((line.actual_cost for line in labour), ZERO)
    overhead_cost = sum((line.actual_cost for line in overhead), ZERO)
    incurred = material + labour_cost + overhead_cost
    _, completed = _leaving(flows, "completion")
    closed = any(f.kind in ("settlement", "settlement_to_stock") for f in flows)
    to_stock = _leaving(flows, "settlement_to_stock")[1]
    to_sales = _leaving(flows, "settlement")[1]
    settled = to_stock + to_sales if closed else None
    return {
        "planned": _planned_totals(order, materials, labour, overhead),
        "material_cost": money(material),
        "labour_cost": money(labour_cost),
        "overhead_cost": money(overhead_cost),
        "incurred_cost": money(incurred),
        "completed_value": money(completed),
        "settled_variance": None if settled is None else money(settled),
        # where it went under the tenant's variance policy, and what it was made of
        "settled_to_finished_goods": None if settled is None else money(to_stock),
        "settled_to_cost_of_sales": None if settled is None else money(to_sales),
        "settled_by_element": (
            None if settled is None else _by_element(settled, material, labour_cost, overhead_cost)
        ),
        "wip_value": money(incurred - completed - (settled or ZERO)),
        "unit_cost": _per_unit(completed, completed_quantity),
        "unit_cost_with_variance": (
            None if settled is None else _per_unit(completed + settled, completed_quantity)
        ),
    }


def _by_element(
    settled: Decimal, material: Decimal, labour: Decimal, overhead: Decimal
) -> dict[str, Any]:
    """The settled residual split over the cost elements in proportion to what each
    put into the order (completions take every element alike, so what is left keeps
    their mix, save for costs that came after the last completion). The rounding
    residue goes to material, so the three add up to the settled amount."""
    incurred = material + labour + overhead
    if incurred == 0:
        return {"material": money(settled), "labour": money(ZERO), "overhead": money(ZERO)}
    labour_part = money(settled * labour / incurred)
    overhead_part = money(settled * overhead / incurred)
    return {
        "material": money(settled - labour_part - overhead_part),
        "labour": labour_part,
        "overhead": overhead_part,
    }


def _planned_totals(
    order: Any,
    materials: list[dict[str, Any]],
    labour: list[CentreLine],
    overhead: list[CentreLine],
) -> dict[str, Any]:
    """Planned cost; the material (and so the total) is unknown while a component
    has no cost yet."""
    values = [line["planned_value"] for line in materials]
    material = None if None in values else money(sum(values, ZERO))
    labour_cost = money(sum((line.planned_cost for line in labour), ZERO))
    overhead_cost = money(sum((line.planned_cost for line in overhead), ZERO))
    total = None if material is None else material + labour_cost + overhead_cost
    return {
        "material_cost": material,
        "labour_cost": labour_cost,
        "overhead_cost": overhead_cost,
        "total_cost": total,
        "unit_cost": None if total is None else _per_unit(total, order.planned_quantity),
    }


def _per_unit(value: Decimal, quantity: Decimal) -> Decimal | None:
    return unit_cost(value, quantity) if quantity > 0 else None


def _times(quantity: Decimal, unit: Decimal | None) -> Decimal | None:
    return None if unit is None else money(quantity * unit)
