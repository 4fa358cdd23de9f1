"""`erp`: how people and scripts drive the product."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cloud_api.settings import get_settings
from edge_agent.cli import edge_app
from edge_agent.labels.cli import labels_app

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable
    from datetime import datetime

    from sqlalchemy import Connection, Engine

app = typer.Typer(
    help="Shop-floor ERP: edge ingest, stock ledger, valuation and the books.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks (print figures; see docs/benchmarks.md).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(bench_app, name="bench")
app.add_typer(edge_app, name="edge")
app.add_typer(labels_app, name="labels")

DbUrl = Annotated[
    str | None,
    typer.Option(help="Database URL (default: $PLATFORM_DATABASE_URL, else $DATABASE_URL)."),
]


def _platform_db(database_url: str | None) -> Engine:
    """The operators' commands work across tenants: erp_platform on PostgreSQL."""
    from cloud_api.db import tenancy
    from cloud_api.db.engine import make_engine

    settings = get_settings()
    url = database_url or settings.platform_database_url or settings.database_url
    return tenancy.install(make_engine(url))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
) -> None:
    """Serve the HTTP API and the portal."""
    import uvicorn

    uvicorn.run(
        "erp.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@db_app.command("upgrade")
def db_upgrade(
    database_url: DbUrl = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply the migrations up to REVISION (default: the newest)."""
    from cloud_api.db.migrate import upgrade

    settings = get_settings()
    url = database_url or settings.owner_database_url or settings.database_url
    upgrade(url, revision)
    from cloud_api.db.rls import set_login_passwords

    for role in set_login_passwords(url):
        typer.echo(f"password of {role} set from ${role.upper()}_PASSWORD")
    typer.echo(f"database at {revision}")


@tenant_app.command("create")
def tenant_create(
    slug: Annotated[str, typer.Argument(help="Short unique name.")],
    name: Annotated[str, typer.Option(help="Company name.")] = "",
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "CNY",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "Asia/Shanghai",
    allow_negative_stock: Annotated[
        bool, typer.Option(help="Let stock go below zero (refused by default).")
    ] = False,
    plan: Annotated[str, typer.Option(help="trial, starter, pro or enterprise.")] = "pro",
    trial: Annotated[bool, typer.Option(help="Start a 14-day trial of the plan.")] = False,
    database_url: DbUrl = None,
) -> None:
    """Create a tenant with the default chart of accounts and its subscription (active
    on the plan, or a trial of it); prints its API key once."""
    from cloud_api.errors import ErpError
    from cloud_api.services.tenants import create_tenant
    from tenant.plans import TenantError

    settings = get_settings()
    db = _platform_db(database_url)
    try:
        new = create_tenant(
            db,
            slug,
            name or slug,
            settings.api_key_pepper,
            currency,
            timezone,
            allow_negative_stock,
            plan_code=plan,
            trial=trial,
        )
    except (ErpError, TenantError) as error:
        typer.echo(f"error [{error.code}]: {error.message}", err=True)
        raise typer.Exit(2) from error
    typer.echo(json.dumps({"tenant_id": str(new.id), "slug": new.slug, "api_key": new.api_key}))


@tenant_app.command("tick")
def tenant_tick(database_url: DbUrl = None) -> None:
    """Apply the subscriptions' time-driven transitions that are due (run it from cron,
    every few minutes); prints one line per transition."""
    from cloud_api.domain.clock import now_utc
    from cloud_api.services.subscriptions import tick_all

    db = _platform_db(database_url)
    for tenant_id, move in tick_all(db, now_utc()):
        typer.echo(f"{tenant_id} {move.from_state} -> {move.to_state} ({move.reason})")


@tenant_app.command("purge")
def tenant_purge(
    owner_database_url: Annotated[
        str | None, typer.Option(help="The schema owner's URL (default: $OWNER_DATABASE_URL).")
    ] = None,
    database_url: DbUrl = None,
) -> None:
    """Delete every tenant whose subscription is due for purge (canceled 90 days ago),
    keeping a deletion record, every audit line older than its tenant's plan keeps
    them and every Idempotency-Key older than a day (run it from cron, daily); prints
    one line per tenant."""
    from cloud_api.db import tenancy
    from cloud_api.db.engine import make_engine
    from cloud_api.domain.clock import now_utc
    from cloud_api.services.purge import expire_audit, expire_idempotency_keys, purge_due

    settings = get_settings()
    owner_url = owner_database_url or settings.owner_database_url or settings.database_url
    owner, platform = tenancy.install(make_engine(owner_url)), _platform_db(database_url)
    now = now_utc()
    for done in purge_due(owner, platform, now):
        typer.echo(
            f"{done.tenant_id} {done.slug}: purged, {done.rows_deleted} rows and "
            f"{done.users_deleted} users deleted"
        )
    for expired in expire_audit(owner, platform, now):
        typer.echo(
            f"{expired.tenant_id}: {expired.rows_deleted} audit lines from before "
            f"{expired.before:%Y-%m-%d} expired"
        )
    typer.echo(f"{expire_idempotency_keys(platform, now)} idempotency keys older than a day")


@tenant_app.command("record-payment")
def tenant_record_payment(
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    invoice: Annotated[str, typer.Argument(help="The invoice number, e.g. INV-202612-0001.")],
    reference: Annotated[str, typer.Option(help="The bank transfer's reference.")],
    database_url: DbUrl = None,
) -> None:
    """Record a bank transfer received for a subscription invoice: the invoice is paid
    and the subscription active for its period."""
    from cloud_api.db import tenancy
    from cloud_api.domain.clock import now_utc
    from cloud_api.errors import ErpError
    from cloud_api.services.billing import record_payment
    from cloud_api.services.tenants import tenant_by_slug

    db = _platform_db(database_url)
    try:
        tenant = tenant_by_slug(db, slug)
        with tenancy.as_tenant(tenant.id), db.begin() as conn:
            sub = record_payment(conn, tenant.id, invoice, reference, now_utc())
    except ErpError as error:
        typer.echo(f"error [{error.code}]: {error.message}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{invoice} paid; {slug} is {sub.state} until {sub.current_period_end}")


@tenant_app.command("suspend")
def tenant_suspend(
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    reason: Annotated[str, typer.Option(help="Why (abuse, chargeback, legal hold; audited).")],
    database_url: DbUrl = None,
) -> None:
    """Suspend a tenant: only its owner may sign in, its devices get 403 (their events
    wait on the edge), every portal session ends."""
    from cloud_api.services import lifecycle

    def step(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> str:
        sub, ended = lifecycle.suspend(conn, tenant_id, reason, now)
        return f"{slug} is {sub.state}; {ended} sessions ended"

    _subscription_action(slug, database_url, step)


@tenant_app.command("unsuspend")
def tenant_unsuspend(
    slug: Annotated[str, typer.Argument(help="The tenant.")], database_url: DbUrl = None
) -> None:
    """Lift a suspension: the subscription is back where it was (and what fell due
    meanwhile, such as a trial's end, applies at once)."""
    from cloud_api.services import lifecycle

    def step(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> str:
        return f"{slug} is {lifecycle.unsuspend(conn, tenant_id, now).state}"

    _subscription_action(slug, database_url, step)


def _subscription_action(
    slug: str, database_url: str | None, step: Callable[[Connection, uuid.UUID, datetime], str]
) -> None:
    """Run `step` as the tenant, in one transaction; a refusal prints its code and
    exits 2 with nothing kept."""
    from cloud_api.db import tenancy
    from cloud_api.domain.clock import now_utc
    from cloud_api.errors import ErpError
    from cloud_api.services.tenants import tenant_by_slug
    from tenant.plans import TenantError

    db = _platform_db(database_url)
    try:
        tenant = tenant_by_slug(db, slug)
        with tenancy.as_tenant(tenant.id), db.begin() as conn:
            said = step(conn, tenant.id, now_utc())
    except (ErpError, TenantError) as error:
        typer.echo(f"error [{error.code}]: {error.message}", err=True)
        raise typer.Exit(2) from error
    typer.echo(said)


@tenant_app.command("reset-mfa")
def tenant_reset_mfa(
    email: Annotated[str, typer.Argument(help="The person who lost their authenticator.")],
    reason: Annotated[str, typer.Option(help="Why, and how who asks was checked (audited).")],
    database_url: DbUrl = None,
) -> None:
    """Clear a person's second factor after checking who asks outside the system: their
    sessions end, each of their tenants' audit log records it, and they set up a new
    factor at their next sign-in."""
    from cloud_api.domain.clock import now_utc
    from cloud_api.errors import ErpError
    from cloud_api.services.users import reset_mfa

    try:
        with _platform_db(database_url).begin() as conn:
            tenants = reset_mfa(conn, email, reason, now_utc())
    except ErpError as error:
        typer.echo(f"error [{error.code}]: {error.message}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{email}: second factor cleared, sessions ended in {len(tenants)} tenant(s)")


@app.command()
def reconcile(
    slug: Annotated[str, typer.Argument(help="Tenant slug.")], database_url: DbUrl = None
) -> None:
    """Check every invariant of the books; exit 1 if any difference is found."""
    from cloud_api.db import tenancy
    from cloud_api.services.reports import reconcile as run
    from cloud_api.services.tenants import tenant_by_slug

    db = _platform_db(database_url)
    tenant = tenant_by_slug(db, slug)
    with tenancy.as_tenant(tenant.id), db.connect() as conn:
        diffs = run(conn, tenant)
    for d in diffs:
        typer.echo(f"DIFFERENCE {d.check} {d.key}: expected {d.expected}, got {d.actual}")
    typer.echo(f"{len(diffs)} difference(s)")
    raise typer.Exit(1 if diffs else 0)


@app.command()
def demo(
    no_serve: Annotated[
        bool,
        typer.Option(
            "--no-serve", help="Exit after the summary (status 0 only if the books agree)."
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="TCP port for the API.")] = 8000,
    database_url: Annotated[
        str, typer.Option(help="Demo database (recreated).")
    ] = "sqlite:///var/demo.sqlite3",
) -> None:
    """Run the product end to end: API on SQLite, a furniture workshop's working day."""
    from erp.demo import run_demo

    sys.exit(run_demo(database_url, port, serve_after=not no_serve))


@bench_app.command("ingest")
def bench_ingest(
    events: Annotated[int, typer.Option(help="Events to post.")] = 20000,
    batch: Annotated[int, typer.Option(help="Events per batch.")] = 500,
    database_url: Annotated[
        str | None, typer.Option(help="Database (default: a fresh SQLite file).")
    ] = None,
    warmup: Annotated[
        int,
        typer.Option(
            help="Events posted (untimed) before the measured run, followed by ANALYZE as "
            "autovacuum would do on a live database; 0 measures a cold, empty database."
        ),
    ] = 2000,
) -> None:
    """Post EVENTS through the HTTP API and print events/s and batch latency."""
    from bench.ingest import main as run_bench

    run_bench(events=events, batch=batch, database_url=database_url, warmup=warmup)


@bench_app.command("edge")
def bench_edge(
    what: Annotated[str, typer.Argument(help="capture, drain or all")] = "all",
    events: Annotated[int, typer.Option(help="Backlog events to drain.")] = 100_000,
    database_url: Annotated[
        str | None, typer.Option(help="Cloud database (default: a fresh SQLite file).")
    ] = None,
) -> None:
    """The edge's figures: durable capture rate with scan-to-beep latency, and the
    drain rate of a backlog to the cloud."""
    from bench.edge import main as run_bench

    run_bench(what, events, database_url)


@bench_app.command("portal")
def bench_portal(
    moves: Annotated[
        int, typer.Option(help="Stock moves to post before timing.", min=1)
    ] = 1_000_000,
    requests: Annotated[int, typer.Option(help="Timed GETs of each page.", min=1)] = 200,
    database_url: Annotated[
        str,
        typer.Option(help="PostgreSQL server; the bench creates and drops its own database."),
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    days: Annotated[
        float,
        typer.Option(
            help="Days of history up to now (fewer than today's day of the month: the "
            "whole ledger is this month's, the dashboard's worst case).",
            min=0.01,
        ),
    ] = 90,
) -> None:
    """Post MOVES stock moves for one tenant, then time the portal's dashboard and stock
    page (p50/p95/p99/max) against /healthz."""
    from bench.portal import main as run_bench

    run_bench(moves=moves, requests=requests, database_url=database_url, days=days)


@bench_app.command("late")
def bench_late(
    sizes: Annotated[
        str, typer.Option(help="Ledger sizes (floor events), comma-separated, ascending.")
    ] = "10000,100000,1000000",
    ingest_sample: Annotated[
        int, typer.Option(help="Floor events timed for the ingest rate at each size.", min=1)
    ] = 5000,
    busy_moves: Annotated[
        int, typer.Option(help="Later moves the busy item's late receipt revalues.", min=1)
    ] = 100_000,
    skip_busy: Annotated[bool, typer.Option("--skip-busy", help="No busy item.")] = False,
    database_url: Annotated[
        str,
        typer.Option(help="PostgreSQL server; the bench creates and drops its own database."),
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
) -> None:
    """Grow a floor to each of SIZES and time a late receipt before all history there,
    and the ingest rate, each beside its raw limit; then one late receipt revaluing
    BUSY_MOVES moves. Exits non-zero when the books-check is not empty."""
    from bench.late_events import main as run_bench

    run_bench(
        sizes=[int(size) for size in sizes.split(",")],
        ingest_sample=ingest_sample,
        busy_moves=busy_moves,
        skip_busy=skip_busy,
        database_url=database_url,
    )


if __name__ == "__main__":  # pragma: no cover
    app()
