"""The tenant's own data as a whole: the audit log and the export (reads that not
every role may do)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from cloud_api.api.deps import DbDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import Page, page_params, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.reports import AuditRecord
from cloud_api.services import export, listing

router = APIRouter(route_class=IdempotentRoute)

EXPORT = Requires("export", token_scope="export:read")
ZIP = {
    "description": "A zip: manifest.json and a CSV per table",
    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
}


@router.get("/audit-log", response_model=list[AuditRecord], dependencies=[EXPORT])
def audit_log(
    tenant: TenantDep,
    db: DbDep,
    page: Annotated[Page, Depends(page_params(default=1000, maximum=10_000))],
    request: Request,
    response: Response,
) -> list[dict[str, Any]]:
    """Newest first, a page at a time (limit 1..10000, 1000 by default)."""
    with db.connect() as conn:
        rows, total = listing.audit_log(conn, tenant.id, page.limit, page.offset)
    return paged(request, response, page, rows, total)


@router.get("/export", response_class=Response, responses={200: ZIP}, dependencies=[EXPORT])
def export_tenant(tenant: TenantDep, db: DbDep) -> Response:
    """All of the tenant's rows, a CSV per table (the audit log included) in a zip,
    with nothing of any other tenant."""
    with db.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot
            conn.execution_options(isolation_level="REPEATABLE READ")
        body = export.tenant_zip(conn, tenant.id)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="export-{tenant.id}.zip"'},
    )
