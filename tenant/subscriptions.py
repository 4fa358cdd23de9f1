"""A tenant's subscription: its states, the moves between them, and what each state allows.

Pure domain (SAAS.md, "Subscription states → what is allowed"): a frozen `Subscription`,
functions that return a new one plus the `Transition` records to append to the audit
trail, and `allows`, which answers one request. The clock is injected: every function
takes `now` (an aware datetime). No database, no I/O.

The moves, declared as data in `TRANSITIONS` (event → from-state → allowed to-states):

    (new) ──start_trial──> trialing ──trial ends, card on file──> active
                              └──── trial ends, no card ────────> paused
    (new) ──start_checkout──> incomplete ──23 h──> incomplete_expired (purge due)
    trialing | active ──renewal_failed──> past_due ──14 d grace──> unpaid
    trialing | active | past_due | unpaid | paused | incomplete ──record_payment──> active
    trialing | active | past_due | unpaid | paused ──suspend──> suspended ──unsuspend──> back
    trialing | active | past_due | unpaid | paused ──cancel──> canceled
    canceled ──30 d──> canceled (locked) ──90 d──> canceled (purge due)

Every move first applies the time-driven moves already due at `now` (`advance`), so a
caller that forgot to advance still gets the answer the clock implies; `allows` and
`banner` judge the subscription as it stands at `now` too. Time-driven moves are dated at
their boundary (the trial's end, the grace's end), not at the moment somebody looked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from tenant.plans import TRIAL_PLAN_CODE, Plan, TenantError, plan

State = Literal[
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "paused",
    "suspended",
    "canceled",
    "incomplete",
    "incomplete_expired",
]
TRIALING: State = "trialing"
ACTIVE: State = "active"
PAST_DUE: State = "past_due"
UNPAID: State = "unpaid"
PAUSED: State = "paused"
SUSPENDED: State = "suspended"
CANCELED: State = "canceled"
INCOMPLETE: State = "incomplete"
INCOMPLETE_EXPIRED: State = "incomplete_expired"
STATES: tuple[State, ...] = (
    TRIALING,
    ACTIVE,
    PAST_DUE,
    UNPAID,
    PAUSED,
    SUSPENDED,
    CANCELED,
    INCOMPLETE,
    INCOMPLETE_EXPIRED,
)

Action = Literal["login", "portal_read", "portal_write", "device_ingest", "export", "billing"]
ACTIONS: tuple[Action, ...] = (
    "login",
    "portal_read",
    "portal_write",
    "device_ingest",
    "export",
    "billing",
)
OWNER_ROLE = "owner"

TRIAL_DAYS = 14
GRACE_DAYS = 14
INCOMPLETE_EXPIRY_HOURS = 23
CANCELED_READ_ONLY_DAYS = 30
CANCELED_PURGE_DAYS = 90
PERIOD_DAYS = 30
INGEST_RETRY_AFTER_S = 3600  # unpaid/paused: the edge keeps buffering and asks again in 1 h

_LIVE: tuple[State, ...] = (TRIALING, ACTIVE, PAST_DUE, UNPAID, PAUSED)


def _each(sources: tuple[State, ...], to: State) -> dict[State | None, frozenset[State]]:
    return {s: frozenset({to}) for s in sources}


# event (also the Transition's reason) → from-state (None: a new subscription) → to-states
TRANSITIONS: Mapping[str, Mapping[State | None, frozenset[State]]] = {
    "trial_started": {None: frozenset({TRIALING})},
    "checkout_started": {None: frozenset({INCOMPLETE})},
    "trial_ended": {TRIALING: frozenset({ACTIVE, PAUSED})},
    "payment_recorded": _each((*_LIVE, INCOMPLETE), ACTIVE),
    "renewal_failed": _each((TRIALING, ACTIVE), PAST_DUE),
    "grace_expired": {PAST_DUE: frozenset({UNPAID})},
    "checkout_expired": {INCOMPLETE: frozenset({INCOMPLETE_EXPIRED})},
    "suspended": _each(_LIVE, SUSPENDED),
    "unsuspended": {SUSPENDED: frozenset(_LIVE)},
    "canceled": _each(_LIVE, CANCELED),
    "locked": {CANCELED: frozenset({CANCELED})},
    "purge_due": {CANCELED: frozenset({CANCELED})},
}
EDGES: frozenset[tuple[State | None, State]] = frozenset(
    (src, dst) for by_src in TRANSITIONS.values() for src, dsts in by_src.items() for dst in dsts
)


class InvalidTransition(TenantError):
    http_status = 409

    def __init__(self, event: str, state: State | None) -> None:
        super().__init__(
            "invalid_subscription_transition",
            f"a subscription in state {state!r} cannot take {event!r}",
        )
        self.event = event
        self.state = state


@dataclass(frozen=True, slots=True)
class Transition:
    """One audited move; `from_state` None for a new subscription."""

    from_state: State | None
    to_state: State
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription at one moment. Invariants (checked on construction): `state` is one
    of STATES, and each state carries the dates it is judged by."""

    state: State
    plan_code: str
    state_since: datetime
    has_payment_method: bool = False
    trial_ends_at: datetime | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    past_due_since: datetime | None = None
    canceled_at: datetime | None = None
    suspended_reason: str | None = None
    suspended_from: State | None = None  # the state `unsuspend` restores
    locked: bool = False  # canceled for 30 d: nobody signs in any more
    purge_due: bool = False  # the tenant's data is due for deletion

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown subscription state {self.state!r}")
        for name in _TIMES:
            at = getattr(self, name)
            if at is not None and at.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware (UTC), not naive")
        required = {
            TRIALING: ("trial_ends_at",),
            ACTIVE: ("current_period_start", "current_period_end"),
            PAST_DUE: ("past_due_since",),
            CANCELED: ("canceled_at",),
            SUSPENDED: ("suspended_reason", "suspended_from"),
        }.get(self.state, ())
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.state} subscription needs {', '.join(missing)}")
        if self.state == SUSPENDED and self.suspended_from not in _LIVE:
            raise ValueError(f"cannot be suspended from {self.suspended_from!r}")
        if (self.locked or self.purge_due) and self.state not in (CANCELED, INCOMPLETE_EXPIRED):
            raise ValueError(f"a {self.state} subscription cannot be locked or due for purge")


_TIMES = (
    "state_since",
    "trial_ends_at",
    "current_period_start",
    "current_period_end",
    "past_due_since",
    "canceled_at",
)
Outcome = tuple[Subscription, list[Transition]]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request: allowed, or the HTTP status, stable code and message to
    send. `retry_after_s` is set when the caller should come back (the Retry-After header)."""

    ok: bool
    http_status: int
    code: str
    message: str
    retry_after_s: int | None = None


ALLOWED = Decision(True, 200, "ok", "")


# -- starting ------------------------------------------------------------------------------


def start_trial(plan_code: str, now: datetime, *, has_payment_method: bool = False) -> Outcome:
    """A 14-day trial of `plan_code` (the plan paid for after it; the trial's own limits
    apply until then, see `effective_plan`)."""
    plan(plan_code)
    _check(None, "trial_started", TRIALING)
    sub = Subscription(
        TRIALING,
        plan_code,
        now,
        has_payment_method=has_payment_method,
        trial_ends_at=now + timedelta(days=TRIAL_DAYS),
    )
    return sub, [Transition(None, TRIALING, now, "trial_started")]


def start_checkout(plan_code: str, now: datetime, *, has_payment_method: bool = False) -> Outcome:
    """A paid subscription awaiting its first payment; it expires after 23 h."""
    plan(plan_code)
    _check(None, "checkout_started", INCOMPLETE)
    sub = Subscription(INCOMPLETE, plan_code, now, has_payment_method=has_payment_method)
    return sub, [Transition(None, INCOMPLETE, now, "checkout_started")]


def set_payment_method(sub: Subscription, present: bool, now: datetime) -> Outcome:
    """Card added or removed at `now`. It changes no state itself; it decides how a trial
    ends. Moves already due apply first, so a card added after the trial's end does not
    turn that end into `active` after the fact."""
    sub, done = advance(sub, now)
    return replace(sub, has_payment_method=present), done


# -- billing events ------------------------------------------------------------------------


def record_payment(
    sub: Subscription,
    now: datetime,
    period_days: int = PERIOD_DAYS,
    period_start: datetime | None = None,
) -> Outcome:
    """An invoice was paid: active, with a new period [start, start + period_days), where
    start is the invoice's period start when it was paid ahead, else now."""
    if period_days < 1:
        raise ValueError(f"period_days must be >= 1, not {period_days}")
    start = max(now, period_start) if period_start is not None else now
    sub, done = advance(sub, now)
    sub, moved = _move(
        sub,
        "payment_recorded",
        ACTIVE,
        now,
        current_period_start=start,
        current_period_end=start + timedelta(days=period_days),
        past_due_since=None,
    )
    return sub, [*done, moved]


def renewal_failed(sub: Subscription, now: datetime) -> Outcome:
    """A renewal charge failed: past_due, with 14 days of grace. Further failures while
    past_due change nothing (the grace is not extended)."""
    sub, done = advance(sub, now)
    if sub.state == PAST_DUE:
        return sub, done
    sub, moved = _move(sub, "renewal_failed", PAST_DUE, now, past_due_since=now)
    return sub, [*done, moved]


# -- platform and owner actions ------------------------------------------------------------


def suspend(sub: Subscription, reason: str, now: datetime) -> Outcome:
    if not reason.strip():
        raise ValueError("a suspension needs a reason")
    sub, done = advance(sub, now)
    sub, moved = _move(
        sub, "suspended", SUSPENDED, now, suspended_reason=reason, suspended_from=sub.state
    )
    return sub, [*done, moved]


def unsuspend(sub: Subscription, now: datetime) -> Outcome:
    """Back to the state it was suspended from; moves that fell due meanwhile (trial end,
    grace end) then apply at once."""
    target = sub.suspended_from if sub.state == SUSPENDED else None
    if target is None:
        raise InvalidTransition("unsuspended", sub.state)
    sub, moved = _move(sub, "unsuspended", target, now, suspended_reason=None, suspended_from=None)
    sub, done = advance(sub, now)
    return sub, [moved, *done]


def cancel(sub: Subscription, now: datetime) -> Outcome:
    """Canceled at once: read-only for 30 days, then locked; purge due at 90 days."""
    sub, done = advance(sub, now)
    sub, moved = _move(sub, "canceled", CANCELED, now, canceled_at=now)
    return sub, [*done, moved]


# -- the clock -----------------------------------------------------------------------------


def advance(sub: Subscription, now: datetime) -> Outcome:
    """Apply every time-driven move due at `now`, each dated at its boundary. Idempotent:
    advancing again at the same `now` changes nothing."""
    done: list[Transition] = []
    for _ in range(4):  # at most two moves can chain (locked, then purge_due)
        step = _due(sub, now)
        if step is None:
            return sub, done
        sub, moved = step
        done.append(moved)
    raise AssertionError(f"advance did not settle: {done}")


def next_deadline(sub: Subscription) -> datetime | None:
    """When the current state's next time-driven move falls due (the time to call
    `advance` again); None when nothing is scheduled."""
    if sub.state == TRIALING:
        return sub.trial_ends_at
    if sub.state == PAST_DUE and sub.past_due_since:
        return sub.past_due_since + timedelta(days=GRACE_DAYS)
    if sub.state == INCOMPLETE:
        return sub.state_since + timedelta(hours=INCOMPLETE_EXPIRY_HOURS)
    if sub.state == CANCELED and sub.canceled_at and not sub.purge_due:
        days = CANCELED_PURGE_DAYS if sub.locked else CANCELED_READ_ONLY_DAYS
        return sub.canceled_at + timedelta(days=days)
    return None


def _due(sub: Subscription, now: datetime) -> tuple[Subscription, Transition] | None:
    deadline = next_deadline(sub)
    if deadline is None or now < deadline:
        return None
    # A deadline that passed while the tenant was suspended takes effect when it is lifted.
    at = max(deadline, sub.state_since)
    if sub.state == TRIALING and sub.has_payment_method:
        end = at + timedelta(days=PERIOD_DAYS)
        return _move(
            sub, "trial_ended", ACTIVE, at, current_period_start=at, current_period_end=end
        )
    if sub.state == TRIALING:
        return _move(sub, "trial_ended", PAUSED, at)
    if sub.state == PAST_DUE:
        return _move(sub, "grace_expired", UNPAID, at)
    if sub.state == INCOMPLETE:
        return _move(sub, "checkout_expired", INCOMPLETE_EXPIRED, at, purge_due=True)
    if not sub.locked:
        return _move(sub, "locked", CANCELED, at, locked=True)
    return _move(sub, "purge_due", CANCELED, at, purge_due=True)


def _check(state: State | None, event: str, to: State) -> None:
    if to not in TRANSITIONS[event].get(state, frozenset()):
        raise InvalidTransition(event, state)


def _move(
    sub: Subscription, event: str, to: State, at: datetime, **changes: object
) -> tuple[Subscription, Transition]:
    _check(sub.state, event, to)
    since = sub.state_since if to == sub.state else at
    moved = replace(sub, state=to, state_since=since, **changes)  # type: ignore[arg-type]
    return moved, Transition(sub.state, to, at, event)


# -- what a state allows -------------------------------------------------------------------

# How each (state, action) is answered; "canceled_locked" is canceled after its 30 days.
Rule = Literal[
    "yes", "owner_only", "inactive", "buffer", "suspended", "canceled", "incomplete", "expired"
]
_ALL_YES: dict[Action, Rule] = {a: "yes" for a in ACTIONS}
_READ_AND_BILLING: dict[Action, Rule] = {
    **_ALL_YES,
    "portal_write": "inactive",
    "device_ingest": "buffer",
}
POLICY: Mapping[str, Mapping[Action, Rule]] = {
    TRIALING: _ALL_YES,
    ACTIVE: _ALL_YES,
    PAST_DUE: _ALL_YES,
    UNPAID: _READ_AND_BILLING,
    PAUSED: _READ_AND_BILLING,
    SUSPENDED: {
        "login": "owner_only",
        "portal_read": "owner_only",
        "portal_write": "suspended",
        "device_ingest": "suspended",
        "export": "suspended",  # through support only
        "billing": "owner_only",
    },
    CANCELED: {**_ALL_YES, "portal_write": "canceled", "device_ingest": "canceled"},
    "canceled_locked": {a: "canceled" for a in ACTIONS},
    INCOMPLETE: {a: ("yes" if a in ("login", "billing") else "incomplete") for a in ACTIONS},
    INCOMPLETE_EXPIRED: {a: "expired" for a in ACTIONS},
}


def allows(
    sub: Subscription, action: Action, *, now: datetime, role: str | None = None
) -> Decision:
    """May this request go ahead under the subscription as it stands at `now`? `role` is
    the portal user's role (only a suspended tenant looks at it; devices pass None).
    This is the subscription gate only; RBAC is checked separately."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    sub, _ = advance(sub, now)
    key = "canceled_locked" if sub.state == CANCELED and sub.locked else sub.state
    rule = POLICY[key][action]
    if rule == "yes" or (rule == "owner_only" and role == OWNER_ROLE):
        return ALLOWED
    return _refusal(sub, rule, action)


def _refusal(sub: Subscription, rule: Rule, action: Action) -> Decision:
    if rule in ("inactive", "buffer"):
        why = _inactive_why(sub)
        if rule == "buffer":
            return Decision(
                False,
                402,
                "subscription_inactive",
                f"{why}: events are not accepted now; keep them in the outbox and retry "
                f"after {INGEST_RETRY_AFTER_S} s, they are posted once the subscription is paid",
                INGEST_RETRY_AFTER_S,
            )
        return Decision(False, 402, "subscription_inactive", f"{why}: the portal is read-only")
    if rule in ("suspended", "owner_only"):
        what = {"export": "exports go through support", "login": "only the owner may sign in"}.get(
            action, "only the owner may read"
        )
        msg = f"this tenant is suspended ({sub.suspended_reason}): {what}; contact support"
        return Decision(False, 403, "tenant_suspended", msg)
    if rule == "canceled":
        return Decision(False, 403, "subscription_canceled", _canceled_why(sub, action))
    if rule == "incomplete":
        expiry = _day(sub.state_since + timedelta(hours=INCOMPLETE_EXPIRY_HOURS))
        msg = f"the first payment is not complete: only Billing is open until it is (by {expiry})"
        return Decision(False, 402, "subscription_incomplete", msg)
    msg = f"the checkout expired on {_day(sub.state_since)} unpaid; start a new subscription"
    return Decision(False, 403, "subscription_expired", msg)


def _inactive_why(sub: Subscription) -> str:
    if sub.state == PAUSED:
        return f"the trial ended on {_day(sub.state_since)} without a payment method; add one"
    return f"the subscription is unpaid since {_day(sub.state_since)}; pay the open invoice"


def _canceled_why(sub: Subscription, action: Action) -> str:
    assert sub.canceled_at is not None
    on = _day(sub.canceled_at)
    if sub.locked:
        purge = _day(sub.canceled_at + timedelta(days=CANCELED_PURGE_DAYS))
        return f"the subscription was canceled on {on}; the tenant is locked and deleted on {purge}"
    if action == "device_ingest":
        return f"the subscription was canceled on {on}; devices no longer post events"
    until = _day(sub.canceled_at + timedelta(days=CANCELED_READ_ONLY_DAYS))
    return f"the subscription was canceled on {on}; read-only until {until}, export your data"


def effective_plan(sub: Subscription) -> Plan:
    """The plan whose limits apply: the trial's until the subscription has a billing
    period (paid, or a trial ending with a card on file), then `plan_code`'s."""
    return plan(TRIAL_PLAN_CODE if sub.current_period_start is None else sub.plan_code)


def banner(sub: Subscription, now: datetime) -> str | None:
    """The portal's state banner at `now`, or None when there is nothing to say."""
    sub, _ = advance(sub, now)
    if sub.state == TRIALING:
        assert sub.trial_ends_at is not None
        left = _days_left(sub.trial_ends_at - now)
        then = (
            f"{plan(sub.plan_code).name} starts then"
            if sub.has_payment_method
            else "add a payment method to keep going"
        )
        days = f"{left} day{'s' if left != 1 else ''}"
        return f"Trial: {days} left (ends {_day(sub.trial_ends_at)}); {then}."
    if sub.state == PAST_DUE:
        assert sub.past_due_since is not None
        grace_end = _day(sub.past_due_since + timedelta(days=GRACE_DAYS))
        return (
            f"Payment failed on {_day(sub.past_due_since)}. Update the payment method by "
            f"{grace_end} to avoid interruption."
        )
    if sub.state in (UNPAID, PAUSED):
        return f"{_sentence(_inactive_why(sub))} Read-only; devices keep buffering their data."
    if sub.state == ACTIVE:
        return None
    return _sentence(allows(sub, "portal_write", now=now).message)


def _days_left(remaining: timedelta) -> int:
    """Whole days, rounded up: 13 d 1 s left shows 14."""
    whole, part = divmod(remaining, timedelta(days=1))
    return whole + (1 if part else 0)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _day(at: datetime) -> str:
    return at.date().isoformat()
