"""Who may call a route, declared on the route itself.

Each API route carries one `Requires(...)` in its `dependencies`: the action a portal
user's role must allow (tenant/rbac.py decides which roles may), the scope a scoped
integration token needs, whether a device key may call it, and the few facts about the
route that the gates ask (a session's own write, one an unpaid tenant may still do,
one a user without a second factor may do, an answer that holds a secret shown once).

The declaration is data: `deps.current_principal` reads the matched route's
`Permission` while it resolves the credential, so the checks run where and in the
order they always have (before the rate limit and before the tenant is bound). A route
without one is refused to every role and token (`UNDECLARED`), and `create_app` refuses
to start with such a route (`undeclared_routes`).

Integrations with the tenant's API key act for the owner: no role check for them. A
device key may call only the routes declared `device=True`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from cloud_api.errors import Forbidden
from tenant.rbac import can
from tenant.security import check_csrf, check_origin

API_PREFIX = "/api/v1"
CSRF_HEADER = "X-CSRF-Token"
READS = frozenset({"GET", "HEAD", "OPTIONS"})

# the action of a session's own writes (sign out, second factor, password, switch
# company): allowed in every subscription state, and never kept with an Idempotency-Key
SESSION = "session"


@dataclass(frozen=True)
class Permission:
    """What a route requires of its caller.

    `action`: the tenant/rbac.py action a portal user's role must allow ("read" for
    most reads). `token_scope`: the scope a scoped token needs (None: no token may).
    `device`: a device key may call it (and its gate is the ingest's own, not the
    integration's). `mfa_free`: a user who must still set up a second factor may.
    `billing`: an unpaid or paused tenant may (SAAS.md's "read + billing").
    `secret_answer`: the answer holds a secret shown once, so an Idempotency-Key keeps
    its status but not its body. `open`: no credential at all (it is in the body, or
    is made)."""

    action: str
    token_scope: str | None = None
    device: bool = False
    mfa_free: bool = False
    billing: bool = False
    secret_answer: bool = False
    open: bool = False

    async def __call__(self) -> None:
        """A declaration: the checks run in deps.current_principal, which reads it."""

    @property
    def idempotent(self) -> bool:
        """Whether a write takes an Idempotency-Key: not without a credential, nor a
        session's own (they set cookies or show secrets)."""
        return not self.open and self.action != SESSION


def Requires(
    action: str,
    *,
    token_scope: str | None = None,
    device: bool = False,
    mfa_free: bool = False,
    billing: bool = False,
    secret_answer: bool = False,
) -> Any:
    """`dependencies=[Requires("production.write")]` on a route."""
    return Depends(
        Permission(
            action,
            token_scope=token_scope,
            device=device,
            mfa_free=mfa_free,
            billing=billing,
            secret_answer=secret_answer,
        )
    )


def Open() -> Any:
    """A route that takes no credential (signing up, logging in, enrolling a device,
    accepting an invitation): the body carries what proves the caller."""
    return Depends(Permission("none", open=True))


# refused to every role ("unmapped" is no action of tenant/rbac.py) and every token
UNDECLARED = Permission("unmapped")


def declared(dependencies: Iterable[Any]) -> Permission | None:
    """The Permission among a route's dependencies (params.Depends), if any."""
    return next((d.dependency for d in dependencies if isinstance(d.dependency, Permission)), None)


def of(request: Request) -> Permission:
    """The matched route's Permission; UNDECLARED for none."""
    route = request.scope.get("route")
    found = declared(getattr(route, "dependencies", ()))
    return found if found is not None else UNDECLARED


def undeclared_routes(routes: Iterable[Any]) -> list[str]:
    """The routes among `routes` that declare no Permission ("METHOD path")."""
    return [
        f"{','.join(sorted(route.methods or ()))} {route.path}"
        for route in routes
        if isinstance(route, APIRoute) and declared(route.dependencies) is None
    ]


def unguarded_routes(routes: Iterable[Any], guard: Callable[..., Any]) -> list[str]:
    """The routes among `routes` that declare a credential but never resolve one: no
    `guard` (deps.current_principal) anywhere in their dependencies. The declaration
    alone checks nothing, so a handler that takes neither the principal nor the tenant
    would answer anyone; `create_app` refuses to start with one."""

    def calls(dependant: Any) -> Iterator[Any]:
        for sub in dependant.dependencies:
            yield sub.call
            yield from calls(sub)

    return [
        f"{','.join(sorted(route.methods or ()))} {route.path}"
        for route in routes
        if isinstance(route, APIRoute)
        and not (declared(route.dependencies) or UNDECLARED).open
        and guard not in calls(route.dependant)
    ]


def route_path(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return path if path.startswith(API_PREFIX) else API_PREFIX + path


def require_scope(request: Request, scopes: frozenset[str]) -> None:
    """A scoped token's request: the route's scope must be among the token's."""
    needed = of(request).token_scope
    if needed is None or needed not in scopes:
        what = f"{request.method} {route_path(request)}"
        raise Forbidden(
            "insufficient_scope",
            f"this token may not {what}" + (f": it needs the scope {needed}" if needed else ""),
        )


def require_device_route(request: Request) -> None:
    if not of(request).device:
        raise Forbidden(
            "device_not_allowed",
            "a device key may only post events and work-order progress, and read master data",
        )


def require_role(request: Request, role: str) -> None:
    action = of(request).action
    if not can(role, action):
        raise Forbidden("forbidden", f"the role {role} may not do this ({action})")


def require_csrf(request: Request, session_token: str, secret: str) -> None:
    """Writes with a session cookie carry the session's CSRF token in a header and, if
    the browser says where it comes from, come from this origin."""
    if request.method in READS:
        return
    allowed = f"{request.url.scheme}://{request.url.netloc}"
    if not check_csrf(session_token, request.headers.get(CSRF_HEADER), secret) or not (
        check_origin(
            request.headers.get("origin"),
            request.headers.get("sec-fetch-site"),
            allowed,
            allow_missing=True,
        )
    ):
        raise Forbidden("csrf_failed", "missing or wrong CSRF token, or a foreign origin")
