"""The journal's day totals (account_day, receivable_day): kept in the transaction that
posts the lines, equal to them day by day (the books-check says so, and says when they
are not), and filled from the posted lines by migration 0019 on a database that had
entries before it."""

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, and_, func, select, text, update

from cloud_api.db import models as m
from cloud_api.db.engine import make_engine
from cloud_api.db.migrate import downgrade, upgrade
from tests.conftest import Api
from tests.factory import completion, issue, labour, receipt, reversal, setup_workshop, shipment

DAY = 24 * 60
T = m.SQLModel.metadata.tables


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database of its own, migrated to head: this test migrates it down and up."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'days.sqlite3'}"
        upgrade(url)
        yield url
        return
    server: str = request.getfixturevalue("pg_server")
    name = f"erp_days_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _days(engine: Engine, tenant_id: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: [
                tuple(r)
                for r in conn.execute(
                    select(T[name])
                    .where(T[name].c.tenant_id == tenant_id)
                    .order_by(*T[name].primary_key)
                )
            ]
            for name in ("account_day", "receivable_day", "output_day")
        }


def _lines_by_day(
    engine: Engine, tenant_id: uuid.UUID
) -> dict[tuple[str, date], tuple[Decimal, Decimal]]:
    je, jl = T["journal_entry"], T["journal_line"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(jl.c.account_code, je.c.entry_date, func.sum(jl.c.debit), func.sum(jl.c.credit))
            .join(je, and_(je.c.tenant_id == jl.c.tenant_id, je.c.id == jl.c.entry_id))
            .where(jl.c.tenant_id == tenant_id)
            .group_by(jl.c.account_code, je.c.entry_date)
        )
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def _post_a_week(api: Api) -> None:
    setup_workshop(api)
    sold = shipment(5 * DAY + 30, "TBL", "2", "300")
    results = api.events(
        receipt(0, "RAW", "100", "4.50"),
        receipt(10, "BOLT", "50", "0.10"),
        issue(DAY, "RAW", "40"),
        issue(DAY + 5, "BOLT", "20"),
        labour(2 * DAY, "6"),
        completion(3 * DAY, "10"),
        shipment(4 * DAY, "TBL", "3", "250"),
        sold,
        receipt(DAY - 60, "RAW", "10", "5.10"),  # late: revalues the day-1 issue
    )
    assert {r["status"] for r in results} == {"posted"}, results
    assert api.events(reversal(6 * DAY, sold["event_id"]))[0]["status"] == "posted"
    again = completion(6 * DAY + 10, "2", wo="WO2")
    results = api.events(issue(6 * DAY + 5, "RAW", "10", wo="WO2"), again)
    assert [r["status"] for r in results] == ["posted", "posted"], results
    assert api.events(reversal(6 * DAY + 20, again["event_id"]))[0]["status"] == "posted"


def test_day_totals_follow_the_lines_and_the_migration_fills_them(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    try:
        api = Api(engine)
        _post_a_week(api)
        kept = _days(engine, api.tenant.id)
        by_day = {
            (code, day): (debit, credit) for _, code, day, debit, credit in kept["account_day"]
        }
        assert by_day == _lines_by_day(engine, api.tenant.id)
        assert len({day for _, day in by_day}) >= 6  # the week's days, each its own row
        # receivables: the two shipments (3 × 250 and 2 × 300, with 13 % VAT), one reversed
        receivables = kept["receivable_day"]
        assert sum(r[3] for r in receivables) == Decimal("1525.50")
        assert sum(r[4] for r in receivables) == Decimal("678.00")
        # output: 10 tables on day 3; on day 6 two more, then reversed the same day
        output = {str(day): quantity for _, day, quantity, _ in kept["output_day"]}
        assert output == {"2026-03-05": Decimal(10), "2026-03-08": Decimal(0)}
        assert api.reconcile() == []
        trial = api.get("/reports/trial-balance").json()
        assert Decimal(trial["total_debit"]) == sum(d for d, _ in by_day.values())

        # a database with entries from before the day totals: 0019 adds up its lines
        downgrade(fresh_url, "0018")
        upgrade(fresh_url)
        assert _days(engine, api.tenant.id) == kept
        assert api.reconcile() == []
    finally:
        engine.dispose()


def test_the_books_check_names_a_day_total_that_disagrees(fresh_url: str) -> None:
    engine = make_engine(fresh_url)
    try:
        api = Api(engine)
        _post_a_week(api)
        with engine.begin() as conn:  # as the schema's superuser: no app role may
            ad = T["account_day"]
            conn.execute(
                update(ad)
                .where(
                    ad.c.tenant_id == api.tenant.id, ad.c.account_code == "6001", ad.c.credit > 0
                )
                .values(credit=ad.c.credit + Decimal("0.01"))
            )
        od = T["output_day"]
        with engine.begin() as conn:
            conn.execute(
                update(od)
                .where(od.c.tenant_id == api.tenant.id, od.c.quantity > 0)
                .values(quantity=od.c.quantity - 1)
            )
        differences = api.reconcile()
        assert {d["check"] for d in differences} == {
            "account_day_credit_equals_ledger",
            "output_day_quantity_equals_ledger",
        }
        by_check = {d["check"]: Decimal(d["difference"]) for d in differences}
        assert by_check["output_day_quantity_equals_ledger"] == -1
        assert by_check["account_day_credit_equals_ledger"] == Decimal("0.01")
    finally:
        engine.dispose()


def test_the_site_migration_puts_a_one_site_tenants_locations_at_its_devices_site(
    fresh_url: str,
) -> None:
    """0023 gives existing warehouses and bins a site: a tenant whose live devices are
    all at one site gets it (so they keep posting), another keeps "main"; migrating
    down and up again on SQLite keeps the foreign keys that point at the table."""
    engine = make_engine(fresh_url)
    try:
        one, two = Api(engine), Api(engine)
        for api, sites in ((one, ["plant-2"]), (two, ["north", "south"])):
            for site in sites:
                code = api.post("/devices/enrollment-codes", json={"site": site}).json()["code"]
                enrolled = api.client.post(
                    "/api/v1/devices/enroll", json={"code": code, "name": site}
                )
                assert enrolled.status_code == 201, enrolled.text
        setup_workshop(one)
        (posted,) = one.events(receipt(1, "RAW", "2", "1.00"))  # a stock move at WH
        downgrade(fresh_url, "0022")
        upgrade(fresh_url)
        for api, site in ((one, "plant-2"), (two, "main")):
            places = {r["code"]: r["site"] for r in api.get("/locations").json()}
            assert places["WH"] == site, places
        assert posted["status"] == "posted" and one.reconcile() == []
    finally:
        engine.dispose()
