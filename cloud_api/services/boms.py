"""Bills of materials: create a version, activate it, read it, explode it.

A BOM is immutable once created; a change is a new version. Only its status moves:
a new version is `draft` (or `active` at once with `activate`); activating a version
makes the item's active one `obsolete`; an obsolete version may be activated again to
go back to it; activating the active version changes nothing and answers it again,
so a retry after a lost response is safe. At most one version per item is active
(the partial unique index `uq_bom_active`), which is what a work order's release will
read.

Every write of a tenant's BOMs runs under one lock, the tenant row FOR NO KEY UPDATE
(it leaves the foreign-key checks of concurrent postings unblocked), so that two
activations can never close a cycle between them and the stored low-level codes
always match the active BOMs. A new version is checked for cycles as if it were
active; activation checks again, against the BOMs active by then.
"""

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, update

from cloud_api.api import schemas
from cloud_api.db import models as m
from cloud_api.domain import bom as domain
from cloud_api.domain.clock import now_utc
from cloud_api.errors import NotFound
from cloud_api.services.store import TenantContext

T = m.SQLModel.metadata.tables
MAX_LISTED = 1000
NO_COST = Decimal("0.00")


def create_bom(
    conn: Connection, tenant: TenantContext, body: schemas.BomCreate
) -> schemas.BomPublic:
    new = _domain_bom(body)
    domain.validate_bom(new)
    _lock_boms(conn, tenant)
    item_id = _item_id(conn, tenant, body.item)
    components = _ids(
        conn, tenant, "item", [ln.item for ln in body.lines], "unknown_component", "component"
    )
    centres = _ids(
        conn,
        tenant,
        "work_center",
        [op.work_center for op in body.operations],
        "unknown_work_center",
        "work centre",
    )
    boms = {**_active_boms(conn, tenant), new.item: new}
    domain.check_acyclic(domain.graph_of(boms), [new.item])
    version = _next_version(conn, tenant, item_id)
    bom_id = _insert_bom(conn, tenant, body, item_id, version, components, centres)
    if body.activate:
        _make_active(conn, tenant, bom_id, boms)
    return read_bom(conn, tenant, body.item, version)


def activate_bom(
    conn: Connection, tenant: TenantContext, item: str, version: int
) -> schemas.BomPublic:
    _lock_boms(conn, tenant)
    bom = read_bom(conn, tenant, item, version)
    if bom.status == "active":
        return bom
    boms = {**_active_boms(conn, tenant), item: _domain_bom(bom)}
    domain.check_acyclic(domain.graph_of(boms), [item])
    _make_active(conn, tenant, bom.id, boms)
    return read_bom(conn, tenant, item, version)


def read_bom(conn: Connection, tenant: TenantContext, item: str, version: int) -> schemas.BomPublic:
    item_id = _item_id(conn, tenant, item)
    b = T["bom"]
    found = _summaries(conn, tenant, b.c.item_id == item_id, b.c.version == version)
    if not found:
        raise NotFound("unknown_bom", f"{item} has no BOM version {version}")
    return schemas.BomPublic(
        **found[0].model_dump(),
        lines=_lines(conn, tenant, found[0].id),
        operations=_operations(conn, tenant, found[0].id),
    )


def list_boms(
    conn: Connection, tenant: TenantContext, item: str | None
) -> list[schemas.BomSummary]:
    if item is None:
        return _summaries(conn, tenant)
    return _summaries(conn, tenant, T["bom"].c.item_id == _item_id(conn, tenant, item))


def explode_bom(
    conn: Connection, tenant: TenantContext, item: str, quantity: Decimal
) -> schemas.BomExplosion:
    """The active BOMs exploded all levels down for `quantity` of `item`, and the
    planned load and cost of the item's own routing."""
    b = T["bom"]
    active = _summaries(
        conn, tenant, b.c.item_id == _item_id(conn, tenant, item), b.c.status == "active"
    )
    if not active:
        raise NotFound("no_active_bom", f"{item} has no active BOM; activate a version first")
    top = read_bom(conn, tenant, item, active[0].version)
    boms = {**_active_boms(conn, tenant), item: _domain_bom(top)}
    requirements = domain.explode(boms, item, quantity)
    rates = _rates(conn, tenant, [op.work_center for op in top.operations])
    loads = domain.routing_load(boms[item].operations, quantity, rates)
    return schemas.BomExplosion(
        item=item,
        version=top.version,
        quantity=quantity,
        components=_components(conn, tenant, requirements, boms),
        routing=[_load_public(load, rates[load.work_center]) for load in loads],
        labour_cost=sum((load.labour_cost for load in loads), NO_COST),
        overhead_cost=sum((load.overhead_cost for load in loads), NO_COST),
    )


# -- writing ----------------------------------------------------------------------


def _lock_boms(conn: Connection, tenant: TenantContext) -> None:
    """Serialize the tenant's BOM writers (SQLite's BEGIN IMMEDIATE already does)."""
    t = T["tenant"]
    conn.execute(select(t.c.id).where(t.c.id == tenant.id).with_for_update(key_share=True))


def _next_version(conn: Connection, tenant: TenantContext, item_id: uuid.UUID) -> int:
    b = T["bom"]
    latest = conn.scalar(
        select(func.max(b.c.version)).where(b.c.tenant_id == tenant.id, b.c.item_id == item_id)
    )
    return (latest or 0) + 1


def _insert_bom(
    conn: Connection,
    tenant: TenantContext,
    body: schemas.BomCreate,
    item_id: uuid.UUID,
    version: int,
    components: dict[str, uuid.UUID],
    centres: dict[str, uuid.UUID],
) -> uuid.UUID:
    bom_id, tid = uuid.uuid4(), tenant.id
    conn.execute(
        insert(T["bom"]).values(
            tenant_id=tid,
            id=bom_id,
            item_id=item_id,
            version=version,
            status="draft",
            output_quantity=body.output_quantity,
            note=body.note,
            created_at=now_utc(),
        )
    )
    lines = [
        {
            "tenant_id": tid,
            "bom_id": bom_id,
            "line_no": no,
            "item_id": components[line.item],
            "quantity": line.quantity,
            "scrap_factor": line.scrap_factor,
        }
        for no, line in enumerate(body.lines, 1)
    ]
    conn.execute(insert(T["bom_line"]), lines)
    if body.operations:
        conn.execute(
            insert(T["bom_operation"]),
            [
                {
                    "tenant_id": tid,
                    "bom_id": bom_id,
                    "work_center_id": centres[op.work_center],
                    **op.model_dump(exclude={"work_center"}),
                }
                for op in body.operations
            ],
        )
    return bom_id


def _make_active(
    conn: Connection, tenant: TenantContext, bom_id: uuid.UUID, boms: dict[str, domain.Bom]
) -> None:
    """Make `bom_id` its item's one active version, `boms` being the active BOMs
    with it; the previous active version becomes obsolete (first, for the index)."""
    b = T["bom"]
    item_id = conn.scalar(select(b.c.item_id).where(b.c.tenant_id == tenant.id, b.c.id == bom_id))
    conn.execute(
        update(b)
        .where(b.c.tenant_id == tenant.id, b.c.item_id == item_id, b.c.status == "active")
        .values(status="obsolete")
    )
    conn.execute(
        update(b).where(b.c.tenant_id == tenant.id, b.c.id == bom_id).values(status="active")
    )
    _store_low_level_codes(conn, tenant, domain.low_level_codes(domain.graph_of(boms)))


def _store_low_level_codes(conn: Connection, tenant: TenantContext, codes: dict[str, int]) -> None:
    """Every item of the tenant gets its code; an item in no active BOM gets 0."""
    item = T["item"]
    current = conn.execute(
        select(item.c.id, item.c.code, item.c.low_level_code).where(item.c.tenant_id == tenant.id)
    )
    changed = [
        {"b_item": item_id, "b_level": codes.get(code, 0)}
        for item_id, code, stored in current
        if codes.get(code, 0) != stored
    ]
    if changed:
        conn.execute(
            update(item)
            .where(item.c.tenant_id == tenant.id, item.c.id == bindparam("b_item"))
            .values(low_level_code=bindparam("b_level")),
            changed,
        )


# -- reading ----------------------------------------------------------------------


def _ids(
    conn: Connection,
    tenant: TenantContext,
    table: str,
    codes: list[str],
    error: str,
    what: str,
) -> dict[str, uuid.UUID]:
    """code → id for `codes`, or NotFound(`error`) naming every code that is missing."""
    if not codes:
        return {}
    t = T[table]
    rows = conn.execute(
        select(t.c.code, t.c.id).where(t.c.tenant_id == tenant.id, t.c.code.in_(set(codes)))
    )
    found: dict[str, uuid.UUID] = {code: id_ for code, id_ in rows}
    missing = sorted(set(codes) - set(found))
    if missing:
        raise NotFound(
            error, f"{what} {', '.join(missing)} does not exist; create it first", missing=missing
        )
    return found


def _item_id(conn: Connection, tenant: TenantContext, item: str) -> uuid.UUID:
    return _ids(conn, tenant, "item", [item], "unknown_item", "item")[item]


def _summaries(conn: Connection, tenant: TenantContext, *where: Any) -> list[schemas.BomSummary]:
    b, it = T["bom"], T["item"]
    rows = conn.execute(
        select(b, it.c.code.label("item"))
        .join(it, and_(it.c.tenant_id == b.c.tenant_id, it.c.id == b.c.item_id))
        .where(b.c.tenant_id == tenant.id, *where)
        .order_by(it.c.code, b.c.version)
        .limit(MAX_LISTED)
    ).mappings()
    return [schemas.BomSummary.model_validate(dict(row)) for row in rows]


def _lines(
    conn: Connection, tenant: TenantContext, bom_id: uuid.UUID
) -> list[schemas.BomLinePublic]:
    ln, it = T["bom_line"], T["item"]
    rows = conn.execute(
        select(ln.c.line_no, it.c.code.label("item"), ln.c.quantity, ln.c.scrap_factor)
        .join(it, and_(it.c.tenant_id == ln.c.tenant_id, it.c.id == ln.c.item_id))
        .where(ln.c.tenant_id == tenant.id, ln.c.bom_id == bom_id)
        .order_by(ln.c.line_no)
    ).mappings()
    return [schemas.BomLinePublic.model_validate(dict(row)) for row in rows]


def _operations(
    conn: Connection, tenant: TenantContext, bom_id: uuid.UUID
) -> list[schemas.BomOperationPublic]:
    op, wc = T["bom_operation"], T["work_center"]
    rows = conn.execute(
        select(
            op.c.seq,
            wc.c.code.label("work_center"),
            op.c.name,
            op.c.setup_minutes,
            op.c.minutes_per_unit,
        )
        .join(wc, and_(wc.c.tenant_id == op.c.tenant_id, wc.c.id == op.c.work_center_id))
        .where(op.c.tenant_id == tenant.id, op.c.bom_id == bom_id)
        .order_by(op.c.seq)
    ).mappings()
    return [schemas.BomOperationPublic.model_validate(dict(row)) for row in rows]


def _active_boms(conn: Connection, tenant: TenantContext) -> dict[str, domain.Bom]:
    """The tenant's active BOMs (lines only; routings are read per BOM), by item code."""
    b, ln = T["bom"], T["bom_line"]
    parent, component = T["item"].alias("parent"), T["item"].alias("component")
    rows = conn.execute(
        select(
            parent.c.code,
            b.c.output_quantity,
            component.c.code,
            ln.c.quantity,
            ln.c.scrap_factor,
        )
        .select_from(b)
        .join(parent, and_(parent.c.tenant_id == b.c.tenant_id, parent.c.id == b.c.item_id))
        .join(ln, and_(ln.c.tenant_id == b.c.tenant_id, ln.c.bom_id == b.c.id))
        .join(
            component,
            and_(component.c.tenant_id == ln.c.tenant_id, component.c.id == ln.c.item_id),
        )
        .where(b.c.tenant_id == tenant.id, b.c.status == "active")
        .order_by(parent.c.code, ln.c.line_no)
    )
    outputs: dict[str, Decimal] = {}
    lines: dict[str, list[domain.BomLine]] = defaultdict(list)
    for item, output_quantity, code, quantity, scrap_factor in rows:
        outputs[item] = output_quantity
        lines[item].append(domain.BomLine(code, quantity, scrap_factor))
    return {item: domain.Bom(item, tuple(lines[item]), outputs[item]) for item in outputs}


def _rates(conn: Connection, tenant: TenantContext, centres: list[str]) -> dict[str, domain.Rates]:
    wc = T["work_center"]
    rows = conn.execute(
        select(wc.c.code, wc.c.labour_rate, wc.c.overhead_rate).where(
            wc.c.tenant_id == tenant.id, wc.c.code.in_(set(centres))
        )
    )
    return {code: domain.Rates(labour, overhead) for code, labour, overhead in rows}


def _components(
    conn: Connection,
    tenant: TenantContext,
    requirements: list[domain.Requirement],
    boms: dict[str, domain.Bom],
) -> list[schemas.ComponentRequirement]:
    """One entry per component with its paths, by low-level code, then first seen."""
    it = T["item"]
    rows = conn.execute(
        select(it.c.code, it.c.low_level_code).where(
            it.c.tenant_id == tenant.id, it.c.code.in_({r.component for r in requirements})
        )
    )
    codes: dict[str, int] = {code: level for code, level in rows}
    sources: dict[str, list[schemas.RequirementSource]] = defaultdict(list)
    for req in requirements:
        sources[req.component].append(
            schemas.RequirementSource(level=req.level, path=list(req.path), quantity=req.quantity)
        )
    components = [
        schemas.ComponentRequirement(
            item=code,
            low_level_code=codes[code],
            exploded=code in boms,
            quantity=total,
            sources=sources[code],
        )
        for code, total in domain.gross_requirements(requirements).items()
    ]
    return sorted(components, key=lambda c: c.low_level_code)


def _load_public(load: domain.WorkCenterLoad, rates: domain.Rates) -> schemas.WorkCenterLoadPublic:
    return schemas.WorkCenterLoadPublic(
        work_center=load.work_center,
        minutes=load.minutes,
        hours=load.hours,
        labour_rate=rates.labour_per_hour,
        overhead_rate=rates.overhead_per_hour,
        labour_cost=load.labour_cost,
        overhead_cost=load.overhead_cost,
    )


def _domain_bom(bom: schemas.BomCreate | schemas.BomPublic) -> domain.Bom:
    """The domain's view of a BOM, from a request or from a stored version."""
    return domain.Bom(
        item=bom.item,
        lines=tuple(domain.BomLine(ln.item, ln.quantity, ln.scrap_factor) for ln in bom.lines),
        output_quantity=bom.output_quantity,
        operations=tuple(
            domain.Operation(op.seq, op.work_center, op.setup_minutes, op.minutes_per_unit)
            for op in bom.operations
        ),
    )
