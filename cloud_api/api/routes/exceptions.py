"""The exception queue: events held or rejected, tried again or voided."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from cloud_api.api import schemas
from cloud_api.api.deps import DbDep, IngestDep, PrincipalDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.ledger import EventVoided, QueuedEvent
from cloud_api.reporting import queue
from contract import EventResult

router = APIRouter(route_class=IdempotentRoute)


@router.get("/exceptions", response_model=list[QueuedEvent], dependencies=[Requires("read")])
def list_exceptions(
    tenant: TenantDep,
    db: DbDep,
    page: PageDep,
    request: Request,
    response: Response,
    status: Annotated[str, Query(pattern="^(held|rejected|voided)$")] = "held",
) -> list[dict[str, Any]]:
    """The exception queue, oldest first, a page at a time (Link: the next)."""
    with db.connect() as conn:
        rows, total = queue.exceptions_page(conn, tenant.id, status, page.limit, page.offset)
    return paged(request, response, page, rows, total)


@router.post(
    "/exceptions/{event_id}/repost",
    response_model=EventResult,
    dependencies=[Requires("events.post")],
)
def repost(event_id: uuid.UUID, principal: PrincipalDep, ingest: IngestDep) -> dict[str, Any]:
    """Try a held or rejected event again, as it was sent, on behalf of who asks."""
    result = ingest.repost(principal.tenant, event_id, principal.ingest_actor)
    return result.model_dump()  # type: ignore[no-any-return]


@router.post(
    "/exceptions/{event_id}/void",
    response_model=EventVoided,
    dependencies=[Requires("events.post")],
)
def void(
    event_id: uuid.UUID, body: schemas.VoidRequest, principal: PrincipalDep, ingest: IngestDep
) -> dict[str, str]:
    ingest.void(principal.tenant, event_id, body.reason, principal.ingest_actor)
    return {"event_id": str(event_id), "status": "voided"}
