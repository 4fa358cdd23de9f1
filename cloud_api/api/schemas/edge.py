"""The edge's answers: the master data it validates scans against offline
(services/edge.master_data), its heartbeat's acknowledgement, and the edges that
reported. Field order is the wire order; `None` where the answer holds null. The
master data's decimals are strings already (the edge's own contract), hence `str`."""

from datetime import datetime

from pydantic import BaseModel


class EdgeItem(BaseModel):
    code: str
    name: str
    unit: str
    kind: str
    lot_tracked: bool
    issue_method: str
    gtin: str | None
    purchase_price: str | None
    sale_price: str | None


class EdgeLocation(BaseModel):
    code: str
    name: str
    kind: str
    site: str


class EdgeCoded(BaseModel):
    """A work centre, a supplier or a customer: its code and name."""

    code: str
    name: str


class EdgeOperator(BaseModel):
    code: str
    name: str
    active: bool


class EdgeComponent(BaseModel):
    item: str
    location: str
    planned_quantity: str
    issue_method: str
    lot_tracked: bool


class EdgeWorkOrder(BaseModel):
    """`postable`: whether the order takes postings (the edge drops it otherwise)."""

    code: str
    status: str
    planned_quantity: str
    item: str
    warehouse: str | None
    postable: bool
    components: list[EdgeComponent]


class EdgeMasterData(BaseModel):
    """Everything (`full`), or what changed since the last pull's `cursor`."""

    full: bool
    cursor: str
    server_time: str
    items: list[EdgeItem]
    locations: list[EdgeLocation]
    work_centers: list[EdgeCoded]
    operators: list[EdgeOperator]
    suppliers: list[EdgeCoded]
    customers: list[EdgeCoded]
    work_orders: list[EdgeWorkOrder]


class HeartbeatAck(BaseModel):
    """The server's time, for the edge to measure its own clock offset."""

    server_time: str
    clock_offset_s: float


class EdgeAgent(BaseModel):
    """An edge as it last reported itself (services/edge.list_agents)."""

    edge_id: str
    agent_version: str | None
    last_seen_at: datetime
    backlog: int
    oldest_pending_at: datetime | None
    parked: int
    held: int
    clock_offset_s: float | None
    last_sync_error: str | None
    devices: list[dict[str, str | int | float | bool | None]]
    seconds_since_seen: float
