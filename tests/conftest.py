"""Fixtures: the same integration tests run on SQLite and on PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (or a postgresql DATABASE_URL); failing that,
when the PostgreSQL binaries are installed, from a throwaway cluster started once per
session (tests/pg_cluster.py) and stopped at its end. On that server the suite creates
a throwaway database, migrates it, and drops it at the end. Without either the
PostgreSQL runs skip with a loud summary line; with CI=true they fail instead, so CI
can never pass by skipping.
"""

import atexit
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from cloud_api.api.app import create_app
from cloud_api.db.engine import make_engine, normalize_url
from cloud_api.db.migrate import upgrade
from cloud_api.services.tenants import create_tenant
from cloud_api.settings import get_settings
from tenant import security
from tenant.security import passwords
from tests import mail  # noqa: F401  (MAIL_URL for this session, before any settings)
from tests.pg_cluster import ClusterError, find_binaries, start_cluster
from tests.roles import app_engines

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The product hashes passwords with argon2-cffi's defaults (t=3, m=64 MiB, p=4: about
# 0.2-0.4 s of CPU a hash on a 2-core machine), and the suite signs up and logs in
# people over a thousand times: minutes of the run went to argon2 alone. The suite
# hashes with OWASP's minimum argon2id pair instead (m=19 MiB, t=2, p=1; about 7x
# cheaper), so every hash it stores still passes meets_owasp_minimum() and the rehash
# and dummy-hash rules still hold; tests/test_password_cost.py checks, in a fresh
# interpreter, that the product itself still uses the defaults.
TEST_ARGON2 = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
passwords._hasher = PasswordHasher(**TEST_ARGON2)
passwords.DUMMY_HASH = security.DUMMY_HASH = passwords.hash_password(uuid.uuid4().hex)
_PG_SKIPS: list[str] = []


def postgres_server_url() -> str | None:
    for name in ("TEST_DATABASE_URL", "DATABASE_URL"):
        url = os.environ.get(name, "")
        if url.startswith(("postgres://", "postgresql")):
            return normalize_url(url)
    return None


def _pg_unavailable(reason: str) -> NoReturn:
    if CI:
        pytest.fail(f"CI=true and PostgreSQL is not usable: {reason}")
    _PG_SKIPS.append(reason)
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The PostgreSQL server URL: from the environment, else a throwaway cluster."""
    server = postgres_server_url()
    if server is not None:
        yield server
        return
    if find_binaries() is None:
        _pg_unavailable(
            "set TEST_DATABASE_URL=postgresql://user@host:port/db"
            " or install the PostgreSQL server binaries (initdb, pg_ctl)"
        )
    try:
        cluster = start_cluster()
    except ClusterError as error:
        _pg_unavailable(str(error))
    atexit.register(cluster.stop)  # in case the session dies before teardown
    try:
        yield normalize_url(cluster.url)
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_server: str) -> Iterator[str]:
    server = pg_server
    name = f"erp_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        _pg_unavailable(f"cannot create a database on {server}: {error}")
    url = server.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "erp.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    """One engine (one connection pool) per test database for the whole session."""
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> Engine:
    return _engine(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), hand the property-based tests out first.

    They are the suite's longest (tens of seconds each); dealt out in file order, one
    that starts last keeps every other worker waiting at the end. A stable sort, the
    same in every worker (xdist requires one collection order); plain runs keep the
    file order."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return

    def is_property(item: pytest.Item) -> bool:
        return bool(getattr(getattr(item, "obj", None), "is_hypothesis_test", False))

    items.sort(key=lambda item: not is_property(item))


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Engine:
    return _engine(sqlite_url)


@pytest.fixture
def pg_db(pg_url: str) -> Engine:
    return _engine(pg_url)


class Api:
    """A test client bound to one fresh tenant."""

    def __init__(self, db: Engine, allow_negative_stock: bool = False) -> None:
        settings = get_settings()
        self.db = db
        self.tenant = create_tenant(
            db,
            "t-" + uuid.uuid4().hex[:12],
            "Test workshop",
            settings.api_key_pepper,
            allow_negative_stock=allow_negative_stock,
        )
        self.client = TestClient(
            create_app(settings, *app_engines(db)), raise_server_exceptions=True
        )
        self.client.headers["Authorization"] = f"Bearer {self.tenant.api_key}"

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post("/api/v1" + path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.patch("/api/v1" + path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get("/api/v1" + path, **kw)

    def create(self, path: str, body: dict[str, Any]) -> None:
        response = self.post(path, json=body)
        assert response.status_code == 201, response.text

    def events(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.post("/edge/events", json={"events": list(events)})
        assert response.status_code == 200, response.text
        return response.json()["results"]  # type: ignore[no-any-return]

    def reconcile(self) -> list[dict[str, Any]]:
        body = self.get("/reports/reconciliation").json()
        return body["differences"]  # type: ignore[no-any-return]

    def balances(self) -> dict[str, Any]:
        from decimal import Decimal

        tb = self.get("/reports/trial-balance").json()
        return {a["code"]: Decimal(a["balance"]) for a in tb["accounts"]}


@pytest.fixture
def server(pg_db: Engine) -> Iterator[Any]:
    """The cloud API served over HTTP on 127.0.0.1, on PostgreSQL as erp_app."""
    from tests.edge_harness import CloudServer

    cloud = CloudServer(pg_db)
    cloud.start()
    yield cloud
    cloud.stop()


@pytest.fixture
def api(db: Engine) -> Api:
    return Api(db)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # The session fixture fails once and pytest replays that skip for every test. Read
    # from the reports, not from _PG_SKIPS: under pytest-xdist the fixtures run in the
    # workers and only their reports reach the process that prints this summary.
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "PostgreSQL not available" in str(report.longrepr)
    ]
    if skipped:
        reason = _PG_SKIPS[0] if _PG_SKIPS else str(skipped[0].longrepr[-1])
        terminalreporter.write_sep(
            "!", f"POSTGRESQL TESTS SKIPPED ({len(skipped)}): {reason}", red=True
        )
