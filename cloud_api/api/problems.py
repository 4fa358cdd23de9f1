"""Errors → RFC 9457 problem+json, mapped once for the whole app."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_api.errors import ErpError
from tenant.plans import TenantError

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An error (RFC 9457). `code` is stable: clients branch on it, not on `detail`.
    Some carry more: `errors` (what failed validation), `reason`, `retry_after_s`..."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    code: str
    detail: str


# documented on every API route, so the OpenAPI document tells the truth about errors
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, description in {
        400: "Malformed request (not JSON)",
        401: "No valid credential",
        402: "The subscription or the plan does not allow it",
        403: "The role, the device's scope or the CSRF check refuses it",
        404: "No such object in this tenant",
        409: "Conflicts with the current state",
        413: "Body too large",
        422: "Does not match the schema, or breaks a rule",
        429: "Rate limit or monthly quota; see Retry-After",
    }.items()
}


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://errors.shopfloor-erp.dev/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    _document(app)

    @app.exception_handler(ErpError)
    async def _erp(_: Request, exc: ErpError) -> JSONResponse:
        response = problem(exc.status, exc.code, exc.message, **exc.details)
        retry_after_s = getattr(exc, "retry_after_s", None)
        if retry_after_s:  # come back then (a quota, an unpaid subscription)
            response.headers["Retry-After"] = str(int(retry_after_s))
        return response

    @app.exception_handler(TenantError)
    async def _tenant(_: Request, exc: TenantError) -> JSONResponse:
        return problem(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()[:20]
        ]
        json_error = any(e["type"] == "json_invalid" for e in exc.errors())
        code = "malformed_json" if json_error else "invalid_request"
        detail = (
            "the body is not valid JSON"
            if json_error
            else "the request does not match the schema: "
            + "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:3])
        )
        return problem(422 if not json_error else 400, code, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        return problem(500, "internal_error", "an unexpected error; nothing was written")


def _document(app: FastAPI) -> None:
    """Put the Problem schema into the OpenAPI components the responses refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
