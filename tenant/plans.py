"""Plans and their limits (SAAS.md, "Plan limits"). Pure data: no database, no I/O.

A plan is a global, read-only fact; `None` in a limit means unlimited (or negotiated per
contract, as for Enterprise). Seats, devices and sites are *hard* limits, checked when the
N+1th is created (`check_limit`); events are *soft* (tenant.metering); the API rate is a
token bucket (tenant.ratelimit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LimitKind = Literal["users", "devices", "sites"]
LIMIT_KINDS: tuple[LimitKind, ...] = ("users", "devices", "sites")


class TenantError(Exception):
    """Base of the tenant domain's errors: a stable snake_case `code`, a `message` that
    says what was wrong and what to do, and the HTTP status the boundary should answer."""

    http_status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownPlan(TenantError):
    http_status = 422

    def __init__(self, code: str) -> None:
        known = ", ".join(PLANS)
        super().__init__("unknown_plan", f"no plan {code!r}; the plans are {known}")
        self.plan_code = code


class LimitExceeded(TenantError):
    """A hard plan limit. `check_limit` *returns* it (errors as data); raise it or put it in
    a batch result as the caller sees fit."""

    http_status = 402

    def __init__(self, plan: Plan, kind: LimitKind, allowed: int, current_count: int) -> None:
        super().__init__(
            "plan_limit",
            f"the {plan.name} plan allows {allowed} {_singular(kind, allowed)}; "
            f"this tenant has {current_count}. Remove one or upgrade the plan.",
        )
        self.plan_code = plan.code
        self.kind = kind
        self.allowed = allowed
        self.current_count = current_count


@dataclass(frozen=True, slots=True)
class Plan:
    code: str
    name: str
    max_users: int | None
    max_devices: int | None
    max_sites: int | None
    events_per_month: int | None
    api_rps: int | None
    audit_retention_days: int | None

    def limit(self, kind: LimitKind) -> int | None:
        return {"users": self.max_users, "devices": self.max_devices, "sites": self.max_sites}[kind]


# Years of retention are counted with the most leap days such a span can hold, so a
# record is never deleted a day early: 1 y = 366 d, 7 y = 7·365 + 2, 10 y = 10·365 + 3.
PLANS: dict[str, Plan] = {
    p.code: p
    for p in (
        Plan("trial", "Trial", 3, 2, 1, 5_000, 5, 30),
        Plan("starter", "Starter", 5, 5, 1, 50_000, 10, 366),
        Plan("pro", "Pro", 25, 50, 5, 1_000_000, 50, 2_557),
        Plan("enterprise", "Enterprise", None, None, None, None, None, 3_653),
    )
}
TRIAL_PLAN_CODE = "trial"


def plan(code: str) -> Plan:
    try:
        return PLANS[code]
    except KeyError:
        raise UnknownPlan(code) from None


def check_limit(plan: Plan, kind: LimitKind, current_count: int) -> LimitExceeded | None:
    """May one more `kind` be created when the tenant has `current_count` of them?

    None when it may; otherwise the error, not raised. At `current_count == limit` the
    next one (the N+1th) is refused."""
    if kind not in LIMIT_KINDS:
        raise ValueError(f"kind must be one of {LIMIT_KINDS}, not {kind!r}")
    if current_count < 0:
        raise ValueError(f"current_count must be >= 0, not {current_count}")
    allowed = plan.limit(kind)
    if allowed is None or current_count < allowed:
        return None
    return LimitExceeded(plan, kind, allowed, current_count)


def _singular(kind: LimitKind, count: int) -> str:
    return kind[:-1] if count == 1 else kind
