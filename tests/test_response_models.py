"""Every JSON route of the API declares what it answers: a response model whose
OpenAPI schema names its fields, never a free-form object (`dict[str, Any]`), at the
top or anywhere inside. tests/test_schemathesis.py then checks the answers against
these schemas. No database: the document is built from the routes alone."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute

from cloud_api.api.app import create_app
from cloud_api.api.routes import ROUTERS
from cloud_api.settings import Settings


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(database_url="sqlite://"))


def _free_form(schema: Any, components: dict[str, Any], seen: frozenset[str]) -> list[str]:
    """Where inside `schema` an object names no field and types none of its values."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return [] if name in seen else _free_form(components[name], components, seen | {name})
    found = [
        where
        for key in ("anyOf", "oneOf", "allOf")
        for option in schema.get(key, [])
        for where in _free_form(option, components, seen)
    ]
    if "items" in schema:
        found += _free_form(schema["items"], components, seen)
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    for name, sub in (props or {}).items():
        found += [f".{name}{where}" for where in _free_form(sub, components, seen)]
    if schema.get("type") == "object" and not props:
        if not isinstance(extra, dict) or not extra:
            found.append(f" {schema.get('title', '')} (free-form object)")
        else:
            found += _free_form(extra, components, seen)
    if schema.get("type") == "array" and not schema.get("items"):
        found.append(" (array of anything)")
    return found


def test_every_json_answer_has_a_precise_schema(app: FastAPI) -> None:
    spec = app.openapi()
    components = spec["components"]["schemas"]
    checked, loose = 0, []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status in ("200", "201"):
                content = operation["responses"].get(status, {}).get("content", {})
                if "application/json" in content:
                    checked += 1
                    schema = content["application/json"]["schema"]
                    where = _free_form(schema, components, frozenset())
                    loose += [f"{method.upper()} {path} {status}:{w}" for w in where]
    assert checked >= 70
    assert not loose, loose


def test_the_check_finds_a_free_form_answer() -> None:
    """The check above can fail: a dict[str, Any] answer, bare or in a list or a
    field, is found."""
    free = {"type": "object", "additionalProperties": True}
    components = {"Wrapper": {"type": "object", "properties": {"rows": {"items": free}}}}
    assert _free_form(free, {}, frozenset())
    assert _free_form({"type": "array", "items": free}, {}, frozenset())
    assert _free_form({"$ref": "#/components/schemas/Wrapper"}, components, frozenset())
    typed = {"type": "object", "additionalProperties": {"type": "string"}}
    assert not _free_form(typed, {}, frozenset())


def test_every_api_route_declares_its_response_model() -> None:
    """In the routes themselves: a model (or a list of one), not the return annotation
    FastAPI would fall back to."""
    undeclared = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            if not isinstance(route.response_class, DefaultPlaceholder):
                continue  # the export's zip: a Response of its own, not JSON
            if route.response_model is None or "Any" in str(route.response_model):
                undeclared.append(f"{sorted(route.methods or ())} {route.path}")
    assert not undeclared, undeclared


def test_progress_posted_answers_every_field_of_an_event_result() -> None:
    """The progress route answers the order's code, then the event's result: a field
    added to EventResult must appear there too (in the same order)."""
    from cloud_api.api.schemas.ledger import ProgressPosted
    from contract import EventResult

    assert list(ProgressPosted.model_fields) == ["work_order", *EventResult.model_fields]


def test_plan_limits_answer_every_field_of_a_plan() -> None:
    """GET /subscription answers the plan's limits: a limit added to tenant/plans.Plan
    must appear there too (in the same order)."""
    from dataclasses import fields

    from cloud_api.api.schemas.devices import PlanLimits
    from tenant.plans import Plan

    assert list(PlanLimits.model_fields) == [field.name for field in fields(Plan)]
