"""The database gone for a moment (a PostgreSQL restart or failover, a backend
terminated, the pool exhausted, SQLite busy past its timeout): 503 problem+json
`database_unavailable` with Retry-After, not a 500. The request's transaction did not
commit, so nothing of it was written and sending it again is safe: the edge re-sends
its batch (with its Idempotency-Key) after Retry-After, a browser's user tries again.

The pool recovers by itself: SQLAlchemy invalidates the whole pool on a disconnect
error, and `pool_pre_ping` (cloud_api/db/engine.py) tests every connection it hands
out, so the next request gets a fresh one once the server is back.
"""

import logging
import sqlite3

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from cloud_api.api import problems

CODE = "database_unavailable"
RETRY_AFTER_S = 2  # a restart takes seconds; the edge backs off from here with jitter

log = logging.getLogger(__name__)

# SQLite's OperationalError also means "no such table": only these are transient
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "disk i/o error")


def is_transient(error: BaseException) -> bool:
    """Whether `error` is the database being unreachable or busy for now (try again
    later), not a fault in the request or the code (which stays a 500)."""
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool had no connection to give in time; a dead connection
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return is_transient(error.orig) if error.orig is not None else False
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        # connection lost or refused, the server shutting down, a deadlock or
        # serialization failure, a statement timeout: all rolled back, all retryable
        return True
    if isinstance(error, sqlite3.OperationalError):
        return any(text in str(error).lower() for text in _SQLITE_TRANSIENT)
    return False


def unavailable() -> JSONResponse:
    response = problems.problem(
        503,
        CODE,
        "the database is unavailable for a moment; nothing was written, send the "
        "request again after Retry-After",
        retry_after_s=RETRY_AFTER_S,
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def install(app: FastAPI) -> None:
    """Answer the database's transient failures 503; any other database error goes on
    to the app's handler of the unexpected (500 internal_error), as before."""

    async def _database(_: Request, error: Exception) -> JSONResponse:
        if not is_transient(error):
            raise error
        log.warning("database unavailable: %s: %s", error.__class__.__name__, error)
        return unavailable()

    for kind in (
        sa_exc.DBAPIError,  # OperationalError, InterfaceError, ... with its driver's error
        sa_exc.TimeoutError,
        sa_exc.DisconnectionError,
        psycopg.Error,  # a driver's error that reached us unwrapped
        sqlite3.Error,
    ):
        app.add_exception_handler(kind, _database)
