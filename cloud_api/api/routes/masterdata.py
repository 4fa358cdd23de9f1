"""Master data: items, locations, customers, suppliers, work centres, operators and
their grades. Each has a create (201, its id and code) and a paged list."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import Connection

from cloud_api.api import schemas
from cloud_api.api.deps import DbDep, TenantDep
from cloud_api.api.idempotent import IdempotentRoute
from cloud_api.api.paging import PageDep, paged
from cloud_api.api.permissions import Requires
from cloud_api.api.schemas.masterdata import (
    ItemRow,
    LocationRow,
    OperatorGradeRow,
    OperatorRow,
    PartyRow,
    WorkCenterRow,
)
from cloud_api.services import masterdata
from cloud_api.services.store import TenantContext

router = APIRouter(route_class=IdempotentRoute)

WRITE = Requires("masterdata.write")
READ = Requires("read", token_scope="items:read")

Make = Callable[[Connection, TenantContext, Any], Any]


def _create_route(
    path: str, body_type: Any, make: Make, table: str, row_type: type[BaseModel]
) -> None:
    """POST `path` (a body_type, made by `make`) and GET `path` (the `table`'s rows,
    each a row_type)."""

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

    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        status_code=201,
        response_model=schemas.Created,
        name=f"create_{table}",
        dependencies=[WRITE],
    )
    router.add_api_route(
        path,
        rows_page,
        methods=["GET"],
        response_model=list[row_type],  # type: ignore[valid-type]
        name=f"list_{table}",
        dependencies=[READ],
    )


def _party(kind: str) -> Make:
    return lambda conn, tenant, body: masterdata.create_party(conn, tenant, kind, body)


_create_route("/items", schemas.ItemCreate, masterdata.create_item, "item", ItemRow)
_create_route(
    "/locations", schemas.LocationCreate, masterdata.create_location, "location", LocationRow
)
_create_route("/customers", schemas.PartyCreate, _party("customer"), "customer", PartyRow)
_create_route("/suppliers", schemas.PartyCreate, _party("supplier"), "supplier", PartyRow)
_create_route(
    "/work-centers",
    schemas.WorkCenterCreate,
    masterdata.create_work_center,
    "work_center",
    WorkCenterRow,
)
_create_route(
    "/operator-grades",
    schemas.OperatorGradeCreate,
    masterdata.create_operator_grade,
    "operator_grade",
    OperatorGradeRow,
)
_create_route(
    "/operators", schemas.OperatorCreate, masterdata.create_operator, "operator", OperatorRow
)
