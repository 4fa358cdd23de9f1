"""Usage metering (soft monthly quota, idempotent on event id) and token-bucket rate
limits (SAAS.md, test case 17). Pure domain: no database, an injected clock."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tenant.metering
import tenant.ratelimit
from tenant.metering import UsageMeter, admit, month_key, next_month_start, soft_limit
from tenant.plans import Plan, plan
from tenant.ratelimit import Limiter, Number, TokenBucket
from tenant.subscriptions import Decision

JAN_15 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
FEB_1 = datetime(2025, 2, 1, tzinfo=UTC)
TINY = Plan("tiny", "Tiny", 1, 1, 1, 10, 1, 30)  # 10 events, soft limit 11

# -- months ----------------------------------------------------------------------------------


def test_month_key_is_utc() -> None:
    assert month_key(JAN_15) == "2025-01"
    assert month_key(datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)) == "2025-12"
    new_york = timezone(timedelta(hours=-5))
    assert month_key(datetime(2025, 1, 31, 20, 0, tzinfo=new_york)) == "2025-02"  # 01:00 UTC
    with pytest.raises(ValueError):
        month_key(datetime(2025, 1, 15))


def test_next_month_start_rolls_over_the_year() -> None:
    assert next_month_start(JAN_15) == FEB_1
    assert next_month_start(FEB_1) == datetime(2025, 3, 1, tzinfo=UTC)
    assert next_month_start(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )


# -- the soft quota ------------------------------------------------------------------------


def test_soft_limit_is_plan_plus_ten_percent() -> None:
    assert soft_limit(plan("trial")) == 5_500
    assert soft_limit(plan("starter")) == 55_000
    assert soft_limit(plan("pro")) == 1_100_000
    assert soft_limit(plan("enterprise")) is None
    assert soft_limit(Plan("odd", "Odd", 1, 1, 1, 15, 1, 30)) == 17  # 16.5 rounded up


@pytest.mark.parametrize(
    ("used", "ok", "code"),
    [
        (0, True, "ok"),
        (49_999, True, "ok"),  # the 50,000th event: still included
        (50_000, True, "quota_warning"),  # the first one of the buffer
        (54_999, True, "quota_warning"),  # the 55,000th: the last one accepted
        (55_000, False, "quota_exceeded"),
        (55_001, False, "quota_exceeded"),
        (10**9, False, "quota_exceeded"),
    ],
)
def test_admit_boundaries(used: int, ok: bool, code: str) -> None:
    decision = admit(used, plan("starter"), JAN_15)
    assert (decision.ok, decision.code) == (ok, code)
    if ok:
        assert decision.http_status == 200 and decision.retry_after_s is None
    else:
        assert decision.http_status == 429
        assert decision.retry_after_s == 16 * 86_400 + 12 * 3_600  # to Feb 1 00:00 UTC
        assert "2025-02-01" in decision.message


def test_enterprise_is_never_throttled_and_bad_counts_are_refused() -> None:
    assert admit(10**12, plan("enterprise"), JAN_15).ok
    with pytest.raises(ValueError):
        admit(-1, plan("pro"), JAN_15)


@pytest.mark.parametrize(
    ("now", "retry_after_s"),
    [
        (datetime(2025, 1, 31, 23, 59, 59, 500_000, tzinfo=UTC), 1),  # rounded up, never 0
        (datetime(2025, 1, 31, 23, 59, 59, tzinfo=UTC), 1),
        (datetime(2025, 1, 31, 23, 59, 58, 1, tzinfo=UTC), 2),
        (datetime(2025, 2, 1, tzinfo=UTC), 28 * 86_400),  # the first instant of February
        (datetime(2024, 2, 1, tzinfo=UTC), 29 * 86_400),  # a leap February
        (datetime(2025, 12, 31, 12, 0, tzinfo=UTC), 12 * 3_600),
    ],
)
def test_retry_after_reaches_the_next_month(now: datetime, retry_after_s: int) -> None:
    decision = admit(11, TINY, now)
    assert not decision.ok and decision.retry_after_s == retry_after_s
    assert now + timedelta(seconds=retry_after_s) >= next_month_start(now)
    assert now + timedelta(seconds=retry_after_s - 1) < next_month_start(now)


# -- the in-memory meter ---------------------------------------------------------------------


def test_record_is_idempotent_on_event_id() -> None:
    meter = UsageMeter()
    assert meter.record("A", "ev-1", JAN_15) is True
    assert meter.record("A", "ev-1", JAN_15 + timedelta(days=3)) is False
    assert meter.record("A", "ev-2", JAN_15) is True
    assert meter.used("A", JAN_15) == 2
    assert meter.record("B", "ev-1", JAN_15) is True, "the same id under another tenant"
    assert meter.used("B", JAN_15) == 1


def test_month_rollover_starts_from_zero_and_does_not_recount_retries() -> None:
    meter = UsageMeter()
    last_second = FEB_1 - timedelta(seconds=1)
    meter.record("A", "ev-jan", last_second)
    assert meter.used("A", last_second) == 1
    assert meter.used("A", FEB_1) == 0
    assert meter.record("A", "ev-jan", FEB_1) is False, "a retry after midnight"
    assert meter.used("A", FEB_1) == 0
    assert meter.record("A", "ev-feb", FEB_1) is True
    assert meter.used("A", FEB_1) == 1 and meter.used("A", last_second) == 1


def test_forget_before_drops_old_months_only() -> None:
    meter = UsageMeter()
    meter.record("A", "ev-1", JAN_15)
    meter.record("A", "ev-2", FEB_1)
    meter.forget_before("2025-02")
    assert meter.used("A", JAN_15) == 0
    assert meter.used("A", FEB_1) == 1


def test_case_17_quota_exhausted_gives_429_and_tenant_b_is_unaffected() -> None:
    meter = UsageMeter()
    trial = plan("trial")
    for i in range(5_500):
        assert meter.admit("A", f"a-{i}", trial, JAN_15).ok
    refused = meter.admit("A", "a-5500", trial, JAN_15)
    assert (refused.ok, refused.http_status, refused.code) == (False, 429, "quota_exceeded")
    assert refused.retry_after_s and refused.retry_after_s > 0
    assert meter.used("A", JAN_15) == 5_500, "a refused event is not counted"
    again = meter.admit("A", "a-17", trial, JAN_15)
    assert (again.ok, again.code) == (True, "duplicate"), "a retry of a counted event"
    assert meter.used("A", JAN_15) == 5_500
    assert meter.admit("B", "b-1", trial, JAN_15).code == "ok"
    assert meter.admit("A", "a-5500", trial, FEB_1).code == "ok", "a new month"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=60))
def test_meter_counts_distinct_ids_and_stops_at_the_soft_limit(ids: list[int]) -> None:
    meter = UsageMeter()
    accepted: set[int] = set()
    for i in ids:
        decision = meter.admit("A", f"ev-{i}", TINY, JAN_15)
        if i in accepted:
            assert decision.ok and decision.code == "duplicate"
        elif len(accepted) < 11:
            assert decision.ok and decision.code == (
                "ok" if len(accepted) < 10 else "quota_warning"
            )
            accepted.add(i)
        else:
            assert not decision.ok and decision.http_status == 429
    assert meter.used("A", JAN_15) == len(accepted) <= 11


def test_meter_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = UsageMeter()
    big = Plan("big", "Big", 1, 1, 1, 100, 1, 30)  # soft limit 110

    def slow_admit(used: int, plan: Plan, now: datetime) -> Decision:
        time.sleep(0.000_1)  # widen the window between the check and the count
        return admit(used, plan, now)

    monkeypatch.setattr(tenant.metering, "admit", slow_admit)

    def post(offset: int) -> None:
        for i in range(40):
            meter.admit("A", f"ev-{offset + i}", big, JAN_15)

    _run_together([functools.partial(post, k * 1_000) for k in range(8)])
    assert meter.used("A", JAN_15) == 110


def _run_together(targets: list[Callable[[], object]]) -> None:
    """Run the targets in threads that all start at the same moment."""
    barrier = threading.Barrier(len(targets))

    def start_then(target: Callable[[], object]) -> None:
        barrier.wait(timeout=10)
        target()

    threads = [threading.Thread(target=start_then, args=(target,)) for target in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# -- token buckets ---------------------------------------------------------------------------


def test_bucket_starts_full_and_allows_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=5, burst=3)
    assert [bucket.take(0.0)[0] for _ in range(3)] == [True, True, True]
    assert bucket.take(0.0) == (False, 0.2)


def test_retry_after_is_exact() -> None:
    bucket = TokenBucket(rate_per_s=5, burst=1)
    assert bucket.take(100.0) == (True, 0.0)
    ok, retry_after_s = bucket.take(100.0)
    assert (ok, retry_after_s) == (False, 0.2)
    assert bucket.take(100.199) == (False, pytest.approx(0.001))
    assert bucket.take(100.0 + retry_after_s)[0] is True


def test_retry_after_for_several_tokens_is_never_an_underestimate() -> None:
    bucket = TokenBucket(rate_per_s=3, burst=10)
    assert bucket.take(0, n=10)[0]
    ok, retry_after_s = bucket.take(0, n=4)
    assert not ok and Fraction(repr(retry_after_s)) >= Fraction(4, 3)
    assert retry_after_s == pytest.approx(4 / 3)
    assert not bucket.take(1.3333, n=4)[0]
    assert bucket.take(retry_after_s, n=4)[0]


def test_refill_follows_the_rate_and_stops_at_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=Decimal("2.5"), burst=5)
    assert bucket.take(0, n=5)[0]
    assert bucket.take(1, n=3) == (False, pytest.approx(0.2))  # 2.5 there, 3 asked
    assert bucket.take(1, n=2)[0]  # a refusal took nothing
    assert bucket.take(3600, n=5)[0]  # an hour idle: still only the burst
    assert not bucket.take(3600)[0]


def test_a_clock_stepping_back_refills_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=1)
    assert bucket.take(10)[0]
    assert not bucket.take(5)[0]
    assert not bucket.take(10.5)[0]
    assert bucket.take(11)[0]


def test_bucket_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=1, burst=0)
    bucket = TokenBucket(rate_per_s=1, burst=2)
    with pytest.raises(ValueError):
        bucket.take(0, n=3)
    with pytest.raises(ValueError):
        bucket.take(0, n=0)
    with pytest.raises(ValueError):
        bucket.take(float("nan"))


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1, 50),
    burst=st.integers(1, 20),
    steps=st.lists(st.tuples(st.integers(0, 2_000), st.integers(1, 5)), max_size=50),
)
def test_bucket_never_grants_more_than_burst_plus_rate_times_time(
    rate: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    """Against a reference bucket written out here, and the bound every bucket keeps."""
    bucket = TokenBucket(rate, burst)
    model_tokens, now_ms, granted = Fraction(burst), 0, 0
    for step_ms, n in steps:
        now_ms += step_ms
        n = min(n, burst)
        model_tokens = min(Fraction(burst), model_tokens + Fraction(step_ms, 1000) * rate)
        ok, retry_after_s = bucket.take(Fraction(now_ms, 1000), n)
        assert ok == (model_tokens >= n)
        if ok:
            model_tokens -= n
            granted += n
            assert retry_after_s == 0.0
        else:
            assert retry_after_s == pytest.approx(float((n - model_tokens) / rate))
            assert Fraction(repr(retry_after_s)) >= (n - model_tokens) / rate
        assert granted <= burst + Fraction(now_ms, 1000) * rate


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(1, 1000), burst=st.integers(1, 10), n=st.integers(1, 10))
def test_waiting_retry_after_is_enough_and_a_millisecond_less_is_not(
    rate: int, burst: int, n: int
) -> None:
    n = min(n, burst)
    bucket = TokenBucket(rate, burst)
    bucket.take(0, burst)
    ok, retry_after_s = bucket.take(0, n)
    assert not ok and retry_after_s == pytest.approx(n / rate)
    early = TokenBucket(rate, burst)
    early.take(0, burst)
    if retry_after_s > 0.001:
        assert not early.take(retry_after_s - 0.001, n)[0]
    assert bucket.take(retry_after_s, n)[0]


# -- many keys ---------------------------------------------------------------------------------


def test_limiter_keeps_keys_apart() -> None:
    limiter = Limiter(rate_per_s=1, burst=2)
    assert limiter.take("device-A", 0)[0] and limiter.take("device-A", 0)[0]
    assert limiter.take("device-A", 0) == (False, 1.0)
    assert limiter.take("device-B", 0)[0], "A's exhausted bucket does not slow B"


def test_limiter_is_bounded_and_evicts_the_least_recently_used() -> None:
    limiter = Limiter(rate_per_s=1, burst=1, max_keys=100)
    assert limiter.take("hot", 0)[0]
    for i in range(1_000):
        limiter.take(f"device-{i}", 0)
        limiter.take("hot", 0)  # used all the time: never evicted
        assert len(limiter) <= 100
    assert len(limiter) == 100
    assert "hot" in limiter and "device-999" in limiter and "device-0" not in limiter
    assert limiter.take("hot", 0)[0] is False, "its bucket was kept, still empty"


def test_limiter_evicts_by_last_use_not_by_creation() -> None:
    limiter = Limiter(rate_per_s=1, burst=1, max_keys=3)
    for key in ("a", "b", "c"):
        limiter.take(key, 0)
    limiter.take("a", 0)  # a is now the most recently used
    limiter.take("d", 0)
    assert ("a" in limiter, "b" in limiter, "c" in limiter, "d" in limiter) == (
        True,
        False,
        True,
        True,
    )


def test_limiter_takes_the_plan_rate_per_key_and_follows_a_plan_change() -> None:
    limiter = Limiter(rate_per_s=1, burst=1)
    starter, pro = plan("starter").api_rps, plan("pro").api_rps
    assert (starter, pro) == (10, 50)
    granted = [limiter.take("tenant-A", 0, rate_per_s=starter, burst=starter)[0] for _ in range(12)]
    assert granted == [True] * 10 + [False] * 2
    assert limiter.take("tenant-A", 0, rate_per_s=starter, burst=starter) == (False, 0.1)
    # upgraded at 0.1 s: the 0.1 s before earned 1 token at the old rate, not 5 at the new
    assert limiter.take("tenant-A", 0.1, 2, rate_per_s=pro, burst=pro) == (False, 0.02)
    assert limiter.take("tenant-A", 0.12, 2, rate_per_s=pro, burst=pro) == (True, 0.0)
    assert limiter.take("tenant-B", 0)[0] and not limiter.take("tenant-B", 0)[0]


def test_bucket_configure_keeps_what_was_earned_and_caps_at_the_new_burst() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=10)
    bucket.configure(rate_per_s=1, burst=3, now_s=0)
    assert bucket.take(0, 3)[0] and not bucket.take(0)[0]
    with pytest.raises(ValueError):
        bucket.configure(rate_per_s=1, burst=0, now_s=1)


def test_limiter_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    class SlowBucket(TokenBucket):
        def __init__(self, rate_per_s: Number, burst: int) -> None:
            time.sleep(0.01)  # widen the window between looking the key up and adding it
            super().__init__(rate_per_s, burst)

    monkeypatch.setattr(tenant.ratelimit, "TokenBucket", SlowBucket)
    limiter = Limiter(rate_per_s=1, burst=200, max_keys=2)
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = [limiter.take("tenant-A", 0)[0] for _ in range(300)]
        with lock:
            results.extend(mine)

    _run_together([hammer] * 8)
    assert sum(results) == 200 and len(results) == 2_400


def test_limiter_validates_its_bound_and_defaults() -> None:
    with pytest.raises(ValueError):
        Limiter(rate_per_s=1, burst=1, max_keys=0)
    with pytest.raises(ValueError):
        Limiter(rate_per_s=-1, burst=1)
