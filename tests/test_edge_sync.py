"""Sync's answers to a cloud that says no: Retry-After, quota (429), unpaid (402),
a batch too large (413), an outage. The cloud's real answers are tested in
test_edge_agent.py; here httpx's MockTransport plays the cloud's refusals (the quota
and subscription states come with the tenancy issue), and the real CLI reads the
outbox the sync left."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from edge_agent.outbox import Capture, Outbox
from edge_agent.sync import Backoff, CloudClient, Syncer, retry_after_s
from erp.cli import app


def outbox_with(tmp_path: Path, n: int) -> Outbox:
    """An outbox holding `n` material issues, not yet sent."""
    outbox = Outbox(
        tmp_path / "outbox.sqlite3",
        edge_id="edge-1",
        identity="edge-1",
        disk_cap_bytes=10**9,
        agent_version="test",
    )
    for i in range(n):
        outbox.capture(
            Capture(
                type="material_issue",
                payload={"work_order": "WO1", "item": "RAW", "location": "WH", "quantity": "1"},
                device_id="ws",
                occurred_at=datetime(2026, 11, 2, 8, i % 60, tzinfo=UTC),
            )
        )
    return outbox


def _syncer(outbox: Outbox, handler: Any, batch_size: int = 10) -> Syncer:
    client = CloudClient("http://cloud", "key", transport=httpx.MockTransport(handler))
    backoff = Backoff(base_s=1, cap_s=60, rng=random.Random(1))
    return Syncer(outbox, client, batch_size=batch_size, backoff=backoff)


def _posted(request: httpx.Request) -> httpx.Response:
    events = json.loads(request.content)["events"]
    results = [{"event_id": e["event_id"], "status": "posted"} for e in events]
    return httpx.Response(200, json={"results": results, "received_at": "2026-11-02T00:00:00Z"})


def test_retry_after_is_honoured_and_nothing_changes_until_the_cloud_takes_it(
    tmp_path: Path,
) -> None:
    outbox = outbox_with(tmp_path, 5)
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "120"}, json={"code": "quota_exceeded"}),
            httpx.Response(402, json={"code": "subscription_unpaid", "detail": "pay"}),
            httpx.Response(503, headers={"Retry-After": "7"}),
        ]
    )
    syncer = _syncer(outbox, lambda request: next(answers, None) or _posted(request))
    first = syncer.sync_once()
    assert first.error is not None and "429" in first.error and first.wait_s >= 120
    second = syncer.sync_once()
    assert second.error is not None and "subscription_unpaid" in second.error
    assert outbox.status().backlog == 5  # buffered, never dropped
    third = syncer.sync_once()
    assert third.wait_s >= 7
    assert syncer.sync_once().counts == {"posted": 5}
    assert outbox.status().backlog == 0
    assert syncer.backoff.failures == 0  # reset by the success


def test_backoff_grows_with_full_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=8, rng=random.Random(3))
    ceilings = [0.5, 1, 2, 4, 8, 8, 8]
    for ceiling in ceilings:
        assert 0 <= backoff.delay_s() <= ceiling
    assert backoff.delay_s(retry_after=30) == 30


def test_a_batch_too_large_is_split(tmp_path: Path) -> None:
    outbox = outbox_with(tmp_path, 12)

    def cloud(request: httpx.Request) -> httpx.Response:
        if len(json.loads(request.content)["events"]) > 3:
            return httpx.Response(413, json={"code": "body_too_large"})
        return _posted(request)

    syncer = _syncer(outbox, cloud, batch_size=12)
    for _ in range(10):
        syncer.sync_once()
    assert syncer.batch_size == 3 and outbox.status().backlog == 0


def test_an_unreachable_cloud_is_noted_and_shown_by_erp_edge_status(tmp_path: Path) -> None:
    outbox = outbox_with(tmp_path, 3)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    report = _syncer(outbox, down).sync_once()
    assert report.error is not None and "unreachable" in report.error
    outbox.close()
    config = tmp_path / "edge.toml"
    config.write_text(
        '[edge]\nid = "edge-1"\noutbox = "outbox.sqlite3"\n'
        '[cloud]\nurl = "http://cloud"\napi_key = "k"\n'
    )
    result = CliRunner().invoke(app, ["edge", "status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "backlog: 3 event(s)" in result.output
    assert "connection refused" in result.output
    unknown = CliRunner().invoke(app, ["edge", "retry", "nope", "--config", str(config)])
    assert unknown.exit_code == 1 and "unknown_event" in unknown.output


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    assert retry_after_s("30") == 30
    assert retry_after_s("Mon, 02 Nov 2026 08:01:00 GMT", now) == 60
    assert retry_after_s("soon") == 0 and retry_after_s(None) == 0
