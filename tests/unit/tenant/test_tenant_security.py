"""Unit tests of the pure security primitives (tenant.security): SAAS.md cases 14, 15, 18, 19
at the level of functions; the HTTP-level versions come with the wiring.

argon2 is slow on purpose (~0.15 s a hash), so the file computes few hashes.
"""

import base64
import contextlib
import hashlib
import hmac
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import Response

from tenant.api_keys import hash_api_key, new_api_key
from tenant.security import (
    API_SCOPES,
    DUMMY_HASH,
    ENROLLMENT_TTL,
    KEY_OVERLAP,
    MAX_LIVE_KEYS,
    SESSION_COOKIE,
    BadKey,
    BadScope,
    KeyTimes,
    LoginThrottle,
    WeakPassword,
    check_csrf,
    check_origin,
    check_password_policy,
    clear_session_cookie,
    csrf_token,
    enrollment_code_hash,
    enrollment_state,
    has_scope,
    hash_password,
    is_legacy_tenant_key,
    key_is_live,
    meets_owasp_minimum,
    new_api_token,
    new_device_key,
    new_enrollment_code,
    new_session_token,
    normalise_enrollment_code,
    parse_api_token,
    parse_device_key,
    rotation_plan,
    session_cookie,
    session_state,
    set_cookie_header,
    token_hash,
    validate_scopes,
    verify_or_dummy,
    verify_password,
    verify_secret,
)
from tenant.security.enrollment import ENROLLMENT_ALPHABET
from tenant.security.password_policy import common_passwords

PEPPER = "test-pepper-not-secret"
CSRF_SECRET = "test-csrf-secret"
GOOD_PASSWORD = "Tr4ctor-Gearbox-Sunrise"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ONE_S = timedelta(seconds=1)


@pytest.fixture(scope="module")
def stored_hash() -> str:
    return hash_password(GOOD_PASSWORD)


# --- passwords -------------------------------------------------------------------------


def test_hash_is_argon2id_with_at_least_owasp_minimum_parameters(stored_hash):
    params = extract_parameters(stored_hash)
    assert stored_hash.startswith("$argon2id$")
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1
    assert meets_owasp_minimum(stored_hash)
    assert GOOD_PASSWORD not in stored_hash
    dummy = extract_parameters(DUMMY_HASH)  # same cost as a real user's hash
    assert (dummy.memory_cost, dummy.time_cost, dummy.parallelism) == (
        params.memory_cost,
        params.time_cost,
        params.parallelism,
    )


def test_verify_right_and_wrong_password(stored_hash):
    assert verify_password(stored_hash, GOOD_PASSWORD) == (True, None)
    assert verify_password(stored_hash, GOOD_PASSWORD + "x") == (False, None)
    assert verify_password("not a hash", GOOD_PASSWORD) == (False, None)
    assert verify_password(stored_hash, "\ud800 lone surrogate") == (False, None)


def test_full_width_input_is_the_same_password(stored_hash):
    full_width = GOOD_PASSWORD.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    assert full_width != GOOD_PASSWORD
    assert verify_password(stored_hash, full_width) == (True, None)


def test_weak_parameters_are_rehashed_on_a_successful_login_only():
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(GOOD_PASSWORD)
    assert not meets_owasp_minimum(weak)
    assert verify_password(weak, "wrong password!!") == (False, None)
    ok, new_hash = verify_password(weak, GOOD_PASSWORD)
    assert ok and new_hash is not None
    assert new_hash.startswith("$argon2id$") and meets_owasp_minimum(new_hash)
    assert extract_parameters(new_hash).memory_cost >= 19 * 1024


def test_unknown_user_and_wrong_password_same_answer_and_similar_time(stored_hash):
    assert verify_or_dummy(None, GOOD_PASSWORD) == (False, None)
    assert verify_or_dummy(stored_hash, "wrong password!!") == (False, None)
    unknown_s, wrong_s = [], []
    for _ in range(5):  # interleaved, best of 5: robust against a busy machine
        for samples, stored in ((unknown_s, None), (wrong_s, stored_hash)):
            started = time.perf_counter()
            verify_or_dummy(stored, "wrong password!!")
            samples.append(time.perf_counter() - started)
    ratio = min(unknown_s) / min(wrong_s)
    assert 0.5 < ratio < 2.0, (unknown_s, wrong_s)


# --- password policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short1!abcd", "too_short"),  # 11 characters
        ("x" * 257, "too_long"),
        ("aaaaaaaaaaaaaaaa", "repeated"),
        ("ab12ab12ab12", "repeated"),
        ("abcdefghijklmn", "sequence"),
        ("987654321098", "sequence"),
        ("qwertyuiopasdf", "sequence"),
        ("1q2w3e4r5t6y", "sequence"),
        ("password1234", "common"),
        ("P@ssw0rd2024!", "common"),
        ("Woaini1314!!!", "common"),
        ("correct horse battery staple", "common"),
        ("zhang.wei.secret.9", "contains_email"),
        ("my-ZhangWei-2025-key", "contains_email"),
        ("Acme-Precision-2024", "contains_company"),
        ("acme_lathe_night_shift", "contains_company"),
    ],
)
def test_policy_rejects_with_a_reason(password, reason):
    with pytest.raises(WeakPassword) as caught:
        check_password_policy(password, email="zhang.wei@acme.cn", company="Acme Precision Ltd")
    assert caught.value.code == "weak_password"
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "password",
    [
        "Tr4ctor-Gearbox-Sunrise",
        "Kx9#mPq2$vLw",
        "kettle mango river 27",
        "青岛机床厂春天的早班很忙吗",
    ],
)
def test_policy_accepts_long_unpredictable_passwords(password):
    assert check_password_policy(password, email="zhang.wei@acme.cn", company="Acme") is None


def test_bundled_common_list_is_loaded():
    common = common_passwords()
    assert len(common) >= 300
    assert {"123456", "password", "qwerty", "woaini1314"} <= common
    assert not any(line.startswith("#") for line in common)


# --- sessions --------------------------------------------------------------------------


def test_session_token_and_its_stored_hash():
    token = new_session_token()
    assert len(token) >= 43 and token != new_session_token()
    stored = token_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", stored) and token not in stored


@pytest.mark.parametrize(
    ("created_at", "last_seen_at", "now", "state"),
    [
        (T0, T0, T0, "live"),
        (T0, T0, T0 + timedelta(minutes=30) - ONE_S, "live"),
        (T0, T0, T0 + timedelta(minutes=30), "idle_expired"),
        (T0, T0 + timedelta(hours=11, minutes=50), T0 + timedelta(hours=12) - ONE_S, "live"),
        (T0, T0 + timedelta(hours=11, minutes=50), T0 + timedelta(hours=12), "expired"),
        (T0, T0, T0 + timedelta(hours=13), "expired"),  # absolute wins over idle
    ],
)
def test_session_state_at_the_boundaries(created_at, last_seen_at, now, state):
    assert session_state(created_at, last_seen_at, now) == state


def test_cookie_attributes_through_starlette():
    token = new_session_token()
    response = Response()
    response.set_cookie(**session_cookie(token))
    header = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert header.startswith(f"{SESSION_COOKIE}={token};")
    assert SESSION_COOKIE == "__Host-session"
    assert {"secure", "httponly", "samesite", "path", "max-age"} <= attributes
    assert "domain" not in attributes
    assert re.search(r"samesite=lax", header, re.I) and re.search(r"path=/(;|$)", header, re.I)
    response = Response()
    response.set_cookie(**clear_session_cookie())
    cleared = response.headers["set-cookie"]
    assert "Max-Age=0" in cleared and "Secure" in cleared and "Path=/" in cleared


def test_cookie_header_string_is_exact():
    assert set_cookie_header("tok") == (
        "__Host-session=tok; Max-Age=43200; Path=/; Secure; HttpOnly; SameSite=Lax"
    )


# --- CSRF and origin -------------------------------------------------------------------


def test_csrf_token_bound_to_session_and_secret():
    session, other_session = new_session_token(), new_session_token()
    token = csrf_token(session, CSRF_SECRET)
    assert check_csrf(session, token, CSRF_SECRET)
    assert not check_csrf(other_session, token, CSRF_SECRET)
    assert not check_csrf(session, csrf_token(other_session, CSRF_SECRET), CSRF_SECRET)
    assert not check_csrf(session, token, "another-secret")
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for bad in (tampered, "", None, 123, token + "x", "é" * 64, "\ud800" * 64, token.upper()):
        assert not check_csrf(session, bad, CSRF_SECRET)
    assert not check_csrf(None, token, CSRF_SECRET)
    assert not check_csrf("", csrf_token("", CSRF_SECRET), CSRF_SECRET)


ORIGIN = "https://erp.example.com"


@pytest.mark.parametrize(
    ("origin", "fetch_site", "allowed"),
    [
        (ORIGIN, "same-origin", True),
        (ORIGIN, None, True),
        ("https://ERP.example.com:443", None, True),
        (None, "same-origin", True),
        (None, "none", True),
        (None, None, False),
        ("https://evil.example", None, False),
        ("https://evil.example", "cross-site", False),
        (ORIGIN, "cross-site", False),
        ("https://tenant-b.example.com", "same-site", False),
        (None, "same-site", False),
        ("null", None, False),
        ("http://erp.example.com", None, False),
        ("https://erp.example.com:8443", None, False),
        ("https://erp.example.com.evil.io", None, False),
        ("https://user@erp.example.com", None, False),
        ("https://erp.example.com:99999", None, False),
        ("https://erp.example.com/path", None, False),
    ],
)
def test_check_origin(origin, fetch_site, allowed):
    assert check_origin(origin, fetch_site, ORIGIN) is allowed


def test_check_origin_missing_headers_only_when_allowed():
    assert check_origin(None, None, ORIGIN, allow_missing=True)
    assert not check_origin("https://evil.example", None, ORIGIN, allow_missing=True)
    assert not check_origin(ORIGIN, None, "not an origin")


# --- login throttling ------------------------------------------------------------------


def attempt(throttle: LoginThrottle, password: str, now_s: float, ip: str = "10.0.0.1") -> str:
    """The caller's flow, with a string compare standing in for argon2."""
    if not throttle.check("alice@acme.cn", ip, now_s).ok:
        return "throttled"
    if password == "right":
        throttle.record_success("alice@acme.cn", now_s)
        return "ok"
    throttle.record_failure("alice@acme.cn", now_s)
    return "bad"


def test_six_bad_passwords_back_off_exponentially():
    throttle = LoginThrottle()
    assert [attempt(throttle, "wrong", 0) for _ in range(5)] == ["bad"] * 5
    decision = throttle.check("Alice@ACME.cn ", "10.0.0.1", 0)  # same account, other spelling
    assert (decision.ok, decision.retry_after_s, decision.code) == (False, 1, "login_throttled")
    assert attempt(throttle, "right", 0.5) == "throttled"  # even the right password waits
    assert attempt(throttle, "wrong", 1) == "bad"  # 6th failure
    assert throttle.check("alice@acme.cn", "10.0.0.1", 1).retry_after_s == 2
    assert attempt(throttle, "wrong", 2.5) == "throttled"
    assert attempt(throttle, "wrong", 3) == "bad"  # 7th: now 4 s
    assert throttle.check("alice@acme.cn", "10.0.0.1", 3).retry_after_s == 4
    assert attempt(throttle, "right", 7) == "ok"  # success resets the count
    assert [attempt(throttle, "wrong", 7) for _ in range(5)] == ["bad"] * 5
    assert attempt(throttle, "wrong", 7) == "throttled"
    assert throttle.check("bob@acme.cn", "10.0.0.2", 7).ok  # other accounts unaffected


def test_backoff_is_capped_at_15_minutes():
    throttle = LoginThrottle()
    now_s = 0.0
    for _ in range(30):
        decision = throttle.check("alice@acme.cn", f"10.0.1.{_}", now_s)
        now_s += decision.retry_after_s
        assert throttle.check("alice@acme.cn", f"10.0.1.{_}", now_s).ok
        throttle.record_failure("alice@acme.cn", now_s)
    assert throttle.check("alice@acme.cn", "10.0.2.1", now_s).retry_after_s == 900


def test_101st_attempt_in_an_hour_is_refused_even_with_the_right_password():
    throttle = LoginThrottle()
    results = [attempt(throttle, "right" if i % 5 == 4 else "wrong", i * 30) for i in range(100)]
    assert "throttled" not in results  # never 5 failures in a row: no backoff involved
    assert attempt(throttle, "right", 3000) == "throttled"
    assert throttle.check("alice@acme.cn", "10.0.0.1", 3000).retry_after_s == 600
    assert attempt(throttle, "right", 3599) == "throttled"
    assert attempt(throttle, "right", 3600) == "ok"  # the first attempt left the window


def test_ip_bucket_30_per_minute():
    throttle = LoginThrottle()
    assert all(throttle.check(f"user{i}@x.cn", "203.0.113.9", 0).ok for i in range(30))
    decision = throttle.check("user30@x.cn", "203.0.113.9", 0)
    assert (decision.ok, decision.retry_after_s) == (False, 2)
    assert throttle.check("user30@x.cn", "203.0.113.10", 0).ok  # another IP
    assert throttle.check("user30@x.cn", "203.0.113.9", 2).ok  # one token back after 2 s
    assert not throttle.check("user31@x.cn", "203.0.113.9", 2).ok


def test_ipv6_is_limited_per_64():
    throttle = LoginThrottle()
    assert all(throttle.check(f"u{i}@x.cn", f"2001:db8:1:2::{i:x}", 0).ok for i in range(30))
    assert not throttle.check("u@x.cn", "2001:db8:1:2:ffff::1", 0).ok
    assert throttle.check("u@x.cn", "2001:db8:1:3::1", 0).ok


def test_throttle_memory_is_bounded():
    throttle = LoginThrottle(max_accounts=50, max_ips=50)
    for i in range(2000):
        throttle.check(f"user{i}@x.cn", f"10.{i // 256}.{i % 256}.1", float(i))
        throttle.record_failure(f"user{i}@x.cn", float(i))
    assert len(throttle._accounts) <= 50 and len(throttle._ips) <= 50


def test_eviction_drops_the_least_recently_used_account_not_a_locked_one():
    throttle = LoginThrottle(max_accounts=3)
    assert [attempt(throttle, "wrong", 0) for _ in range(5)] == ["bad"] * 5
    throttle.check("bob@acme.cn", "10.0.0.2", 0)
    throttle.check("carol@acme.cn", "10.0.0.3", 0)
    assert attempt(throttle, "right", 0.5) == "throttled"  # alice is now the most recent
    throttle.check("dave@acme.cn", "10.0.0.4", 0.5)  # evicts bob
    assert attempt(throttle, "right", 0.5) == "throttled"


# --- device keys and API tokens --------------------------------------------------------


def test_new_device_key_format_and_stored_hash():
    full_key, keyid, secret_hash = new_device_key(PEPPER)
    assert full_key.startswith("dk_live_")
    parsed_keyid, secret = parse_device_key(full_key)
    assert parsed_keyid == keyid and full_key == f"dk_live_{keyid}_{secret}"
    assert len(keyid) >= 12 and re.fullmatch(r"[A-Za-z0-9_-]+", keyid)
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32  # 256 bits
    assert secret_hash == hmac.new(PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()
    assert secret not in secret_hash
    assert verify_secret(secret, secret_hash, PEPPER)
    assert not verify_secret(secret, secret_hash, "other-pepper")
    assert not verify_secret(secret, "é" * 64, PEPPER)
    assert new_device_key(PEPPER).keyid != keyid


def test_tampered_keyid_or_secret_fails():
    keys = {k.keyid: k for k in (new_device_key(PEPPER), new_device_key(PEPPER))}
    stored = {keyid: key.secret_hash for keyid, key in keys.items()}

    def authenticate(full_key: str) -> bool:
        try:
            keyid, secret = parse_device_key(full_key)
        except BadKey:
            return False
        return keyid in stored and verify_secret(secret, stored[keyid], PEPPER)

    (id_a, key_a), (id_b, _) = keys.items()
    assert authenticate(key_a.full_key)
    secret_a = parse_device_key(key_a.full_key)[1]
    assert not authenticate(f"dk_live_{id_b}_{secret_a}")  # someone else's key id
    flipped = "1" if id_a[0] != "1" else "2"
    assert not authenticate(f"dk_live_{flipped}{id_a[1:]}_{secret_a}")  # unknown key id
    bad_char = "A" if secret_a[5] != "A" else "B"
    assert not authenticate(f"dk_live_{id_a}_{secret_a[:5]}{bad_char}{secret_a[6:]}")


VALID_KEY = r"dk_live_[0-9a-f]{16}_[A-Za-z0-9_-]{43}"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.none(), st.integers(), st.from_regex(VALID_KEY)))
def test_parse_device_key_fuzz_only_ever_raises_bad_key(candidate):
    try:
        keyid, secret = parse_device_key(candidate)
    except BadKey as error:
        assert error.code == "invalid_device_key"
        assert "dk_" not in error.message  # never echoes the input
    else:
        assert candidate == f"dk_live_{keyid}_{secret}"


@settings(max_examples=300, deadline=None)
@given(st.from_regex(VALID_KEY, fullmatch=True), st.integers(0, 200), st.characters())
def test_mutated_device_key_parses_to_a_different_key_or_fails(key, position, char):
    keyid, secret = parse_device_key(key)
    stored = hmac.new(PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()
    at = position % (len(key) + 1)
    for mutated in (key[:at] + char + key[at:], key[:at] + char + key[at + 1 :]):
        try:
            new_id, new_secret = parse_device_key(mutated)
        except BadKey:
            continue
        if mutated != key:
            assert (new_id, new_secret) != (keyid, secret)
            assert new_id != keyid or not verify_secret(new_secret, stored, PEPPER)


ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)  # lone surrogates too


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, st.one_of(st.none(), ANY_TEXT))
def test_other_untrusted_inputs_only_raise_their_typed_errors(text, header):
    for parse in (parse_api_token, normalise_enrollment_code):
        with contextlib.suppress(BadKey):
            parse(text)
    with contextlib.suppress(WeakPassword):
        check_password_policy(text, email=header, company=header)
    assert check_origin(text, header, ORIGIN) in (True, False)
    assert check_csrf(header, text, CSRF_SECRET) is False


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dk_live_",
        "dk_test_0123456789abcdef_" + "A" * 43,
        "DK_LIVE_0123456789abcdef_" + "A" * 43,
        "dk_live_0123456789ABCDEF_" + "A" * 43,
        "dk_live_0123456789abcdef_" + "A" * 42,
        "dk_live_0123456789abcdef_" + "A" * 44,
        "dk_live_0123456789abcdef_" + "A" * 43 + "\n",
        " dk_live_0123456789abcdef_" + "A" * 43,
        "dk_live_0123456789abcdef_" + "A" * 42 + "=",
        "tk_0123456789abcdef_" + "A" * 43,
    ],
)
def test_malformed_device_keys(text):
    with pytest.raises(BadKey):
        parse_device_key(text)


def test_api_tokens_scopes_and_legacy_tenant_keys():
    token, keyid, secret_hash = new_api_token({"events:post", "items:read"}, PEPPER)
    assert token.startswith("tk_") and parse_api_token(token)[0] == keyid
    assert verify_secret(parse_api_token(token)[1], secret_hash, PEPPER)
    assert not is_legacy_tenant_key(token)
    with pytest.raises(BadKey) as caught:
        parse_device_key(token)
    assert caught.value.code == "invalid_device_key"
    legacy = new_api_key()  # the existing tenant keys keep working
    assert is_legacy_tenant_key(legacy) and len(hash_api_key(legacy, PEPPER)) == 64
    with pytest.raises(BadKey) as caught:
        parse_api_token(legacy)
    assert caught.value.code == "invalid_api_token"
    for bad_scopes in ({"events:post", "admin"}, set(), {"events:*"}):
        with pytest.raises(BadScope):
            new_api_token(bad_scopes, PEPPER)
    assert validate_scopes("items:read reports:read") == {"items:read", "reports:read"}
    assert {"events:post", "work_orders:read", "items:read", "reports:read"} <= API_SCOPES


def test_has_scope_is_exact():
    granted = validate_scopes({"events:post", "items:read"})
    assert has_scope(granted, "events:post") and has_scope(granted, "items:read")
    assert not has_scope(granted, "work_orders:read")
    assert not has_scope("events:post work_orders:read", "items:read")
    assert not has_scope("xevents:post", "events:post")
    with pytest.raises(ValueError):
        has_scope(granted, "events")  # a typo in a route is a bug, not a silent deny


def test_rotated_key_lives_exactly_7_days_and_revocation_is_immediate():
    assert key_is_live(rotated_at=None, revoked_at=None, now=T0)
    assert key_is_live(rotated_at=T0, revoked_at=None, now=T0 + KEY_OVERLAP - ONE_S)
    assert not key_is_live(rotated_at=T0, revoked_at=None, now=T0 + KEY_OVERLAP)
    assert not key_is_live(rotated_at=T0, revoked_at=None, now=T0 + KEY_OVERLAP + ONE_S)
    assert not key_is_live(rotated_at=None, revoked_at=T0, now=T0)
    assert not key_is_live(rotated_at=T0, revoked_at=T0, now=T0 + ONE_S)


def test_rotation_keeps_at_most_two_live_keys():
    keys = {"k0": KeyTimes("k0", created_at=T0)}
    for day in range(1, 20, 3):
        now = T0 + timedelta(days=day)
        plan = rotation_plan(list(keys.values()), now)
        for keyid in plan.rotate:
            keys[keyid] = KeyTimes(keyid, keys[keyid].created_at, rotated_at=now)
        for keyid in plan.revoke:
            k = keys[keyid]
            keys[keyid] = KeyTimes(keyid, k.created_at, k.rotated_at, revoked_at=now)
        keys[f"k{day}"] = KeyTimes(f"k{day}", created_at=now)
        live = [k.keyid for k in keys.values() if k.is_live(now)]
        assert len(live) == MAX_LIVE_KEYS and f"k{day}" in live
    first = rotation_plan([KeyTimes("a", T0)], T0)
    assert (first.rotate, first.revoke) == (("a",), ())
    two_current = rotation_plan([KeyTimes("old", T0), KeyTimes("new", T0 + ONE_S)], T0 + ONE_S)
    assert (two_current.rotate, two_current.revoke) == (("new",), ("old",))


# --- enrollment codes ------------------------------------------------------------------


def test_enrollment_code_shape_entropy_and_hash():
    code, code_hash = new_enrollment_code(PEPPER)
    assert re.fullmatch(rf"[{ENROLLMENT_ALPHABET}]{{4}}(-[{ENROLLMENT_ALPHABET}]{{4}}){{3}}", code)
    assert len(ENROLLMENT_ALPHABET) ** 16 >= 2**64
    assert not set("01ILOU") & set(ENROLLMENT_ALPHABET)
    assert code.replace("-", "") not in code_hash
    assert enrollment_code_hash(code, PEPPER) == code_hash
    assert enrollment_code_hash(code, "other-pepper") != code_hash
    assert len({new_enrollment_code(PEPPER).code for _ in range(500)}) == 500


def test_enrollment_code_normalisation():
    code, code_hash = new_enrollment_code(PEPPER)
    raw = code.replace("-", "")
    full_width = raw.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    typed = [
        code.lower(),
        raw,
        " ".join(code.split("-")),
        f"  {raw[:8]} – {raw[8:]}\t",  # en dash, tab
        full_width,
    ]
    for text in typed:
        assert normalise_enrollment_code(text) == raw
        assert enrollment_code_hash(text, PEPPER) == code_hash
    bad = [raw[:-1], raw + "A", raw[:-1] + "0", raw[:-1] + "O", raw[:-1] + "I", "", None, "A" * 100]
    for text in bad:
        with pytest.raises(BadKey) as caught:
            normalise_enrollment_code(text)
        assert caught.value.code == "invalid_enrollment_code"


@pytest.mark.parametrize(
    ("used_at", "now", "state"),
    [
        (None, T0, "valid"),
        (None, T0 + ENROLLMENT_TTL - ONE_S, "valid"),
        (None, T0 + ENROLLMENT_TTL, "expired"),
        (None, T0 + ENROLLMENT_TTL + ONE_S, "expired"),
        (T0 + ONE_S, T0 + 2 * ONE_S, "used"),
        (T0 + ONE_S, T0 + ENROLLMENT_TTL + ONE_S, "used"),
    ],
)
def test_enrollment_state(used_at, now, state):
    assert timedelta(hours=24) == ENROLLMENT_TTL
    assert enrollment_state(T0, used_at, now) == state


def test_enrollment_code_is_single_use():
    code, code_hash = new_enrollment_code(PEPPER)
    rows = {code_hash: {"created_at": T0, "used_at": None}}

    def enroll(typed: str, now: datetime) -> bool:  # mirrors the atomic UPDATE ... RETURNING
        row = rows.get(enrollment_code_hash(typed, PEPPER))
        if row is None or enrollment_state(row["created_at"], row["used_at"], now) != "valid":
            return False
        row["used_at"] = now
        return True

    assert enroll(code.lower(), T0 + timedelta(hours=1))
    assert not enroll(code, T0 + timedelta(hours=2))
    other, _ = new_enrollment_code(PEPPER)
    assert not enroll(other, T0 + timedelta(hours=1))
