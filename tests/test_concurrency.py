"""Eight writers issue the same item at once on PostgreSQL: the pool row lock keeps
stock from going negative and no update is lost."""

import threading
from decimal import Decimal as D
from typing import Any

from cloud_api.services.ingest import IngestService
from cloud_api.services.tenants import tenant_by_slug
from tests.conftest import Api
from tests.factory import issue, receipt, setup_workshop

WRITERS = 8
ISSUES_PER_WRITER = 10


def test_eight_writers_on_one_item(pg_db: Any) -> None:
    api = Api(pg_db)
    setup_workshop(api)
    api.events(receipt(0, "RAW", "50", "2"))  # 50 units for 80 attempted issues of 1
    tenant = tenant_by_slug(pg_db, api.tenant.slug)
    service = IngestService(pg_db)
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        try:
            start.wait()
            for k in range(ISSUES_PER_WRITER):
                ev = {**issue(10 + n * 0.01 + k * 0.1, "RAW", "1"), "seq": k}
                (res,) = service.ingest(tenant, [ev])
                results.append(res.status.value)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(results) == WRITERS * ISSUES_PER_WRITER
    assert results.count("posted") == 50
    assert results.count("held") == 30
    balances = api.balances()
    assert balances["1403"] == D("0.00") and balances["5001"] == D("100.00")
    assert api.get("/reports/stock").json() == []
    assert api.reconcile() == []
