"""The edge's endpoints: event batches, the master data it validates against offline,
its heartbeat, and the list of edges that reported."""

from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api import params, schemas
from cloud_api.api.deps import DbDep, IngestDep, PrincipalDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.edge import EdgeAgent, EdgeMasterData, HeartbeatAck
from cloud_api.domain.clock import now_utc
from cloud_api.services import devices, edge, subscriptions
from contract import BatchResult, EventBatch, ResultStatus

router = APIRouter(route_class=IdempotentRoute)

SEND_EVENTS = Requires("events.post", token_scope="events:post", device=True)


@router.post("/edge/events", response_model=BatchResult, dependencies=[SEND_EVENTS])
def post_events(
    batch: EventBatch, principal: PrincipalDep, request: Request, db: DbDep, ingest: IngestDep
) -> BatchResult:
    """Post a batch. A subscription that does not allow ingest now (unpaid, paused)
    answers 402 with Retry-After, the monthly quota 429: nothing is posted and the
    edge keeps the events buffered."""
    received = now_utc()
    with db.connect() as conn:
        subscriptions.check_ingest(conn, principal.tenant, received)
    results = ingest.ingest(principal.tenant, batch.events, actor=principal.ingest_actor)
    counts = {s.value: 0 for s in ResultStatus}
    for res in results:
        counts[res.status.value] += 1
    # a reply with events held or rejected for now is not kept with an
    # Idempotency-Key: sent again (once master data is fixed) they are tried again
    request.state.idempotent_final = counts["posted"] + counts["duplicate"] == len(results)
    return BatchResult(results=results, received_at=received, **counts)


@router.get(
    "/edge/masterdata",
    response_model=EdgeMasterData,
    dependencies=[Requires("read", token_scope="items:read", device=True)],
)
def edge_master_data(
    principal: PrincipalDep, db: DbDep, since: params.QueryInstant = None
) -> dict[str, Any]:
    """What an edge validates scans against offline: items, locations, work
    centres, operators, suppliers and open work orders with their components.
    Without `since`, everything; with the `cursor` of the last pull, what changed."""
    with db.connect() as conn:
        return edge.master_data(conn, principal.tenant, since, principal.device_site)


@router.post("/edge/heartbeat", response_model=HeartbeatAck, dependencies=[SEND_EVENTS])
def edge_heartbeat(
    body: schemas.EdgeHeartbeat, principal: PrincipalDep, db: DbDep
) -> dict[str, Any]:
    with db.begin() as conn:
        if principal.device_id is not None:
            devices.seen(conn, principal.tenant, principal.device_id, now_utc())
        return edge.record_heartbeat(conn, principal.tenant, body)


@router.get("/edge/agents", response_model=list[EdgeAgent], dependencies=[Requires("read")])
def edge_agents(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows, total = page.slice(edge.list_agents(conn, tenant))
    return paged(request, response, page, rows, total)
