"""The schema comes only from the migrations, identically on both databases; the
demo runs end to end and its books reconcile."""

import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import cloud_api.db.models  # noqa: F401
from cloud_api.db import models as m
from cloud_api.demo import run_demo


def test_migrations_match_the_models(db: Any) -> None:
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_every_tenant_table_keys_on_tenant_id() -> None:
    for table in m.tenant_tables():
        pk = [c.name for c in table.primary_key.columns]
        assert pk[0] == "tenant_id", table.name
        for fk in table.foreign_key_constraints:
            cols = [c.name for c in fk.columns]
            if "tenant_id" not in fk.referred_table.c:
                continue  # a global table (a login, app_user, spans tenants)
            assert "tenant_id" in cols, f"{table.name}: {fk.name} lacks tenant_id"
        for constraint in table.constraints:
            if constraint.__class__.__name__ == "UniqueConstraint":
                assert "tenant_id" in [c.name for c in constraint.columns], table.name


def test_demo_posts_the_day_and_reconciles(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    port = 20000 + uuid.uuid4().int % 20000
    assert run_demo(url, port, serve_after=False) == 0
    printed = capsys.readouterr().out
    # The summary shows the cost per work order (demo._cost_table), a row for each order.
    assert "cost per work order" in printed, printed
    cost_table = printed[printed.index("cost per work order") :]
    rows = [line.split() for line in cost_table.splitlines() if "WO-" in line]
    assert [row[1] for row in rows] == ["WO-LEG-001", "WO-TBL-001"], cost_table
    # The tenant came through sign-up (a trial, its owner) and the edge through a code.
    assert "signed up: tenant" in printed and "enrolled with a one-time code" in printed
    from sqlalchemy import text

    from cloud_api.db.engine import make_engine

    with make_engine(url).connect() as conn:
        assert conn.scalar(text("SELECT state FROM subscription")) == "trialing"
        assert conn.scalar(text("SELECT role FROM membership")) == "owner"
        device = conn.execute(text("SELECT name, revoked_at FROM device")).one()
        assert tuple(device) == ("edge-oak-1", None)
        senders = set(conn.scalars(text("SELECT DISTINCT posted_by FROM edge_event")))
        assert None not in senders
        assert any(s.startswith("device:") for s in senders), senders
