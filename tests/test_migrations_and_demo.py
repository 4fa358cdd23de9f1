"""The schema comes only from the migrations, identically on both databases; the
demo runs end to end and its books reconcile."""

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlmodel import SQLModel

import cloud_api.db.models  # noqa: F401
from cloud_api.db import models as m
from cloud_api.db.engine import make_engine
from erp import demo
from erp.demo import run_demo
from tests.portal_helpers import Portal


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
    with make_engine(url).connect() as conn:
        assert conn.scalar(text("SELECT state FROM subscription")) == "trialing"
        assert conn.scalar(text("SELECT role FROM membership")) == "owner"
        device = conn.execute(text("SELECT name, revoked_at FROM device")).one()
        assert tuple(device) == ("edge-oak-1", None)
        senders = set(conn.scalars(text("SELECT DISTINCT posted_by FROM edge_event")))
        assert None not in senders
        assert any(s.startswith("device:") for s in senders), senders
    _the_demo_portal_shows_the_day(url)


def _figure(html: str, card_id: str) -> Decimal:
    """The main figure of a dashboard card, as a number (¥1,234.50 → 1234.50)."""
    found = re.search(rf'id="{card_id}"><h3>.*?</h3>\s*<div class="figure">(.*?)</div>', html, re.S)
    assert found, f"no card {card_id}"
    return Decimal(re.sub(r"[^0-9.\-]", "", found.group(1)))


def _the_demo_portal_shows_the_day(url: str) -> None:
    """The owner the demo printed signs in and the dashboard shows the day the demo
    posted: the stock value of the books, the day's sales and output, nothing held, the
    books-check clean."""
    engine = make_engine(url)
    je, jl = m.SQLModel.metadata.tables["journal_entry"], m.SQLModel.metadata.tables["journal_line"]
    with engine.connect() as conn:
        tenant_id = conn.scalar(text("SELECT id FROM tenant"))
        tenant_id = tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(tenant_id)
        stock, revenue = (
            conn.scalar(
                select(func.sum(jl.c.debit) - func.sum(jl.c.credit)).where(
                    jl.c.tenant_id == tenant_id, jl.c.account_code.in_(codes)
                )
            )
            for codes in (["1403", "1405", "5001"], ["6001"])
        )
        assert conn.scalar(select(func.count()).where(je.c.tenant_id == tenant_id)) > 10
    owner = Portal(engine)
    assert owner.log_in(demo.OWNER_EMAIL, demo.OWNER_PASSWORD).status_code == 303
    page = owner.get("/")
    assert page.status_code == 200
    html = page.text
    assert _figure(html, "stock-total") == stock > 0
    assert _figure(html, "revenue") == -revenue > 0  # revenue is a credit
    assert _figure(html, "output-month") > 0
    assert re.search(r'id="books">.*?<div class="figure ok">', html, re.S), html
    engine.dispose()
