"""Token buckets, per device and per tenant (SAAS.md: rate limits are token buckets).

The clock is injected: `now_s` is seconds on any monotonic clock (`time.monotonic()`).
Arithmetic is exact (`Fraction`; a float is read as the decimal it prints as), so a
bucket refilled for exactly the `retry_after_s` it returned admits the request.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable
from decimal import Decimal
from fractions import Fraction

Number = int | float | Decimal | Fraction
DEFAULT_MAX_KEYS = 10_000


class TokenBucket:
    """Holds at most `burst` tokens, refilled at `rate_per_s`; starts full. A request of
    `n` takes `n` tokens or, if there are too few, none."""

    def __init__(self, rate_per_s: Number, burst: int) -> None:
        self._rate = _checked_rate(rate_per_s, burst)
        self._burst = burst
        self._tokens = Fraction(burst)
        self._last_s: Fraction | None = None

    @property
    def rate_per_s(self) -> Fraction:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    def configure(self, rate_per_s: Number, burst: int, now_s: Number) -> None:
        """Change the rate and burst from `now_s` on (a plan change): the time before it
        refills at the old rate; tokens above the new burst are lost."""
        rate = _checked_rate(rate_per_s, burst)
        self._refill(_exact(now_s))
        self._rate, self._burst = rate, burst
        self._tokens = min(self._tokens, Fraction(burst))

    def take(self, now_s: Number, n: int = 1) -> tuple[bool, float]:
        """(True, 0.0) if `n` tokens were taken; else (False, seconds until they will be
        there). The wait is exact, rounded up to the next float, never an underestimate.
        A clock that steps back refills nothing."""
        if not 1 <= n <= self._burst:
            raise ValueError(f"n must be between 1 and the burst {self._burst}, not {n}")
        self._refill(_exact(now_s))
        if self._tokens >= n:
            self._tokens -= n
            return True, 0.0
        return False, _float_up((n - self._tokens) / self._rate)

    def _refill(self, now_s: Fraction) -> None:
        if self._last_s is not None and now_s > self._last_s:
            gained = (now_s - self._last_s) * self._rate
            self._tokens = min(Fraction(self._burst), self._tokens + gained)
        if self._last_s is None or now_s > self._last_s:
            self._last_s = now_s


class Limiter:
    """One bucket per key (a device id, a tenant id), at most `max_keys` of them: the least
    recently used is evicted (it comes back full, so the bound must exceed the number of
    keys active within a burst's refill time). Thread-safe."""

    def __init__(self, rate_per_s: Number, burst: int, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, not {max_keys}")
        TokenBucket(rate_per_s, burst)  # validates the defaults now, not at the first take
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(
        self,
        key: Hashable,
        now_s: Number,
        n: int = 1,
        *,
        rate_per_s: Number | None = None,
        burst: int | None = None,
    ) -> tuple[bool, float]:
        """`TokenBucket.take` on `key`'s bucket; `rate_per_s`/`burst` override the
        defaults for this key (e.g. the tenant's plan rate) and follow a plan change."""
        rate = self._rate_per_s if rate_per_s is None else rate_per_s
        size = self._burst if burst is None else burst
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, size)
                while len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                if bucket.rate_per_s != _exact(rate) or bucket.burst != size:
                    bucket.configure(rate, size, now_s)
            return bucket.take(now_s, n)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._buckets


def _checked_rate(rate_per_s: Number, burst: int) -> Fraction:
    rate = _exact(rate_per_s)
    if rate <= 0:
        raise ValueError(f"rate_per_s must be > 0, not {rate_per_s}")
    if burst < 1:
        raise ValueError(f"burst must be >= 1, not {burst}")
    return rate


def _exact(value: Number) -> Fraction:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        return Fraction(repr(value))
    return Fraction(value)


def _float_up(value: Fraction) -> float:
    """The nearest float, moved up if it reads (as `_exact` reads floats) below `value`."""
    approx = float(value)
    for _ in range(4):  # one step up is enough in practice; the bound is for safety
        if _exact(approx) >= value:
            return approx
        approx = math.nextafter(approx, math.inf)
    raise AssertionError(f"no float found above {value}")
