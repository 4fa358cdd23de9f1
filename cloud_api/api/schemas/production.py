"""Work orders: the answers (request bodies are in schemas/__init__). Field order is
the wire order; `None` where the answer holds null. Quantities and money are exact
decimals, written as JSON strings."""

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class WorkOrderComponent(BaseModel):
    """A component snapshotted from the BOM at release: planned, issued net into the
    order's WIP, still reserved for it, and short of the plan."""

    line_no: int
    item: str
    location: str
    planned_quantity: Decimal
    issued_quantity: Decimal
    reserved_quantity: Decimal
    short_quantity: Decimal


class WorkOrderReservation(BaseModel):
    line_no: int
    item: str
    location: str
    quantity: Decimal
    consumed: Decimal
    released: Decimal
    held: Decimal  # quantity − consumed − released
    status: str


class WorkOrderPublic(BaseModel):
    """An order with its components and reservations (services/work_orders.read)."""

    id: uuid.UUID
    code: str
    item: str
    planned_quantity: Decimal
    status: str
    warehouse: str | None
    bom_id: uuid.UUID | None
    created_at: datetime
    released_at: datetime | None
    closed_at: datetime | None
    components: list[WorkOrderComponent]
    reservations: list[WorkOrderReservation]


class WorkOrderClosed(WorkOrderPublic):
    """The order as it is after its close posted, and the close's journal entry."""

    journal_entry_id: str | None


class WorkOrderRow(BaseModel):
    """A row of the work-order list: the order's own columns, by id (read one for
    its codes, components and reservations)."""

    id: uuid.UUID
    code: str
    item_id: uuid.UUID
    planned_quantity: Decimal
    status: str
    warehouse_id: uuid.UUID | None
    bom_id: uuid.UUID | None
    created_at: datetime
    released_at: datetime | None
    closed_at: datetime | None
    changed_at: datetime


# -- the cost report (services/work_order_cost) ------------------------------------


class MaterialCost(BaseModel):
    """One item's planned against actual use; a cost not known yet (no standard cost,
    nothing issued) is null."""

    item: str
    planned_quantity: Decimal
    standard_unit_cost: Decimal | None
    planned_value: Decimal | None
    actual_quantity: Decimal
    actual_value: Decimal
    actual_unit_cost: Decimal | None
    usage_variance_quantity: Decimal
    usage_variance_value: Decimal | None
    price_variance_value: Decimal | None


class CentreCost(BaseModel):
    """Labour or overhead at one work centre (null: charged without a centre)."""

    work_center: str | None
    planned_hours: Decimal
    planned_cost: Decimal
    actual_hours: Decimal
    actual_cost: Decimal
    variance_hours: Decimal
    variance_cost: Decimal


class PlannedCost(BaseModel):
    """Null material (and so total and unit) cost while a component has no cost yet."""

    material_cost: Decimal | None
    labour_cost: Decimal
    overhead_cost: Decimal
    total_cost: Decimal | None
    unit_cost: Decimal | None


class SettledByElement(BaseModel):
    material: Decimal
    labour: Decimal
    overhead: Decimal


class CostTotals(BaseModel):
    """The `settled_*` figures are null until the order is closed; a unit cost is null
    while nothing is completed."""

    planned: PlannedCost
    material_cost: Decimal
    labour_cost: Decimal
    overhead_cost: Decimal
    incurred_cost: Decimal
    completed_value: Decimal
    settled_variance: Decimal | None
    settled_to_finished_goods: Decimal | None
    settled_to_cost_of_sales: Decimal | None
    settled_by_element: SettledByElement | None
    wip_value: Decimal
    unit_cost: Decimal | None
    unit_cost_with_variance: Decimal | None


class WorkOrderCost(BaseModel):
    code: str
    item: str
    status: str
    planned_quantity: Decimal
    completed_quantity: Decimal
    scrap_quantity: Decimal
    materials: list[MaterialCost]
    labour: list[CentreCost]
    overhead: list[CentreCost]
    totals: CostTotals
