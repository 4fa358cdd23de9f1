"""The portal's sign-up, login, session and members: request bodies and answers."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from contract import RequestBody


class _In(RequestBody):
    """A request body (contract.RequestBody: unknown fields refused, text storable)."""


Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Field(min_length=1, max_length=256)]


class SignUp(_In):
    company: Annotated[str, Field(min_length=1, max_length=200)]
    email: Email
    name: Annotated[str, Field(min_length=1, max_length=200)]
    password: Password


class LogIn(_In):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Password
    tenant: Annotated[str, Field(max_length=64)] | None = None  # a slug, for several
    otp: Annotated[str, Field(max_length=12)] | None = None  # the second factor's code


class PasswordChange(_In):
    current_password: Password
    new_password: Password


class MfaConfirm(_In):
    code: Annotated[str, Field(min_length=6, max_length=12)]  # the authenticator's
    mail_code: Annotated[str, Field(min_length=1, max_length=16)]  # the mailed one


Site = Annotated[str, Field(min_length=1, max_length=64)]


class MemberAdd(_In):
    email: Email
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(max_length=16)]
    # left out: a link is mailed (they choose their own, or accept with the account's
    # own). Given: a new address is an account and a member at once; an address with
    # an account is invited all the same (never a member without accepting)
    password: Password | None = None
    site: Site | None = None  # whose devices they manage; left out: every site


class RecoveryCodes(_In):
    code: Annotated[str, Field(min_length=6, max_length=12)]  # the authenticator's


class InvitationAccept(_In):
    """The link's token and a password: a new address chooses it; an existing account
    gives its own (and `otp`, its second factor's code, if it has one)."""

    token: Annotated[str, Field(min_length=1, max_length=100)]
    password: Password
    otp: Annotated[str, Field(max_length=12)] | None = None


class TenantSwitch(_In):
    tenant: Annotated[str, Field(min_length=1, max_length=64)]  # the company's slug


class RoleChange(_In):
    """A new role, and/or the site whose devices they manage (null: every site)."""

    role: Annotated[str, Field(max_length=16)] | None = None
    site: Site | None = None


# Answers. Field order is the wire order; `None` where the answer holds null.


class SignedUp(BaseModel):
    tenant_id: str
    slug: str
    api_key: str  # shown this once
    csrf_token: str


class SignedIn(BaseModel):
    """A session started (login, accepting an invitation): its cookie is set."""

    tenant_id: str
    csrf_token: str


class SignedOut(BaseModel):
    signed_out: bool


class Membership(BaseModel):
    """A company the person belongs to, and their role there."""

    slug: str
    name: str
    role: str


class Me(BaseModel):
    tenant_id: str
    user_id: str  # "" for a key
    role: str
    csrf_token: str | None
    tenants: list[Membership]


class MfaStarted(BaseModel):
    """The TOTP secret (shown once) and where the confirmation code was mailed."""

    secret: str
    otpauth_uri: str
    mailed_to: str


class Switched(BaseModel):
    tenant_id: str
    slug: str
    csrf_token: str


class PasswordChanged(BaseModel):
    changed: bool
    csrf_token: str


class MfaConfirmed(BaseModel):
    mfa: bool
    recovery_codes: list[str]  # shown this once


class NewRecoveryCodes(BaseModel):
    recovery_codes: list[str]


class MemberAdded(BaseModel):
    """`invitation_id` only when invited by mail (left out otherwise)."""

    status: str
    email: str
    invitation_id: str | None = None
    role: str
    site: str | None


class InvitationWithdrawn(BaseModel):
    invitation_id: str
    withdrawn: bool


class RoleChanged(BaseModel):
    """`role` and `site` as sent (each only when sent)."""

    user_id: str
    sessions_ended: int
    role: str | None = None
    site: str | None = None


class MemberRemoved(BaseModel):
    user_id: str
    removed: bool
    sessions_revoked: int


class MemberRow(BaseModel):
    """A member of the tenant; `site` null: every site."""

    id: str
    email: str
    name: str
    role: str
    site: str | None


class InvitationRow(BaseModel):
    """An invitation not accepted yet (nor expired)."""

    id: str
    email: str
    name: str
    role: str
    site: str | None
    status: str
    created_at: datetime
    expires_at: datetime
