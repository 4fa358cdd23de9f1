"""Master data: the rows of its lists (a table's columns, in table order, without the
tenant). Request bodies are in schemas/__init__. Field order is the wire order; `None`
where the answer holds null."""

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class ItemRow(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    unit: str
    kind: str
    valuation_method: str
    category_code: str
    lot_tracked: bool
    safety_stock: Decimal
    lead_time_days: int
    low_level_code: int
    issue_method: str
    gtin: str | None
    purchase_price: Decimal | None
    sale_price: Decimal | None
    changed_at: datetime


class LocationRow(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    kind: str
    parent_id: uuid.UUID | None
    site: str
    changed_at: datetime


class PartyRow(BaseModel):
    """A customer or a supplier."""

    id: uuid.UUID
    code: str
    name: str


class WorkCenterRow(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    labour_rate: Decimal
    overhead_rate: Decimal
    changed_at: datetime


class OperatorGradeRow(BaseModel):
    code: str
    name: str
    labour_rate: Decimal  # per hour


class OperatorRow(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    active: bool
    grade: str | None
    changed_at: datetime
