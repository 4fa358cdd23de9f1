"""The sync loop's log of failing answers, rate-limited.

`erp edge run` used to log nothing when the cloud refused batches: a 500 loop showed
only in `erp edge status`. Each failing answer is now a candidate log line with what an
operator needs to act on (the HTTP status, the problem+json `code`, or "unreachable",
and the batch: first and last seq, size). The loop retries with back-off, often every
second or so, so not every attempt is written: the first failure is, then at most one
line per `every_s`, counting the attempts left out since the last line. The first
success after failures logs "sync recovered" with how many attempts failed and for how
long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from edge_agent.outbox import OutboxEvent

log = logging.getLogger("edge_agent.sync")


def describe_batch(batch: Sequence[OutboxEvent]) -> str:
    if not batch:
        return "an empty batch"
    return f"batch seq {batch[0].seq}-{batch[-1].seq} ({len(batch)} event(s))"


class FailureLog:
    """Decides which failing answers are logged (see the module doc)."""

    def __init__(
        self,
        every_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.every_s = every_s
        self.monotonic = monotonic
        self.log = logger
        self.failures = 0  # attempts failed in a row
        self.first_at: float | None = None  # when the current run of failures began
        self.logged_at: float | None = None  # when the last failure line was written
        self.suppressed = 0  # failures since that line, not logged

    def failed(self, what: str, batch: Sequence[OutboxEvent]) -> None:
        """One failing answer: `what` says it (e.g. "HTTP 500 internal_error: ...")."""
        now = self.monotonic()
        self.failures += 1
        if self.first_at is None:
            self.first_at = now
        if self.logged_at is not None and now - self.logged_at < self.every_s:
            self.suppressed += 1
            return
        left_out = (
            f"; {self.suppressed} more failed attempt(s) not logged since the last line"
            if self.suppressed
            else ""
        )
        self.log.warning(
            "sync failed (attempt %d): %s, sending %s%s",
            self.failures,
            what,
            describe_batch(batch),
            left_out,
        )
        self.logged_at, self.suppressed = now, 0

    def succeeded(self, batch: Sequence[OutboxEvent]) -> None:
        """A batch went through: say so once if failures came before it."""
        if self.failures and self.first_at is not None:
            self.log.info(
                "sync recovered after %d failed attempt(s) over %.0f s; sent %s",
                self.failures,
                self.monotonic() - self.first_at,
                describe_batch(batch),
            )
        self.failures, self.first_at, self.logged_at, self.suppressed = 0, None, None, 0
