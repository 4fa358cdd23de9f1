"""Idempotency keys for writes (SAAS.md, device authentication 5; cases 8 and 9).

A write that carries an `Idempotency-Key` header takes the key (per tenant) before it
runs, with a hash of the request: its sender (member, device, token or tenant key),
method, path with its query, and body. Its reply is kept with the key, and a repeat of
the same request gets that reply again, byte for byte, with nothing run twice:

- the key is new (or older than `KEEP`): the request runs, and its reply is kept;
- the same request is still being answered: 409 `in_progress`, Retry-After 1; but if
  the request holding the key died on the way (its process or its database backend
  gone: cloud_api/services/key_holders.py tells), the repeat takes over at once. Only
  when that cannot be told (a claim without a holder) does a `LEASE` decide: a claim
  taken more than that ago has died;
- the same request was answered: the kept reply, with `Idempotent-Replayed: true`;
  an answer that carried a secret (a new key, token or code: shown once) is not kept,
  and a repeat is 409 `secret_shown_once`;
- another request (sender, method, path or body) with the key: 409
  `idempotency_key_reused`, nothing run.

A request that fails (an error reply) does not keep the key, so it can be sent again:
the API's errors write nothing, so running it again is safe. Keys are a tenant's own:
the same key in another tenant is another request. The reply is kept in its own
transaction after the request's: a process that dies between the two leaves the key
taken, and the repeat that takes it over runs the request again (an event's own id
still posts it once).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud_api.db import models as m
from cloud_api.errors import Conflict, Rejected
from cloud_api.services.key_holders import LEASE_ONLY, Hold
from cloud_api.services.subscriptions import Refused
from tenant.security._hmac import key_bytes

T = m.SQLModel.metadata.tables
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP = timedelta(hours=24)  # a key is remembered this long (Stripe's 24 h)
LEASE = timedelta(minutes=5)  # a claim whose holder is unknown: dead after this long
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Reply:
    status_code: int
    media_type: str | None
    body: str | None


def request_hash(method: str, path: str, query: str, body: bytes, sender: str, pepper: str) -> str:
    """The request as a key names it: who sends it (a key is its sender's: another
    member, device or token with it is another request), method, path, query, body.
    Keyed with the pepper: a body may hold a password, and a plain hash of it kept
    for a day could be guessed at offline."""
    digest = hmac.new(key_bytes(pepper), f"{sender}\n{method} {path}?{query}\n".encode(), "sha256")
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Rejected(
            "bad_idempotency_key",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
        )
    return key


@dataclass(frozen=True)
class Taken:
    """What `take` found: a kept reply to give again, or the key taken for this request,
    marked with when (only that mark keeps a reply or lets the key go)."""

    reply: Reply | None = None
    mark: datetime | None = None


def take(
    conn: Connection,
    tenant_id: uuid.UUID,
    key: str,
    digest: str,
    now: datetime,
    hold: Hold = LEASE_ONLY,
) -> Taken:
    """Take `key` for the request hashed `digest`; else Conflict/Refused (nothing run).
    `hold` is what the request knows of the key's live holders (key_holders.hold):
    without it a claim in progress lives until the lease ends."""
    t = T["idempotency_record"]
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    mine = (t.c.tenant_id == tenant_id) & (t.c.key == key)
    row = {"tenant_id": tenant_id, "key": key, "request_hash": digest, "holder": hold.holder}
    for _ in range(3):  # the holder may let the key go between our INSERT and SELECT
        if hold.exclusive:
            taken = conn.execute(
                insert(t)
                .values(**row, created_at=now, locked_at=now)
                .on_conflict_do_nothing()
                .returning(t.c.key)
            ).first()
            if taken is not None:
                return Taken(mark=now)
        held = conn.execute(select(t).where(mine).with_for_update()).mappings().first()
        if held is not None:
            break
        if not hold.exclusive:  # a live request is about to claim it, or just let it go
            raise _busy(key)
    else:
        raise _busy(key)
    answering = held["status_code"] is None
    stale = held["created_at"] < now - KEEP
    if not hold.exclusive and (stale or answering):
        raise _busy(key)  # a live request holds the key: it is being answered
    died = answering and (held["locked_at"] < now - LEASE or hold.dead(held["holder"]))
    if stale or (died and held["request_hash"] == digest):
        created = now if stale else held["created_at"]
        conn.execute(
            update(t)
            .where(mine)
            .values(request_hash=digest, created_at=created, locked_at=now, status_code=None)
            .values(media_type=None, body=None, holder=hold.holder)
        )
        return Taken(mark=now)
    if held["request_hash"] != digest:
        raise Conflict(
            "idempotency_key_reused",
            f"the {HEADER} {key!r} was used for another request (method, path, body or "
            "sender); nothing was done",
        )
    if answering:
        raise _busy(key)
    if held["body"] is None:
        raise Conflict(
            "secret_shown_once",
            f"the request with the {HEADER} {key!r} was answered with a secret, shown "
            "once and not kept; nothing was done again",
        )
    return Taken(Reply(held["status_code"], held["media_type"], held["body"]))


def _busy(key: str) -> Refused:
    return Refused(
        409,
        "in_progress",
        f"a request with the {HEADER} {key!r} is being answered; send it again shortly",
        retry_after_s=1,
    )


def keep(conn: Connection, tenant_id: uuid.UUID, key: str, mark: datetime, reply: Reply) -> None:
    """The answer, kept with the key (a secret's without its body), if the key is still
    this request's (`mark`)."""
    t = T["idempotency_record"]
    conn.execute(
        update(t)
        .where(*_held(t, tenant_id, key, mark))
        .values(status_code=reply.status_code, media_type=reply.media_type, body=reply.body)
    )


def release(conn: Connection, tenant_id: uuid.UUID, key: str, mark: datetime) -> None:
    """The request failed: the key is free for it to be sent again (if still its own)."""
    t = T["idempotency_record"]
    conn.execute(delete(t).where(*_held(t, tenant_id, key, mark)))


def _held(t: Any, tenant_id: uuid.UUID, key: str, mark: datetime) -> list[Any]:
    return [
        t.c.tenant_id == tenant_id,
        t.c.key == key,
        t.c.locked_at == mark,
        t.c.status_code.is_(None),
    ]


def expire(conn: Connection, tenant_id: uuid.UUID, now: datetime) -> int:
    """Forget the tenant's keys older than KEEP (run by `erp tenant purge`)."""
    t = T["idempotency_record"]
    gone = conn.execute(
        delete(t).where(t.c.tenant_id == tenant_id, t.c.created_at < now - KEEP)
    ).rowcount
    return int(gone)
