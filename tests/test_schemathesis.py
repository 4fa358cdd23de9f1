"""SAAS.md case 20: schemathesis, in-process, generates requests for every operation of
the OpenAPI document from its schemas (and breaks them), sent with tenant A's and then
tenant B's credentials, each in two kinds: the tenant's API key, and the portal session
of the tenant's owner (signed in with TOTP, as Pro requires: cookie `__Host-session`,
`X-CSRF-Token` on writes). No 5xx, every answer matches its documented schema and
content type, none carries an id of the other tenant's rows, and no credential is ever
refused mid-run. Without credentials: 401."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from sqlalchemy import Engine

from tests.conftest import Api
from tests.factory import receipt, setup_workshop
from tests.test_isolation import UUID_RE, ids_of, owner_session

# the operations that need no credential (and the edge's own, open by design)
OPEN = {
    "/api/v1/signup",
    "/api/v1/login",
    "/api/v1/devices/enroll",
    "/api/v1/invitations/accept",
}
SESSION_COOKIE = "__Host-session"
# Generated values of the operations' credential header parameters: dropped from the
# session's calls, or a made-up key would win over the cookie (a 401 testing nothing).
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}
# Error codes that mean the credential itself was refused, i.e. the run stopped testing
# what it says: no call of either kind may get one.
CREDENTIAL_REFUSED = {
    "missing_api_key",
    "invalid_api_key",
    "session_expired",
    "csrf_failed",
    "mfa_setup_required",
    "rate_limited",
}
# What would end the owner's session mid-run, so the session runs it only once, after
# every other operation (the last thing each owner does), then checks the session is
# gone. Kept in the run, and why nothing else needs to be:
# - POST /session/switch: a generated slug is no company the owner belongs to, so 404
#   unknown_tenant "and the session goes on" (services/users.py switch_tenant);
# - POST /me/password: needs the current password, which is never generated: 401;
# - POST /mfa/setup only sets a pending secret (the confirmed factor stays), and a
#   generated /mfa/confirm code that happened to match would keep the session;
# - PATCH/DELETE /users/{user_id}: a generated id is never the signed-in owner's: 404;
# - POST /subscription/cancel: needs the company's slug as `confirm`: 422;
# - POST /api-key/rotate and /api-key/revoke: the owner's session really replaces the
#   tenant's key (the old one dies at once) or revokes it; the key run goes on with the
#   key the answer gives, or with one the owner gets at once (`_rekey`).
# After every operation both owners' sessions are checked to be alive, so an operation
# that ended one would be named.
SESSION_LAST = {"POST /api/v1/logout"}


class Tenants:
    def __init__(self, db: Engine) -> None:
        self.a, self.b = Api(db), Api(db)
        for api in (self.a, self.b):
            setup_workshop(api)
            api.events(receipt(1, "RAW", "5", "2.00"))
        self.app = self.a.client.app
        # each tenant's owner, signed in before any run (with the keys still unrotated)
        self.owners = {api.tenant.id: owner_session(api, db) for api in (self.a, self.b)}
        self.keys = {api.tenant.id: api.tenant.api_key for api in (self.a, self.b)}
        self.ids = {api.tenant.id: ids_of(db, api.tenant.id) for api in (self.a, self.b)}
        self.sent_as_owner: set[str] = set()  # the operations the sessions were sent


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def tenants(request: pytest.FixtureRequest) -> Tenants:
    from tests.conftest import _engine

    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return Tenants(_engine(url))


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def test_no_5xx_no_schema_violation_no_other_tenants_ids(tenants: Tenants) -> None:
    """Every operation, a dozen generated cases each (fixed seed), each sent as A and
    as B with the tenant's key, and as A's and B's owner in the portal session
    (SESSION_LAST: once, at the end; OPEN reads no credential: the key's call only).
    The kinds take turns going first, so each gets its writes answered 201, not only
    409 for what the other just created. schemathesis's own pytest plugin does not
    load under this pytest, so the operations' Hypothesis strategies are driven here."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", tenants.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 50
    labels = {operation.label for operation in operations}
    assert labels >= SESSION_LAST and len(SESSION_LAST) <= 2  # small, and still real
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            kinds = ("session", "key") if _session_first(case) else ("key", "session")
            for kind in kinds:
                skip = case.operation.label in SESSION_LAST or case.path in OPEN
                if kind == "session" and skip:
                    continue
                for me, other in ((tenants.a, tenants.b), (tenants.b, tenants.a)):
                    _send_and_check(tenants, case, kind, me, other)

        try:
            run()
            if operation.label not in SESSION_LAST:
                _owners_signed_in(tenants, f"after {operation.label}")
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error

    # what ends the session: one generated case per owner, after everything else
    for operation in (o for o in operations if o.label in SESSION_LAST):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=1,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run_last(case: Any) -> None:
            for me, other in ((tenants.a, tenants.b), (tenants.b, tenants.a)):
                _send_and_check(tenants, case, "session", me, other)

        run_last()
        for owner in tenants.owners.values():  # and the session really ended
            assert owner.call("GET", "/me").status_code == 401, operation.label
    # the sessions went everywhere a credential is read
    assert tenants.sent_as_owner == {o.label for o in operations if o.path not in OPEN}


def _send_and_check(tenants: Tenants, case: Any, kind: str, me: Api, other: Api) -> None:
    if kind == "key":
        response = case.call(headers={"Authorization": f"Bearer {tenants.keys[me.tenant.id]}"})
    else:  # the owner's browser: its cookie and, on writes, its CSRF header
        owner = tenants.owners[me.tenant.id]
        cookie = owner.client.cookies.get(SESSION_COOKIE)
        assert cookie and owner.csrf
        write = case.method.upper() not in ("GET", "HEAD", "OPTIONS")
        sent = case.headers
        case.headers = {
            k: v for k, v in (sent or {}).items() if k.lower() not in CREDENTIAL_HEADERS
        }
        try:
            response = case.call(
                headers={"X-CSRF-Token": owner.csrf} if write else {},
                cookies={SESSION_COOKIE: cookie},
            )
        finally:
            case.headers = sent
        tenants.sent_as_owner.add(case.operation.label)
    case.validate_response(response, checks=CHECKS)
    where = (kind, case.method, case.formatted_path, response.status_code)
    assert _code(response) not in CREDENTIAL_REFUSED, (*where, response.text[:300])
    others = tenants.ids[other.tenant.id] - tenants.ids[me.tenant.id]
    leaked = set(UUID_RE.findall(_text(response))) & others
    assert not leaked, (*where, sorted(leaked)[:3])
    if response.status_code == 200:
        _rekey(tenants, case.operation.label, me, response)


def _rekey(tenants: Tenants, label: str, me: Api, response: Any) -> None:
    """After the owner replaced or revoked the tenant's key: the key the run goes on
    with (the old one is refused from then on)."""
    if label == "POST /api/v1/api-key/rotate":
        tenants.keys[me.tenant.id] = response.json()["api_key"]
    elif label == "POST /api/v1/api-key/revoke":  # none left: the owner gets a new one
        again = tenants.owners[me.tenant.id].call("POST", "/api-key/rotate")
        assert again.status_code == 200, again.text
        tenants.keys[me.tenant.id] = again.json()["api_key"]


def _session_first(case: Any) -> bool:
    """Half the cases, picked by their own data: the same case takes the same turn when
    Hypothesis replays it, and in every process."""
    body = None if case.body is NOT_SET else case.body  # its repr has an address
    data = (case.path_parameters, case.query, body)
    return hashlib.sha256(repr(data).encode()).digest()[0] % 2 == 1


def _owners_signed_in(tenants: Tenants, when: str) -> None:
    for owner in tenants.owners.values():
        me = owner.call("GET", "/me")
        assert me.status_code == 200 and me.json()["role"] == "owner", (when, me.text)


def _code(response: Any) -> Any:
    """An error's code (a created row's own `code` field is data, not an error)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def test_every_operation_without_credentials_is_401(tenants: Tenants) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(tenants.app)
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1") or path in OPEN:
            continue
        url = path.format_map(_Ids())
        for op in ops:
            response = client.request(op.upper(), url, json={})
            assert response.status_code == 401, (op, path, response.text)
            checked += 1
    assert checked >= 45


def _text(response: Any) -> str:
    content_type = response.headers.get("content-type") or [""]  # a list per header
    if content_type[0] != "application/zip":
        return str(response.text)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return "".join(archive.read(name).decode() for name in archive.namelist())


class _Ids(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return str(uuid.uuid4()) if key.endswith("_id") else "X1"


# Issue 15, item 7: the values at and past the edge of each parameter's type, which the
# generated cases rarely reach: times whose conversion overflowed, integers beyond 64
# bits, NUL and bytes that are not UTF-8, texts longer than any code. Every path and
# query parameter of the document, one at a time, the others plausible.
EDGE_TEXT = ["%00", "A%00B", "x" * 5000, "%ED%A0%80", "%FF", "%C0%80", " ", "%0A"]
EDGE_INTEGERS = [
    "9223372036854775808",
    "18446744073709551616",
    "9" * 400,
    "-1",
    "0",
    "1e3",
    "%2B1",
    "1_0",
    "1.0",
    "%D9%A3",  # an Arabic-Indic three
]
EDGE_TIMES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00%2B14:00",
    "9999-12-31T20:00:00Z",
    "1700000000",
    "-62135596800",
    "2026-03-02T00:00:00",
    "2026-02-30T00:00:00Z",
    "10000-01-01T00:00:00Z",
]


def _kinds(schema: dict[str, Any]) -> set[str]:
    """What a parameter's schema says it is: integer, date-time, text (or several)."""
    options = schema.get("anyOf", [schema])
    kinds = set()
    for option in options:
        if option.get("format") == "date-time":
            kinds.add("date-time")
        elif option.get("type") in ("integer", "number"):
            kinds.add("integer")
        elif option.get("type") == "string":
            kinds.add("text")
    return kinds


def _plausible(name: str, schema: dict[str, Any]) -> str:
    if "integer" in _kinds(schema):
        return "1"
    if schema.get("format") == "uuid" or name.endswith("_id"):
        return str(uuid.uuid4())
    return "X1"


EDGE_VALUES = {
    "text": EDGE_TEXT,
    "integer": EDGE_INTEGERS + EDGE_TEXT[:2],
    "date-time": EDGE_TIMES + EDGE_TEXT[:2],
}


def _edge_requests(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(method, url) for every path and query parameter at each of its edge values,
    the operation's other parameters plausible (query ones left out)."""
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/v1") or path in OPEN:
            continue
        for method, op in ops.items():
            params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
            for param in params:
                for kind in _kinds(param["schema"]):
                    for value in EDGE_VALUES[kind]:
                        url = path
                        for other in params:
                            if other["in"] == "path":
                                chosen = (
                                    value
                                    if other is param
                                    else _plausible(other["name"], other["schema"])
                                )
                                url = url.replace("{" + other["name"] + "}", chosen)
                        if param["in"] == "query":
                            url += f"?{param['name']}={value}"
                        yield method.upper(), url


def test_every_parameter_at_its_edges_is_a_4xx(tenants: Tenants) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(tenants.app, raise_server_exceptions=False)
    spec = client.get("/openapi.json").json()
    sent = 0
    for method, url in _edge_requests(spec):
        # A's and B's key by turns: each tenant's rate bucket takes half the run
        me = (tenants.a, tenants.b)[sent % 2]
        auth = {"Authorization": f"Bearer {tenants.keys[me.tenant.id]}"}
        response = client.request(method, url, json={}, headers=auth)
        where = (method, url[:120], response.status_code, response.text[:200])
        assert response.status_code < 500, where
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), where
            assert _code(response) not in CREDENTIAL_REFUSED, where
        sent += 1
    assert sent >= 300
