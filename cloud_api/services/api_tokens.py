"""Integration tokens: scoped, revocable, shown once (`tk_<keyid>_<secret>`, stored as
HMAC(pepper, secret) — tenant/security/keys.py). The owner creates them; a request
with one may do only what its scopes name (each route's Requires, cloud_api/api/permissions.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.errors import NotFound, Rejected, Unauthorized
from cloud_api.services.audit import audit
from cloud_api.services.store import TenantContext
from tenant.security import BadKey, BadScope, new_api_token, parse_api_token, verify_secret
from tenant.security.keys import validate_scopes

T = m.SQLModel.metadata.tables
BAD_TOKEN = "the API token is not valid"
TOUCH_EVERY_S = 60  # last_used_at is written at most once a minute per token


def create(
    conn: Connection,
    tenant: TenantContext,
    name: str,
    scopes: list[str],
    pepper: str,
    now: datetime,
    actor: tuple[str, str],
) -> dict[str, Any]:
    try:
        granted = validate_scopes(scopes)
        issued = new_api_token(granted, pepper)
    except BadScope as error:
        raise Rejected("unknown_scope", error.message) from error
    conn.execute(
        insert(T["api_token"]).values(
            tenant_id=tenant.id,
            keyid=issued.keyid,
            name=name,
            scopes=" ".join(sorted(granted)),
            secret_hash=issued.secret_hash,
            created_at=now,
            created_by=f"{actor[0]}:{actor[1]}",
        )
    )
    audit(conn, tenant.id, now, actor, "api_token.create", f"{issued.keyid} {sorted(granted)}")
    return {"id": issued.keyid, "name": name, "scopes": sorted(granted), "token": issued.full_key}


def list_tokens(conn: Connection, tenant: TenantContext) -> list[dict[str, Any]]:
    t = T["api_token"]
    rows = conn.execute(
        select(t).where(t.c.tenant_id == tenant.id).order_by(t.c.created_at, t.c.keyid)
    )
    return [
        {
            "id": r.keyid,
            "name": r.name,
            "scopes": r.scopes.split(),
            "created_at": r.created_at,
            "created_by": r.created_by,
            "last_used_at": r.last_used_at,
            "revoked_at": r.revoked_at,
        }
        for r in rows
    ]


def revoke(
    conn: Connection, tenant: TenantContext, keyid: str, now: datetime, actor: tuple[str, str]
) -> None:
    t = T["api_token"]
    done = conn.execute(
        update(t)
        .where(t.c.tenant_id == tenant.id, t.c.keyid == keyid, t.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    if not done:
        raise NotFound("unknown_api_token", f"no live API token {keyid}")
    audit(conn, tenant.id, now, actor, "api_token.revoke", keyid)


def authenticate(
    conn: Connection, token: str, pepper: str, now: datetime
) -> tuple[Any, str, frozenset[str]]:
    """(tenant id, key id, scopes) of a live token; 401 otherwise. On the platform
    engine: the tenant is not known until the token's row is found."""
    try:
        keyid, secret = parse_api_token(token)
    except BadKey as error:
        raise Unauthorized("invalid_api_token", BAD_TOKEN) from error
    t = T["api_token"]
    lookup = select(t).where(t.c.keyid == keyid).execution_options(cross_tenant=True)
    row = conn.execute(lookup).first()
    if (
        row is None
        or row.revoked_at is not None
        or not verify_secret(secret, row.secret_hash, pepper)
    ):
        raise Unauthorized("invalid_api_token", BAD_TOKEN)
    tenancy.switch(conn, row.tenant_id)
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > TOUCH_EVERY_S:
        conn.execute(
            update(t)
            .where(t.c.tenant_id == row.tenant_id, t.c.keyid == keyid)
            .values(last_used_at=now)
        )
    return row.tenant_id, keyid, frozenset(row.scopes.split())
