"""A key's "in progress" claim belongs to a live request (issue 15, item 3;
cloud_api/services/key_holders.py): while its holder is alive a repeat is 409
`in_progress`; once the holder is gone (its process killed, its PostgreSQL backend
terminated, its request over without settling) the same sender's repeat is run at
once, not after the 5-minute lease. The holder that dies here is a real process,
SIGKILLed, on both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, text

from cloud_api.db import models as m
from cloud_api.db import rls, tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.services import idempotency, key_holders
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.edge_harness import CloudServer
from tests.factory import receipt, setup_workshop
from tests.roles import as_role

T = m.SQLModel.metadata.tables
ROOT = Path(__file__).resolve().parent.parent
ITEM = {"code": "X", "name": "Widget", "kind": "raw"}
KEY = {"Idempotency-Key": "item-x"}
CHILD_APP = "erp-test-key-holder"

# a process that takes a key as the API does (the hold first, then the claim), says so,
# and waits to be killed
HOLDER_PROCESS = """
import sys, uuid
from cloud_api.db import tenancy
from cloud_api.db.engine import make_engine
from cloud_api.domain.clock import now_utc
from cloud_api.services import idempotency, key_holders
url, tenant, key, digest = sys.argv[1:5]
db, tenant_id = tenancy.install(make_engine(url)), uuid.UUID(tenant)
hold = key_holders.hold(db, tenant_id, key)
assert hold.exclusive
with tenancy.as_tenant(tenant_id), db.begin() as conn:
    assert idempotency.take(conn, tenant_id, key, digest, now_utc(), hold).mark is not None
print("held", flush=True)
sys.stdin.read()
"""


def _digest(body: dict[str, Any], path: str = "/api/v1/items") -> str:
    content = httpx.Request("POST", "/", json=body).content
    pepper = get_settings().api_key_pepper
    return idempotency.request_hash("POST", path, "", content, "api_key:tenant", pepper)


def _url(db: Engine) -> str:
    """The app's database as the API reaches it (erp_app on PostgreSQL)."""
    url = as_role(db, rls.APP).url
    if db.dialect.name == "postgresql":
        url = url.update_query_dict({"application_name": CHILD_APP})
    return url.render_as_string(hide_password=False)


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    """Wait for something another process does (a killed client's backend ending)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@contextmanager
def holder_process(db: Engine, tenant_id: uuid.UUID, key: str, digest: str) -> Iterator[Any]:
    """Another API process holding `key`, mid-request; yields a kill() that SIGKILLs it
    and returns once it is gone (and, on PostgreSQL, its backend with it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER_PROCESS, _url(db), str(tenant_id), key, digest],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"held\n"

        def kill() -> None:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            if db.dialect.name == "postgresql":
                _wait_for(lambda: _backends(db, CHILD_APP) == 0, "the killed holder's backend")

        yield kill
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def _backends(db: Engine, application: str) -> int:
    with db.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :a"
                ),
                {"a": application},
            )
            or 0
        )


def _advisory_locks(db: Engine) -> list[int]:
    """The backends holding advisory locks in this database."""
    with db.connect() as conn:
        rows = conn.scalars(
            text(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            )
        )
        return list(rows)


def _in_progress(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "in_progress"
    assert response.headers["Retry-After"] == "1"


def _items(api: Api) -> int:
    return sum(1 for row in api.get("/items").json() if row["code"] == ITEM["code"])


# ---- (a) + (b): a holder in another process, alive then killed ----


def test_a_killed_holders_key_is_taken_over_at_once(db: Engine) -> None:
    """Another API process holds the key mid-request: the repeat is 409 in_progress;
    it is killed (SIGKILL: nothing settles): the repeat runs at once, long before the
    lease would end, and its answer is kept as usual."""
    api = Api(db)
    with holder_process(db, api.tenant.id, KEY["Idempotency-Key"], _digest(ITEM)) as kill:
        _in_progress(api.post("/items", json=ITEM, headers=KEY))
        assert _items(api) == 0
        kill()
        taken = api.post("/items", json=ITEM, headers=KEY)
    assert taken.status_code == 201, taken.text
    assert "Idempotent-Replayed" not in taken.headers
    again = api.post("/items", json=ITEM, headers=KEY)
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == taken.content
    assert _items(api) == 1


def test_a_killed_holders_key_is_still_its_request_s(db: Engine) -> None:
    """Taking over is for the same request: another one with the dead holder's key is
    still idempotency_key_reused, nothing run."""
    api = Api(db)
    with holder_process(db, api.tenant.id, KEY["Idempotency-Key"], _digest(ITEM)) as kill:
        kill()
        other = api.post("/items", json={**ITEM, "code": "Y"}, headers=KEY)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert _items(api) == 0


# ---- (b) a live request of the API itself ----


class _Gate:
    """Stands in for the app's ingest service: the first batch waits in it (outside any
    transaction) until opened, so a request is alive and mid-way for as long as needed."""

    def __init__(self, ingest: Any) -> None:
        self.ingest_service, self.entered, self.open = ingest, threading.Event(), threading.Event()

    def ingest(self, *args: Any, **kw: Any) -> Any:
        self.entered.set()
        assert self.open.wait(30)
        return self.ingest_service.ingest(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ingest_service, name)


def test_a_live_request_holds_its_key_until_it_is_answered(db: Engine) -> None:
    api = Api(db)
    setup_workshop(api)
    server = CloudServer(db)
    gate = _Gate(server.app.state.ingest)
    server.app.state.ingest = gate
    server.start()
    url = server.url + "/api/v1/edge/events"
    headers = {"Authorization": f"Bearer {api.tenant.api_key}", "Idempotency-Key": "batch-1"}
    batch = {"events": [receipt(1, "RAW", "10", "2.50")]}
    first: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: first.append(httpx.post(url, json=batch, headers=headers, timeout=60))
    )
    try:
        sender.start()
        assert gate.entered.wait(30)
        _in_progress(httpx.post(url, json=batch, headers=headers, timeout=60))
        if db.dialect.name == "postgresql":
            assert len(_advisory_locks(db)) == 1  # the live request's
        gate.open.set()
        sender.join(60)
        (answer,) = first
        assert answer.status_code == 200 and answer.json()["posted"] == 1, answer.text
        again = httpx.post(url, json=batch, headers=headers, timeout=60)
    finally:
        gate.open.set()
        server.stop()
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == answer.content
    if db.dialect.name == "postgresql":
        assert _advisory_locks(db) == []  # let go with the answer, never left pooled
    else:
        assert key_holders.live_keys() == frozenset()


# ---- (c) PostgreSQL: the holder's backend ends under it ----


@pytest.mark.postgres
def test_a_holder_whose_backend_is_terminated_is_taken_over_at_once(pg_db: Engine) -> None:
    """A database restart ends every backend, the lock's among them: the claim left
    behind is taken over at once; the old holder's late answer changes nothing."""
    api = Api(pg_db)
    app_db = as_role(pg_db, rls.APP)
    key = KEY["Idempotency-Key"]
    hold = key_holders.hold(app_db, api.tenant.id, key)
    with tenancy.as_tenant(api.tenant.id), app_db.begin() as conn:
        old = idempotency.take(conn, api.tenant.id, key, _digest(ITEM), now_utc(), hold)
    _in_progress(api.post("/items", json=ITEM, headers=KEY))
    (pid,) = _advisory_locks(pg_db)
    with pg_db.connect() as conn:
        assert conn.scalar(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
    taken = api.post("/items", json=ITEM, headers=KEY)
    assert taken.status_code == 201, taken.text
    hold.release()  # the old holder finishing late: its connection is gone, no error
    with tenancy.as_tenant(api.tenant.id), app_db.begin() as conn:
        late = idempotency.Reply(500, None, "late")
        assert old.mark is not None
        idempotency.keep(conn, api.tenant.id, key, old.mark, late)
    again = api.post("/items", json=ITEM, headers=KEY)
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == taken.content
    assert _advisory_locks(pg_db) == []


# ---- SQLite's holders within the process, and claims without a holder ----


def test_a_claim_of_this_process_whose_request_ended_unsettled_is_taken_over(
    sqlite_db: Engine,
) -> None:
    """The request's answer could not be kept (the database failed it): its hold ends
    with it, and the claim it left is an orphan; while held, it is in progress."""
    api = Api(sqlite_db)
    key = KEY["Idempotency-Key"]
    hold = key_holders.hold(sqlite_db, api.tenant.id, key)
    with tenancy.as_tenant(api.tenant.id), sqlite_db.begin() as conn:
        idempotency.take(conn, api.tenant.id, key, _digest(ITEM), now_utc(), hold)
    _in_progress(api.post("/items", json=ITEM, headers=KEY))
    hold.release()
    assert api.post("/items", json=ITEM, headers=KEY).status_code == 201


def _claim(db: Engine, api: Api, holder: str | None, locked_ago: timedelta) -> None:
    now = now_utc()
    row = {"tenant_id": api.tenant.id, "key": KEY["Idempotency-Key"], "holder": holder}
    with tenancy.as_tenant(api.tenant.id), db.begin() as conn:
        conn.execute(
            insert(T["idempotency_record"]).values(
                **row, request_hash=_digest(ITEM), created_at=now, locked_at=now - locked_ago
            )
        )


def test_a_claim_from_an_earlier_process_with_this_pid_is_taken_over(sqlite_db: Engine) -> None:
    """A container restarted: the new API process has the old one's pid, not its boot."""
    api = Api(sqlite_db)
    _claim(sqlite_db, api, f"{uuid.uuid4().hex}.{os.getpid()}", timedelta(0))
    assert api.post("/items", json=ITEM, headers=KEY).status_code == 201


def test_which_claims_sqlite_takes_for_orphans() -> None:
    orphan = key_holders.local_claim_is_orphan
    other_boot = uuid.uuid4().hex
    assert orphan(key_holders.HOLDER)  # ours, and no request of ours holds the key
    assert orphan(f"{other_boot}.{os.getpid()}")  # an earlier process with our pid
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert orphan(f"{other_boot}.{gone.pid}")  # a process that has ended
    assert not orphan(f"{other_boot}.{os.getppid()}")  # a live process: the lease decides
    assert not orphan(None) and not orphan("garbage") and not orphan(".12")
