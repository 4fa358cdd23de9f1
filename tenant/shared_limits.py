"""The API's token buckets and the login throttle kept in Redis, so that several API
workers (and hosts) share one budget per tenant, device, account and IP instead of
each granting its own. Same rules and interfaces as tenant/ratelimit.py's Limiter and
tenant/security/throttle.py's LoginThrottle; each decision is one Lua script, atomic
in Redis, on Redis's own clock (the callers' `now_s` is ignored: the workers' clocks
need not agree). Keys expire when idle, so memory follows the active keys."""

from __future__ import annotations

import math
from collections.abc import Hashable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tenant.security.throttle import (
    ALLOWED,
    BACKOFF_BASE_S,
    BACKOFF_MAX_S,
    FAILURE_MEMORY_S,
    FREE_FAILURES,
    HOUR_S,
    HOURLY_CAP,
    IP_BURST,
    IP_REFILL_PER_S,
    Decision,
    account_key,
    ip_key,
)

Number = int | float | Decimal | Fraction

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS[1] the bucket; ARGV rate per s, burst, n. Returns {1, 0} or {0, wait seconds}.
_TAKE = (
    _NOW
    + """
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens, at = burst, now end
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) else now = at end
local ttl = math.ceil(burst / rate) + 1
if tokens >= n then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - n), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], ttl)
  return {1, '0'}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], ttl)
return {0, tostring((n - tokens) / rate)}
"""
)

# KEYS account hash, account attempts (sorted set), IP bucket. Returns {ok, wait}.
_CHECK = (
    _NOW
    + f"""
local f = redis.call('HMGET', KEYS[1], 'failures', 'last')
local failures, last = tonumber(f[1]) or 0, tonumber(f[2]) or 0
if failures > 0 and now - last >= {FAILURE_MEMORY_S} then
  failures = 0
  redis.call('HSET', KEYS[1], 'failures', 0)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - {HOUR_S})
local wait = 0
local count = redis.call('ZCARD', KEYS[2])
if count >= {HOURLY_CAP} then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = tonumber(first[2]) + {HOUR_S} - now
end
if failures >= {FREE_FAILURES} then
  local backoff = math.min({BACKOFF_BASE_S} * 2 ^ math.min(failures - {FREE_FAILURES}, 32),
                           {BACKOFF_MAX_S})
  wait = math.max(wait, last + backoff - now)
end
local b = redis.call('HMGET', KEYS[3], 'tokens', 'at')
local tokens, at = tonumber(b[1]) or {IP_BURST}, tonumber(b[2]) or now
tokens = math.min({IP_BURST}, tokens + math.max(0, now - at) * {IP_REFILL_PER_S})
if tokens < 1 then wait = math.max(wait, (1 - tokens) / {IP_REFILL_PER_S}) end
if wait > 0 then
  redis.call('HSET', KEYS[3], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[3], 120)
  return {{0, tostring(wait)}}
end
redis.call('ZADD', KEYS[2], now, tostring(now) .. '#' .. count)
redis.call('EXPIRE', KEYS[2], {int(HOUR_S)})
redis.call('HSET', KEYS[3], 'tokens', tostring(tokens - 1), 'at', tostring(now))
redis.call('EXPIRE', KEYS[3], 120)
return {{1, '0'}}
"""
)

_FAILURE = (
    _NOW
    + f"""
redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], {int(FAILURE_MEMORY_S)})
return 1
"""
)


class RedisLimiter:
    """tenant.ratelimit.Limiter's `take`, one bucket per key, shared through Redis."""

    def __init__(self, client: Any, prefix: str = "erp") -> None:
        import redis

        self._take = client.register_script(_TAKE)
        self._prefix = prefix
        self._errors = redis.RedisError

    def take(
        self,
        key: Hashable,
        now_s: Number,
        n: int = 1,
        *,
        rate_per_s: Number | None = None,
        burst: int | None = None,
    ) -> tuple[bool, float]:
        if rate_per_s is None or burst is None:
            raise ValueError("a shared bucket needs its rate and burst")
        if float(rate_per_s) <= 0 or not 1 <= n <= burst:
            raise ValueError(f"bad bucket: rate {rate_per_s}, burst {burst}, n {n}")
        name = ":".join(str(part) for part in (key if isinstance(key, tuple) else (key,)))
        try:
            ok, wait = self._take(
                keys=[f"{self._prefix}:rl:{name}"], args=[str(float(rate_per_s)), burst, n]
            )
        except self._errors:  # fail open: a cache outage must not stop the floor's ingest
            return True, 0.0
        return bool(ok), 0.0 if ok else math.ceil(float(wait) * 1000) / 1000


class RedisLoginThrottle:
    """tenant.security.throttle.LoginThrottle's rules, shared through Redis."""

    def __init__(self, client: Any, prefix: str = "erp") -> None:
        self._client = client
        self._check = client.register_script(_CHECK)
        self._failure = client.register_script(_FAILURE)
        self._prefix = prefix

    def _keys(self, login: str) -> tuple[str, str]:
        account = account_key(login)
        return f"{self._prefix}:login:{account}", f"{self._prefix}:login-attempts:{account}"

    def check(self, login: str, ip: str, now_s: float) -> Decision:
        """Fails closed: without its store the throttle admits nobody (for a while)."""
        import redis

        account, attempts = self._keys(login)
        try:
            ok, wait = self._check(
                keys=[account, attempts, f"{self._prefix}:login-ip:{ip_key(ip)}"]
            )
        except redis.RedisError:
            return Decision(False, 5, "login_throttled")
        if ok:
            return ALLOWED
        return Decision(False, max(1, math.ceil(float(wait))), "login_throttled")

    def record_failure(self, login: str, now_s: float) -> None:
        self._failure(keys=[self._keys(login)[0]])

    def record_success(self, login: str, now_s: float) -> None:
        self._client.hset(self._keys(login)[0], "failures", 0)


def shared(redis_url: str, prefix: str = "erp") -> tuple[RedisLimiter, RedisLoginThrottle]:
    """Both, on one connection pool to `redis_url` (e.g. redis://127.0.0.1:6379/0)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    return RedisLimiter(client, prefix), RedisLoginThrottle(client, prefix)
