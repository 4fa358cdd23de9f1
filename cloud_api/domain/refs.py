"""Plain snapshots of master data that the posting rules read."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

INTERNAL_KINDS = frozenset({"warehouse", "bin"})


@dataclass(frozen=True)
class ItemRef:
    id: uuid.UUID
    code: str
    valuation_method: str
    lot_tracked: bool
    stock_account: str
    cogs_account: str
    revenue_account: str


@dataclass(frozen=True)
class LocationRef:
    id: uuid.UUID
    code: str
    kind: str
    site: str = "main"  # of a warehouse or bin

    @property
    def internal(self) -> bool:
        return self.kind in INTERNAL_KINDS


@dataclass(frozen=True)
class WorkOrderRef:
    id: uuid.UUID
    code: str
    item_id: uuid.UUID
    planned_quantity: Decimal
    status: str
    warehouse_id: uuid.UUID | None = None


@dataclass(frozen=True)
class WorkCenterRef:
    id: uuid.UUID
    code: str
    labour_rate: Decimal
    overhead_rate: Decimal


@dataclass(frozen=True)
class PartyRef:
    id: uuid.UUID
    code: str


@dataclass(frozen=True)
class ComponentRef:
    """A component of a work order as snapshotted at release: where it is issued from
    and how much the order's planned quantity needs (scrap included)."""

    line_no: int
    item: ItemRef
    location: LocationRef
    planned_quantity: Decimal


@dataclass(frozen=True)
class LotStock:
    """A lot of an item on hand in one location, with what picking orders it by: its
    expiry and when it was first received (None when the lot has no master data)."""

    lot: str
    quantity: Decimal
    expiry: date | None = None
    first_received_at: datetime | None = None
