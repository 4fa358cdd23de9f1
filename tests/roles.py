"""The database roles the product runs as. On PostgreSQL the app's requests run as
erp_app (row-level security applies) and its credential lookups as erp_platform, while
the tests set up and check rows through the superuser's engine; on SQLite all three
are one engine."""

from sqlalchemy import Engine

from cloud_api.db import rls, tenancy
from cloud_api.db.engine import make_engine

_ENGINES: dict[str, Engine] = {}


def as_role(db: Engine, role: str) -> Engine:
    if db.dialect.name != "postgresql":
        return db
    url = db.url.set(username=role).render_as_string(hide_password=False)
    if url not in _ENGINES:
        _ENGINES[url] = tenancy.install(make_engine(url))
    return _ENGINES[url]


def app_engines(db: Engine) -> tuple[Engine, Engine]:
    """(the tenants' engine, the platform's) for create_app."""
    return as_role(db, rls.APP), as_role(db, rls.PLATFORM)
