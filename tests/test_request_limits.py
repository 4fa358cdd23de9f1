"""The body cap (settings.max_body_bytes, cloud_api/api/body_limit.py) counts the bytes
as the body streams: a chunked body (no Content-Length) over the cap is refused with
413 body_too_large as soon as it passes the cap, never parsed, nothing written, and
the server holds no more than the cap of it; a declared Content-Length over the cap is
refused before a byte is read."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from starlette.types import Message, Receive, Scope, Send

from cloud_api.api.app import create_app
from cloud_api.api.body_limit import BodyLimit
from cloud_api.db import models as m
from cloud_api.db import tenancy
from cloud_api.settings import get_settings
from tests.conftest import Api
from tests.edge_harness import CloudServer
from tests.factory import receipt, setup_workshop
from tests.roles import app_engines

T = m.SQLModel.metadata.tables
CAP = 256 * 1024


def _capped(db: Engine, cap: int = CAP) -> Any:
    return create_app(get_settings().model_copy(update={"max_body_bytes": cap}), *app_engines(db))


def _batch_chunks(events: int, per_chunk: int = 500) -> Iterator[bytes]:
    """A valid event batch of `events` receipts, made as it is sent (chunked)."""
    yield b'{"events":['
    for start in range(0, events, per_chunk):
        chunk = ",".join(
            json.dumps(receipt(1, "RAW", "1", "1.00"))
            for _ in range(start, min(events, start + per_chunk))
        )
        yield (("," if start else "") + chunk).encode()
    yield b"]}"


def _posted(db: Engine, api: Api) -> tuple[int, int]:
    """(events kept, idempotency keys kept) for the tenant."""
    ev, keys = T["edge_event"], T["idempotency_record"]
    with tenancy.as_tenant(api.tenant.id), db.connect() as conn:
        events = conn.scalar(select(func.count()).where(ev.c.tenant_id == api.tenant.id))
        kept = conn.scalar(select(func.count()).where(keys.c.tenant_id == api.tenant.id))
    return int(events or 0), int(kept or 0)


def _too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "body_too_large"


def test_a_chunked_body_over_the_cap_is_refused_unparsed(db: Engine) -> None:
    api = Api(db)
    setup_workshop(api)
    client = TestClient(_capped(db))
    headers = {"Authorization": f"Bearer {api.tenant.api_key}", "Idempotency-Key": "big-1"}
    headers["Content-Type"] = "application/json"
    refused = client.post("/api/v1/edge/events", content=_batch_chunks(5_000), headers=headers)
    assert "content-length" not in refused.request.headers  # sent chunked
    _too_large(refused)
    assert _posted(db, api) == (0, 0)  # nothing posted, the key not taken
    # under the cap the same way, it is read and posted
    small = client.post("/api/v1/edge/events", content=_batch_chunks(3), headers=headers)
    assert small.status_code == 200, small.text
    assert small.json()["posted"] == 3


def test_a_chunked_body_over_the_cap_is_refused_where_only_the_key_reads_it(db: Engine) -> None:
    """A route without a body model: the Idempotency-Key dependency reads the body (for
    the request's hash), and is refused there, before the key is taken."""
    api = Api(db)
    client = TestClient(_capped(db))
    headers = {"Authorization": f"Bearer {api.tenant.api_key}", "Idempotency-Key": "rot-1"}
    chunks = (b"x" * 4096 for _ in range(CAP // 4096 + 2))
    _too_large(
        client.post(f"/api/v1/devices/{uuid.uuid4()}/rotate", content=chunks, headers=headers)
    )
    assert _posted(db, api) == (0, 0)


def test_a_declared_length_over_the_cap_is_refused_unread(db: Engine) -> None:
    api = Api(db)
    setup_workshop(api)
    client = TestClient(_capped(db))
    body = b"".join(_batch_chunks(5_000))
    headers = {"Authorization": f"Bearer {api.tenant.api_key}", "Content-Type": "application/json"}
    _too_large(client.post("/api/v1/edge/events", content=body, headers=headers))
    assert _posted(db, api) == (0, 0)


@pytest.mark.postgres
def test_a_chunked_20_mb_batch_over_a_real_server_keeps_memory_small(pg_db: Engine) -> None:
    """100,000 events (about 20 MB) sent chunked to uvicorn with a 1 MB cap: 413, nothing
    posted, and the process's Python allocations grow by a few MB at most (before the
    cap was counted the body was read whole and parsed: hundreds of MB)."""
    api = Api(pg_db)
    setup_workshop(api)
    cap = 1024 * 1024
    server = CloudServer(pg_db)
    server.app = _capped(pg_db, cap)
    server.start()
    sent = 0

    def counted() -> Iterator[bytes]:
        nonlocal sent
        for chunk in _batch_chunks(100_000, per_chunk=250):
            sent += len(chunk)
            yield chunk

    headers = {"Authorization": f"Bearer {api.tenant.api_key}", "Idempotency-Key": "huge"}
    headers["Content-Type"] = "application/json"
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        with httpx.Client(timeout=60) as client:
            refused = client.post(
                server.url + "/api/v1/edge/events", content=counted(), headers=headers
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        server.stop()
    growth_mb = (peak - base) / 2**20
    print(f"peak growth {growth_mb:.1f} MB for {sent / 2**20:.1f} MB sent, cap 1 MB")
    _too_large(refused)
    assert sent > 18 * 1024 * 1024  # the client did send it all (the server read past it)
    assert growth_mb < 6, growth_mb
    assert _posted(pg_db, api) == (0, 0)


# ---- the middleware alone: any chunking, any cap ----


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads its whole body and answers its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _run(app: Any, chunks: list[bytes], length: int | None) -> tuple[int, bytes, int]:
    """(status, body, chunks handed to the app) for a request sent in `chunks`."""
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    pending = list(chunks)
    handed = 0
    answer: list[Message] = []

    async def receive() -> Message:
        nonlocal handed
        if not pending:
            return {"type": "http.disconnect"}
        handed += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        answer.append(message)

    anyio.run(app, scope, receive, send)
    return answer[0]["status"], b"".join(m.get("body", b"") for m in answer[1:]), handed


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=40), max_size=12),
    cap=st.integers(min_value=0, max_value=300),
    declare=st.booleans(),
)
def test_a_body_is_refused_exactly_when_it_passes_the_cap(
    chunks: list[bytes], cap: int, declare: bool
) -> None:
    size = sum(map(len, chunks))
    status, body, handed = _run(BodyLimit(_echo, cap), chunks, size if declare else None)
    if size <= cap:
        assert (status, body) == (200, str(size).encode())
        return
    assert status == 413 and json.loads(body)["code"] == "body_too_large"
    if declare:
        assert handed == 0  # refused on the header, nothing read
    else:  # read no further than the chunk that passed the cap
        passed = next(i for i in range(len(chunks)) if sum(map(len, chunks[: i + 1])) > cap)
        assert handed == passed + 1
