"""Distributing the schema by tenant (Citus), checked on the live catalog.

DESIGN.md §3.7 and §8: past one PostgreSQL, the tenant tables are hash-distributed by
`tenant_id` and the global tables are copied to every node. Citus can do that only if
- every primary key, unique constraint, unique index and exclusion constraint of a
  tenant table includes `tenant_id` (a shard enforces uniqueness only among its own
  rows);
- every foreign key between two tenant tables pairs `tenant_id` with `tenant_id` (both
  rows then live on the same shard), and no action of one would null or rewrite it;
- a tenant table may reference a global (reference) table, never the other way round;
- `tenant_id` is NOT NULL (a row without one belongs to no shard).

`GLOBAL_TABLES` is the one list of the tables without a `tenant_id`: every table of
the schema is either a tenant table or named there, and `problems()` says so when one
is neither. `problems()` reads PostgreSQL's catalog (pg_class, pg_index,
pg_constraint), so it judges the schema the migrations made, not the models.
tests/test_distribution_ready.py runs it on the migrated database; migration 0032
runs it before distributing and refuses a schema that fails it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, text

DISTRIBUTION_COLUMN = "tenant_id"

REFERENCE = "reference"  # one copy on every node (Citus create_reference_table)
COORDINATOR = "coordinator"  # a plain table on the coordinator, never joined or referenced

# The global tables, each with where it lives once the schema is distributed. A new
# table without tenant_id must be added here (tests/test_distribution_ready.py fails
# until it is). Plans, limits and roles are code (tenant/), not tables.
GLOBAL_TABLES: Mapping[str, str] = {
    "tenant": REFERENCE,  # the tenants themselves: every tenant table references it
    "app_user": REFERENCE,  # a login spans tenants (memberships)
    "tenant_deletion": REFERENCE,  # what is left of a purged tenant
    "alembic_version": COORDINATOR,  # the migrations' bookkeeping
}

# ON DELETE / ON UPDATE actions (pg_constraint.confdeltype / confupdtype) that would
# write the referencing columns, tenant_id among them: Citus refuses them there.
_NULLING = {"n": "SET NULL", "d": "SET DEFAULT"}
_REWRITING = {**_NULLING, "c": "CASCADE"}


@dataclass(frozen=True)
class Table:
    name: str
    has_tenant_id: bool
    tenant_id_not_null: bool


@dataclass(frozen=True)
class Key:
    """A unique or exclusion index of a table: a primary key, a unique constraint, a
    bare unique index. `columns` are the key columns (None for an expression)."""

    table: str
    name: str
    kind: str
    columns: tuple[str | None, ...]


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str  # pg_constraint.confdeltype: a, r, c, n, d
    on_update: str


@dataclass(frozen=True)
class Schema:
    tables: tuple[Table, ...]
    keys: tuple[Key, ...]
    foreign_keys: tuple[ForeignKey, ...]


_TABLES = """
SELECT c.relname AS name, a.attname IS NOT NULL AS has_tenant_id,
       coalesce(a.attnotnull, false) AS tenant_id_not_null
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a
  ON a.attrelid = c.oid AND a.attname = :column AND NOT a.attisdropped
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""

_KEYS = """
SELECT t.relname AS table_name, i.relname AS name,
       CASE WHEN x.indisprimary THEN 'primary key'
            WHEN con.contype = 'u' THEN 'unique constraint'
            WHEN x.indisexclusion THEN 'exclusion constraint'
            ELSE 'unique index' END AS kind,
       ARRAY(SELECT a.attname
             FROM generate_series(0, x.indnkeyatts - 1) AS k(pos)
             LEFT JOIN pg_attribute a
               ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k.pos] AND a.attnum > 0
             ORDER BY k.pos) AS columns
FROM pg_index x
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.contype IN ('p', 'u', 'x')
WHERE n.nspname = :schema AND (x.indisunique OR x.indisexclusion)
ORDER BY t.relname, i.relname
"""

_FOREIGN_KEYS = """
SELECT t.relname AS table_name, c.conname AS name,
       CASE WHEN rn.nspname = :schema THEN r.relname
            ELSE rn.nspname || '.' || r.relname END AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
             ORDER BY k.pos) AS columns,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num
             ORDER BY k.pos) AS ref_columns,
       c.confdeltype AS on_delete, c.confupdtype AS on_update
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class r ON r.oid = c.confrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE c.contype = 'f' AND n.nspname = :schema
ORDER BY t.relname, c.conname
"""


def read_schema(conn: Connection, schema: str = "public") -> Schema:
    """The tables, unique keys and foreign keys of `schema`, from PostgreSQL's catalog."""
    params = {"schema": schema, "column": DISTRIBUTION_COLUMN}
    tables = tuple(
        Table(r.name, r.has_tenant_id, r.tenant_id_not_null)
        for r in conn.execute(text(_TABLES), params)
    )
    keys = tuple(
        Key(r.table_name, r.name, r.kind, tuple(r.columns))
        for r in conn.execute(text(_KEYS), params)
    )
    foreign_keys = tuple(
        ForeignKey(
            r.table_name,
            r.name,
            tuple(r.columns),
            r.ref_table,
            tuple(r.ref_columns),
            str(r.on_delete),
            str(r.on_update),
        )
        for r in conn.execute(text(_FOREIGN_KEYS), params)
    )
    return Schema(tables, keys, foreign_keys)


def problems(schema: Schema, global_tables: Mapping[str, str] = GLOBAL_TABLES) -> list[str]:
    """Why `schema` cannot be distributed by tenant_id, one line per finding ([] when
    it can)."""
    tenant = {t.name for t in schema.tables if t.has_tenant_id}
    found = (
        _classification(schema, global_tables)
        + [
            f"{t.name}: {DISTRIBUTION_COLUMN} may be NULL (a row of no tenant has no shard)"
            for t in schema.tables
            if t.has_tenant_id and not t.tenant_id_not_null
        ]
        + [
            f"{k.table}: {k.kind} {k.name} ({_names(k.columns)}) lacks {DISTRIBUTION_COLUMN}"
            for k in schema.keys
            if k.table in tenant and DISTRIBUTION_COLUMN not in k.columns
        ]
    )
    for fk in schema.foreign_keys:
        found += _foreign_key_problems(fk, tenant, global_tables)
    return found


def _classification(schema: Schema, global_tables: Mapping[str, str]) -> list[str]:
    names = {t.name for t in schema.tables}
    found = [
        f"{t.name}: no {DISTRIBUTION_COLUMN} and not in GLOBAL_TABLES (cloud_api/db/"
        "distribution.py): key it by tenant, or list it as a global table"
        for t in schema.tables
        if not t.has_tenant_id and t.name not in global_tables
    ]
    found += [
        f"{t.name}: has {DISTRIBUTION_COLUMN} but is listed in GLOBAL_TABLES"
        for t in schema.tables
        if t.has_tenant_id and t.name in global_tables
    ]
    found += [
        f"{name}: listed in GLOBAL_TABLES but not in the schema"
        for name in sorted(global_tables)
        if name not in names
    ]
    return found


def _foreign_key_problems(
    fk: ForeignKey, tenant: set[str], global_tables: Mapping[str, str]
) -> list[str]:
    where = f"{fk.table}: foreign key {fk.name} ({_names(fk.columns)}) -> {fk.ref_table}"
    found = []
    if global_tables.get(fk.ref_table) == COORDINATOR:
        found.append(f"{where}: references a table that stays on the coordinator")
    if "." in fk.ref_table:  # read_schema names a table of another schema so
        found.append(f"{where}: references a table outside the schema")
    if fk.table in global_tables and fk.ref_table in tenant:
        found.append(f"{where}: a global table cannot reference a tenant table")
    if fk.table in tenant and fk.ref_table in tenant:
        paired = any(
            col == ref == DISTRIBUTION_COLUMN
            for col, ref in zip(fk.columns, fk.ref_columns, strict=True)
        )
        if not paired:
            found.append(f"{where}: joins two tenant tables without pairing {DISTRIBUTION_COLUMN}")
    if fk.table in tenant and DISTRIBUTION_COLUMN in fk.columns:
        if fk.on_delete in _NULLING:
            found.append(f"{where}: ON DELETE {_NULLING[fk.on_delete]} would write tenant_id")
        if fk.on_update in _REWRITING:
            found.append(f"{where}: ON UPDATE {_REWRITING[fk.on_update]} would write tenant_id")
    return found


def _names(columns: Iterable[str | None]) -> str:
    return ", ".join(c if c is not None else "(expression)" for c in columns)


# -- the distribution itself (Citus) -----------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to hand Citus, in order: the reference tables, then the tenant tables,
    each after the tables it references (Citus distributes a table only once what its
    foreign keys point at is distributed or a reference table). All tenant tables are
    co-located with the first, so a join or foreign key on tenant_id stays on one
    node."""

    reference: tuple[str, ...]
    distributed: tuple[str, ...]

    def calls(self) -> list[tuple[str, dict[str, str]]]:
        """(SQL, parameters) for each Citus call."""
        out = [
            ("SELECT create_reference_table(CAST(:t AS regclass))", {"t": name})
            for name in self.reference
        ]
        for position, name in enumerate(self.distributed):
            if position == 0:
                sql = "SELECT create_distributed_table(CAST(:t AS regclass), :col)"
                out.append((sql, {"t": name, "col": DISTRIBUTION_COLUMN}))
            else:
                sql = (
                    "SELECT create_distributed_table(CAST(:t AS regclass), :col,"
                    " colocate_with => :anchor)"
                )
                anchor = self.distributed[0]
                out.append((sql, {"t": name, "col": DISTRIBUTION_COLUMN, "anchor": anchor}))
        return out


class NotDistributable(Exception):
    """The schema breaks the rules above; the message lists every finding."""


def plan(
    schema: Schema,
    done: frozenset[str] = frozenset(),
    global_tables: Mapping[str, str] = GLOBAL_TABLES,
) -> Plan:
    """The tables to distribute and to copy to every node, leaving out those in `done`
    (already known to Citus), so the plan can be run again after a later migration adds
    a table. Raises NotDistributable for a schema that breaks the rules."""
    present = {t.name for t in schema.tables}
    # a global table a later revision creates is not there yet when this one runs
    found = problems(schema, {n: p for n, p in global_tables.items() if n in present})
    if found:
        raise NotDistributable("the schema cannot be distributed by tenant:\n" + "\n".join(found))
    copied = [t.name for t in schema.tables if global_tables.get(t.name) == REFERENCE]
    tenant = [t.name for t in schema.tables if t.has_tenant_id]
    return Plan(
        tuple(n for n in _parents_first(copied, schema.foreign_keys) if n not in done),
        tuple(n for n in _parents_first(tenant, schema.foreign_keys) if n not in done),
    )


def _parents_first(names: list[str], foreign_keys: Iterable[ForeignKey]) -> list[str]:
    """`names` ordered so each comes after those of them it references (alphabetical
    among equals, so the order is the same on every run); self-references ignored."""
    parents: dict[str, set[str]] = {n: set() for n in names}
    for fk in foreign_keys:
        if fk.table in parents and fk.ref_table in parents and fk.ref_table != fk.table:
            parents[fk.table].add(fk.ref_table)
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(names):
        ready = sorted(n for n in names if n not in placed and parents[n] <= placed)
        if not ready:
            cycle = sorted(n for n in names if n not in placed)
            raise NotDistributable(f"foreign keys form a cycle among {cycle}")
        ordered.append(ready[0])
        placed.add(ready[0])
    return ordered


def citus_installed(conn: Connection) -> bool:
    return conn.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")) == 1


def distributed_already(conn: Connection) -> frozenset[str]:
    """The tables Citus already knows (distributed or reference), by name."""
    rows = conn.scalars(text("SELECT logicalrelid::regclass::text FROM pg_dist_partition"))
    return frozenset(name.rsplit(".", 1)[-1].strip('"') for name in rows)


def distribute(conn: Connection, schema: str = "public") -> Plan | None:
    """On a database with the citus extension: distribute the tenant tables by
    tenant_id and copy the reference tables to every node (those not done yet), after
    checking the schema allows it. Elsewhere: nothing (None). A later migration that
    adds a table calls this again at its end."""
    if conn.dialect.name != "postgresql" or not citus_installed(conn):
        return None
    todo = plan(read_schema(conn, schema), distributed_already(conn))
    # Citus refuses to distribute a table with triggers (the ledgers' append-only
    # trigger, rls.append_only) unless told that they are safe: they read only the row
    # they fire for, which lives on the same shard.
    conn.execute(text("SET LOCAL citus.enable_unsafe_triggers TO on"))
    # Alembic runs the later revisions in this same transaction: DDL on distributed
    # tables after distributing them in one transaction needs sequential shard access.
    conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    for sql, params in todo.calls():
        conn.execute(text(sql), params)
    return todo


def main(argv: list[str] | None = None) -> int:
    """`python -m cloud_api.db.distribution OWNER_DATABASE_URL`: check the schema and,
    where citus is installed, distribute what is not yet (a database that passed
    revision 0032 before the extension was created). Prints each finding or call."""
    import sys

    from cloud_api.db.engine import make_engine

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cloud_api.db.distribution DATABASE_URL", file=sys.stderr)
        return 2
    engine = make_engine(args[0])
    try:
        with engine.begin() as conn:
            found = problems(read_schema(conn))
            for line in found:
                print(line)
            if found:
                return 1
            done = distribute(conn)
    finally:
        engine.dispose()
    if done is None:
        print("schema distributable by tenant_id; citus is not installed: nothing done")
        return 0
    for sql, params in done.calls():
        print(sql, params)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
