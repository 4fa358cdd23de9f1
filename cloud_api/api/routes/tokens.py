"""Credentials of integrations: scoped API tokens, and the tenant's API key (replaced
or revoked by the owner, signed in)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from cloud_api.api import schemas
from cloud_api.api.deps import DbDep, PepperDep, Principal, PrincipalDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.devices import (
    ApiKeyRevoked,
    ApiKeyRotated,
    ApiTokenIssued,
    ApiTokenRevoked,
    ApiTokenRow,
)
from cloud_api.domain.clock import now_utc
from cloud_api.services import api_tokens
from cloud_api.services.tenants import revoke_api_key, rotate_api_key

router = APIRouter(route_class=IdempotentRoute)

MANAGE = Requires("users.manage")
TokenId = Annotated[str, Path(pattern="^[0-9a-f]{16}$")]


@router.post(
    "/api-tokens",
    response_model=ApiTokenIssued,
    status_code=201,
    dependencies=[Requires("users.manage", secret_answer=True)],
)
def create_api_token(
    body: schemas.ApiTokenCreate, principal: PrincipalDep, db: DbDep, pepper: PepperDep
) -> dict[str, Any]:
    """A scoped token for an integration; the token is in this answer only."""
    who = principal
    with db.begin() as conn:
        return api_tokens.create(
            conn, who.tenant, body.name, body.scopes, pepper, now_utc(), who.actor
        )


@router.get("/api-tokens", response_model=list[ApiTokenRow], dependencies=[MANAGE])
def list_api_tokens(
    tenant: TenantDep, db: DbDep, page: PageDep, request: Request, response: Response
) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows, total = page.slice(api_tokens.list_tokens(conn, tenant))
    return paged(request, response, page, rows, total)


@router.post("/api-tokens/{token_id}/revoke", response_model=ApiTokenRevoked, dependencies=[MANAGE])
def revoke_api_token(token_id: TokenId, principal: PrincipalDep, db: DbDep) -> dict[str, str]:
    """Revoked at once: the next request with it is 401."""
    with db.begin() as conn:
        api_tokens.revoke(conn, principal.tenant, token_id, now_utc(), principal.actor)
    return {"id": token_id, "status": "revoked"}


def _owner_session(principal: Principal, doing: str) -> tuple[str, str]:
    """The signed-in user who does it, as the audit log names them."""
    return ("user", str(principal.signed_in(f"{doing} the key")))


@router.post(
    "/api-key/rotate",
    response_model=ApiKeyRotated,
    dependencies=[Requires("users.manage", secret_answer=True)],
)
def rotate_tenant_key(principal: PrincipalDep, db: DbDep, pepper: PepperDep) -> dict[str, str]:
    """A new tenant API key, in this answer only; the old one is refused from now
    on. The owner, signed in (a key does not replace itself)."""
    by = _owner_session(principal, "replaces")
    with db.begin() as conn:
        key = rotate_api_key(conn, principal.tenant.id, pepper, now_utc(), by)
    return {"api_key": key}


@router.post("/api-key/revoke", response_model=ApiKeyRevoked, dependencies=[MANAGE])
def revoke_tenant_key(principal: PrincipalDep, db: DbDep) -> dict[str, bool]:
    """No tenant API key from now on (integrations keep their scoped tokens); the
    owner, signed in. Replacing the key gives one again."""
    by = _owner_session(principal, "revokes")
    with db.begin() as conn:
        revoke_api_key(conn, principal.tenant.id, now_utc(), by)
    return {"api_key": False}
