"""The HTTP API's composition: the routers (cloud_api/api/routes, each route declaring
who may call it), the middleware and the error handlers. Routes only translate: parse,
call one service, answer. API only: the portal's pages are added by the composition
root (erp.app.create_app), so the cloud does not depend on web/."""

from fastapi import FastAPI
from sqlalchemy import Engine

from cloud_api.api import deps, logs, outage, permissions, problems
from cloud_api.api.body_limit import BodyLimit
from cloud_api.api.routes import ROUTERS
from cloud_api.db import tenancy
from cloud_api.db.engine import make_engine
from cloud_api.mail import mailer_from_url
from cloud_api.services import subscriptions
from cloud_api.services.ingest import IngestService
from cloud_api.settings import Settings, get_settings
from tenant import shared_limits
from tenant.ratelimit import Limiter
from tenant.security import LoginThrottle


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

    api_routes = [route for router in ROUTERS for route in router.routes]
    if undeclared := permissions.undeclared_routes(api_routes):
        raise RuntimeError(f"API routes without a declared permission: {undeclared}")
    if unguarded := permissions.unguarded_routes(api_routes, deps.current_principal):
        raise RuntimeError(f"API routes that never resolve their caller: {unguarded}")
    for router in ROUTERS:
        app.include_router(router, prefix=permissions.API_PREFIX, responses=problems.RESPONSES)
    return app
