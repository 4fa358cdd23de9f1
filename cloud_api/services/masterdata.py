"""Creating master data and opening / closing fiscal periods."""

import re
import uuid
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from cloud_api.api import schemas
from cloud_api.db import models as m
from cloud_api.domain.clock import now_utc
from cloud_api.errors import Conflict, NotFound, Rejected
from cloud_api.services import held, listing, snapshots
from cloud_api.services.store import TenantContext, upsert

T = m.SQLModel.metadata.tables
DEFAULT_CATEGORY = {"raw": "RAW", "semi_finished": "SEMI", "finished": "FG"}


def _insert(conn: Connection, table: str, row: dict[str, Any], what: str) -> None:
    """Insert a row unique by (tenant, code); a duplicate code is a conflict."""
    t = T[table]
    if conn.scalar(
        select(t.c.code).where(t.c.tenant_id == row["tenant_id"], t.c.code == row["code"])
    ):
        raise Conflict(f"{table}_exists", f"{what} {row['code']} already exists")
    try:
        conn.execute(insert(t).values(**row))
    except IntegrityError as error:  # a concurrent create of the same code
        raise Conflict(f"{table}_exists", f"{what} {row['code']} already exists") from error


def id_of(conn: Connection, tenant: TenantContext, table: str, code: str) -> uuid.UUID:
    t = T[table]
    found = conn.scalar(select(t.c.id).where(t.c.tenant_id == tenant.id, t.c.code == code))
    if found is None:
        raise NotFound(f"unknown_{table}", f"{table.replace('_', ' ')} {code} does not exist")
    return found


def create_item(conn: Connection, tenant: TenantContext, body: schemas.ItemCreate) -> uuid.UUID:
    category = body.category_code or DEFAULT_CATEGORY[body.kind]
    cat = T["item_category"]
    if not conn.scalar(
        select(cat.c.code).where(cat.c.tenant_id == tenant.id, cat.c.code == category)
    ):
        raise Rejected("unknown_category", f"item category {category} does not exist")
    row = body.model_dump(exclude={"category_code"})
    item_id = uuid.uuid4()
    _insert(
        conn,
        "item",
        {**row, "tenant_id": tenant.id, "id": item_id, "category_code": category},
        "item",
    )
    held.after_change(conn, tenant, held.item_created(body.code))
    return item_id


def create_location(
    conn: Connection, tenant: TenantContext, body: schemas.LocationCreate
) -> uuid.UUID:
    parent = id_of(conn, tenant, "location", body.parent_code) if body.parent_code else None
    site = body.site or "main"
    if parent is not None:
        loc = T["location"]
        parent_site: str = conn.execute(  # the parent exists: id_of found it
            select(loc.c.site).where(loc.c.tenant_id == tenant.id, loc.c.id == parent)
        ).scalar_one()
        if body.site is not None and body.site != parent_site:
            raise Rejected(
                "site_mismatch",
                f"location {body.parent_code} is at site {parent_site}, not {body.site}",
            )
        site = parent_site
    location_id = uuid.uuid4()
    _insert(
        conn,
        "location",
        {
            "tenant_id": tenant.id,
            "id": location_id,
            "code": body.code,
            "name": body.name,
            "kind": body.kind,
            "parent_id": parent,
            "site": site,
        },
        "location",
    )
    held.after_change(conn, tenant, held.location_created(body.code))
    return location_id


def create_party(
    conn: Connection, tenant: TenantContext, table: str, body: schemas.PartyCreate
) -> uuid.UUID:
    party_id = uuid.uuid4()
    _insert(conn, table, {"tenant_id": tenant.id, "id": party_id, **body.model_dump()}, table)
    return party_id


def create_work_center(
    conn: Connection, tenant: TenantContext, body: schemas.WorkCenterCreate
) -> uuid.UUID:
    center_id = uuid.uuid4()
    _insert(
        conn,
        "work_center",
        {"tenant_id": tenant.id, "id": center_id, **body.model_dump()},
        "work centre",
    )
    held.after_change(conn, tenant, held.work_center_created(body.code))
    return center_id


def create_operator_grade(
    conn: Connection, tenant: TenantContext, body: schemas.OperatorGradeCreate
) -> uuid.UUID | None:
    _insert(conn, "operator_grade", {"tenant_id": tenant.id, **body.model_dump()}, "operator grade")
    return None  # a grade is known by its code; it has no id


def create_operator(
    conn: Connection, tenant: TenantContext, body: schemas.OperatorCreate
) -> uuid.UUID:
    if body.grade is not None:
        g = T["operator_grade"]
        if not conn.scalar(
            select(g.c.code).where(g.c.tenant_id == tenant.id, g.c.code == body.grade)
        ):
            raise Rejected("unknown_operator_grade", f"operator grade {body.grade} does not exist")
    operator_id = uuid.uuid4()
    _insert(
        conn,
        "operator",
        {"tenant_id": tenant.id, "id": operator_id, **body.model_dump()},
        "operator",
    )
    return operator_id


def set_period_status(conn: Connection, tenant: TenantContext, code: str, status: str) -> None:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", code):
        raise Rejected("invalid_period", f"a period is a month written YYYY-MM, not {code!r}")
    snapshots.hold_periods(conn, tenant.id, exclusive=True)
    upsert(
        conn,
        T["fiscal_period"],
        [{"tenant_id": tenant.id, "code": code, "status": status, "changed_at": now_utc()}],
        ["tenant_id", "code"],
    )
    if status == "open":
        held.after_change(conn, tenant, held.period_reopened(code))
    else:
        snapshots.snapshot_period_end(conn, tenant, code)


def list_rows(
    conn: Connection, tenant: TenantContext, table: str, limit: int = 100, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A page of the tenant's rows of a master-data table, by code (or by key), and how
    many there are: a long list is paged, never cut off."""
    t = T[table]
    key = [c for c in t.primary_key.columns if c.name != "tenant_id"]
    keys = [t.c.code] if "code" in t.c else key
    query = select(t).where(t.c.tenant_id == tenant.id).order_by(*keys)
    rows, total = listing.fetch_page(conn, query, limit, offset)
    return [{k: v for k, v in row.items() if k != "tenant_id"} for row in rows], total
