"""The database gone for a moment (cloud_api/api/outage.py): a PostgreSQL restart in
the middle of ingest answers 503 `database_unavailable` with Retry-After (the edge
re-sends after it), nothing is written, and the next request goes through on fresh
connections; so does a request after a restart (pool_pre_ping). A pool with no
connection to give in time answers 503 too, on SQLite as on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy import exc as sa_exc

from cloud_api.api import outage
from cloud_api.api.app import create_app
from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.db.engine import make_engine
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.factory import receipt, setup_workshop
from tests.roles import as_role

T = m.SQLModel.metadata.tables
BATCH_KEY = {"Idempotency-Key": "batch-during-restart"}


def terminate_backends(db: Engine) -> int:
    """What a PostgreSQL restart does to the app: every other backend of this database
    ends (the app's pooled connections, a request's, a key holder's). Waits until they
    are gone (PostgreSQL 14+: pg_terminate_backend's timeout)."""
    with db.connect() as conn:
        pids = conn.scalars(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        ).all()
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    return len(pids)


@contextmanager
def restart_at(engine: Engine, admin: Engine, statement_start: str) -> Iterator[list[str]]:
    """Terminate every backend just before `engine` runs the first statement starting
    with `statement_start`: the database restarts in the middle of a request."""
    fired: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not fired and statement.lstrip().startswith(statement_start):
            fired.append(statement)
            terminate_backends(admin)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield fired
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _events(db: Engine, api: Api) -> int:
    ev = T["edge_event"]
    with tenancy.as_tenant(api.tenant.id), db.connect() as conn:
        return int(conn.scalar(select(func.count()).where(ev.c.tenant_id == api.tenant.id)) or 0)


def _unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.postgres
def test_a_restart_in_the_middle_of_ingest_answers_503_and_the_resend_posts(
    pg_db: Engine,
) -> None:
    api = Api(pg_db)
    setup_workshop(api)
    batch = {"events": [receipt(1, "RAW", "10", "2.50")]}
    # the restart comes as the batch's rows are being written (its COPY's staging table)
    with restart_at(as_role(pg_db, rls.APP), pg_db, "CREATE TEMP TABLE") as fired:
        failed = api.post("/edge/events", json=batch, headers=BATCH_KEY)
    assert fired, "the restart never happened"
    _unavailable(failed)
    assert _events(pg_db, api) == 0  # nothing of the batch was written
    # the edge sends the batch again with its key: taken at once, posted once
    again = api.post("/edge/events", json=batch, headers=BATCH_KEY)
    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["posted"] == 1
    assert api.balances()["1403"] == Decimal("25.00")


@pytest.mark.postgres
def test_a_restart_in_the_middle_of_a_write_answers_503(pg_db: Engine) -> None:
    api = Api(pg_db)
    item = {"code": "X", "name": "Widget", "kind": "raw"}
    with restart_at(as_role(pg_db, rls.APP), pg_db, "INSERT INTO item") as fired:
        failed = api.post("/items", json=item)
    assert fired
    _unavailable(failed)
    assert api.post("/items", json=item).status_code == 201


@pytest.mark.postgres
def test_a_restart_between_requests_goes_unnoticed(pg_db: Engine) -> None:
    """The pool tests each connection it hands out (pool_pre_ping): after a restart the
    next request gets fresh connections, for credentials and for the tenant's work."""
    api = Api(pg_db)
    setup_workshop(api)
    assert terminate_backends(pg_db) > 0
    answer = api.post("/edge/events", json={"events": [receipt(1, "RAW", "4", "1.00")]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["posted"] == 1


def test_a_pool_with_no_connection_to_give_answers_503(db: Engine) -> None:
    """The tenants' pool exhausted past its timeout (or the server refusing new
    connections): 503 with Retry-After, and the request goes through once it frees."""
    api = Api(db)
    app_db = as_role(db, rls.APP)
    url = app_db.url.render_as_string(hide_password=False)
    tiny = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    client = TestClient(create_app(get_settings(), tiny, as_role(db, rls.PLATFORM)))
    client.headers["Authorization"] = f"Bearer {api.tenant.api_key}"
    item = {"code": "X", "name": "Widget", "kind": "raw"}
    try:
        with tiny.connect():  # the pool's only connection, busy
            _unavailable(client.post("/api/v1/items", json=item))
        made = client.post("/api/v1/items", json=item)
        assert made.status_code == 201, made.text
    finally:
        tiny.dispose()


def _wrapped(orig: Exception, invalidated: bool = False) -> sa_exc.DBAPIError:
    """The driver's error as SQLAlchemy raises it."""
    base = psycopg.Error if isinstance(orig, psycopg.Error) else sqlite3.Error
    error = sa_exc.DBAPIError.instance(
        "SELECT 1", None, orig, base, connection_invalidated=invalidated
    )
    assert isinstance(error, sa_exc.DBAPIError)
    return error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_wrapped(psycopg.OperationalError("server closed the connection")), True),
        (_wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
        (_wrapped(psycopg.InterfaceError("the connection is closed")), True),
        (_wrapped(psycopg.DatabaseError("lost"), invalidated=True), True),
        (sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"), True),
        (_wrapped(sqlite3.OperationalError("database is locked")), True),
        # faults of the request or the code stay what they were
        (_wrapped(sqlite3.OperationalError("no such table: nothing")), False),
        (_wrapped(psycopg.errors.UniqueViolation("duplicate key")), False),
        (_wrapped(sqlite3.IntegrityError("UNIQUE constraint failed")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_only_the_database_being_away_is_transient(error: BaseException, transient: bool) -> None:
    assert outage.is_transient(error) is transient
