"""Devices and integration credentials: the answers (request bodies are in
schemas/__init__)."""

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class EnrollmentCode(BaseModel):
    code: str  # single use, shown this once
    site: str
    expires_at: datetime


class DeviceKey(BaseModel):
    """A device's key, shown this once (enrolled, or rotated)."""

    device_id: str
    key: str


class DeviceRevoked(BaseModel):
    device_id: str
    revoked: bool


class ApiTokenIssued(BaseModel):
    id: str
    name: str
    scopes: list[str]
    token: str  # shown this once


class ApiTokenRevoked(BaseModel):
    id: str
    status: str


class ApiKeyRotated(BaseModel):
    api_key: str  # shown this once


class ApiKeyRevoked(BaseModel):
    api_key: bool  # false: the tenant has no API key now


class SubscriptionCanceled(BaseModel):
    state: str
    devices_revoked: int


class DeviceRow(BaseModel):
    """A device of the list: `live_keys` counts its keys that still authenticate
    (a rotated one for its overlap too)."""

    id: str
    name: str
    site: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
    live_keys: int


class ApiTokenRow(BaseModel):
    """A scoped token of the list (never its secret)."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


class PlanLimits(BaseModel):
    """What the plan allows (null: no limit)."""

    code: str
    name: str
    max_users: int | None
    max_devices: int | None
    max_sites: int | None
    events_per_month: int | None
    api_rps: int | None
    audit_retention_days: int | None


class SubscriptionPublic(BaseModel):
    """The subscription's state now, the portal's banner (null: nothing to say) and the
    limits that apply (a trial's own until it is paid)."""

    state: str
    plan: str
    banner: str | None
    trial_ends_at: datetime | None
    current_period_end: datetime | None
    events_this_month: int
    limits: PlanLimits


class InvoicePublic(BaseModel):
    """An invoice the platform issued; `total` = net + VAT."""

    number: str
    plan_code: str
    period_start: datetime
    period_end: datetime
    net: Decimal
    vat: Decimal
    currency: str
    status: str
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None
    payment_reference: str | None
    total: Decimal
