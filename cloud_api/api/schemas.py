"""Request and response bodies of the master-data endpoints (Create / Public)."""

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud_api.contract import Code, NonNegativeQuantity, Quantity


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, Field(min_length=1, max_length=200)]


class ItemCreate(_In):
    code: Code
    name: Name
    unit: Annotated[str, Field(min_length=1, max_length=16)] = "pcs"
    kind: Literal["raw", "semi_finished", "finished"]
    valuation_method: Literal["moving_average", "fifo"] = "moving_average"
    category_code: Code | None = None
    lot_tracked: bool = False
    safety_stock: NonNegativeQuantity = Decimal(0)
    lead_time_days: Annotated[int, Field(ge=0, le=3650)] = 0


class LocationCreate(_In):
    code: Code
    name: Name
    kind: Literal["warehouse", "bin"]
    parent_code: Code | None = None


class PartyCreate(_In):
    code: Code
    name: Name


class WorkCenterCreate(_In):
    code: Code
    name: Name
    labour_rate: NonNegativeQuantity
    overhead_rate: NonNegativeQuantity = Decimal(0)


class WorkOrderCreate(_In):
    code: Code
    item: Code
    planned_quantity: Quantity


class Created(BaseModel):
    id: uuid.UUID | None = None
    code: str


class VoidRequest(_In):
    reason: Annotated[str, Field(min_length=1, max_length=200)]
