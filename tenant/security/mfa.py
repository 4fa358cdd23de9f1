"""TOTP second factor (RFC 6238, through pyotp): SAAS.md, "MFA: TOTP required for
owner/finance_mgr on Pro+". Pure: the caller stores the secret and the last step used.

A code is accepted for the current 30-second step or one step either side (clock
drift), and only for a step later than the last one accepted: a code seen once (over
a shoulder, in a proxy log) cannot be replayed.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp

from tenant.security._hmac import hmac_hex, same_text

ISSUER = "Shop-floor ERP"
MFA_ROLES = frozenset({"owner", "finance_mgr"})
MFA_PLANS = frozenset({"pro", "enterprise"})
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, base32


def provisioning_uri(secret: str, email: str) -> str:
    """What an authenticator app scans (as a QR code) to add the account."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


@dataclass(frozen=True)
class Verified:
    ok: bool
    step: int | None = None  # store it: the next code must be of a later step


def verify(secret: str, code: str, now: datetime, last_step: int | None) -> Verified:
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return Verified(False)
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return Verified(True, step)
    return Verified(False)


# A new factor also needs a code mailed to the account's address: whoever holds only
# the password (a first password handed over, a leaked one) cannot enrol their own
# authenticator, and the owner of the address hears of the attempt.
MAIL_CODE_TTL = timedelta(minutes=15)
MAIL_COOLDOWN = timedelta(minutes=1)  # between two set-up mails to one address
MAIL_CODE_DIGITS = 8


def new_mail_code() -> str:
    return f"{secrets.randbelow(10**MAIL_CODE_DIGITS):0{MAIL_CODE_DIGITS}d}"


def mail_code_hash(code: str, pepper: str) -> str:
    return hmac_hex(pepper, "mfa-mail:" + code)


def mail_code_ok(
    stored_hash: str | None, sent_at: datetime | None, given: str, pepper: str, now: datetime
) -> bool:
    """The code mailed at `sent_at`, within MAIL_CODE_TTL; spaces ignored."""
    if stored_hash is None or sent_at is None or now - sent_at > MAIL_CODE_TTL:
        return False
    return same_text(stored_hash, mail_code_hash("".join(given.split()), pepper))


# One-time recovery codes, given when a factor is set up: a lost phone does not lock
# the owner out (each works once, instead of the app's code).
RECOVERY_CODES = 10


def new_recovery_codes() -> list[str]:
    """Ten codes of 10 hex digits (40 bits each), shown as xxxxx-xxxxx."""
    codes = (secrets.token_hex(5) for _ in range(RECOVERY_CODES))
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def normalise_recovery_code(text: str) -> str | None:
    """The code's 10 hex digits, however it was typed (case, spaces, dash); None when
    it is not one."""
    digits = "".join(text.split()).replace("-", "").lower()
    if len(digits) != 10 or any(ch not in "0123456789abcdef" for ch in digits):
        return None
    return digits


def recovery_code_hash(digits: str, pepper: str) -> str:
    return hmac_hex(pepper, "mfa-recovery:" + digits)


def required(role: str, plan_code: str) -> bool:
    """Owners and finance managers of a Pro or Enterprise tenant must use a second
    factor (a trial or a Starter tenant may, and is asked nothing)."""
    return role in MFA_ROLES and plan_code in MFA_PLANS
