"""Whether the request answering an Idempotency-Key is still alive (issue 15, item 3).

A key taken and not yet answered says `in_progress` to a repeat. If the request
holding it died (the API process killed or restarted, the database restarted under
it), the claim stays behind; with only a lease to go by, the sender's re-sends met 409
for five minutes. Here a claim belongs to a live holder instead:

- PostgreSQL: the request holds a session-level advisory lock on its (tenant, key),
  taken before it claims the key and let go after its answer is kept, on a connection
  of its own (`_lock_engine`: autocommit, so no transaction stays open). A process
  that dies, or a backend that ends (a restart, pg_terminate_backend), drops the lock
  with it. A newcomer that gets the lock knows no live request holds the key: a claim
  still "in progress" is an orphan, and it takes over at once. One that does not get
  it is told `in_progress` (the holder is alive), whatever the row says.
- SQLite (the embedded demo, one process): a registry of the keys this process's
  requests hold, and the claim names its holder (this process's boot id and pid). A
  claim by a holder not in the registry is an orphan when it is this process's own
  (its request ended without settling), an earlier process's with the same pid (a
  container restarted), or a process that is gone. A claim by another live process
  (several workers on one SQLite file) is left to the lease.

A claim without a holder (written before migration 0029, or by `take` called without
a hold) falls back to the lease, as does everything this module cannot vouch for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text

log = logging.getLogger(__name__)

BOOT = uuid.uuid4().hex  # this process's incarnation
HOLDER = f"{BOOT}.{os.getpid()}"  # kept with each claim this process makes


def _never_dead(_: str | None) -> bool:
    return False


@dataclass
class Hold:
    """A request's hold on a key's liveness, for `idempotency.take`.

    `exclusive`: no other live request holds the key, so this one may claim it (and a
    claim found in progress is an orphan if `dead(its holder)`); when False another
    live request is answering it. `holder` is kept with the claim. `release()` lets
    the hold go, once the answer is kept (or the key let go); it is safe to call twice.
    """

    holder: str | None = None
    exclusive: bool = True
    dead: Callable[[str | None], bool] = _never_dead
    _release: Callable[[], None] | None = field(default=None, repr=False)

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


LEASE_ONLY = Hold()  # no liveness known: a claim lives until the lease ends


def hold(db: Engine, tenant_id: uuid.UUID, key: str) -> Hold:
    """Hold `key`'s liveness for a request of `tenant_id`, before it claims the key."""
    if db.dialect.name == "postgresql":
        return _advisory_hold(db, tenant_id, key)
    return _local_hold(db, tenant_id, key)


# -- PostgreSQL: a session-level advisory lock on a connection of the request's own ---

_LOCK_POOL = {"pool_size": 5, "max_overflow": 35, "pool_timeout": 10}
_lock_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_lock_engines_guard = threading.Lock()


def _lock_engine(db: Engine) -> Engine:
    """The pool of connections that hold the advisory locks, one per request that holds
    a key (as the tenants' role: advisory locks need no grant). Apart from `db`'s pool,
    so that requests waiting for a work connection never keep a lock's from coming."""
    with _lock_engines_guard:
        engine = _lock_engines.get(db)
        if engine is None:
            engine = create_engine(
                db.url, isolation_level="AUTOCOMMIT", pool_pre_ping=True, **_LOCK_POOL
            )
            _lock_engines[db] = engine
        return engine


def lock_id(tenant_id: uuid.UUID, key: str) -> int:
    """The advisory lock's bigint for (tenant, key). Two keys on one id (a 2⁻⁶⁴ chance)
    only make one wait for the other as if it were a repeat of it."""
    digest = hashlib.blake2b(f"idempotency\n{tenant_id}\n{key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _advisory_hold(db: Engine, tenant_id: uuid.UUID, key: str) -> Hold:
    lock = lock_id(tenant_id, key)
    conn = _lock_engine(db).connect()
    try:
        got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock}))
    except BaseException:
        conn.close()
        raise
    if not got:
        conn.close()
        return Hold(HOLDER, exclusive=False)
    return Hold(HOLDER, True, _held_claim_is_orphan, lambda: _unlock(conn, lock))


def _held_claim_is_orphan(holder: str | None) -> bool:
    """We hold the key's lock, so whoever made a claim with a holder has let it go or
    died (a claim without one predates the locks: the lease decides)."""
    return holder is not None


def _unlock(conn: Connection, lock: int) -> None:
    """Let the lock go and the connection back to the pool; a connection that cannot
    say it let go (the backend is gone, and the lock with it) is thrown away, never
    pooled with a lock still on it."""
    try:
        unlocked = conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
    except Exception as error:  # the backend ended: so did its lock
        log.info("idempotency lock connection lost: %s", error.__class__.__name__)
        unlocked = False
    if not unlocked:
        conn.invalidate()
    conn.close()


# -- SQLite: the keys this process's live requests hold ---------------------------------

_live: set[tuple[str, uuid.UUID, str]] = set()
_live_guard = threading.Lock()


def _local_hold(db: Engine, tenant_id: uuid.UUID, key: str) -> Hold:
    token = (str(db.url), tenant_id, key)
    with _live_guard:
        if token in _live:
            return Hold(HOLDER, exclusive=False)
        _live.add(token)

    def release() -> None:
        with _live_guard:
            _live.discard(token)

    return Hold(HOLDER, True, local_claim_is_orphan, release)


def local_claim_is_orphan(holder: str | None) -> bool:
    """A claim on a key no request of this process holds: is its holder gone?"""
    if holder is None:
        return False
    if holder == HOLDER:
        return True  # this process's own, its request over without settling
    boot, _, pid_text = holder.partition(".")
    if not pid_text.isdigit() or not boot:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # an earlier process with this pid (a container restarted)
    return not _process_alive(pid)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill there ends the process: cannot ask, the lease decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:  # pragma: no cover - cannot tell: leave it to the lease
        return True
    return True


def _after_fork_in_child() -> None:
    """A forked worker is another holder: its own name, none of its parent's holds,
    and none of its parent's lock connections (they are the parent's sessions)."""
    global BOOT, HOLDER
    BOOT = uuid.uuid4().hex
    HOLDER = f"{BOOT}.{os.getpid()}"
    _live.clear()
    for engine in list(_lock_engines.values()):
        engine.dispose(close=False)
    _lock_engines.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def live_keys() -> frozenset[Any]:
    """The keys this process's requests hold on SQLite (for tests and diagnostics)."""
    with _live_guard:
        return frozenset(_live)
