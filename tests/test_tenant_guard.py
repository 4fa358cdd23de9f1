"""The guard where row-level security is missing (SQLite, cloud_api/db/tenancy.py): a
statement on a tenant table that does not name its tenant never runs. The whole
suite runs with it on, on SQLite, so any query of the product that forgot its tenant
fails there; these tests show it can fail."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from cloud_api.db import models as m
from cloud_api.db.tenancy import TenantFilterMissing
from tests.conftest import Api

T = m.SQLModel.metadata.tables
item, category = T["item"], T["item_category"]


def test_a_statement_without_its_tenant_never_runs(sqlite_db: Engine) -> None:
    api = Api(sqlite_db)
    api.create("/items", {"code": "RAW", "name": "Board", "kind": "raw"})
    tid = api.tenant.id
    unfiltered = [
        select(item).where(item.c.code == "RAW"),
        select(func.count()).select_from(item),
        select(item)
        .join(category, category.c.code == item.c.category_code)
        .where(item.c.tenant_id == tid),
        item.update().where(item.c.code == "RAW").values(name="changed"),
        item.delete().where(item.c.code == "RAW"),
        select(T["tenant"].c.slug),
    ]
    with sqlite_db.connect() as conn:
        for statement in unfiltered:
            with pytest.raises(TenantFilterMissing):
                conn.execute(statement)
        assert conn.scalar(select(item.c.name).where(item.c.tenant_id == tid)) == "Board"
        joined = select(item.c.code).join(
            category,
            (category.c.tenant_id == item.c.tenant_id) & (category.c.code == item.c.category_code),
        )
        assert conn.execute(joined.where(item.c.tenant_id == tid)).all() == [("RAW",)]
        reviewed = select(func.count()).select_from(item).execution_options(cross_tenant=True)
        assert conn.scalar(reviewed) >= 1
    assert api.get("/items").json()[0]["name"] == "Board"  # nothing changed
