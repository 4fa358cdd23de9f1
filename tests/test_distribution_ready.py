"""The schema can be distributed by tenant_id on Citus (DESIGN.md §3.7, §8): judged from
the migrated PostgreSQL database's catalog by cloud_api/db/distribution.py. Every
table is a tenant table or listed in GLOBAL_TABLES; every primary key, unique
constraint, unique index and exclusion constraint of a tenant table includes tenant_id;
every foreign key between tenant tables pairs tenant_id with tenant_id. The checker is
shown to catch each kind of break on a scratch schema and on the real one; the
distribution plan (what migration 0032 hands Citus, only where the extension exists)
is checked without Citus; revision 0032 goes down and up again on both databases."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest
from sqlalchemy import Connection, Engine, inspect, text

from cloud_api.db import distribution as dist
from cloud_api.db import models as m
from cloud_api.db.migrate import MIGRATIONS, downgrade, upgrade
from tests.test_invitation_migration import _superuser, fresh_url  # noqa: F401

TENANT = dist.DISTRIBUTION_COLUMN


def _revision_0032() -> ModuleType:
    path = next((MIGRATIONS / "versions").glob("0032_*.py"))
    spec = importlib.util.spec_from_file_location("revision_0032", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pg_conn(pg_db: Engine) -> Iterator[Connection]:
    """A transaction on the migrated database that is always rolled back: what a test
    breaks or adds in it is never seen by another test."""
    with pg_db.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        finally:
            transaction.rollback()


# -- the migrated schema -------------------------------------------------------------


def test_the_migrated_schema_can_be_distributed_by_tenant(pg_conn: Connection) -> None:
    schema = dist.read_schema(pg_conn)
    assert dist.problems(schema) == []
    # The catalog was read, not an empty answer: every table of the models is there,
    # classified as the models say, and every tenant table has its primary key.
    tables = {t.name: t for t in schema.tables}
    assert {t.name for t in m.SQLModel.metadata.sorted_tables} <= set(tables)
    tenant_tables = {t.name for t in m.tenant_tables()}
    assert {n for n, t in tables.items() if t.has_tenant_id} == tenant_tables
    with_pk = {k.table for k in schema.keys if k.kind == "primary key"}
    assert tenant_tables <= with_pk
    tenant_fks = [
        fk for fk in schema.foreign_keys if fk.table in tenant_tables and fk.ref_table in tables
    ]
    assert any(fk.ref_table in tenant_tables for fk in tenant_fks)  # joins were checked


def test_a_break_of_the_real_schema_is_caught(pg_conn: Connection) -> None:
    """What the test above says when a migration breaks the rule (rolled back here): a
    unique index on a column alone, a foreign key on an id alone, a table of no tenant
    that nobody listed."""
    pg_conn.execute(text("CREATE UNIQUE INDEX uq_item_gtin_anywhere ON item (gtin)"))
    pg_conn.execute(text("CREATE UNIQUE INDEX uq_item_id_anywhere ON item (id)"))
    pg_conn.execute(
        text(
            "ALTER TABLE stock_move ADD CONSTRAINT fk_move_item_anywhere"
            " FOREIGN KEY (item_id) REFERENCES item (id)"
        )
    )
    pg_conn.execute(text("CREATE TABLE plan_price (plan text PRIMARY KEY, yuan numeric)"))
    found = dist.problems(dist.read_schema(pg_conn))
    assert len(found) == 4, found
    for table, name in (
        ("item", "uq_item_gtin_anywhere"),
        ("item", "uq_item_id_anywhere"),
        ("stock_move", "fk_move_item_anywhere"),
    ):
        assert any(f.startswith(f"{table}: ") and name in f for f in found), (name, found)
    assert any(f.startswith("plan_price: no tenant_id and not in GLOBAL_TABLES") for f in found)


# -- the checker on a scratch schema that breaks every rule --------------------------

SCRATCH_TABLES = """
CREATE TABLE {s}.tenant (id uuid PRIMARY KEY);
CREATE TABLE {s}.migration_log (version text PRIMARY KEY);
CREATE TABLE {s}.item (
  tenant_id uuid NOT NULL REFERENCES {s}.tenant (id), id uuid, code text, during tsrange,
  CONSTRAINT item_pkey PRIMARY KEY (tenant_id, id),
  CONSTRAINT uq_item_code UNIQUE (tenant_id, code),
  CONSTRAINT uq_item_id_tenant UNIQUE (id, tenant_id));
CREATE UNIQUE INDEX uq_item_live ON {s}.item (tenant_id, code) WHERE during IS NULL;
CREATE UNIQUE INDEX uq_item_code_anywhere ON {s}.item (code);
CREATE UNIQUE INDEX uq_item_code_lower ON {s}.item (lower(code));
CREATE TABLE {s}.booking (
  tenant_id uuid NOT NULL, id uuid PRIMARY KEY, item_id uuid, during tsrange,
  CONSTRAINT ex_booking_overlap EXCLUDE USING gist (during WITH &&),
  CONSTRAINT fk_booking_item_fine FOREIGN KEY (tenant_id, item_id)
    REFERENCES {s}.item (tenant_id, id),
  CONSTRAINT fk_booking_item_crossed FOREIGN KEY (tenant_id, item_id)
    REFERENCES {s}.item (id, tenant_id),
  CONSTRAINT fk_booking_item_nulls FOREIGN KEY (tenant_id, item_id)
    REFERENCES {s}.item (tenant_id, id) ON DELETE SET NULL,
  CONSTRAINT fk_booking_item_cascades FOREIGN KEY (tenant_id, item_id)
    REFERENCES {s}.item (tenant_id, id) ON UPDATE CASCADE,
  CONSTRAINT fk_booking_tenant FOREIGN KEY (tenant_id) REFERENCES {s}.tenant (id),
  version text REFERENCES {s}.migration_log (version));
CREATE UNIQUE INDEX uq_booking_id ON {s}.booking (id);
CREATE TABLE {s}.loose (tenant_id uuid, id uuid);
CREATE TABLE {s}.line (
  tenant_id uuid NOT NULL, id uuid, booking_id uuid,
  other_tenant uuid REFERENCES public.tenant (id),
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT fk_line_booking_by_id FOREIGN KEY (booking_id) REFERENCES {s}.booking (id));
CREATE TABLE {s}.price_list (code text PRIMARY KEY);
CREATE TABLE {s}.item_flag (
  code text PRIMARY KEY, tenant uuid, item uuid,
  CONSTRAINT fk_flag_item FOREIGN KEY (tenant, item) REFERENCES {s}.item (tenant_id, id));
CREATE TABLE {s}.settings (tenant_id uuid NOT NULL PRIMARY KEY);
"""

SCRATCH_GLOBALS = {
    "tenant": dist.REFERENCE,
    "item_flag": dist.REFERENCE,
    "settings": dist.REFERENCE,  # has tenant_id: wrongly listed
    "ghost": dist.REFERENCE,  # listed, not there
    "migration_log": dist.COORDINATOR,
}

# (table, what names the finding): one finding each, nothing else
SCRATCH_FINDINGS = [
    ("booking", "primary key booking_pkey (id)"),
    ("booking", "exclusion constraint ex_booking_overlap"),
    ("booking", "unique index uq_booking_id"),
    ("booking", "fk_booking_item_crossed"),
    ("booking", "fk_booking_item_nulls (tenant_id, item_id) -> item: ON DELETE SET NULL"),
    ("booking", "fk_booking_item_cascades (tenant_id, item_id) -> item: ON UPDATE CASCADE"),
    ("booking", "booking_version_fkey (version) -> migration_log: references a table that"),
    ("item", "unique index uq_item_code_anywhere (code)"),
    ("item", "unique index uq_item_code_lower ((expression))"),
    ("loose", "tenant_id may be NULL"),
    ("line", "fk_line_booking_by_id (booking_id) -> booking: joins two tenant tables"),
    ("line", "line_other_tenant_fkey (other_tenant) -> public.tenant: references a table outside"),
    ("price_list", "no tenant_id and not in GLOBAL_TABLES"),
    ("item_flag", "fk_flag_item (tenant, item) -> item: a global table cannot reference"),
    ("settings", "has tenant_id but is listed in GLOBAL_TABLES"),
    ("ghost", "listed in GLOBAL_TABLES but not in the schema"),
]


def test_the_checker_flags_each_kind_of_break(pg_conn: Connection) -> None:
    scratch = f"dist_{uuid.uuid4().hex[:10]}"
    pg_conn.execute(text(f"CREATE SCHEMA {scratch}"))
    pg_conn.execute(text(SCRATCH_TABLES.format(s=scratch)))
    found = dist.problems(dist.read_schema(pg_conn, scratch), SCRATCH_GLOBALS)
    for table, what in SCRATCH_FINDINGS:
        hits = [f for f in found if f.startswith(f"{table}: ") and what in f]
        assert len(hits) == 1, (table, what, found)
    assert len(found) == len(SCRATCH_FINDINGS), found
    # what keeps the rules is never named: the keys with tenant_id (the partial unique
    # index too), the foreign keys pairing it, a tenant table's key to the tenants
    for fine in ("item_pkey", "uq_item_code ", "uq_item_live", "uq_item_id_tenant"):
        assert not [f for f in found if fine in f + " "], (fine, found)
    assert not [f for f in found if "fk_booking_item_fine" in f or "fk_booking_tenant" in f]
    with pytest.raises(dist.NotDistributable, match="uq_item_code_anywhere"):
        dist.plan(dist.read_schema(pg_conn, scratch), global_tables=SCRATCH_GLOBALS)


# -- the plan: what migration 0032 hands Citus ---------------------------------------


def _table(name: str, tenant: bool = True) -> dist.Table:
    return dist.Table(name, has_tenant_id=tenant, tenant_id_not_null=tenant)


def _fk(table: str, ref: str, tenant: bool = True) -> dist.ForeignKey:
    cols = (TENANT, f"{ref}_id") if tenant else ("tenant_id",)
    refs = (TENANT, "id") if tenant else ("id",)
    return dist.ForeignKey(table, f"fk_{table}_{ref}", cols, ref, refs, "a", "a")


UNIT_GLOBALS = {
    "tenant": dist.REFERENCE,
    "app_user": dist.REFERENCE,
    "alembic_version": dist.COORDINATOR,
    "added_later": dist.REFERENCE,  # a later revision's table: not there yet
}
UNIT_SCHEMA = dist.Schema(
    tables=(
        _table("alembic_version", tenant=False),
        _table("app_user", tenant=False),
        _table("tenant", tenant=False),
        _table("account"),
        _table("journal_line"),
        _table("journal_entry"),
        _table("location"),
    ),
    keys=(),
    foreign_keys=(
        _fk("journal_line", "journal_entry"),
        _fk("journal_line", "account"),
        _fk("account", "tenant", tenant=False),
        _fk("journal_entry", "tenant", tenant=False),
        _fk("location", "location"),  # a parent location: a self-reference
    ),
)


def test_the_plan_copies_global_tables_then_distributes_parents_first() -> None:
    plan = dist.plan(UNIT_SCHEMA, global_tables=UNIT_GLOBALS)
    assert plan.reference == ("app_user", "tenant")  # not the coordinator's own table
    assert plan.distributed == ("account", "journal_entry", "journal_line", "location")
    calls = plan.calls()
    assert [(sql.split("(")[0], p["t"]) for sql, p in calls] == [
        ("SELECT create_reference_table", "app_user"),
        ("SELECT create_reference_table", "tenant"),
        ("SELECT create_distributed_table", "account"),
        ("SELECT create_distributed_table", "journal_entry"),
        ("SELECT create_distributed_table", "journal_line"),
        ("SELECT create_distributed_table", "location"),
    ]
    distributed = [p for sql, p in calls if "create_distributed_table" in sql]
    assert {p["col"] for p in distributed} == {TENANT}
    assert "anchor" not in distributed[0]  # the first sets the co-location group
    assert {p["anchor"] for p in distributed[1:]} == {"account"}


def test_the_plan_leaves_out_what_citus_has_and_refuses_a_bad_schema() -> None:
    again = dist.plan(UNIT_SCHEMA, frozenset({"tenant", "account"}), global_tables=UNIT_GLOBALS)
    assert again.reference == ("app_user",)
    assert again.distributed == ("journal_entry", "journal_line", "location")
    unlisted = dist.Schema((*UNIT_SCHEMA.tables, _table("plans", tenant=False)), (), ())
    with pytest.raises(dist.NotDistributable, match="plans: no tenant_id"):
        dist.plan(unlisted, global_tables=UNIT_GLOBALS)
    loop = dist.Schema((_table("a"), _table("b")), (), (_fk("a", "b"), _fk("b", "a")))
    with pytest.raises(dist.NotDistributable, match="cycle"):
        dist.plan(loop, global_tables={})


def test_the_real_schema_plan_places_every_table_once_after_its_parents(
    pg_conn: Connection,
) -> None:
    schema = dist.read_schema(pg_conn)
    plan = dist.plan(schema)
    tenant = [t.name for t in schema.tables if t.has_tenant_id]
    assert sorted(plan.distributed) == sorted(tenant)
    present = {t.name for t in schema.tables}
    wanted = {n for n, where in dist.GLOBAL_TABLES.items() if where == dist.REFERENCE}
    assert set(plan.reference) == wanted & present
    order = [*plan.reference, *plan.distributed]
    for fk in schema.foreign_keys:
        if fk.table != fk.ref_table:
            assert order.index(fk.ref_table) < order.index(fk.table), fk


def test_without_citus_the_migration_step_does_nothing(
    pg_conn: Connection, sqlite_db: Engine
) -> None:
    assert dist.citus_installed(pg_conn) is False
    assert dist.distribute(pg_conn) is None
    assert pg_conn.scalar(text("SELECT to_regclass('pg_dist_partition')")) is None
    with sqlite_db.connect() as conn:
        assert dist.distribute(conn) is None


STUBS = """
CREATE TABLE {s}.citus_call (n serial, fn text, tbl text, col text, colocate text);
CREATE FUNCTION {s}.create_reference_table(t regclass) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO {s}.citus_call (fn, tbl) VALUES ('reference', t::text) $$;
CREATE FUNCTION {s}.create_distributed_table(
    t regclass, col text, colocate_with text DEFAULT 'default') RETURNS void LANGUAGE sql
  AS $$ INSERT INTO {s}.citus_call (fn, tbl, col, colocate)
        VALUES ('distributed', t::text, col, colocate_with) $$;
"""


def test_with_citus_the_migration_step_makes_the_planned_calls(
    pg_conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Citus's two functions stood in for by recorders (no Citus here): the SQL the
    step runs calls them with the plan's tables, in the plan's order."""
    stubs = f"citus_{uuid.uuid4().hex[:10]}"
    pg_conn.execute(text(f"CREATE SCHEMA {stubs}"))
    pg_conn.execute(text(STUBS.format(s=stubs)))
    pg_conn.execute(text(f"SET LOCAL search_path TO {stubs}, public"))
    monkeypatch.setattr(dist, "citus_installed", lambda conn: True)
    monkeypatch.setattr(dist, "distributed_already", lambda conn: frozenset())
    plan = dist.distribute(pg_conn)
    assert plan is not None and plan == dist.plan(dist.read_schema(pg_conn))
    made = pg_conn.execute(
        text(f"SELECT fn, tbl, col, colocate FROM {stubs}.citus_call ORDER BY n")
    )
    anchor = plan.distributed[0]
    assert [tuple(r) for r in made] == [
        *(("reference", t, None, None) for t in plan.reference),
        ("distributed", anchor, TENANT, "default"),
        *(("distributed", t, TENANT, anchor) for t in plan.distributed[1:]),
    ]


# -- revision 0032 down and up -------------------------------------------------------


def _unique_indexes(conn: Connection, table: str) -> dict[str, tuple[str, ...]]:
    return {
        str(ix["name"]): tuple(str(c) for c in ix["column_names"])
        for ix in inspect(conn).get_indexes(table)
        if ix["unique"]
    }


def test_revision_0032_goes_down_and_up(fresh_url: str) -> None:  # noqa: F811
    """Down to 0031 the credential lookups are unique across tenants again (and on
    PostgreSQL the checker names exactly them); back at head each is a plain index
    and the invitation id is unique per tenant."""
    revision = _revision_0032()
    db = _superuser(fresh_url)
    try:
        downgrade(fresh_url, "0031")
        with db.connect() as conn:
            for table, unique, columns, _ in revision.LOOKUPS:
                assert _unique_indexes(conn, table)[unique] == tuple(columns)
            assert _unique_indexes(conn, "invitation")["uq_invitation_id"] == ("id",)
            if conn.dialect.name == "postgresql":
                found = dist.problems(dist.read_schema(conn))
                named = {u for _, u, _, _ in revision.LOOKUPS} | {"uq_invitation_id"}
                assert len(found) == len(named), found
                assert all(any(f" {u} (" in f for f in found) for u in named), found
        upgrade(fresh_url)
        with db.connect() as conn:
            for table, unique, _, plain in revision.LOOKUPS:
                assert unique not in _unique_indexes(conn, table)
                assert plain in {str(ix["name"]) for ix in inspect(conn).get_indexes(table)}
            assert _unique_indexes(conn, "invitation")["uq_invitation_id"] == (TENANT, "id")
            if conn.dialect.name == "postgresql":
                assert dist.problems(dist.read_schema(conn)) == []
    finally:
        db.dispose()


def test_the_command_checks_the_schema_and_says_what_it_did(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dist.main([pg_url]) == 0
    assert "citus is not installed: nothing done" in capsys.readouterr().out
    assert dist.main([]) == 2
