"""The books: reversals, manual journal entries, the chart of accounts, periods, and
the tenant's production and costing settings."""

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from cloud_api.api import params, schemas
from cloud_api.api.deps import DbDep, IngestDep, PrincipalDep, TenantDep, client_ip
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.ledger import (
    AccountRow,
    PeriodReopened,
    PeriodStatus,
    TenantSettingsPublic,
)
from cloud_api.domain.clock import event_window_of, now_utc
from cloud_api.services import audit, commands, masterdata, tenants
from cloud_api.services.store import TenantContext
from cloud_api.settings import get_settings
from contract import EventResult

router = APIRouter(route_class=IdempotentRoute)


def _settings_of(tenant: TenantContext) -> dict[str, Any]:
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


@router.get("/settings", response_model=TenantSettingsPublic, dependencies=[Requires("read")])
def read_settings(tenant: TenantDep) -> dict[str, Any]:
    return _settings_of(tenant)


@router.patch(
    "/settings", response_model=TenantSettingsPublic, dependencies=[Requires("settings.write")]
)
def change_settings(
    body: schemas.TenantSettings, principal: PrincipalDep, db: DbDep, request: Request
) -> dict[str, Any]:
    values = body.model_dump(exclude_none=True)
    with db.begin() as conn:
        tenant = tenants.change_settings(
            conn, principal.tenant, values, now_utc(), principal.actor, client_ip(request)
        )
    return _settings_of(tenant)


@router.post(
    "/events/{event_id}/reverse", status_code=201, dependencies=[Requires("journal.reverse")]
)
def reverse_event(
    event_id: uuid.UUID,
    body: schemas.ReverseEvent,
    principal: PrincipalDep,
    db: DbDep,
    ingest: IngestDep,
) -> EventResult:
    """Reverse a posted event: its stock moves and journal entry are undone by a
    linked reversal. Owners and finance managers only, and never the person who
    posted it (segregation of duties) unless the owner waived that."""
    actor = principal.ingest_actor
    return commands.reverse_event(db, ingest, principal.tenant, event_id, body, actor)


@router.post("/journal-entries", status_code=201, dependencies=[Requires("journal.post")])
def post_journal_entry(
    body: schemas.JournalEntryCreate, principal: PrincipalDep, ingest: IngestDep
) -> EventResult:
    """A manual journal entry (owners, finance managers, accountants): balanced
    lines on accounts no sub-ledger owns, dated `entry_date`. Posted now or refused
    with the reason (a closed period: 409), never held."""
    return commands.post_journal_entry(ingest, principal.tenant, body, principal.ingest_actor)


@router.get(
    "/accounts",
    response_model=list[AccountRow],
    dependencies=[Requires("read", token_scope="reports:read")],
)
def accounts(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows, total = masterdata.list_rows(conn, tenant, "account", page.limit, page.offset)
    return paged(request, response, page, rows, total)


@router.post(
    "/periods/{code}/close", response_model=PeriodStatus, dependencies=[Requires("period.close")]
)
def close_period(code: params.PathCode, principal: PrincipalDep, db: DbDep) -> dict[str, str]:
    tenant = principal.tenant
    with db.begin() as conn:
        masterdata.set_period_status(conn, tenant, code, "closed")
        audit.audit(conn, tenant.id, now_utc(), principal.actor, "period.close", code)
    return {"period": code, "status": "closed"}


@router.post(
    "/periods/{code}/reopen",
    response_model=PeriodReopened,
    dependencies=[Requires("period.reopen")],
)
def reopen_period(
    code: params.PathCode, body: schemas.PeriodReopen, principal: PrincipalDep, db: DbDep
) -> dict[str, str]:
    """Reopen a closed period: the owner only, with the reason, audited."""
    tenant, actor = principal.tenant, principal.actor
    with db.begin() as conn:
        masterdata.set_period_status(conn, tenant, code, "open")
        audit.audit(conn, tenant.id, now_utc(), actor, "period.reopen", code, detail=body.reason)
    return {"period": code, "status": "open", "reason": body.reason}
