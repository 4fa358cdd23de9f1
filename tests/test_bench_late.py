"""`erp bench late` at tiny sizes on PostgreSQL, so that the script keeps working: it
grows a floor, posts each stage's scripted segment and late receipt, the busy item's
late receipt, and checks the books. Its timings are not judged here; its outcomes are,
and its checks must be able to fail."""

from __future__ import annotations

import json

import pytest

from bench import late_events
from tests.bench_databases import record_bench_databases, still_there

SIZES = (300, 600)
SAMPLE, BUSY = 100, 300
# every move of the segment after the late receipt: its issues, the completion of each
# order on the floor and the shipment of the unit completed
SEGMENT_REVALUED = {"issue": 600, "completion": 12, "shipment": 12}


@pytest.mark.postgres
def test_the_bench_posts_every_stage_revalues_and_checks_the_books(
    pg_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = record_bench_databases(monkeypatch)
    result = late_events.main(
        sizes=SIZES, ingest_sample=SAMPLE, busy_moves=BUSY, database_url=pg_server
    )
    assert result["floor_events"] == SIZES[-1] + SAMPLE  # every floor event posted
    assert [row["size"] for row in result["ingest"]] == [0, *SIZES]
    for row in result["ingest"]:
        assert row["events"] == SAMPLE and row["rows"] > SAMPLE
        assert row["events_per_s"] > 0 and row["raw_rows_per_s"] > 0
        assert row["cpu_ms_per_event"] > 0 and row["db_cpu_ms_per_event"] >= 0
    assert [row["size"] for row in result["late"]] == list(SIZES)
    for row in result["late"]:
        assert row["segment_events"] == late_events.SEGMENT_EVENTS
        assert row["revalued_by_kind"] == SEGMENT_REVALUED
        assert row["revalued"] == sum(SEGMENT_REVALUED.values())
        assert row["ms"] > 0 and row["raw_ms"] > 0
        assert row["cpu_ms"] > 0 and row["db_cpu_ms"] >= 0
    assert result["busy"]["revalued"] == BUSY
    assert result["busy"]["revalued_by_kind"] == {"shipment": BUSY}
    assert result["books_check_differences"] == []
    assert result["problems"] == []
    out = capsys.readouterr().out
    assert "books-check: 0 differences" in out
    assert json.loads(out.strip().splitlines()[-1]) == result
    assert len(made) == 1 and made[0].startswith("erp_bench_")
    assert still_there(pg_server, made) == set()  # its database is dropped


def test_the_checks_fail_on_unequal_counts_a_short_busy_stage_or_differences() -> None:
    late = [{"size": 300, "revalued": 624}, {"size": 600, "revalued": 624}]
    busy = {"moves": 300, "revalued": 300}
    assert late_events._problems(late, busy, []) == []
    uneven = [{"size": 300, "revalued": 624}, {"size": 600, "revalued": 612}]
    assert late_events._problems(uneven, busy, [])
    nothing = [{"size": 300, "revalued": 0}, {"size": 600, "revalued": 0}]
    assert late_events._problems(nothing, None, [])
    assert late_events._problems(late, {"moves": 300, "revalued": 299}, [])
    assert late_events._problems(late, None, ["Difference(check='entry_balanced', ...)"])


def test_the_sizes_must_leave_room_for_each_ingest_sample() -> None:
    late_events.check_sizes([300, 600], 100)
    for sizes in ([50, 600], [300, 350], [600, 300]):
        with pytest.raises(ValueError, match="--ingest-sample"):
            late_events.check_sizes(sizes, 100)


def test_the_bench_refuses_a_database_without_row_level_security() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        late_events.main(sizes=[300], ingest_sample=100, database_url="sqlite:///bench.sqlite3")
