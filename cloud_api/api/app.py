"""The HTTP API. Routers only translate: parse, call one service, answer."""

import math
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from sqlalchemy import Engine

from cloud_api.api import access, auth, idempotent, logs, outage, params, problems, schemas
from cloud_api.api.body_limit import BodyLimit
from cloud_api.api.paging import PageDep, page_params, paged
from cloud_api.contract import BatchResult, EventBatch, EventResult, ResultStatus
from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.db.engine import make_engine
from cloud_api.domain.clock import event_window_of, now_utc, utc
from cloud_api.domain.posting_rules import POSTABLE_STATUSES
from cloud_api.errors import Conflict, Forbidden, NotFound, Rejected, Unauthorized
from cloud_api.mail import mailer_from_url
from cloud_api.services import (
    api_tokens,
    audit,
    billing,
    boms,
    devices,
    edge,
    export,
    lifecycle,
    listing,
    masterdata,
    reports,
    subscriptions,
    users,
    work_order_cost,
    work_orders,
)
from cloud_api.services.ingest import Actor, IngestService, event_row
from cloud_api.services.store import TenantContext
from cloud_api.services.tenants import (
    revoke_api_key,
    rotate_api_key,
    tenant_by_id,
    tenant_for_key,
)
from cloud_api.settings import Settings, get_settings
from tenant import shared_limits
from tenant.ratelimit import Limiter
from tenant.security import ENROLLMENT_TTL, SESSION_COOKIE, LoginThrottle, mfa
from tenant.security.keys import API_TOKEN_PREFIX, is_legacy_tenant_key

T = m.SQLModel.metadata.tables


def create_app(
    settings: Settings | None = None, db: Engine | None = None, platform_db: Engine | None = None
) -> FastAPI:
    """`db` is the tenants' engine (erp_app on PostgreSQL: row-level security applies);
    `platform_db` (erp_platform) resolves credentials before the tenant is known, signs
    up and runs the cross-tenant jobs. On SQLite both are one engine."""
    settings = settings or get_settings()
    db = tenancy.install(db or make_engine(settings.database_url))
    if platform_db is None:
        url = settings.platform_database_url
        platform_db = make_engine(url) if url else db
    platform_db = tenancy.install(platform_db)
    app = FastAPI(
        title="Shop-floor ERP",
        version="0.1.0",
        description="Edge ingest, stock ledger, valuation and double-entry books.",
    )
    app.state.db, app.state.platform_db, app.state.settings = db, platform_db, settings
    app.state.ingest = IngestService(db, meter=subscriptions.count_posted)
    if settings.redis_url:  # one budget for all workers
        app.state.rate_limiter, app.state.login_throttle = shared_limits.shared(
            settings.redis_url, settings.redis_prefix
        )
    else:  # in memory, per process: with several workers each would count apart
        app.state.login_throttle = LoginThrottle()
        app.state.rate_limiter = Limiter(1, 1, max_keys=50_000)  # rates come per tenant
    app.state.plan_cache = {}
    app.state.mailer = mailer_from_url(settings.mail_url, settings.mail_from)
    logs.redact_access_log()  # no invitation token in the access log
    problems.install(app)

    outage.install(app)  # the database gone for a moment: 503 with Retry-After
    # the body counted as it streams (chunked too): 413 at the cap, nothing parsed
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    api = {"prefix": "/api/v1", "responses": problems.RESPONSES}
    app.include_router(_api_router(), **api)
    # member management takes an Idempotency-Key too; signing in, the session's own
    # writes and accepting an invitation do not (they set cookies or show secrets)
    members = idempotent.route_class(
        bound_tenant, _actor, open_paths=access.SESSION_WRITES, secret_paths=frozenset()
    )
    app.include_router(auth.router(bound_tenant, members), **api)
    from web.app import mount  # the portal's pages (web/)

    mount(app)
    return app


def current_tenant(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> TenantContext:
    key = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key and request.cookies.get(SESSION_COOKIE):
        return _session_tenant(request, request.cookies[SESSION_COOKIE])
    if not key:
        raise Unauthorized(
            "missing_api_key",
            "send the tenant's API key as 'Authorization: Bearer <key>' or 'X-API-Key'",
        )
    pepper = request.app.state.settings.api_key_pepper
    if key.startswith(API_TOKEN_PREFIX) and not is_legacy_tenant_key(key):
        with request.app.state.platform_db.begin() as conn:
            tenant_id, keyid, scopes = api_tokens.authenticate(conn, key, pepper, now_utc())
            tenant = tenant_by_id(conn, tenant_id)
        access.require_scope(request, scopes)
        request.state.api_token_id = keyid
        return _gate_key(request, tenant)
    if not key.startswith(DEVICE_KEY_PREFIX):
        return _gate_key(request, tenant_for_key(request.app.state.platform_db, key, pepper))
    with request.app.state.platform_db.connect() as conn:
        tenant_id, device_id, scopes, site = devices.authenticate(conn, key, pepper, now_utc())
        tenant = tenant_by_id(conn, tenant_id)
    if access.route_path(request) not in DEVICE_PATHS:
        raise Forbidden(
            "device_not_allowed",
            "a device key may only post events and work-order progress, and read master data",
        )
    request.state.device_id, request.state.device_scopes = device_id, scopes
    request.state.device_site = site
    return tenant


def _gate_key(request: Request, tenant: TenantContext) -> TenantContext:
    """An integration's request under the subscription, as SAAS.md's table has it for
    API writes: 402 while unpaid or paused, 403 suspended, none once canceled; reads
    like a member who is not the owner (none while suspended). Posting events and
    heartbeats have the ingest's own gate (402 with Retry-After: the sender keeps them)."""
    if access.route_path(request) in DEVICE_PATHS:
        return tenant
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    with tenancy.as_tenant(tenant.id), request.app.state.platform_db.begin() as conn:
        subscriptions.gate_portal(conn, tenant, write, "integration", now_utc())
    return tenant


def _session_tenant(request: Request, token: str) -> TenantContext:
    """A portal user's request: a live session, the subscription allowing portal reads
    (writes), the CSRF token on writes, and the role allowed the route's action."""
    now = now_utc()
    with request.app.state.platform_db.begin() as conn:
        who = users.principal(conn, token, now)  # switches the transaction to its tenant
        tenant = tenant_by_id(conn, who.tenant_id)
        # signing out or switching company is allowed in every state (as the portal's)
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        write = write and access.action_of(request) != "session"
        billing = access.is_billing(request)
        subscriptions.gate_portal(conn, tenant, write, who.role, now, billing=billing)
        plan = subscriptions.plan_of(conn, tenant.id).code
    if mfa.required(who.role, plan) and not who.mfa and request.url.path not in MFA_FREE:
        raise Forbidden(
            "mfa_setup_required",
            "owners and finance managers of this plan sign in with a second factor: set "
            "one up first (POST /api/v1/mfa/setup, then /mfa/confirm)",
        )
    access.require_csrf(request, token, request.app.state.settings.api_key_pepper)
    access.require_role(request, who.role)
    request.state.user_id, request.state.role = who.user_id, who.role
    request.state.member_site = who.device_site
    request.state.session_hash = who.session_hash
    return tenant


def rate_limited_tenant(
    request: Request, tenant: Annotated[TenantContext, Depends(current_tenant)]
) -> TenantContext:
    """Token buckets per tenant, and per device for device keys, at the plan's API rate
    with ten seconds of it as the burst; beyond it 429 rate_limited with Retry-After.
    Shared through Redis when REDIS_URL is set, else per process."""
    rps = _plan_rps(request, tenant)
    if rps is None:  # a custom plan: no limit here
        return tenant
    limiter, now_s = request.app.state.rate_limiter, time.monotonic()
    keys = [("tenant", tenant.id)]
    device_id = getattr(request.state, "device_id", None)
    if device_id is not None:
        keys.append(("device", device_id))
    for key in keys:
        ok, wait_s = limiter.take(key, now_s, rate_per_s=rps, burst=rps * RATE_BURST_S)
        if not ok:
            raise subscriptions.Refused(
                429, "rate_limited", f"more than {rps} requests a second", math.ceil(wait_s)
            )
    return tenant


RATE_BURST_S = 10
PLAN_CACHE_S = 60.0


def _plan_rps(request: Request, tenant: TenantContext) -> int | None:
    cache = request.app.state.plan_cache
    hit = cache.get(tenant.id)
    if hit is None or hit[1] < time.monotonic():
        with tenancy.as_tenant(tenant.id), request.app.state.db.connect() as conn:
            rps = subscriptions.plan_of(conn, tenant.id).api_rps
        hit = cache[tenant.id] = (rps, time.monotonic() + PLAN_CACHE_S)
    return hit[0]  # type: ignore[no-any-return]


async def bound_tenant(
    tenant: Annotated[TenantContext, Depends(rate_limited_tenant)],
) -> TenantContext:
    """Bind the request's tenant for row-level security. Async on purpose: it runs in
    the request's own task, so the handler (a worker thread started with a copy of this
    context) and everything it calls run their transactions as this tenant. A sync
    dependency would bind it in a throwaway copy."""
    tenancy.bind(tenant.id)
    return tenant


TenantDep = Annotated[TenantContext, Depends(bound_tenant)]


def _actor(request: Request) -> tuple[str, str]:
    """Who the audit log names: the signed-in user, the device, or the API key."""
    user_id = getattr(request.state, "user_id", None)
    if user_id is not None:
        return ("user", str(user_id))
    device_id = getattr(request.state, "device_id", None)
    if device_id is not None:
        return ("device", str(device_id))
    token = getattr(request.state, "api_token_id", None)
    return ("api_token", token) if token is not None else ("api_key", "tenant")


def _member_site(request: Request) -> str | None:
    """The one site whose devices the signed-in member manages (None: every site)."""
    return getattr(request.state, "member_site", None)


def _post_now(request: Request, tenant: TenantContext, event: dict[str, Any]) -> EventResult:
    """Post one event the portal or an integration builds, synchronously: posted (or
    already posted: the id is the idempotency key), else refused with its reason and
    nothing kept: 403 for a role or segregation of duties, 422 for a bad entry, 409
    for what the state forbids now (a closed period, already reversed...)."""
    (result,) = request.app.state.ingest.ingest(
        tenant, [event], actor=_ingest_actor(request), hold=False
    )
    if result.status in (ResultStatus.posted, ResultStatus.duplicate):
        return result
    code, message = result.code or "not_posted", result.message or "not posted"
    if code in ("sod_violation", "forbidden", "journal_not_allowed"):
        raise Forbidden(code, message)
    if result.status == ResultStatus.rejected and code not in REFUSED_BY_STATE:
        raise Rejected(code, message)
    raise Conflict(code, message)


# a rejected reversal's reasons that are the state of things, not a malformed request
REFUSED_BY_STATE = frozenset(
    {
        "already_reversed",
        "cannot_reverse_reversal",
        "cannot_reverse_close",
        "idempotency_key_reused",
    }
)


def _probe(request: Request, tenant: TenantContext, db: Engine, kind: str, ref: str) -> None:
    """An id (not a code: what uuid.UUID reads, as the lookup does) this tenant does not
    have, asked for: a security event in its own audit log (who, what, from where),
    kept though the request fails."""
    try:
        uuid.UUID(ref)
    except ValueError:
        return
    with db.begin() as conn:
        audit.audit(
            conn,
            tenant.id,
            now_utc(),
            _actor(request),
            "security.unknown_object",
            f"{kind}:{ref}",
            request.client.host if request.client else None,
            f"{request.method} {request.url.path}",
        )


def _ingest_actor(request: Request) -> Actor:
    kind, ident = _actor(request)
    scopes = getattr(request.state, "device_scopes", None)
    site = getattr(request.state, "device_site", None)
    return Actor(kind, ident, getattr(request.state, "role", None), scopes, site)


# what a user who must still set up a second factor may do meanwhile
MFA_FREE = frozenset({"/api/v1/me", "/api/v1/mfa/setup", "/api/v1/mfa/confirm", "/api/v1/logout"})
DEVICE_KEY_PREFIX = "dk_live_"
# What a device key may call (SAAS.md: scopes events:post, work_orders:read, items:read)
DEVICE_PATHS = frozenset(
    {
        "/api/v1/edge/events",
        "/api/v1/edge/masterdata",
        "/api/v1/edge/heartbeat",
        "/api/v1/work-orders/{work_order}/progress",
    }
)


# writes whose answer carries a secret shown once: an Idempotency-Key does not keep it
SECRET_ANSWERS = frozenset(
    f"/api/v1{path}"
    for path in (
        "/devices/enrollment-codes",
        "/devices/{device_id}/rotate",
        "/api-tokens",
        "/api-key/rotate",
    )
)


def _db(request: Request) -> Engine:
    return request.app.state.db  # type: ignore[no-any-return]


DbDep = Annotated[Engine, Depends(_db)]


def _api_router() -> APIRouter:
    r = APIRouter(
        route_class=idempotent.route_class(
            bound_tenant,
            _actor,
            open_paths=access.OPEN_WRITES,
            secret_paths=SECRET_ANSWERS,
        )
    )

    @r.post("/edge/events", response_model=BatchResult)
    def post_events(
        batch: EventBatch, tenant: TenantDep, request: Request, db: DbDep
    ) -> BatchResult:
        """Post a batch. A subscription that does not allow ingest now (unpaid, paused)
        answers 402 with Retry-After, the monthly quota 429: nothing is posted and the
        edge keeps the events buffered."""
        received = now_utc()
        with db.connect() as conn:
            subscriptions.check_ingest(conn, tenant, received)

        results = request.app.state.ingest.ingest(
            tenant, batch.events, actor=_ingest_actor(request)
        )
        counts = {s.value: 0 for s in ResultStatus}
        for res in results:
            counts[res.status.value] += 1
        # a reply with events held or rejected for now is not kept with an
        # Idempotency-Key: sent again (once master data is fixed) they are tried again
        request.state.idempotent_final = counts["posted"] + counts["duplicate"] == len(results)
        return BatchResult(results=results, received_at=received, **counts)

    @r.get("/edge/masterdata")
    def edge_master_data(
        tenant: TenantDep, db: DbDep, request: Request, since: params.QueryInstant = None
    ) -> dict[str, Any]:
        """What an edge validates scans against offline: items, locations, work
        centres, operators, suppliers and open work orders with their components.
        Without `since`, everything; with the `cursor` of the last pull, what changed."""
        with db.connect() as conn:
            site = getattr(request.state, "device_site", None)
            return edge.master_data(conn, tenant, since, site)

    @r.post("/edge/heartbeat")
    def edge_heartbeat(
        body: schemas.EdgeHeartbeat, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        with db.begin() as conn:
            device_id = getattr(request.state, "device_id", None)
            if device_id is not None:
                devices.seen(conn, tenant, device_id, now_utc())
            return edge.record_heartbeat(conn, tenant, body)

    @r.get("/edge/agents")
    def edge_agents(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        with db.connect() as conn:
            rows, total = page.slice(edge.list_agents(conn, tenant))
        return paged(request, response, page, rows, total)

    @r.get("/exceptions")
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
            rows, total = listing.edge_events(conn, tenant.id, status, page.limit, page.offset)
        return paged(request, response, page, rows, total)

    @r.post("/exceptions/{event_id}/repost")
    def repost(event_id: uuid.UUID, tenant: TenantDep, request: Request) -> dict[str, Any]:
        """Try a held or rejected event again, as it was sent, on behalf of who asks."""
        result = request.app.state.ingest.repost(tenant, event_id, _ingest_actor(request))
        return result.model_dump()  # type: ignore[no-any-return]

    @r.post("/exceptions/{event_id}/void")
    def void(
        event_id: uuid.UUID, body: schemas.VoidRequest, tenant: TenantDep, request: Request
    ) -> dict[str, str]:
        request.app.state.ingest.void(tenant, event_id, body.reason, _ingest_actor(request))
        return {"event_id": str(event_id), "status": "voided"}

    _master_data_routes(r)
    _bom_routes(r)
    _report_routes(r)
    _device_routes(r)
    return r


def _master_data_routes(r: APIRouter) -> None:
    def create(path: str, body_type: Any, make: Any, table: str) -> None:
        def endpoint(body: body_type, tenant: TenantDep, db: DbDep) -> schemas.Created:  # type: ignore[valid-type]
            with db.begin() as conn:
                new_id = make(conn, tenant, body)
            return schemas.Created(id=new_id, code=body.code)  # type: ignore[attr-defined]

        def rows_page(
            tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
        ) -> list[dict[str, Any]]:
            with db.connect() as conn:
                rows, total = masterdata.list_rows(conn, tenant, table, page.limit, page.offset)
            return paged(request, response, page, rows, total)

        r.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            status_code=201,
            response_model=schemas.Created,
            name=f"create_{table}",
        )
        r.add_api_route(path, rows_page, methods=["GET"], name=f"list_{table}")

    create("/items", schemas.ItemCreate, masterdata.create_item, "item")
    create("/locations", schemas.LocationCreate, masterdata.create_location, "location")
    create(
        "/customers",
        schemas.PartyCreate,
        lambda c, t, b: masterdata.create_party(c, t, "customer", b),
        "customer",
    )
    create(
        "/suppliers",
        schemas.PartyCreate,
        lambda c, t, b: masterdata.create_party(c, t, "supplier", b),
        "supplier",
    )
    create("/work-centers", schemas.WorkCenterCreate, masterdata.create_work_center, "work_center")
    create(
        "/operator-grades",
        schemas.OperatorGradeCreate,
        masterdata.create_operator_grade,
        "operator_grade",
    )
    create("/operators", schemas.OperatorCreate, masterdata.create_operator, "operator")
    _work_order_routes(r)

    @r.get("/settings")
    def read_settings(tenant: TenantDep) -> dict[str, Any]:
        return {
            "allow_negative_stock": tenant.allow_negative_stock,
            "allow_issue_from_reserved": tenant.allow_issue_from_reserved,
            "completion_tolerance": tenant.completion_tolerance,
            "variance_policy": tenant.variance_policy,
            "reversal_sod_waived": tenant.reversal_sod_waived,
            "timezone": tenant.timezone,
            # how far from the server's clock an event may be dated (read-only: the
            # platform's); outside it is rejected, occurred_at_out_of_range
            "event_time_window": event_window_of(get_settings()).describe(),
        }

    @r.patch("/settings")
    def change_settings(
        body: schemas.TenantSettings, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        values = body.model_dump(exclude_none=True)
        if values:
            t = m.Tenant.__table__  # type: ignore[attr-defined]
            with db.begin() as conn:
                conn.execute(t.update().where(t.c.id == tenant.id).values(**values))
                audit.audit(
                    conn,
                    tenant.id,
                    now_utc(),
                    _actor(request),
                    "settings.change",
                    ", ".join(f"{k}={v}" for k, v in sorted(values.items())),
                    request.client.host if request.client else None,
                )
        return read_settings(replace(tenant, **values))

    @r.post("/events/{event_id}/reverse", status_code=201)
    def reverse_event(
        event_id: uuid.UUID,
        body: schemas.ReverseEvent,
        tenant: TenantDep,
        db: DbDep,
        request: Request,
    ) -> EventResult:
        """Reverse a posted event: its stock moves and journal entry are undone by a
        linked reversal. Owners and finance managers only, and never the person who
        posted it (segregation of duties) unless the owner waived that."""
        with db.connect() as conn:
            if event_row(conn, tenant.id, event_id) is None:
                raise NotFound("unknown_event", f"no event {event_id}")
        event = {
            "event_id": str(body.reversal_id or uuid.uuid4()),
            "device_id": "portal",
            "seq": 0,
            "type": "reversal",
            "occurred_at": (body.occurred_at or now_utc()).isoformat(),
            "payload": {"reverses_event_id": str(event_id), "reason": body.reason},
        }
        return _post_now(request, tenant, event)

    @r.post("/journal-entries", status_code=201)
    def post_journal_entry(
        body: schemas.JournalEntryCreate, tenant: TenantDep, request: Request
    ) -> EventResult:
        """A manual journal entry (owners, finance managers, accountants): balanced
        lines on accounts no sub-ledger owns, dated `entry_date`. Posted now or refused
        with the reason (a closed period: 409), never held."""
        event = {
            "event_id": str(body.entry_id or uuid.uuid4()),
            "device_id": "portal",
            "seq": 0,
            "type": "journal_entry",
            "occurred_at": datetime.combine(body.entry_date, dtime(12), tzinfo=UTC).isoformat(),
            "payload": {
                "memo": body.memo,
                "lines": [line.model_dump(mode="json") for line in body.lines],
            },
        }
        return _post_now(request, tenant, event)

    @r.get("/accounts")
    def accounts(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        with db.connect() as conn:
            rows, total = masterdata.list_rows(conn, tenant, "account", page.limit, page.offset)
        return paged(request, response, page, rows, total)

    @r.post("/periods/{code}/close")
    def close_period(
        code: params.PathCode, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, str]:
        with db.begin() as conn:
            masterdata.set_period_status(conn, tenant, code, "closed")
            audit.audit(conn, tenant.id, now_utc(), _actor(request), "period.close", code)
        return {"period": code, "status": "closed"}

    @r.post("/periods/{code}/reopen")
    def reopen_period(
        code: params.PathCode,
        body: schemas.PeriodReopen,
        tenant: TenantDep,
        db: DbDep,
        request: Request,
    ) -> dict[str, str]:
        """Reopen a closed period: the owner only, with the reason, audited."""
        with db.begin() as conn:
            masterdata.set_period_status(conn, tenant, code, "open")
            audit.audit(
                conn,
                tenant.id,
                now_utc(),
                _actor(request),
                "period.reopen",
                code,
                detail=body.reason,
            )
        return {"period": code, "status": "open", "reason": body.reason}

    @r.get("/audit-log")
    def audit_log(
        tenant: TenantDep,
        db: DbDep,
        page: Annotated[Any, Depends(page_params(default=1000, maximum=10_000))],
        request: Request,
        response: Response,
    ) -> list[dict[str, Any]]:
        """Newest first, a page at a time (limit 1..10000, 1000 by default)."""
        with db.connect() as conn:
            rows, total = listing.audit_log(conn, tenant.id, page.limit, page.offset)
        return paged(request, response, page, rows, total)

    @r.get(
        "/export",
        response_class=Response,
        responses={
            200: {
                "description": "A zip: manifest.json and a CSV per table",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
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


def _work_order_routes(r: APIRouter) -> None:
    @r.post("/work-orders", status_code=201)
    def create_work_order(
        body: schemas.WorkOrderCreate, tenant: TenantDep, db: DbDep
    ) -> dict[str, Any]:
        with db.begin() as conn:
            return work_orders.create_work_order(conn, tenant, body)

    @r.get("/work-orders")
    def list_work_orders(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        with db.connect() as conn:
            rows, total = masterdata.list_rows(conn, tenant, "work_order", page.limit, page.offset)
        return paged(request, response, page, rows, total)

    @r.get("/work-orders/{code}/cost")
    def read_work_order_cost(code: params.PathCode, tenant: TenantDep, db: DbDep) -> dict[str, Any]:
        """Planned against actual material, labour and overhead, where the cost went
        (finished goods, the variance settled at close, WIP) and the unit cost."""
        with db.connect() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot, so the figures add up
                conn.execution_options(isolation_level="REPEATABLE READ")
            return work_order_cost.cost_report(conn, tenant, code)

    @r.get("/work-orders/{code}")
    def read_work_order(code: params.PathCode, tenant: TenantDep, db: DbDep) -> dict[str, Any]:
        with db.connect() as conn:
            return work_orders.read(conn, tenant, code)

    @r.post("/work-orders/{work_order}/progress", status_code=201)
    def post_progress(
        work_order: Annotated[
            str, Path(description="The order's id, or its code", **params.CODE_RULES)
        ],
        body: schemas.WorkOrderProgress,
        tenant: TenantDep,
        db: DbDep,
        request: Request,
    ) -> dict[str, Any]:
        """A completion or hours on one order, posted now (devices with progress:post,
        production, the owner). An order this tenant does not have is 404, and asked
        for by id it is also a security event in this tenant's audit log (SAAS.md case
        1: another tenant's id is a probe). A reason that holds it (no stock, a closed
        period) is 409 and nothing is kept: the sender keeps it."""
        if "work_order" in body.payload:
            raise Rejected("work_order_in_body", "the work order comes from the path")
        if body.event_id is not None and body.occurred_at is None:
            raise Rejected(
                "occurred_at_required",
                "an event with its own id carries when it happened, so a repeat is the same",
            )
        try:
            with db.connect() as conn:
                subscriptions.check_ingest(conn, tenant, now_utc())
                code = work_orders.code_of(conn, tenant, work_order)
        except NotFound:
            _probe(request, tenant, db, "work_order", work_order)
            raise
        event = {
            "event_id": str(body.event_id or uuid.uuid4()),
            "device_id": str(getattr(request.state, "device_id", None) or "api"),
            "seq": 0,
            "type": body.type,
            "occurred_at": (body.occurred_at or now_utc()).isoformat(),
            "payload": {**body.payload, "work_order": code},
        }
        result = _post_now(request, tenant, event)
        return {"work_order": code} | result.model_dump(mode="json")

    @r.post("/work-orders/{code}/release")
    def release_work_order(
        code: params.PathCode, body: schemas.WorkOrderRelease, tenant: TenantDep, db: DbDep
    ) -> dict[str, Any]:
        with db.begin() as conn:
            return work_orders.release(conn, tenant, code, body.allow_shortages)

    @r.post("/work-orders/{code}/cancel")
    def cancel_work_order(code: params.PathCode, tenant: TenantDep, db: DbDep) -> dict[str, Any]:
        with db.begin() as conn:
            return work_orders.cancel(conn, tenant, code)

    @r.post("/work-orders/{code}/close")
    def close_work_order(
        code: params.PathCode,
        body: schemas.WorkOrderClose,
        tenant: TenantDep,
        db: DbDep,
        request: Request,
    ) -> dict[str, Any]:
        """Posts a `work_order_close` event (the residual WIP is settled); refused
        without writing anything when the order is not open."""
        with db.connect() as conn:
            status = work_orders.status_of(conn, tenant, code)
        if status not in POSTABLE_STATUSES:
            raise Conflict(
                "work_order_not_open", f"work order {code} is {status}; it cannot be closed"
            )
        event = {
            "event_id": str(uuid.uuid4()),
            "device_id": "portal",
            "seq": 0,
            "type": "work_order_close",
            "occurred_at": now_utc().isoformat(),
            "payload": {"work_order": code, "reason": body.reason},
        }
        (result,) = request.app.state.ingest.ingest(tenant, [event], actor=_ingest_actor(request))
        if result.status != ResultStatus.posted:
            raise Conflict(result.code or "close_not_posted", result.message or "not posted")
        with db.connect() as conn:
            return work_orders.read(conn, tenant, code) | {
                "journal_entry_id": result.journal_entry_id
            }


def _device_routes(r: APIRouter) -> None:
    @r.post("/devices/enrollment-codes", status_code=201)
    def create_enrollment_code(
        body: schemas.EnrollmentCodeCreate, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        """A one-time code (single use, 24 h) to enroll an edge: `erp edge enroll CODE`."""
        now = now_utc()
        with db.begin() as conn:
            code, site = devices.create_enrollment_code(
                conn,
                tenant,
                request.app.state.settings.api_key_pepper,
                now,
                body.site,
                _actor(request),
                body.scopes,
                _member_site(request),
            )
        return {"code": code, "site": site, "expires_at": now + ENROLLMENT_TTL}

    @r.post("/devices/enroll", status_code=201)
    def enroll_device(body: schemas.DeviceEnroll, request: Request) -> dict[str, Any]:
        """Exchange an enrollment code for a device and its key (shown once). No other
        credential: the code is it."""
        enrolled = devices.enroll(
            request.app.state.platform_db,
            body.code,
            body.name,
            request.app.state.settings.api_key_pepper,
            now_utc(),
            request.client.host if request.client else None,
        )
        return {"device_id": str(enrolled.device_id), "key": enrolled.key}

    @r.get("/devices")
    def list_devices(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        with db.connect() as conn:  # a plan's devices: a short list, sliced here
            rows, total = page.slice(devices.list_devices(conn, tenant, now_utc()))
        return paged(request, response, page, rows, total)

    @r.post("/devices/{device_id}/rotate")
    def rotate_device_key(
        device_id: uuid.UUID, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        """A new key; the previous one keeps working for 7 days (rotation overlap)."""
        with db.begin() as conn:
            pepper = request.app.state.settings.api_key_pepper
            key = devices.rotate_key(
                conn, tenant, device_id, pepper, now_utc(), _actor(request), _member_site(request)
            )
        return {"device_id": str(device_id), "key": key}

    @r.post("/devices/{device_id}/revoke")
    def revoke_device(
        device_id: uuid.UUID, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        with db.begin() as conn:
            devices.revoke(
                conn, tenant, device_id, now_utc(), _actor(request), _member_site(request)
            )
        return {"device_id": str(device_id), "revoked": True}

    @r.post("/api-tokens", status_code=201)
    def create_api_token(
        body: schemas.ApiTokenCreate, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        """A scoped token for an integration; the token is in this answer only."""
        with db.begin() as conn:
            return api_tokens.create(
                conn,
                tenant,
                body.name,
                body.scopes,
                request.app.state.settings.api_key_pepper,
                now_utc(),
                _actor(request),
            )

    @r.get("/api-tokens")
    def list_api_tokens(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        with db.connect() as conn:
            rows, total = page.slice(api_tokens.list_tokens(conn, tenant))
        return paged(request, response, page, rows, total)

    @r.post("/api-tokens/{token_id}/revoke")
    def revoke_api_token(
        token_id: Annotated[str, Path(pattern="^[0-9a-f]{16}$")],
        tenant: TenantDep,
        db: DbDep,
        request: Request,
    ) -> dict[str, str]:
        """Revoked at once: the next request with it is 401."""
        with db.begin() as conn:
            api_tokens.revoke(conn, tenant, token_id, now_utc(), _actor(request))
        return {"id": token_id, "status": "revoked"}

    @r.get("/subscription")
    def read_subscription(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
        with db.connect() as conn:
            return subscriptions.describe(conn, tenant, now_utc())

    @r.post("/api-key/rotate")
    def rotate_tenant_key(tenant: TenantDep, db: DbDep, request: Request) -> dict[str, str]:
        """A new tenant API key, in this answer only; the old one is refused from now
        on. The owner, signed in (a key does not replace itself)."""
        user_id = getattr(request.state, "user_id", None)
        if user_id is None:
            raise Forbidden("owner_session_required", "the owner replaces the key, signed in")
        pepper = request.app.state.settings.api_key_pepper
        with db.begin() as conn:
            key = rotate_api_key(conn, tenant.id, pepper, now_utc(), ("user", str(user_id)))
        return {"api_key": key}

    @r.post("/api-key/revoke")
    def revoke_tenant_key(tenant: TenantDep, db: DbDep, request: Request) -> dict[str, bool]:
        """No tenant API key from now on (integrations keep their scoped tokens); the
        owner, signed in. Replacing the key gives one again."""
        user_id = getattr(request.state, "user_id", None)
        if user_id is None:
            raise Forbidden("owner_session_required", "the owner revokes the key, signed in")
        with db.begin() as conn:
            revoke_api_key(conn, tenant.id, now_utc(), ("user", str(user_id)))
        return {"api_key": False}

    @r.post("/subscription/cancel")
    def cancel_subscription(
        body: schemas.SubscriptionCancel, tenant: TenantDep, db: DbDep, request: Request
    ) -> dict[str, Any]:
        """The owner cancels the subscription: read-only for 30 days (export works),
        then locked, purged at 90 days; every device key is revoked at once. `confirm`
        must be the company's slug (422 confirmation_mismatch, nothing changed)."""
        user_id = getattr(request.state, "user_id", None)
        if user_id is None:
            raise Forbidden("owner_session_required", "the owner cancels, signed in")
        with db.begin() as conn:
            sub, revoked = lifecycle.cancel(conn, tenant.id, user_id, body.confirm, now_utc())
        return {"state": sub.state, "devices_revoked": revoked}

    @r.get("/subscription/invoices")
    def subscription_invoices(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        """What the platform billed: the bank details and invoice number to quote are
        on each; a transfer is recorded by an operator (`erp tenant record-payment`)."""
        with db.connect() as conn:
            rows, total = page.slice(billing.invoices(conn, tenant.id))
        return paged(request, response, page, rows, total)


def _bom_routes(r: APIRouter) -> None:
    @r.post("/boms", status_code=201)
    def create_bom(body: schemas.BomCreate, tenant: TenantDep, db: DbDep) -> schemas.BomPublic:
        with db.begin() as conn:
            return boms.create_bom(conn, tenant, body)

    @r.get("/boms")
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
    @r.get("/boms/{item}/explode")
    def explode_bom(
        item: params.PathCode,
        tenant: TenantDep,
        db: DbDep,
        quantity: params.QueryQuantity = Decimal(1),
    ) -> schemas.BomExplosion:
        with db.connect() as conn:
            return boms.explode_bom(conn, tenant, item, quantity)

    @r.get("/boms/{item}/{version}")
    def read_bom(
        item: params.PathCode, version: params.Version, tenant: TenantDep, db: DbDep
    ) -> schemas.BomPublic:
        with db.connect() as conn:
            return boms.read_bom(conn, tenant, item, version)

    @r.post("/boms/{item}/{version}/activate")
    def activate_bom(
        item: params.PathCode, version: params.Version, tenant: TenantDep, db: DbDep
    ) -> schemas.BomPublic:
        with db.begin() as conn:
            return boms.activate_bom(conn, tenant, item, version)


def _report_routes(r: APIRouter) -> None:
    @r.get("/reports/trial-balance")
    def trial_balance(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
        with db.connect() as conn:
            return reports.trial_balance(conn, tenant)

    @r.get("/reports/journal")
    def journal(
        tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
    ) -> list[dict[str, Any]]:
        with db.connect() as conn:
            rows = reports.journal(conn, tenant, page.limit, page.offset)
            total = reports.journal_count(conn, tenant)
        return paged(request, response, page, rows, total)

    @r.get("/reports/stock")
    def stock(tenant: TenantDep, db: DbDep, at: params.QueryInstant = None) -> list[dict[str, Any]]:
        with db.connect() as conn:
            return reports.stock_on_hand(conn, tenant, utc(at) if at else None)

    @r.get("/reports/stock-ledger/{item_code}")
    def stock_ledger(
        item_code: params.PathCode,
        tenant: TenantDep,
        db: DbDep,
        page: PageDep,
        request: Request,
        response: Response,
    ) -> list[dict[str, Any]]:
        """The item's moves, oldest first, a page at a time; 404 unknown_item."""
        with db.connect() as conn:
            rows, total = reports.stock_ledger(conn, tenant, item_code, page.limit, page.offset)
        return paged(request, response, page, rows, total)

    @r.get("/reports/wip")
    def wip(tenant: TenantDep, db: DbDep) -> list[dict[str, Any]]:
        with db.connect() as conn:
            return reports.wip_report(conn, tenant)

    @r.get("/reports/reconciliation")
    def reconciliation(tenant: TenantDep, db: DbDep) -> dict[str, Any]:
        with db.connect() as conn:
            diffs = reports.reconcile(conn, tenant)
        return {"ok": not diffs, "differences": [d.as_dict() for d in diffs]}
