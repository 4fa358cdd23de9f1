"""The throwaway databases a bench makes on the test server, and whether they are gone.

A bench test records the names its own run creates (bench.portal's `_fresh_database`
goes through `throwaway_postgres`) and checks exactly those were dropped: comparing the
server's whole set of erp_bench_* databases before and after also counted any other
run's (another test worker, a bench run beside the suite)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import portal
from cloud_api.db.engine import make_engine


def record_bench_databases(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on in this test, the names of the databases the benches create."""
    made: list[str] = []
    real = portal.throwaway_postgres

    def recording(server_url: str) -> tuple[str, Callable[[], None]]:
        url, drop = real(server_url)
        made.append(str(make_url(url).database))
        return url, drop

    monkeypatch.setattr(portal, "throwaway_postgres", recording)
    return made


def still_there(server: str, names: list[str]) -> set[str]:
    """Which of `names` the server still has."""
    admin = make_engine(server)
    try:
        with admin.connect() as conn:
            found = conn.scalars(text("SELECT datname FROM pg_database"))
            return set(found) & set(names)
    finally:
        admin.dispose()
