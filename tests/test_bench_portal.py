"""`erp bench portal` at a tiny size on PostgreSQL, so that the script keeps working:
it posts a ledger, serves the real app as erp_app, and checks the pages' figures
against the ledger. Its timings are not judged here; its checks are, and they must be
able to fail."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bench import portal
from tests.bench_databases import record_bench_databases, still_there

DASHBOARD = """<div class="card" id="stock-total"><h3>Stock value</h3>
<div class="figure">{stock}</div></div>
<div class="card" id="revenue"><h3>Revenue</h3><div class="figure">¥0.00</div></div>
<div class="card" id="margin"><h3>Margin</h3><div class="figure">¥0.00</div></div>
<div class="card" id="output-month"><h3>Output</h3><div class="figure">0</div></div>"""
INVENTORY = (
    '<strong id="inventory-total">¥12.50</strong><tr><th>Item</th></tr><tr><td>M001</td></tr>'
)
EXPECTED = portal.Expected(
    stock_value=Decimal("1234.50"),
    positions=1,
    listed_value=Decimal("12.50"),
    moves=1,
    month_share=0.0,
    revenue_month=Decimal(0),
)


def _timing(path: str, body: str, status: int = 200) -> portal.Timing:
    return portal.Timing(path, [(0.0, 0.001)], {status: 1}, body)


@pytest.mark.postgres
def test_the_bench_posts_serves_and_checks_the_pages(
    pg_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record_bench_databases(monkeypatch)
    result = portal.main(moves=300, requests=5, database_url=pg_server)
    assert result["events"] == sum(result["mix"].values()) >= 300
    assert result["moves"] >= 300  # every event posted, each with its stock move
    assert result["mix"]["sales_shipment"] > 0 and result["mix"]["production_completion"] > 0
    assert result["requests"] == 5
    assert set(result["pages"]) == {"/", "/inventory", "/healthz"}
    assert Decimal(result["figures"]["stock-total"]) > 0
    assert int(result["figures"]["inventory-rows"]) > 0
    assert result["books_check_differences"] == 0
    assert result["books_check_overlaps"]["in_request"] == 0
    assert "p95/healthz" in capsys.readouterr().out
    assert len(made) == 1 and made[0].startswith("erp_bench_")
    assert still_there(pg_server, made) == set()  # its database is dropped


def test_the_checks_pass_on_the_ledgers_figures() -> None:
    dashboard = _timing("/", DASHBOARD.format(stock="¥1,234.50"))
    figures = portal.check_pages(dashboard, _timing("/inventory", INVENTORY), EXPECTED)
    assert figures["stock-total"] == "1234.50"
    assert figures["inventory-rows"] == "1"


@pytest.mark.parametrize(
    ("stock", "status"),
    [("¥0.00", 200), ("¥1,234.49", 200), ("¥1,234.50", 500)],
)
def test_the_checks_fail_on_wrong_figures_or_errors(stock: str, status: int) -> None:
    dashboard = _timing("/", DASHBOARD.format(stock=stock), status)
    with pytest.raises(AssertionError):
        portal.check_pages(dashboard, _timing("/inventory", INVENTORY), EXPECTED)


def test_the_bench_refuses_a_database_without_row_level_security() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        portal.main(moves=10, requests=1, database_url="sqlite:///bench.sqlite3")
