"""The `Idempotency-Key` header on the API's writes (cloud_api/services/idempotency.py
says what a key means). A route class: each write route gets a dependency that takes
the key once the caller's tenant is known (before the body is run), and the route's
answer is kept with the key, or the key let go when the request fails. From taking
the key to keeping its answer the request holds the key's liveness
(cloud_api/services/key_holders.py), so that if it dies a repeat takes over at once."""

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from anyio import CancelScope
from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cloud_api.api import permissions
from cloud_api.api.deps import Principal, bound_principal
from cloud_api.db import tenancy
from cloud_api.domain.clock import now_utc
from cloud_api.services import idempotency, key_holders

log = logging.getLogger(__name__)

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Replay(Exception):
    def __init__(self, reply: idempotency.Reply) -> None:
        self.reply = reply


@dataclass(frozen=True)
class _Held:
    tenant_id: Any
    key: str
    mark: datetime
    secret: bool  # the answer carries a secret: kept without its body
    hold: key_holders.Hold  # let go once the answer is kept or the key let go


async def take_key(
    request: Request,
    principal: Annotated[Principal, Depends(bound_principal)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Send the same request again with the same key and it runs "
            "once: the repeat gets the first reply (kept 24 h). Another request with "
            "the key: 409 idempotency_key_reused; while the first is answered: 409 "
            "in_progress.",
        ),
    ] = None,
) -> None:
    """Take the key once the caller's tenant is known (before the body is run); the
    caller (part of the request a key stands for) is who the audit log names."""
    if idempotency_key is None:
        return
    key, tenant = idempotency.check_key(idempotency_key), principal.tenant
    kind, ident = principal.actor
    digest = idempotency.request_hash(
        request.method,
        request.url.path,
        request.url.query,
        await request.body(),
        f"{kind}:{ident}",
        request.app.state.settings.api_key_pepper,
    )

    def take() -> tuple[idempotency.Taken, key_holders.Hold]:
        db = request.app.state.db
        hold = key_holders.hold(db, tenant.id, key)
        try:
            with tenancy.as_tenant(tenant.id), db.begin() as conn:
                taken = idempotency.take(conn, tenant.id, key, digest, now_utc(), hold)
        except BaseException:
            hold.release()
            raise
        if taken.reply is not None:
            hold.release()
        return taken, hold

    with CancelScope(shield=True):  # a hold taken is always handed on, or let go
        taken, hold = await run_in_threadpool(take)
    if taken.reply is not None:
        raise _Replay(taken.reply)
    assert taken.mark is not None
    secret = permissions.of(request).secret_answer
    request.state.idempotency = _Held(tenant.id, key, taken.mark, secret, hold)


class IdempotentRoute(APIRoute):
    """An APIRoute whose writes honour the header, but those whose Permission says
    they take none (no credential, or a session's own: permissions.Permission.idempotent).
    The answers of routes declared `secret_answer` (a key, a token, a code: shown once)
    are not kept."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kw: Any) -> None:
        methods, dependencies = set(kw.get("methods") or ()), kw.get("dependencies") or []
        has_it = any(d.dependency is take_key for d in dependencies)
        rule = permissions.declared(dependencies)
        takes_key = rule is None or rule.idempotent
        if methods & WRITES and takes_key and not has_it:
            kw["dependencies"] = [*dependencies, Depends(take_key)]
        super().__init__(path, endpoint, **kw)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Replay as replay:
                return Response(
                    replay.reply.body,
                    status_code=replay.reply.status_code,
                    media_type=replay.reply.media_type,
                    headers={idempotency.REPLAYED_HEADER: "true"},
                )
            except BaseException:
                await _settle(request, None)
                raise
            await _settle(request, response)
            return response

        return run


async def _settle(request: Request, response: Response | None) -> None:
    """Keep the answer with the key, or let the key go: for a failure, or an answer
    the route says is not final (a batch with events held or rejected for now). Then
    let the hold go, whatever happened: a request cancelled (its client gone) settles
    all the same, and one that cannot reach the database leaves a claim that a repeat
    takes over (its holder gone) rather than one held until the lease ends."""
    held: _Held | None = getattr(request.state, "idempotency", None)
    if held is None:
        return
    request.state.idempotency = None
    with CancelScope(shield=True):
        try:
            await run_in_threadpool(_settle_key, request, held, response)
        except Exception:
            # The route's own transaction has committed (or failed) already: its answer
            # stands. A database gone between the two must not turn a committed write
            # into a 503 that says nothing was written and invites a repeat; the claim
            # left behind is taken over by a repeat, as a dead holder's is.
            log.exception("could not settle the Idempotency-Key %s", held.key)
        finally:
            await run_in_threadpool(held.hold.release)


def _settle_key(request: Request, held: _Held, response: Response | None) -> None:
    body = getattr(response, "body", None)
    final = (
        response is not None
        and 200 <= response.status_code < 300
        and isinstance(body, bytes)
        and getattr(request.state, "idempotent_final", True)
    )
    with tenancy.as_tenant(held.tenant_id), request.app.state.db.begin() as conn:
        if final:
            assert response is not None and isinstance(body, bytes)
            reply = idempotency.Reply(
                response.status_code,
                None if held.secret else response.media_type or "application/json",
                None if held.secret else body.decode(),
            )
            idempotency.keep(conn, held.tenant_id, held.key, held.mark, reply)
        else:
            idempotency.release(conn, held.tenant_id, held.key, held.mark)
