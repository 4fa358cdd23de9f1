"""CSRF defences for the cookie-authenticated portal (OWASP CSRF Prevention Cheat Sheet).

1. Synchronizer token bound to the session: HMAC(server secret, session token). Nothing to
   store; it changes whenever the session token rotates. Put it in a hidden form field or an
   `X-CSRF-Token` header on every non-GET request. The login form has no session yet: give
   it a short-lived pre-session cookie (`new_session_token()`) and bind the token to that.
2. Origin / Sec-Fetch-Site check as defence in depth (`check_origin`).
Device and API-token requests carry no cookie and need neither.
"""

from urllib.parse import urlsplit

from tenant.security._hmac import hmac_hex, same_text

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def csrf_token(session_token: str, secret: str | bytes) -> str:
    return hmac_hex(secret, "csrf:" + session_token)


def check_csrf(session_token: str | None, submitted: object, secret: str | bytes) -> bool:
    """Constant-time check; a missing session or token is simply False."""
    if not session_token:
        return False
    return same_text(csrf_token(session_token, secret), submitted)


def check_origin(
    origin_header: str | None,
    sec_fetch_site: str | None,
    allowed_origin: str,
    *,
    allow_missing: bool = False,
) -> bool:
    """For a state-changing request: is it from our own origin?

    * `Sec-Fetch-Site` (browsers set it; pages cannot forge it): only `same-origin`, or
      `none` (user-initiated, e.g. a bookmark). `same-site` is refused: another tenant's
      subdomain is same-site.
    * `Origin`, when present, must equal `allowed_origin` (scheme, host, port); "null" and
      anything unparsable are refused.
    * Neither header: refused unless `allow_missing` (non-browser clients). The CSRF token is
      still required in every case.
    """
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() not in _ALLOWED_FETCH_SITES:
        return False
    if origin_header is not None:
        expected = normalise_origin(allowed_origin)
        return expected is not None and normalise_origin(origin_header) == expected
    return sec_fetch_site is not None or allow_missing


def normalise_origin(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case with the default port dropped, or None if the
    text is not a serialized http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"
