"""Typed security errors with a stable snake_case `code`.

Same shape as `cloud_api.errors.ErpError` (code + message) so the API maps them once,
but without importing it: this package is pure and knows nothing of HTTP.
"""


class SecurityError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WeakPassword(SecurityError):
    """The password breaks the policy; `reason` is a stable sub-code for the UI."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__("weak_password", message)
        self.reason = reason


class BadKey(SecurityError):
    """A device key, API token or enrollment code that is malformed.

    The message never says which part was wrong.
    """


class BadScope(SecurityError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_scope", message)
