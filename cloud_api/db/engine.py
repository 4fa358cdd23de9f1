"""Database engine creation (SQLite embedded default, PostgreSQL for real)."""

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event


def normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kw: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not url.startswith("sqlite://:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (IMMEDIATE, so writers queue rather
            # than fail on lock upgrade) and enforce foreign keys.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        # no row-level security here: every statement must name its tenant itself
        from cloud_api.db.tenancy import install_guard

        return install_guard(engine)
    kw = {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True, **kw}
    return create_engine(url, **kw)
