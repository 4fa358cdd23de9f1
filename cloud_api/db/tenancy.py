"""The tenant a transaction runs as, for PostgreSQL's row-level security.

Every tenant table carries a `tenant_isolation` policy on
`current_setting('app.tenant_id', true)`. This module keeps the tenant of the work in
progress in a context variable and, on PostgreSQL, a `begin` listener on the engine
writes it into the transaction with `set_config('app.tenant_id', …, true)`: local to
that transaction, so a pooled connection never carries one tenant's setting into the
next checkout. With no tenant bound the setting is '' and the policies match no row.

How the tenant gets bound:
- a request: an async FastAPI dependency calls `bind()` once the credential has
  resolved the tenant; the request's sync handler runs in a worker thread with a copy
  of that context, so its transactions see the tenant;
- anything else (CLI, jobs, a credential lookup that has just found the tenant):
  `with as_tenant(tenant_id): …`, or `switch(conn, tenant_id)` inside a transaction
  already open on the platform engine.

On SQLite nothing is installed: every query filters by tenant_id itself (the isolation
suite proves it), and SQLite has no row-level security to back it.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, event, text

_current: ContextVar[uuid.UUID | None] = ContextVar("erp_tenant_id", default=None)

_SET = "SELECT set_config('app.tenant_id', %(tenant)s, true)"


def current() -> uuid.UUID | None:
    return _current.get()


def bind(tenant_id: uuid.UUID) -> None:
    """Bind the tenant for the rest of the current context (a request's task)."""
    _current.set(tenant_id)


@contextmanager
def as_tenant(tenant_id: uuid.UUID | None) -> Iterator[None]:
    token = _current.set(tenant_id)
    try:
        yield
    finally:
        _current.reset(token)


def switch(conn: Connection, tenant_id: uuid.UUID) -> None:
    """Point an open transaction at a tenant (sign-up and credential lookups on the
    platform engine, which learn the tenant halfway through)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)})


def install(engine: Engine) -> Engine:
    """Make every transaction on `engine` run as the bound tenant (PostgreSQL only)."""
    if engine.dialect.name == "postgresql" and not event.contains(engine, "begin", _on_begin):
        event.listen(engine, "begin", _on_begin)
    return engine


def _on_begin(conn: Any) -> None:
    tenant_id = _current.get()
    conn.exec_driver_sql(_SET, {"tenant": "" if tenant_id is None else str(tenant_id)})


# -- the guard where row-level security is missing (SQLite) ---------------------------


class TenantFilterMissing(AssertionError):
    """A statement reads or changes a tenant table without naming the tenant: a bug
    that on a database without row-level security could show one tenant another's
    rows. Raised before the statement runs."""


CROSS_TENANT = "cross_tenant"  # execution option: a reviewed lookup across tenants


def install_guard(engine: Engine) -> Engine:
    """Refuse every SELECT, UPDATE or DELETE on a tenant table whose WHERE (or a join's
    ON) does not constrain that table's tenant_id (the tenant table's id), unless the
    statement carries `.execution_options(cross_tenant=True)` (credential lookups and
    the cross-tenant jobs, each reviewed). Raw SQL (text) is not inspected: it lives in
    the migrations, rls.py and a few reviewed lines. The guard on SQLite; PostgreSQL
    has row-level security behind the same filters."""
    if not event.contains(engine, "before_execute", _guard):
        event.listen(engine, "before_execute", _guard)
    return engine


def _guard(
    conn: Any, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any
) -> None:
    from sqlalchemy.sql import Delete, Select, Update

    if not isinstance(clauseelement, Select | Update | Delete):
        return
    if execution_options.get(CROSS_TENANT) or clauseelement.get_execution_options().get(
        CROSS_TENANT
    ):
        return
    missing = _unfiltered_tables(clauseelement)
    if missing:
        raise TenantFilterMissing(
            f"no tenant filter on {', '.join(sorted(missing))} in: {str(clauseelement)[:300]}"
        )


def _unfiltered_tables(statement: Any) -> set[str]:
    from sqlalchemy import Table
    from sqlalchemy.sql import Join, Select, visitors

    tables: list[Any] = []
    criteria: list[Any] = []
    if isinstance(statement, Select):
        froms = list(statement.get_final_froms())
        while froms:
            item = froms.pop()
            if isinstance(item, Join):
                froms += [item.left, item.right]
                criteria.append(item.onclause)
            elif isinstance(item, Table):
                tables.append(item)
        criteria.append(statement.whereclause)
        criteria.extend(statement._having_criteria)
    else:
        tables.append(statement.table)
        criteria.append(statement.whereclause)
    named: set[tuple[str, str]] = set()
    for clause in criteria:
        if clause is None or clause is False or clause == ():
            continue
        for element in visitors.iterate(clause):
            table = getattr(element, "table", None)
            name = getattr(element, "name", None)
            if table is not None and name in ("tenant_id", "id"):
                named.add((table.name, name))
    missing = set()
    for table in tables:
        column = "id" if table.name == "tenant" else "tenant_id"
        if column in table.c and (table.name, column) not in named:
            missing.add(table.name)
    return missing
