"""Login throttling, pure and in memory: the caller passes the clock (`now_s`, seconds from
`time.monotonic()` or any other steady clock).

Per account (the submitted login name, normalised, whether or not the user exists, so
throttling reveals nothing):
  * after 5 consecutive failures, each next attempt waits 1, 2, 4 ... s after the last
    failure, capped at 15 min; a success resets the count, as do 24 h without a failure;
  * at most 100 admitted attempts in any sliding hour, refused even with the right password.
Per IP (IPv6 grouped by /64): a token bucket of 30 with 30 refills per minute.

Usage: `d = throttle.check(login, ip, now)`; if not d.ok answer 429 with `Retry-After:
d.retry_after_s` and `LOGIN_THROTTLED_MESSAGE`; otherwise verify the password and call
`record_failure` or `record_success`. An admitted `check` counts as an attempt (so parallel
requests cannot all slip past it).

Memory is bounded: at most `max_accounts` and `max_ips` entries (least recently used evicted,
each account keeping at most 100 timestamps). The state is per process; with several workers
the limits multiply by their number until it moves to a shared store.
"""

import ipaddress
import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

LOGIN_THROTTLED_MESSAGE = "Too many sign-in attempts. Please wait and try again."
FREE_FAILURES = 5
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 15 * 60.0
FAILURE_MEMORY_S = 24 * 3600.0
HOURLY_CAP = 100
HOUR_S = 3600.0
IP_BURST = 30
IP_REFILL_PER_S = 30 / 60


@dataclass(frozen=True)
class Decision:
    ok: bool
    retry_after_s: int = 0
    code: str | None = None


ALLOWED = Decision(ok=True)


@dataclass
class _Account:
    failures: int = 0
    last_failure_s: float = 0.0
    attempts_s: deque[float] = field(default_factory=lambda: deque(maxlen=HOURLY_CAP))


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


def backoff_s(consecutive_failures: int) -> float:
    """How long after the last failure the next attempt must wait."""
    if consecutive_failures < FREE_FAILURES:
        return 0.0
    exponent = min(consecutive_failures - FREE_FAILURES, 32)
    return min(BACKOFF_BASE_S * 2**exponent, BACKOFF_MAX_S)


def ip_key(ip: str) -> str:
    """IPv4 as is, IPv6 by its /64 (one host usually owns a whole /64)."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def account_key(login: str) -> str:
    return login.strip().casefold()


class LoginThrottle:
    def __init__(self, max_accounts: int = 20_000, max_ips: int = 20_000) -> None:
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self._ips: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_accounts = max_accounts
        self._max_ips = max_ips
        self._lock = threading.Lock()

    def check(self, login: str, ip: str, now_s: float) -> Decision:
        with self._lock:
            account = self._account(account_key(login), now_s)
            bucket = self._bucket(ip_key(ip), now_s)
            waits_s = [self._account_wait_s(account, now_s)]
            if bucket.tokens < 1:
                waits_s.append((1 - bucket.tokens) / IP_REFILL_PER_S)
            wait_s = max(waits_s)
            if wait_s > 0:
                return Decision(False, max(1, math.ceil(wait_s)), "login_throttled")
            account.attempts_s.append(now_s)
            bucket.tokens -= 1
            return ALLOWED

    def record_failure(self, login: str, now_s: float) -> None:
        with self._lock:
            account = self._account(account_key(login), now_s)
            account.failures += 1
            account.last_failure_s = now_s

    def record_success(self, login: str, now_s: float) -> None:
        with self._lock:
            self._account(account_key(login), now_s).failures = 0

    def _account_wait_s(self, account: _Account, now_s: float) -> float:
        attempts = account.attempts_s
        while attempts and attempts[0] <= now_s - HOUR_S:
            attempts.popleft()
        cap_wait_s = attempts[0] + HOUR_S - now_s if len(attempts) >= HOURLY_CAP else 0.0
        backoff_wait_s = account.last_failure_s + backoff_s(account.failures) - now_s
        return max(cap_wait_s, backoff_wait_s)

    def _account(self, key: str, now_s: float) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = _Account()
            _evict(self._accounts, self._max_accounts)
        else:
            self._accounts.move_to_end(key)
        if account.failures and now_s - account.last_failure_s >= FAILURE_MEMORY_S:
            account.failures = 0
        return account

    def _bucket(self, key: str, now_s: float) -> _Bucket:
        bucket = self._ips.get(key)
        if bucket is None:
            bucket = self._ips[key] = _Bucket(float(IP_BURST), now_s)
            _evict(self._ips, self._max_ips)
        else:
            self._ips.move_to_end(key)
        elapsed_s = max(0.0, now_s - bucket.updated_s)
        bucket.tokens = min(float(IP_BURST), bucket.tokens + elapsed_s * IP_REFILL_PER_S)
        bucket.updated_s = now_s
        return bucket


def _evict(entries: OrderedDict, limit: int) -> None:
    while len(entries) > limit:
        entries.popitem(last=False)
