"""The cap on a request's body (settings.max_body_bytes), counted as the body streams.

A Content-Length over the cap is refused before a byte is read. A body without one
(`Transfer-Encoding: chunked`) is counted chunk by chunk as the app reads it, and the
read that passes the cap raises `BodyTooLarge` instead of handing the chunk on: the app
never holds more than the cap, never parses the body, and nothing runs (the body is
read before any dependency or handler: FastAPI's body parsing, the Idempotency-Key
dependency's hash). The answer is 413 problem+json `body_too_large` either way.

A pure ASGI middleware rather than an `@app.middleware("http")` one: it has to wrap
`receive`, which Starlette's BaseHTTPMiddleware does not let it replace.
"""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_api.api import problems

CODE = "body_too_large"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the cap. An HTTPException, so FastAPI's
    body parsing lets it through (it turns other errors into a 400) and the app's
    handler for HTTP errors answers it as 413 body_too_large."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, _detail(cap))


def _detail(cap: int) -> str:
    return f"the body exceeds {cap} bytes"


class BodyLimit:
    """Refuse a body over `max_bytes` with 413, counting the bytes as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_bytes
        if _declared_length(scope) > cap:
            await _refuse(scope, receive, send, cap)
            return
        counted, over, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal counted, over
            if over:  # the app read on after the refusal: refuse again, read nothing
                raise BodyTooLarge(cap)
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > cap:
                    over = True
                    raise BodyTooLarge(cap)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:  # pragma: no cover - the app answered before reading its body
                raise
            await _refuse(scope, receive, send, cap)


def _declared_length(scope: Scope) -> int:
    """The Content-Length the client declared (-1 when none; the server itself
    refuses a malformed one)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.strip().isdigit() else -1
    return -1


async def _refuse(scope: Scope, receive: Receive, send: Send, cap: int) -> None:
    """Answer 413. The rest of the body is left unread: the server reads past it, and
    the connection stays open, so a client still sending it gets the answer (the edge
    halves its batches on a 413) rather than a broken pipe."""
    await problems.problem(413, CODE, _detail(cap))(scope, receive, send)
