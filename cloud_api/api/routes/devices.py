"""Devices: enrollment codes, enrolling an edge (the code is its credential), the
list, key rotation and revocation. A member bound to a site manages that site's."""

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api import schemas
from cloud_api.api.deps import (
    DbDep,
    PepperDep,
    PlatformDbDep,
    PrincipalDep,
    TenantDep,
    client_ip,
)
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Open, Requires
from cloud_api.api.schemas.devices import DeviceKey, DeviceRevoked, DeviceRow, EnrollmentCode
from cloud_api.domain.clock import now_utc
from cloud_api.services import devices
from tenant.security import ENROLLMENT_TTL

router = APIRouter(route_class=IdempotentRoute)

MANAGE = Requires("devices.manage")
MANAGE_SECRET = Requires("devices.manage", secret_answer=True)


@router.post(
    "/devices/enrollment-codes",
    response_model=EnrollmentCode,
    status_code=201,
    dependencies=[MANAGE_SECRET],
)
def create_enrollment_code(
    body: schemas.EnrollmentCodeCreate, principal: PrincipalDep, db: DbDep, pepper: PepperDep
) -> dict[str, Any]:
    """A one-time code (single use, 24 h) to enroll an edge: `erp edge enroll CODE`."""
    now, who = now_utc(), principal
    with db.begin() as conn:
        code, site = devices.create_enrollment_code(
            conn, who.tenant, pepper, now, body.site, who.actor, body.scopes, who.member_site
        )
    return {"code": code, "site": site, "expires_at": now + ENROLLMENT_TTL}


@router.post("/devices/enroll", response_model=DeviceKey, status_code=201, dependencies=[Open()])
def enroll_device(
    body: schemas.DeviceEnroll, request: Request, platform_db: PlatformDbDep, pepper: PepperDep
) -> dict[str, Any]:
    """Exchange an enrollment code for a device and its key (shown once). No other
    credential: the code is it."""
    enrolled = devices.enroll(
        platform_db, body.code, body.name, pepper, now_utc(), client_ip(request)
    )
    return {"device_id": str(enrolled.device_id), "key": enrolled.key}


@router.get("/devices", response_model=list[DeviceRow], dependencies=[Requires("read")])
def list_devices(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    with db.connect() as conn:  # a plan's devices: a short list, sliced here
        rows, total = page.slice(devices.list_devices(conn, tenant, now_utc()))
    return paged(request, response, page, rows, total)


@router.post("/devices/{device_id}/rotate", response_model=DeviceKey, dependencies=[MANAGE_SECRET])
def rotate_device_key(
    device_id: uuid.UUID, principal: PrincipalDep, db: DbDep, pepper: PepperDep
) -> dict[str, Any]:
    """A new key; the previous one keeps working for 7 days (rotation overlap)."""
    who = principal
    with db.begin() as conn:
        key = devices.rotate_key(
            conn, who.tenant, device_id, pepper, now_utc(), who.actor, who.member_site
        )
    return {"device_id": str(device_id), "key": key}


@router.post("/devices/{device_id}/revoke", response_model=DeviceRevoked, dependencies=[MANAGE])
def revoke_device(device_id: uuid.UUID, principal: PrincipalDep, db: DbDep) -> dict[str, Any]:
    who = principal
    with db.begin() as conn:
        devices.revoke(conn, who.tenant, device_id, now_utc(), who.actor, who.member_site)
    return {"device_id": str(device_id), "revoked": True}
