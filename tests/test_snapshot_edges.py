"""Edges of the snapshot replay (issue 16) a review found: the reversal of a move a
late event revalued, after its pools stopped replaying at a snapshot; revaluations of
one pool that cancel out on a day; a period closed while a batch posts into it."""

import threading
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import select

from cloud_api.db import models as m
from cloud_api.services import masterdata
from cloud_api.services.ingest import Batch
from cloud_api.services.tenants import tenant_by_slug
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.factory import completion, issue, labour, receipt, reversal, setup_workshop, shipment
from tests.test_late_snapshots import in_order_tenant, ledger_values, post, stock

T = m.SQLModel.metadata.tables


def test_a_reversal_is_revalued_with_its_original_after_the_pools_stop_replaying(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WO2 and TBL both come back to a snapshot whose state the replay reproduces
    (each emptied), so their replays stop; the shipment before the stop changed, and
    its reversal after it must change with it."""
    monkeypatch.setattr(get_settings(), "valuation_snapshot_every", 3)
    setup_workshop(api)
    ship = shipment(40, "TBL", "5", "100")
    history = [
        receipt(0, "RAW", "10", "10"),
        issue(10, "RAW", "5", wo="WO2"),
        labour(20, "1", wo="WO2"),
        completion(30, "5", wo="WO2"),
        ship,
        receipt(50, "TBL", "5", "7"),
        reversal(60, ship["event_id"]),
    ]
    post(api, *history)
    late = labour(25, "1", wo="WO2")  # one more hour: the completion and shipment 100 -> 150
    post(api, late)
    fresh = in_order_tenant(api.db, [*history, late])
    assert ledger_values(api, "TBL") == ledger_values(fresh, "TBL")
    assert ("reversal", D(5), D("150.00")) in ledger_values(api, "TBL")
    assert stock(api) == stock(fresh)
    assert api.reconcile() == []


def test_revaluations_that_cancel_out_still_book_the_entry_they_name(api: Api) -> None:
    setup_workshop(api)
    post(
        api,
        receipt(0, "BOLT", "10", "1"),
        issue(10, "BOLT", "5"),  # 5 of the first layer: 5.00
        receipt(20, "BOLT", "10", "2"),
        issue(30, "BOLT", "10"),  # 5 of the first, 5 of the second: 15.00
    )
    post(api, receipt(-1, "BOLT", "5", "2"))  # FIFO: the issues become 10.00 (+5) and 10.00 (-5)
    rv, je, jl = T["stock_revaluation"], T["journal_entry"], T["journal_line"]
    with api.db.connect() as conn:
        revaluations = list(conn.execute(select(rv).where(rv.c.tenant_id == api.tenant.id)))
        entries = set(conn.scalars(select(je.c.id).where(je.c.tenant_id == api.tenant.id)))
        lines = list(
            conn.execute(
                select(jl).where(
                    jl.c.tenant_id == api.tenant.id,
                    jl.c.entry_id == revaluations[0].journal_entry_id,
                )
            )
        )
    assert sorted(r.delta_value for r in revaluations) == [D("-5.00"), D("5.00")]
    assert all(r.journal_entry_id in entries for r in revaluations)
    assert sum(line.debit for line in lines) == sum(line.credit for line in lines) == D("10.00")
    assert api.reconcile() == []


def test_a_close_waits_for_the_batch_posting_into_its_period(pg_db: Any) -> None:
    """The batch read the period open and posted a late receipt into it; the close
    waits for it to commit and snapshots the pools with it."""
    api = Api(pg_db)
    setup_workshop(api)
    post(api, receipt(0, "RAW", "10", "10"), issue(10, "RAW", "2"), issue(20, "RAW", "2"))
    tenant = tenant_by_slug(pg_db, api.tenant.slug)
    closed = threading.Event()

    def close() -> None:
        with pg_db.begin() as conn:
            masterdata.set_period_status(conn, tenant, "2026-03", "closed")
        closed.set()

    with pg_db.connect() as conn:
        with conn.begin():
            (result,) = Batch(conn, tenant).run([receipt(5, "RAW", "8", "20")])
            assert result.status.value == "posted", result
            closer = threading.Thread(target=close)
            closer.start()
            assert not closed.wait(1.0), "the close did not wait for the posting batch"
        closer.join(30)
    assert closed.is_set()
    assert api.reconcile() == []
