"""Pure security primitives for tenancy, devices and the portal: no database, no HTTP.

Every function takes the time it needs as an argument (`now`), so callers and tests
control the clock. Modules:

* `passwords`        argon2id hashing, rehash on login, equal-cost unknown-user check
* `password_policy`  length 12+, bundled common list, repetition/sequence/personal terms
* `sessions`         session tokens, their hashes, idle/absolute timeouts, the cookie
* `csrf`             session-bound CSRF tokens, Origin / Sec-Fetch-Site check
* `throttle`         login backoff, hourly cap and per-IP bucket
* `keys`             device keys, API tokens, scopes, rotation
* `enrollment`       single-use device enrollment codes
"""

from tenant.security.csrf import check_csrf, check_origin, csrf_token, normalise_origin
from tenant.security.enrollment import (
    ENROLLMENT_TTL,
    enrollment_code_hash,
    enrollment_state,
    format_enrollment_code,
    new_enrollment_code,
    normalise_enrollment_code,
)
from tenant.security.errors import BadKey, BadScope, SecurityError, WeakPassword
from tenant.security.keys import (
    API_SCOPES,
    DEFAULT_DEVICE_SCOPES,
    DEVICE_SCOPES,
    KEY_OVERLAP,
    MAX_LIVE_KEYS,
    REVOCATION_CACHE_MAX_S,
    IssuedKey,
    KeyTimes,
    RotationPlan,
    device_scopes,
    has_scope,
    hash_secret,
    is_legacy_tenant_key,
    key_is_live,
    new_api_token,
    new_device_key,
    parse_api_token,
    parse_device_key,
    rotation_plan,
    validate_scopes,
    verify_secret,
)
from tenant.security.password_policy import check_password_policy
from tenant.security.passwords import (
    DUMMY_HASH,
    LOGIN_FAILED_MESSAGE,
    hash_password,
    meets_owasp_minimum,
    verify_or_dummy,
    verify_password,
)
from tenant.security.sessions import (
    SESSION_COOKIE,
    SESSION_TIMES,
    SessionTimes,
    clear_session_cookie,
    new_session_token,
    session_cookie,
    session_state,
    set_cookie_header,
    token_hash,
)
from tenant.security.throttle import LOGIN_THROTTLED_MESSAGE, Decision, LoginThrottle

__all__ = [
    "API_SCOPES",
    "DEFAULT_DEVICE_SCOPES",
    "DEVICE_SCOPES",
    "DUMMY_HASH",
    "ENROLLMENT_TTL",
    "KEY_OVERLAP",
    "LOGIN_FAILED_MESSAGE",
    "LOGIN_THROTTLED_MESSAGE",
    "MAX_LIVE_KEYS",
    "REVOCATION_CACHE_MAX_S",
    "SESSION_COOKIE",
    "SESSION_TIMES",
    "BadKey",
    "BadScope",
    "Decision",
    "IssuedKey",
    "KeyTimes",
    "LoginThrottle",
    "RotationPlan",
    "SecurityError",
    "SessionTimes",
    "WeakPassword",
    "check_csrf",
    "check_origin",
    "check_password_policy",
    "clear_session_cookie",
    "csrf_token",
    "device_scopes",
    "enrollment_code_hash",
    "enrollment_state",
    "format_enrollment_code",
    "has_scope",
    "hash_password",
    "hash_secret",
    "is_legacy_tenant_key",
    "key_is_live",
    "meets_owasp_minimum",
    "new_api_token",
    "new_device_key",
    "new_enrollment_code",
    "new_session_token",
    "normalise_enrollment_code",
    "normalise_origin",
    "parse_api_token",
    "parse_device_key",
    "rotation_plan",
    "session_cookie",
    "session_state",
    "set_cookie_header",
    "token_hash",
    "validate_scopes",
    "verify_or_dummy",
    "verify_password",
    "verify_secret",
]
