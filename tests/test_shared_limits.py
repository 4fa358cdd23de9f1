"""The rate buckets and the login throttle in Redis (REDIS_URL), shared by several API
workers: tested against a real Redis on loopback with two app instances standing for
two worker processes. A limit one worker would grant on its own is refused by the
other once their shared budget is spent."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from cloud_api.api.app import create_app
from cloud_api.settings import get_settings
from tenant.security.throttle import FREE_FAILURES
from tenant.shared_limits import RedisLimiter, RedisLoginThrottle, shared
from tests.conftest import CI
from tests.roles import app_engines
from tests.test_users import Browser, _email

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if CI:
            pytest.fail(f"CI=true and Redis is not usable at {REDIS_URL}: {error}")
        pytest.skip(f"Redis not available at {REDIS_URL}: {error}")
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    import redis

    name = f"erp-test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{name}:*"):
        client.delete(key)


def test_two_workers_share_one_bucket(redis_url: str, prefix: str) -> None:
    (one, _), (two, _) = shared(redis_url, prefix), shared(redis_url, prefix)
    assert isinstance(one, RedisLimiter)
    key = ("tenant", uuid.uuid4())
    taken = [one.take(key, 0, rate_per_s=1, burst=3), two.take(key, 0, rate_per_s=1, burst=3)]
    taken.append(one.take(key, 0, rate_per_s=1, burst=3))
    assert [ok for ok, _ in taken] == [True, True, True]
    ok, wait = two.take(key, 0, rate_per_s=1, burst=3)
    assert not ok and 0 < wait <= 1.0
    other = ("tenant", uuid.uuid4())
    assert two.take(other, 0, rate_per_s=1, burst=3)[0]  # another tenant: its own bucket


def test_two_workers_share_the_login_backoff_and_a_success_resets_it(
    redis_url: str, prefix: str
) -> None:
    (_, one), (_, two) = shared(redis_url, prefix), shared(redis_url, prefix)
    assert isinstance(one, RedisLoginThrottle)
    login = _email("shared")
    for attempt in range(FREE_FAILURES):
        worker = (one, two)[attempt % 2]
        assert worker.check(login, f"10.0.0.{attempt}", 0).ok
        worker.record_failure(login, 0)
    for worker in (one, two):
        refused = worker.check(login, "10.0.1.1", 0)
        assert not refused.ok and refused.retry_after_s >= 1 and refused.code == "login_throttled"
    two.record_success(login, 0)
    assert one.check(login, "10.0.1.2", 0).ok
    assert one.check(_email("someone-else"), "10.0.1.3", 0).ok


def test_the_hourly_cap_and_the_ip_bucket_are_shared(redis_url: str, prefix: str) -> None:
    (_, one), (_, two) = shared(redis_url, prefix), shared(redis_url, prefix)
    login = _email("capped")
    admitted = sum(
        (one, two)[i % 2].check(login, f"10.1.{i // 250}.{i % 250}", 0).ok for i in range(100)
    )
    assert admitted == 100
    assert not two.check(login, "10.2.0.1", 0).ok  # the 101st, even on a fresh IP
    ip_answers = [(one, two)[i % 2].check(_email(f"ip{i}"), "192.0.2.7", 0).ok for i in range(31)]
    assert ip_answers.count(True) == 30 and ip_answers[-1] is False


def test_an_api_with_several_workers_keeps_the_plans_rate_and_throttle(
    db: Engine, redis_url: str, prefix: str
) -> None:
    settings = get_settings().model_copy(update={"redis_url": redis_url, "redis_prefix": prefix})
    workers = [create_app(settings, *app_engines(db)) for _ in range(2)]
    owner = Browser(db, workers[0])
    email = _email("busy")
    owner.sign_up(email)  # a trial: 5 requests a second, 50 at once, for the tenant
    second = Browser(db, workers[1])
    second.client.cookies = owner.client.cookies
    # One budget: 50 at once, then 5 a second, shared by both workers. The bucket refills
    # on Redis's clock while the requests run, so how many pass depends on how fast this
    # machine serves them (a busy one, or parallel test workers, is slower); the bound
    # is taken from the time the requests took. Alone, each worker would grant that much
    # again: about twice as many requests before the first 429.
    started, codes = time.monotonic(), []
    while 429 not in codes and len(codes) < 400:
        codes.append((owner, second)[len(codes) % 2].call("GET", "/items").status_code)
    elapsed = time.monotonic() - started
    assert 429 in codes, f"no 429 in {len(codes)} requests over {elapsed:.1f} s"
    assert 50 <= codes.count(200) <= 50 + 5 * elapsed + 1, (codes.count(200), elapsed)
    stranger = Browser(db, workers[1])
    answers = [
        Browser(db, workers[i % 2]).log_in(email, "wrong password").status_code for i in range(6)
    ]
    assert answers[:5] == [401] * 5 and answers[5] == 429
    assert stranger.log_in(email).status_code == 429  # the right password waits too


def test_without_redis_the_api_fails_open_and_the_login_fails_closed(db: Engine) -> None:
    settings = get_settings().model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "redis_prefix": "erp-test-down"}
    )
    app = create_app(settings, *app_engines(db))
    owner = Browser(db, app)
    owner.sign_up(_email("down"))
    assert owner.call("GET", "/items").status_code == 200
    refused = Browser(db, app).log_in(_email("down"))
    assert refused.status_code == 429
