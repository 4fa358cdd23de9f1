"""Sync: the outbox's pending events to the cloud, in `seq` order, in batches.

Each batch goes to `POST /api/v1/edge/events`; the cloud answers one result per event
and the outbox records them (posted/duplicate → sent, held → held, rejected/conflict →
parked) in one transaction. A crash between the answer and that record re-sends the
batch under the same Idempotency-Key, which the cloud answers with its first reply (a
batch made up differently: `duplicate` for each event already posted): stock moves once
(EDGE.md, scenario 3). When nothing is pending, the held events are sent again now and
then, to learn whether the cloud has posted them since (edge_agent.recheck).

When the cloud cannot be reached or answers an error, nothing changes in the outbox;
the loop waits with exponential back-off and full jitter, at least the `Retry-After` it
was given (429 quota, 503), and for 402 (subscription unpaid) keeps everything buffered.
Each failing answer is logged, rate-limited, with its status, code and batch
(sync_log.py); a turn that fails in an unforeseen way is logged and retried, it does not
end the loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from edge_agent.outbox import Outbox, SendResult
from edge_agent.recheck import HeldRecheck
from edge_agent.sync_log import FailureLog

log = logging.getLogger("edge_agent.sync")


class CloudError(Exception):
    """The cloud did not take the batch; `status` is None when it could not be reached,
    `code` is its problem+json code, `retry_after_s` its own wish, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float = 0,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class CloudClient:
    """The cloud API as the edge sees it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )

    def post_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The batch's Idempotency-Key is named by the batch itself (its events, as the
        outbox keeps them, and what is worked out at sending, such as `replayed`): the
        same batch sent again after a lost answer gets the first reply back; one made
        up differently is another request, whose events already posted answer
        `duplicate` (each event is idempotent on its own id)."""
        body = {"events": events}
        key = {"Idempotency-Key": batch_key(body)}
        return self._call("POST", "/edge/events", json=body, headers=key)

    def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/edge/heartbeat", json=body)

    def master_data(self, since: str | None) -> dict[str, Any]:
        return self._call("GET", "/edge/masterdata", params={"since": since} if since else {})

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.HTTPError as error:
            raise CloudError(f"cloud unreachable: {error.__class__.__name__}: {error}") from error
        if response.status_code >= 400:
            text, code = _problem(response)
            raise CloudError(
                text,
                status=response.status_code,
                code=code,
                retry_after_s=retry_after_s(response.headers.get("Retry-After")),
            )
        try:
            body = response.json()
        except ValueError as error:
            raise CloudError(
                f"HTTP {response.status_code}: the answer is not JSON: {response.text[:200]!r}",
                status=response.status_code,
            ) from error
        if not isinstance(body, dict):
            raise CloudError(
                f"HTTP {response.status_code}: the answer is not a JSON object",
                status=response.status_code,
            )
        return body

    def close(self) -> None:
        self.http.close()


BATCH_KEYS = uuid.UUID("5c1e4b0e-7d1f-4b6a-9a57-3f0c2b8e9d41")  # uuid5 namespace


def batch_key(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return str(uuid.uuid5(BATCH_KEYS, hashlib.sha256(canonical.encode()).hexdigest()))


def _problem(response: httpx.Response) -> tuple[str, str | None]:
    """("HTTP 500 some_code: detail", "some_code") from a problem+json answer, or from
    whatever else came back (a proxy's HTML page, an empty body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or body
        code = body.get("code") if isinstance(body.get("code"), str) else None
    else:
        detail, code = response.text[:200] or response.reason_phrase, None
    return f"HTTP {response.status_code}{f' {code}' if code else ''}: {detail}", code


def retry_after_s(header: str | None, now: datetime | None = None) -> float:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not header:
        return 0.0
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class Backoff:
    """Exponential back-off with full jitter: after n failures wait a random time in
    [0, min(cap, base·2ⁿ)], but never less than the server's Retry-After."""

    base_s: float = 0.5
    cap_s: float = 60.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def delay_s(self, retry_after: float = 0.0) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.failures, 30))
        self.failures += 1
        return max(retry_after, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class SyncReport:
    sent: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    wait_s: float = 0.0


class Syncer:
    """Drains the outbox. `sync_once` sends one batch; `run` loops until stopped."""

    def __init__(
        self,
        outbox: Outbox,
        client: CloudClient,
        *,
        batch_size: int = 500,
        idle_s: float = 1.0,
        backoff: Backoff | None = None,
        on_result: Callable[[SyncReport], None] | None = None,
        held_recheck: HeldRecheck | None = None,
        log_every_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.batch_size = batch_size
        self.idle_s = idle_s
        self.backoff = backoff or Backoff()
        self.on_result = on_result
        self.wake = threading.Event()  # set by a capture, so live scans go out at once
        self.failure_log = FailureLog(log_every_s, monotonic)
        self.held_recheck = held_recheck or HeldRecheck()

    def sync_once(self) -> SyncReport:
        batch = self.outbox.next_batch(self.batch_size)
        if not batch:  # nothing pending: now and then, ask what became of the held ones
            batch = self.held_recheck.due_events(self.outbox)[: self.batch_size]
        if not batch:
            return SyncReport()
        try:
            answer = self.client.post_events([self.outbox.wire(ev) for ev in batch])
            results = _results(answer)
        except CloudError as error:
            self.failure_log.failed(str(error)[:500], batch)
            self.outbox.note_sync(ok=False, error=str(error))
            if error.status == 413 and self.batch_size > 1:  # too large: smaller batches
                self.batch_size = max(1, self.batch_size // 2)
            return SyncReport(error=str(error), wait_s=self.backoff.delay_s(error.retry_after_s))
        self.outbox.record_results(results)
        self.outbox.note_sync(ok=True)
        self.failure_log.succeeded(batch)
        self.backoff.reset()
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return SyncReport(sent=len(batch), counts=counts)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                report = self.sync_once()
            except Exception as error:  # the loop must not die of one bad turn; say so
                log.exception("sync turn failed")
                report = SyncReport(error=repr(error), wait_s=self.backoff.delay_s())
            if self.on_result is not None:
                self.on_result(report)
            if report.error is not None:
                stop.wait(report.wait_s)
            elif report.sent < self.batch_size:
                # drained: sleep until a capture wakes us or the idle period ends
                self.wake.wait(self.idle_s)
                self.wake.clear()


def _results(answer: dict[str, Any]) -> list[SendResult]:
    """The per-event answers; an answer without them is the cloud's fault, retried."""
    try:
        return [
            SendResult(r["event_id"], r["status"], r.get("code"), r.get("message"))
            for r in answer["results"]
            if r.get("event_id")
        ]
    except (KeyError, TypeError, AttributeError) as error:
        raise CloudError(f"the answer has no per-event results: {error!r}") from error


def measure_clock(client: CloudClient, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Send a heartbeat and estimate this clock's offset to the cloud's (cloud − edge,
    seconds) from the round trip's midpoint, as NTP does."""
    sent = datetime.now(UTC)
    answer = client.heartbeat({**body, "sent_at": sent.isoformat()})
    back = datetime.now(UTC)
    server = datetime.fromisoformat(answer["server_time"])
    midpoint = sent + (back - sent) / 2
    return answer, (server - midpoint).total_seconds()
