"""Devices: one-time enrollment codes, per-device keys (stored only as keyed hashes,
rotated with a 7-day overlap, revoked at once), and the audit trail of all of it. The
pure rules are in tenant/security; this module keeps their state in the database.

A device key (`dk_live_<keyid>_<secret>`) is looked up by its key id; the tenant comes
from the key's row, never from a request. Every unknown, malformed, revoked or expired
credential gets the same 401.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.errors import Conflict, Forbidden, NotFound, Rejected, Unauthorized
from cloud_api.services import subscriptions
from cloud_api.services.audit import audit
from cloud_api.services.store import TenantContext
from tenant.plans import check_limit
from tenant.security import (
    DEFAULT_DEVICE_SCOPES,
    BadKey,
    BadScope,
    KeyTimes,
    device_scopes,
    enrollment_code_hash,
    enrollment_state,
    key_is_live,
    new_device_key,
    new_enrollment_code,
    parse_device_key,
    rotation_plan,
    verify_secret,
)

T = m.SQLModel.metadata.tables
Actor = tuple[str, str]  # who the audit log names: ("user", id), ("api_key", "tenant")…
INTEGRATION: Actor = ("api_key", "tenant")
BAD_CODE = "the enrollment code is not valid (unknown, used or expired); ask for a new one"
BAD_KEY = "the device key is not valid"


@dataclass(frozen=True)
class Enrolled:
    tenant_id: uuid.UUID
    device_id: uuid.UUID
    key: str  # shown once


def create_enrollment_code(
    conn: Connection,
    tenant: TenantContext,
    pepper: str,
    now: datetime,
    site: str | None = None,
    by: Actor = INTEGRATION,
    scopes: Iterable[str] | None = None,
    only_site: str | None = None,
) -> tuple[str, str]:
    """A one-time code, and its site, for a device at `site` (default: `only_site`,
    else "main") that will post what `scopes` allow (None: stock movements and
    work-order progress both); 422 unknown_scope otherwise. A member bound to
    `only_site` enrolls there only."""
    site = site or only_site or "main"
    _own_site(site, only_site)
    try:
        granted = device_scopes(scopes)
    except BadScope as error:
        raise Rejected("unknown_scope", str(error)) from error
    _check_site_limit(conn, tenant.id, site)  # refused now, not when the edge enrolls
    issued = new_enrollment_code(pepper)
    conn.execute(
        insert(T["enrollment_code"]).values(
            tenant_id=tenant.id,
            code_hash=issued.code_hash,
            site=site,
            scopes=" ".join(sorted(granted)),
            created_at=now,
        )
    )
    audit(conn, tenant.id, now, by, "enrollment_code.create", site)
    return issued.code, site


def enroll(
    db: Engine, code: str, name: str, pepper: str, now: datetime, ip: str | None = None
) -> Enrolled:
    """Exchange a one-time code for a device and its first key, in one transaction;
    the code is spent by a conditional UPDATE, so two enrolments with one code cannot
    both win."""
    try:
        code_hash = enrollment_code_hash(code, pepper)
    except BadKey as error:
        raise Unauthorized("invalid_enrollment_code", BAD_CODE) from error
    try:
        return _enroll(db, code_hash, name, pepper, now, ip)
    except IntegrityError as error:
        if "name" not in str(error.orig):
            raise
        raise Conflict("device_name_taken", f"a device is already named {name!r}") from error


def _enroll(
    db: Engine, code_hash: str, name: str, pepper: str, now: datetime, ip: str | None
) -> Enrolled:
    ec = T["enrollment_code"]
    with db.begin() as conn:
        lookup = select(ec).where(ec.c.code_hash == code_hash)
        row = conn.execute(lookup.execution_options(cross_tenant=True)).first()  # the code
        if row is None or enrollment_state(row.created_at, row.used_at, now) != "valid":
            raise Unauthorized("invalid_enrollment_code", BAD_CODE)
        tenant_id = row.tenant_id
        tenancy.switch(conn, tenant_id)
        _check_device_limit(conn, tenant_id)
        _check_site_limit(conn, tenant_id, row.site)
        _check_name_free(conn, tenant_id, name)
        device_id = uuid.uuid4()
        spent = conn.execute(
            update(ec)
            .where(ec.c.tenant_id == tenant_id, ec.c.code_hash == code_hash, ec.c.used_at.is_(None))
            .values(used_at=now, device_id=device_id)
        ).rowcount
        if spent != 1:
            raise Unauthorized("invalid_enrollment_code", BAD_CODE)
        conn.execute(
            insert(T["device"]).values(
                tenant_id=tenant_id,
                id=device_id,
                name=name,
                site=row.site,
                scopes=row.scopes or " ".join(sorted(DEFAULT_DEVICE_SCOPES)),
                created_at=now,
            )
        )
        key = _issue_key(conn, tenant_id, device_id, pepper, now)
        audit(conn, tenant_id, now, ("device", str(device_id)), "device.enroll", name, ip)
    return Enrolled(tenant_id, device_id, key)


def _check_name_free(conn: Connection, tenant_id: uuid.UUID, name: str) -> None:
    """A device's name is the tenant's handle for it (and its MQTT identity): one
    device a name. Refused before the code is spent, so the code can be used again
    with another name. (Two enrolments racing for one name: the unique key refuses
    the second, answered as this same conflict by `enroll`.)"""
    d = T["device"]
    if conn.scalar(select(d.c.id).where(d.c.tenant_id == tenant_id, d.c.name == name)):
        raise Conflict("device_name_taken", f"a device is already named {name!r}; choose another")


def _check_device_limit(conn: Connection, tenant_id: uuid.UUID) -> None:
    d = T["device"]
    live = conn.scalar(
        select(func.count()).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    )
    exceeded = check_limit(subscriptions.plan_of(conn, tenant_id), "devices", int(live or 0))
    if exceeded is not None:
        raise subscriptions.Refused(402, exceeded.code, exceeded.message)


def _check_site_limit(conn: Connection, tenant_id: uuid.UUID, site: str) -> None:
    """Sites are a hard plan limit (SAAS.md): a site counts once a live device is
    enrolled there; a device for a site beyond the plan's is refused (402 plan_limit)."""
    d = T["device"]
    live = select(d.c.site).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    sites = set(conn.scalars(live.distinct()))
    if site in sites:
        return
    exceeded = check_limit(subscriptions.plan_of(conn, tenant_id), "sites", len(sites))
    if exceeded is not None:
        raise subscriptions.Refused(402, exceeded.code, exceeded.message)


def _issue_key(
    conn: Connection, tenant_id: uuid.UUID, device_id: uuid.UUID, pepper: str, now: datetime
) -> str:
    issued = new_device_key(pepper)
    conn.execute(
        insert(T["device_key"]).values(
            tenant_id=tenant_id,
            keyid=issued.keyid,
            device_id=device_id,
            secret_hash=issued.secret_hash,
            created_at=now,
        )
    )
    return issued.full_key


def rotate_key(
    conn: Connection,
    tenant: TenantContext,
    device_id: uuid.UUID,
    pepper: str,
    now: datetime,
    by: Actor = INTEGRATION,
    only_site: str | None = None,
) -> str:
    """A new key; the newest current one stays live for the overlap, older ones die."""
    _own_site(_live_device(conn, tenant, device_id).site, only_site)
    dk = T["device_key"]
    keys = [
        KeyTimes(r.keyid, r.created_at, r.rotated_at, r.revoked_at)
        for r in conn.execute(
            select(dk).where(dk.c.tenant_id == tenant.id, dk.c.device_id == device_id)
        )
    ]
    plan = rotation_plan(keys, now)
    for keyids, column in ((plan.rotate, "rotated_at"), (plan.revoke, "revoked_at")):
        if keyids:
            conn.execute(
                update(dk)
                .where(dk.c.tenant_id == tenant.id, dk.c.keyid.in_(keyids))
                .values({column: now})
            )
    key = _issue_key(conn, tenant.id, device_id, pepper, now)
    audit(conn, tenant.id, now, by, "device.rotate_key", str(device_id))
    return key


def revoke(
    conn: Connection,
    tenant: TenantContext,
    device_id: uuid.UUID,
    now: datetime,
    by: Actor = INTEGRATION,
    only_site: str | None = None,
) -> None:
    _own_site(_live_device(conn, tenant, device_id).site, only_site)
    _revoke(conn, tenant.id, now, device_id)
    audit(conn, tenant.id, now, by, "device.revoke", str(device_id))


def revoke_all(conn: Connection, tenant_id: uuid.UUID, now: datetime, by: Actor) -> int:
    """Every live device of the tenant and its keys, at once (a canceled subscription);
    returns how many devices."""
    revoked = _revoke(conn, tenant_id, now)
    audit(conn, tenant_id, now, by, "device.revoke_all", detail=f"{revoked} devices")
    return revoked


def _revoke(
    conn: Connection, tenant_id: uuid.UUID, now: datetime, device_id: uuid.UUID | None = None
) -> int:
    """Revoke one live device (or all of them) with its keys; how many devices."""
    d, dk = T["device"], T["device_key"]
    devices = update(d).where(d.c.tenant_id == tenant_id, d.c.revoked_at.is_(None))
    keys = update(dk).where(dk.c.tenant_id == tenant_id, dk.c.revoked_at.is_(None))
    if device_id is not None:
        devices, keys = devices.where(d.c.id == device_id), keys.where(dk.c.device_id == device_id)
    revoked = conn.execute(devices.values(revoked_at=now)).rowcount
    conn.execute(keys.values(revoked_at=now))
    return int(revoked or 0)


def _own_site(site: str, only_site: str | None) -> None:
    """SAAS.md's RBAC "✓ own site": a member bound to a site manages its devices only."""
    if only_site is not None and site != only_site:
        raise Forbidden(
            "other_site", f"you manage the devices of site {only_site}, and this is {site}"
        )


def _live_device(conn: Connection, tenant: TenantContext, device_id: uuid.UUID) -> Any:
    d = T["device"]
    row = conn.execute(select(d).where(d.c.tenant_id == tenant.id, d.c.id == device_id)).first()
    if row is None or row.revoked_at is not None:
        raise NotFound("unknown_device", f"device {device_id} does not exist or is revoked")
    return row


def list_devices(conn: Connection, tenant: TenantContext, now: datetime) -> list[dict[str, Any]]:
    d, dk = T["device"], T["device_key"]
    keys: dict[uuid.UUID, int] = {}
    for r in conn.execute(select(dk).where(dk.c.tenant_id == tenant.id)):
        if key_is_live(rotated_at=r.rotated_at, revoked_at=r.revoked_at, now=now):
            keys[r.device_id] = keys.get(r.device_id, 0) + 1
    return [
        {
            "id": str(r.id),
            "name": r.name,
            "site": r.site,
            "scopes": r.scopes.split(),
            "created_at": r.created_at,
            "revoked_at": r.revoked_at,
            "last_seen_at": r.last_seen_at,
            "live_keys": keys.get(r.id, 0),
        }
        for r in conn.execute(select(d).where(d.c.tenant_id == tenant.id).order_by(d.c.name))
    ]


def authenticate(
    conn: Connection, key: str, pepper: str, now: datetime
) -> tuple[Any, Any, frozenset[str], str]:
    """(tenant id, device id, its scopes, its site) for a live key of a live device; 401
    otherwise."""
    try:
        keyid, secret = parse_device_key(key)
    except BadKey as error:
        raise Unauthorized("invalid_device_key", BAD_KEY) from error
    dk, d = T["device_key"], T["device"]
    row = conn.execute(
        select(dk, d.c.revoked_at.label("device_revoked_at"), d.c.scopes, d.c.site)
        .join(d, (d.c.tenant_id == dk.c.tenant_id) & (d.c.id == dk.c.device_id))
        .where(dk.c.keyid == keyid)
    ).first()
    if (
        row is None
        or row.device_revoked_at is not None
        or not key_is_live(rotated_at=row.rotated_at, revoked_at=row.revoked_at, now=now)
        or not verify_secret(secret, row.secret_hash, pepper)
    ):
        raise Unauthorized("invalid_device_key", BAD_KEY)
    return row.tenant_id, row.device_id, frozenset(row.scopes.split()), row.site


def seen(conn: Connection, tenant: TenantContext, device_id: uuid.UUID, now: datetime) -> None:
    d = T["device"]
    conn.execute(
        update(d).where(d.c.tenant_id == tenant.id, d.c.id == device_id).values(last_seen_at=now)
    )
