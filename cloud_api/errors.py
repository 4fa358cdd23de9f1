"""A small typed hierarchy of errors with stable snake_case codes.

They are mapped once to HTTP problem+json (cloud_api.api.problems) and, inside an
ingest batch, to one per-event result: `held` for a valid event that cannot be posted
now, `rejected` for a malformed one.
"""

from typing import Any


class ErpError(Exception):
    status = 400

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class Rejected(ErpError):
    """The input is malformed; retrying it unchanged can never succeed."""

    status = 422


class Held(ErpError):
    """A valid event that cannot be posted now (unknown master data, not enough
    stock, closed period...). It is kept and can be re-posted once the cause is fixed."""

    status = 409


class NotFound(ErpError):
    status = 404


class Conflict(ErpError):
    status = 409


class Unauthorized(ErpError):
    status = 401


class Forbidden(ErpError):
    status = 403
