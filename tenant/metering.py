"""Monthly usage of posted events, and the soft quota on it (SAAS.md: events are soft,
+10 %, then 429 `quota_exceeded`).

Months are calendar months in UTC. An event counts once, on its event id: the caller keeps
the ids (a table with a unique (tenant_id, event_id), or `UsageMeter` in memory) and asks
`admit` with the number already counted this month before counting a new one. A refusal
carries `retry_after_s` up to the first second of next month, so the edge keeps the events
in its outbox and nothing is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

from tenant.plans import Plan
from tenant.subscriptions import ALLOWED, Decision

SOFT_LIMIT_BUFFER_PERCENT = 10


def month_key(now: datetime) -> str:
    """'YYYY-MM' of `now` in UTC."""
    now = _utc(now)
    return f"{now.year:04d}-{now.month:02d}"


def next_month_start(now: datetime) -> datetime:
    """Midnight UTC on the first day of the month after `now`'s."""
    now = _utc(now)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def soft_limit(plan: Plan) -> int | None:
    """The events accepted in a month: the plan's events + 10 %, rounded up; None = no cap."""
    if plan.events_per_month is None:
        return None
    return -(-plan.events_per_month * (100 + SOFT_LIMIT_BUFFER_PERCENT) // 100)


def admit(used_this_month: int, plan: Plan, now: datetime) -> Decision:
    """May one more (new, not yet counted) event be accepted this month?

    Up to the plan's events: ok. Beyond them, within the 10 % buffer: ok with code
    `quota_warning`. Beyond the buffer: 429 `quota_exceeded`, retry at the next month."""
    if used_this_month < 0:
        raise ValueError(f"used_this_month must be >= 0, not {used_this_month}")
    cap = soft_limit(plan)
    if cap is None or plan.events_per_month is None or used_this_month < plan.events_per_month:
        return ALLOWED
    included = plan.events_per_month
    if used_this_month < cap:
        return Decision(
            True,
            200,
            "quota_warning",
            f"{used_this_month} events this month, over the {included} the {plan.name} plan "
            f"includes; {cap - used_this_month} more are accepted until the month ends",
        )
    resume = next_month_start(now)
    return Decision(
        False,
        429,
        "quota_exceeded",
        f"the {plan.name} plan's {included} events this month (+{SOFT_LIMIT_BUFFER_PERCENT} %) "
        f"are used up; keep events in the outbox until {resume.isoformat()} or upgrade the plan",
        _whole_seconds_until(resume, now),
    )


class UsageMeter:
    """Events counted per (tenant, month), in memory: for tests and the SQLite demo.

    Idempotent on event id, also across a month boundary (a retry on the 1st of an event
    counted on the 31st is not counted again). Thread-safe. Old months are dropped with
    `forget_before`; each tenant's month holds at most its plan's soft limit when it is fed
    through `admit`."""

    def __init__(self) -> None:
        self._events: dict[tuple[Hashable, str], set[str]] = {}
        self._lock = threading.Lock()

    def record(self, tenant_id: Hashable, event_id: str, now: datetime) -> bool:
        """Count `event_id` in `now`'s month; False if it was already counted."""
        with self._lock:
            return self._record(tenant_id, event_id, now)

    def used(self, tenant_id: Hashable, now: datetime) -> int:
        with self._lock:
            return len(self._events.get((tenant_id, month_key(now)), ()))

    def admit(self, tenant_id: Hashable, event_id: str, plan: Plan, now: datetime) -> Decision:
        """`admit` for one event, counted if accepted. An id already counted is accepted
        again (code `duplicate`) and not counted twice, even over the quota."""
        with self._lock:
            if self._seen(tenant_id, event_id, now):
                return Decision(True, 200, "duplicate", f"event {event_id} is already counted")
            used = len(self._events.get((tenant_id, month_key(now)), ()))
            decision = admit(used, plan, now)
            if decision.ok:
                self._record(tenant_id, event_id, now)
            return decision

    def forget_before(self, month: str) -> None:
        """Drop the counts of months before `month` ('YYYY-MM')."""
        with self._lock:
            for key in [k for k in self._events if k[1] < month]:
                del self._events[key]

    def _record(self, tenant_id: Hashable, event_id: str, now: datetime) -> bool:
        if self._seen(tenant_id, event_id, now):
            return False
        self._events.setdefault((tenant_id, month_key(now)), set()).add(event_id)
        return True

    def _seen(self, tenant_id: Hashable, event_id: str, now: datetime) -> bool:
        months = (month_key(now), _previous_month_key(now))
        return any(event_id in self._events.get((tenant_id, m), ()) for m in months)


def _previous_month_key(now: datetime) -> str:
    first = _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return month_key(first - timedelta(days=1))


def _whole_seconds_until(then: datetime, now: datetime) -> int:
    """Seconds from `now` to `then`, rounded up, at least 1 (a Retry-After value)."""
    delta = then - _utc(now)
    seconds = delta.days * 86_400 + delta.seconds + (1 if delta.microseconds else 0)
    return max(1, seconds)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC); got a naive datetime")
    return now.astimezone(UTC)
