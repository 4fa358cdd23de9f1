"""Production: work orders (create, release, cancel, progress, close, cost) and bills
of materials (versions, activation, explosion)."""

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from cloud_api.api import params, schemas
from cloud_api.api.deps import DbDep, IngestDep, PrincipalDep, TenantDep, client_ip
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.ledger import ProgressPosted
from cloud_api.api.schemas.production import (
    WorkOrderClosed,
    WorkOrderCost,
    WorkOrderPublic,
    WorkOrderRow,
)
from cloud_api.errors import NotFound
from cloud_api.services import audit, boms, commands, masterdata, work_order_cost, work_orders

router = APIRouter(route_class=IdempotentRoute)

WRITE = Requires("production.write")
READ = Requires("read", token_scope="work_orders:read")
BOM_WRITE = Requires("masterdata.write")
BOM_READ = Requires("read", token_scope="items:read")
WorkOrderRef = Annotated[str, Path(description="The order's id, or its code", **params.CODE_RULES)]


@router.post("/work-orders", response_model=WorkOrderPublic, status_code=201, dependencies=[WRITE])
def create_work_order(
    body: schemas.WorkOrderCreate, tenant: TenantDep, db: DbDep
) -> dict[str, Any]:
    with db.begin() as conn:
        return work_orders.create_work_order(conn, tenant, body)


@router.get("/work-orders", response_model=list[WorkOrderRow], dependencies=[READ])
def list_work_orders(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows, total = masterdata.list_rows(conn, tenant, "work_order", page.limit, page.offset)
    return paged(request, response, page, rows, total)


@router.get("/work-orders/{code}/cost", response_model=WorkOrderCost, dependencies=[READ])
def read_work_order_cost(code: params.PathCode, tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    """Planned against actual material, labour and overhead, where the cost went
    (finished goods, the variance settled at close, WIP) and the unit cost."""
    with db.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot, so the figures add up
            conn.execution_options(isolation_level="REPEATABLE READ")
        return work_order_cost.cost_report(conn, tenant, code)


@router.get("/work-orders/{code}", response_model=WorkOrderPublic, dependencies=[READ])
def read_work_order(code: params.PathCode, tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    with db.connect() as conn:
        return work_orders.read(conn, tenant, code)


@router.post(
    "/work-orders/{work_order}/progress",
    response_model=ProgressPosted,
    status_code=201,
    dependencies=[Requires("events.post", token_scope="events:post", device=True)],
)
def post_progress(
    work_order: WorkOrderRef,
    body: schemas.WorkOrderProgress,
    principal: PrincipalDep,
    db: DbDep,
    ingest: IngestDep,
    request: Request,
) -> dict[str, Any]:
    """A completion or hours on one order, posted now (devices with progress:post,
    production, the owner). An order this tenant does not have is 404, and asked
    for by id it is also a security event in this tenant's audit log (SAAS.md case
    1: another tenant's id is a probe). A reason that holds it (no stock, a closed
    period) is 409 and nothing is kept: the sender keeps it."""
    commands.check_progress(body)
    tenant, actor = principal.tenant, principal.ingest_actor
    try:
        code = commands.progress_target(db, tenant, work_order)
    except NotFound:
        line = f"{request.method} {request.url.path}"
        audit.record_probe(
            db, tenant.id, principal.actor, "work_order", work_order, client_ip(request), line
        )
        raise
    device = str(principal.device_id or "api")
    result = commands.report_progress(ingest, tenant, code, body, actor, device)
    return {"work_order": code} | result.model_dump(mode="json")


@router.post("/work-orders/{code}/release", response_model=WorkOrderPublic, dependencies=[WRITE])
def release_work_order(
    code: params.PathCode, body: schemas.WorkOrderRelease, tenant: TenantDep, db: DbDep
) -> dict[str, Any]:
    with db.begin() as conn:
        return work_orders.release(conn, tenant, code, body.allow_shortages)


@router.post("/work-orders/{code}/cancel", response_model=WorkOrderPublic, dependencies=[WRITE])
def cancel_work_order(code: params.PathCode, tenant: TenantDep, db: DbDep) -> dict[str, Any]:
    with db.begin() as conn:
        return work_orders.cancel(conn, tenant, code)


@router.post("/work-orders/{code}/close", response_model=WorkOrderClosed, dependencies=[WRITE])
def close_work_order(
    code: params.PathCode,
    body: schemas.WorkOrderClose,
    principal: PrincipalDep,
    db: DbDep,
    ingest: IngestDep,
) -> dict[str, Any]:
    """Posts a `work_order_close` event (the residual WIP is settled); refused
    without writing anything when the order is not open."""
    actor = principal.ingest_actor
    return commands.close_work_order(db, ingest, principal.tenant, code, body.reason, actor)


@router.post("/boms", status_code=201, dependencies=[BOM_WRITE])
def create_bom(body: schemas.BomCreate, tenant: TenantDep, db: DbDep) -> schemas.BomPublic:
    with db.begin() as conn:
        return boms.create_bom(conn, tenant, body)


@router.get("/boms", dependencies=[BOM_READ])
def list_boms(
    tenant: TenantDep,
    db: DbDep,
    page: PageDep,
    request: Request,
    response: Response,
    item: params.QueryCode = None,
) -> list[schemas.BomSummary]:
    """Every BOM version (of `item`: 404 unknown_item if it has none such)."""
    with db.connect() as conn:
        rows, total = page.slice(boms.list_boms(conn, tenant, item))
    return paged(request, response, page, rows, total)


# Before /boms/{item}/{version}, which would otherwise take "explode" for a version.
@router.get("/boms/{item}/explode", dependencies=[BOM_READ])
def explode_bom(
    item: params.PathCode,
    tenant: TenantDep,
    db: DbDep,
    quantity: params.QueryQuantity = Decimal(1),
) -> schemas.BomExplosion:
    with db.connect() as conn:
        return boms.explode_bom(conn, tenant, item, quantity)


@router.get("/boms/{item}/{version}", dependencies=[BOM_READ])
def read_bom(
    item: params.PathCode, version: params.Version, tenant: TenantDep, db: DbDep
) -> schemas.BomPublic:
    with db.connect() as conn:
        return boms.read_bom(conn, tenant, item, version)


@router.post("/boms/{item}/{version}/activate", dependencies=[BOM_WRITE])
def activate_bom(
    item: params.PathCode, version: params.Version, tenant: TenantDep, db: DbDep
) -> schemas.BomPublic:
    with db.begin() as conn:
        return boms.activate_bom(conn, tenant, item, version)
