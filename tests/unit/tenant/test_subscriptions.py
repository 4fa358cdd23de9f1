"""Plans, subscription states and what each state allows (SAAS.md, test cases 16-17).

Pure domain: no database. The expected answers below are written out from the SAAS.md
table, not derived from the implementation's own policy table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tenant.plans import PLANS, LimitExceeded, Plan, UnknownPlan, check_limit, plan
from tenant.subscriptions import (
    ACTIONS,
    EDGES,
    STATES,
    TRANSITIONS,
    InvalidTransition,
    Outcome,
    Subscription,
    Transition,
    advance,
    allows,
    banner,
    cancel,
    effective_plan,
    next_deadline,
    record_payment,
    renewal_failed,
    set_payment_method,
    start_checkout,
    start_trial,
    suspend,
    unsuspend,
)

T0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)

# -- plans (test case 17: N+1 → plan_limit) ----------------------------------------------


def test_plans_are_the_saas_table() -> None:
    rows = {
        code: (p.max_users, p.max_devices, p.max_sites, p.events_per_month, p.api_rps)
        for code, p in PLANS.items()
    }
    assert rows == {
        "trial": (3, 2, 1, 5_000, 5),
        "starter": (5, 5, 1, 50_000, 10),
        "pro": (25, 50, 5, 1_000_000, 50),
        "enterprise": (None, None, None, None, None),
    }
    # 30 d, 1 y, 7 y, 10 y, each with the most leap days the span can hold
    days = {code: p.audit_retention_days for code, p in PLANS.items()}
    assert days == {"trial": 30, "starter": 366, "pro": 7 * 365 + 2, "enterprise": 10 * 365 + 3}


def test_unknown_plan_is_a_typed_error() -> None:
    assert plan("pro").name == "Pro"
    with pytest.raises(UnknownPlan) as err:
        plan("platinum")
    assert err.value.code == "unknown_plan"
    assert "platinum" in err.value.message


@pytest.mark.parametrize(
    ("code", "kind", "allowed"),
    [
        ("trial", "users", 3),
        ("trial", "devices", 2),
        ("trial", "sites", 1),
        ("starter", "users", 5),
        ("starter", "devices", 5),
        ("starter", "sites", 1),
        ("pro", "users", 25),
        ("pro", "devices", 50),
        ("pro", "sites", 5),
    ],
)
def test_hard_limit_refuses_the_n_plus_first(code: str, kind: str, allowed: int) -> None:
    p = plan(code)
    assert check_limit(p, kind, 0) is None  # type: ignore[arg-type]
    assert check_limit(p, kind, allowed - 1) is None  # type: ignore[arg-type]
    err = check_limit(p, kind, allowed)  # type: ignore[arg-type]
    assert isinstance(err, LimitExceeded)
    assert (err.code, err.http_status, err.allowed, err.kind) == ("plan_limit", 402, allowed, kind)
    assert f"allows {allowed} " in err.message and p.name in err.message
    assert isinstance(check_limit(p, kind, allowed + 7), LimitExceeded)  # type: ignore[arg-type]


def test_enterprise_has_no_hard_limits_and_bad_input_is_refused() -> None:
    for kind in ("users", "devices", "sites"):
        assert check_limit(plan("enterprise"), kind, 10**9) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        check_limit(plan("pro"), "users", -1)
    with pytest.raises(ValueError):
        check_limit(plan("pro"), "printers", 0)  # type: ignore[arg-type]


def test_message_uses_the_singular_for_one() -> None:
    err = check_limit(plan("starter"), "sites", 1)
    assert err is not None and "allows 1 site;" in err.message


# -- reaching each state -------------------------------------------------------------------


def _trial(card: bool = False) -> Subscription:
    return start_trial("starter", T0, has_payment_method=card)[0]


def _active() -> Subscription:
    return record_payment(_trial(), T0 + DAY)[0]


def _past_due() -> Subscription:
    return renewal_failed(_active(), T0 + 31 * DAY)[0]


def _canceled() -> Subscription:
    return cancel(_active(), T0 + 5 * DAY)[0]


STATE_AT: dict[str, Callable[[], tuple[Subscription, datetime]]] = {
    "trialing": lambda: (_trial(), T0 + DAY),
    "active": lambda: (_active(), T0 + 2 * DAY),
    "past_due": lambda: (_past_due(), T0 + 32 * DAY),
    "unpaid": lambda: (_past_due(), T0 + 46 * DAY),
    "paused": lambda: (_trial(card=False), T0 + 15 * DAY),
    "suspended": lambda: (suspend(_active(), "abuse: spam", T0 + 3 * DAY)[0], T0 + 4 * DAY),
    "canceled": lambda: (_canceled(), T0 + 6 * DAY),
    "canceled_locked": lambda: (_canceled(), T0 + 36 * DAY),
    "incomplete": lambda: (start_checkout("pro", T0)[0], T0 + 2 * timedelta(hours=1)),
    "incomplete_expired": lambda: (start_checkout("pro", T0)[0], T0 + DAY),
}


@pytest.mark.parametrize("state", sorted(STATE_AT))
def test_each_fixture_is_in_its_state(state: str) -> None:
    sub, now = STATE_AT[state]()
    sub, _ = advance(sub, now)
    assert sub.state == state.removesuffix("_locked")
    assert sub.locked == state.endswith("_locked")


# -- allows: every state × action ----------------------------------------------------------

Y = (True, 200, "ok", None)
INACTIVE = (False, 402, "subscription_inactive", None)
BUFFER = (False, 402, "subscription_inactive", 3600)  # the edge keeps it in its outbox
SUSPENDED = (False, 403, "tenant_suspended", None)
CANCELED = (False, 403, "subscription_canceled", None)
INCOMPLETE = (False, 402, "subscription_incomplete", None)
EXPIRED = (False, 403, "subscription_expired", None)

# Columns: login, portal_read, portal_write, device_ingest, export, billing (for a viewer).
EXPECTED: dict[str, tuple[tuple[bool, int, str, int | None], ...]] = {
    "trialing": (Y, Y, Y, Y, Y, Y),
    "active": (Y, Y, Y, Y, Y, Y),
    "past_due": (Y, Y, Y, Y, Y, Y),
    "unpaid": (Y, Y, INACTIVE, BUFFER, Y, Y),
    "paused": (Y, Y, INACTIVE, BUFFER, Y, Y),
    "suspended": (SUSPENDED,) * 6,
    "canceled": (Y, Y, CANCELED, CANCELED, Y, Y),
    "canceled_locked": (CANCELED,) * 6,
    "incomplete": (Y, INCOMPLETE, INCOMPLETE, INCOMPLETE, INCOMPLETE, Y),
    "incomplete_expired": (EXPIRED,) * 6,
}
# Only a suspended tenant looks at the role: its owner may sign in, read and see billing.
OWNER_DIFFERS = {("suspended", "login"), ("suspended", "portal_read"), ("suspended", "billing")}
COLUMNS = ("login", "portal_read", "portal_write", "device_ingest", "export", "billing")


def test_expected_table_covers_every_state_and_action() -> None:
    assert COLUMNS == ACTIONS
    assert {s.removesuffix("_locked") for s in EXPECTED} == set(STATES)
    assert set(EXPECTED) == set(STATE_AT)


@pytest.mark.parametrize("role", ["owner", "viewer", "finance_mgr", None])
@pytest.mark.parametrize("action", COLUMNS)
@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_allows(state: str, action: str, role: str | None) -> None:
    sub, now = STATE_AT[state]()
    expected = EXPECTED[state][COLUMNS.index(action)]
    if role == "owner" and (state, action) in OWNER_DIFFERS:
        expected = Y
    got = allows(sub, action, now=now, role=role)  # type: ignore[arg-type]
    assert (got.ok, got.http_status, got.code, got.retry_after_s) == expected
    assert bool(got.message) != got.ok, "a refusal says why; an allowance says nothing"


def test_unknown_action_is_refused_loudly() -> None:
    with pytest.raises(ValueError):
        allows(_active(), "delete_everything", now=T0 + 2 * DAY)  # type: ignore[arg-type]


def test_case_16_unpaid_paused_suspended_canceled() -> None:
    for sub, now in (STATE_AT["unpaid"](), STATE_AT["paused"]()):
        ingest = allows(sub, "device_ingest", now=now)
        assert (ingest.ok, ingest.http_status, ingest.code) == (False, 402, "subscription_inactive")
        assert ingest.retry_after_s and ingest.retry_after_s > 0
        assert "outbox" in ingest.message
        assert allows(sub, "portal_read", now=now, role="viewer").ok
        assert allows(sub, "export", now=now, role="owner").ok
        write = allows(sub, "portal_write", now=now, role="owner")
        assert (write.ok, write.http_status) == (False, 402)

    sub, now = STATE_AT["suspended"]()
    assert allows(sub, "login", now=now, role="owner").ok
    for role in ("finance_mgr", "viewer", "auditor", None):
        refused = allows(sub, "login", now=now, role=role)
        assert (refused.ok, refused.http_status, refused.code) == (False, 403, "tenant_suspended")
    assert not allows(sub, "portal_write", now=now, role="owner").ok

    canceled = _canceled()
    assert canceled.canceled_at is not None
    day_30 = canceled.canceled_at + 30 * DAY
    assert allows(canceled, "login", now=day_30 - SECOND, role="owner").ok
    assert allows(canceled, "export", now=day_30 - SECOND, role="owner").ok
    assert not allows(canceled, "login", now=day_30, role="owner").ok
    assert not allows(canceled, "export", now=day_30 + SECOND, role="owner").ok


# -- time-driven transitions at their boundaries --------------------------------------------


def _boundaries() -> list[tuple[str, Subscription, datetime, str, str]]:
    past_due = _past_due()
    canceled = _canceled()
    incomplete = start_checkout("starter", T0)[0]
    assert past_due.past_due_since and canceled.canceled_at
    return [
        ("trial, card", _trial(card=True), T0 + 14 * DAY, "active", "trial_ended"),
        ("trial, no card", _trial(card=False), T0 + 14 * DAY, "paused", "trial_ended"),
        ("grace", past_due, past_due.past_due_since + 14 * DAY, "unpaid", "grace_expired"),
        (
            "checkout",
            incomplete,
            T0 + timedelta(hours=23),
            "incomplete_expired",
            "checkout_expired",
        ),
        ("lock", canceled, canceled.canceled_at + 30 * DAY, "canceled", "locked"),
    ]


@pytest.mark.parametrize("case", _boundaries(), ids=lambda c: c[0])
def test_time_driven_move_at_its_boundary(
    case: tuple[str, Subscription, datetime, str, str],
) -> None:
    _, sub, boundary, to_state, reason = case
    assert next_deadline(sub) == boundary
    before, moved = advance(sub, boundary - SECOND)
    assert before == sub and moved == []
    for now in (boundary, boundary + SECOND):
        after, moved = advance(sub, now)
        assert after.state == to_state
        assert moved == [Transition(sub.state, to_state, boundary, reason)]
        assert after.state_since == (sub.state_since if to_state == sub.state else boundary)
        assert advance(after, now) == (after, []), "advance is idempotent"


def test_purge_is_due_at_day_90_and_a_long_jump_records_both_steps() -> None:
    canceled = _canceled()
    at = canceled.canceled_at
    assert at is not None
    locked, _ = advance(canceled, at + 90 * DAY - SECOND)
    assert locked.locked and not locked.purge_due
    after, moved = advance(canceled, at + 90 * DAY)
    assert after.locked and after.purge_due
    assert [(t.reason, t.at) for t in moved] == [
        ("locked", at + 30 * DAY),
        ("purge_due", at + 90 * DAY),
    ]


def test_an_expired_checkout_is_due_for_purge_and_cannot_be_paid() -> None:
    sub = start_checkout("pro", T0)[0]
    expired, _ = advance(sub, T0 + timedelta(hours=23))
    assert expired.purge_due
    with pytest.raises(InvalidTransition) as err:
        record_payment(sub, T0 + timedelta(hours=23))
    assert err.value.code == "invalid_subscription_transition"
    paid, moved = record_payment(sub, T0 + timedelta(hours=23) - SECOND)
    assert paid.state == "active" and [t.reason for t in moved] == ["payment_recorded"]


def test_trial_that_ends_active_gets_a_period_from_the_trial_end() -> None:
    sub, _ = advance(_trial(card=True), T0 + 20 * DAY)
    assert sub.current_period_start == T0 + 14 * DAY
    assert sub.current_period_end == T0 + 44 * DAY


# -- event-driven transitions ----------------------------------------------------------------


@pytest.mark.parametrize("state", ["trialing", "active", "past_due", "unpaid", "paused"])
def test_paying_makes_it_active_with_a_new_period(state: str) -> None:
    sub, now = STATE_AT[state]()
    paid, moved = record_payment(sub, now, period_days=365)
    assert paid.state == "active"
    assert (paid.current_period_start, paid.current_period_end) == (now, now + 365 * DAY)
    assert paid.past_due_since is None
    assert moved[-1] == Transition(advance(sub, now)[0].state, "active", now, "payment_recorded")
    assert allows(paid, "device_ingest", now=now).ok


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("suspended", record_payment),
        ("canceled", record_payment),
        ("canceled", cancel),
        ("incomplete", cancel),
        ("unpaid", renewal_failed),
        ("paused", renewal_failed),
        ("canceled", renewal_failed),
        ("active", unsuspend),
        ("incomplete_expired", record_payment),
    ],
)
def test_invalid_transitions_raise_and_change_nothing(
    state: str, event: Callable[[Subscription, datetime], Outcome]
) -> None:
    sub, now = STATE_AT[state]()
    with pytest.raises(InvalidTransition) as err:
        event(sub, now)
    assert (err.value.code, err.value.http_status) == ("invalid_subscription_transition", 409)


@pytest.mark.parametrize("state", ["suspended", "canceled", "incomplete", "incomplete_expired"])
def test_cannot_suspend_twice_or_a_dead_subscription(state: str) -> None:
    sub, now = STATE_AT[state]()
    with pytest.raises(InvalidTransition):
        suspend(sub, "abuse", now)


def test_an_event_after_a_deadline_records_the_time_driven_move_first() -> None:
    sub = _past_due()
    assert sub.past_due_since is not None
    grace_end = sub.past_due_since + 14 * DAY
    canceled, moved = cancel(sub, grace_end + DAY)
    assert canceled.state == "canceled"
    assert moved == [
        Transition("past_due", "unpaid", grace_end, "grace_expired"),
        Transition("unpaid", "canceled", grace_end + DAY, "canceled"),
    ]


EVENTS: dict[str, Callable[[Subscription, datetime], Outcome]] = {
    "record_payment": record_payment,
    "renewal_failed": renewal_failed,
    "suspend": lambda sub, now: suspend(sub, "abuse", now),
    "cancel": cancel,
    "set_payment_method": lambda sub, now: set_payment_method(sub, True, now),
}


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_first_applies_a_trial_end_that_passed(event: str) -> None:
    trial = _trial(card=True)
    _, moved = EVENTS[event](trial, T0 + 20 * DAY)
    assert moved[0] == Transition("trialing", "active", T0 + 14 * DAY, "trial_ended")


def test_a_second_failed_renewal_does_not_extend_the_grace() -> None:
    sub = _past_due()
    again, moved = renewal_failed(sub, T0 + 40 * DAY)
    assert again == sub and moved == [] and sub.past_due_since is not None
    assert advance(again, sub.past_due_since + 14 * DAY)[0].state == "unpaid"


def test_suspension_needs_a_reason_and_unsuspend_restores_the_state() -> None:
    with pytest.raises(ValueError):
        suspend(_active(), "  ", T0 + 2 * DAY)
    sub, moved = suspend(_past_due(), "chargeback", T0 + 32 * DAY)
    assert (sub.state, sub.suspended_from, sub.suspended_reason) == (
        "suspended",
        "past_due",
        "chargeback",
    )
    assert moved == [Transition("past_due", "suspended", T0 + 32 * DAY, "suspended")]
    back, moved = unsuspend(sub, T0 + 33 * DAY)
    assert back.state == "past_due" and back.suspended_reason is None
    # the grace ran on during the suspension: lifted after it, the tenant is unpaid at once
    late, moved = unsuspend(sub, T0 + 60 * DAY)
    assert late.state == "unpaid"
    assert [(t.from_state, t.to_state) for t in moved] == [
        ("suspended", "past_due"),
        ("past_due", "unpaid"),
    ]


@pytest.mark.parametrize("state", ["active", "unpaid", "paused", "suspended", "incomplete_expired"])
def test_states_without_a_deadline(state: str) -> None:
    sub, now = STATE_AT[state]()
    assert next_deadline(advance(sub, now)[0]) is None


def test_a_trial_that_ended_during_a_suspension_ends_when_it_is_lifted() -> None:
    sub, _ = suspend(_trial(card=True), "abuse", T0 + DAY)
    assert advance(sub, T0 + 20 * DAY) == (sub, []), "no clock runs while suspended"
    back, moved = unsuspend(sub, T0 + 20 * DAY)
    assert back.state == "active" and back.current_period_start == T0 + 20 * DAY
    assert [(t.to_state, t.at) for t in moved] == [
        ("trialing", T0 + 20 * DAY),
        ("active", T0 + 20 * DAY),
    ]


def test_a_card_added_after_the_trial_end_does_not_rewrite_it() -> None:
    sub, moved = set_payment_method(_trial(), True, T0 + 20 * DAY)
    assert sub.state == "paused" and sub.has_payment_method
    assert [t.reason for t in moved] == ["trial_ended"]
    in_time, _ = set_payment_method(_trial(), True, T0 + 13 * DAY)
    assert advance(in_time, T0 + 14 * DAY)[0].state == "active"


def test_starting_needs_a_known_plan_and_records_the_start() -> None:
    with pytest.raises(UnknownPlan):
        start_trial("gold", T0)
    sub, moved = start_trial("pro", T0)
    assert moved == [Transition(None, "trialing", T0, "trial_started")]
    assert sub.trial_ends_at == T0 + 14 * DAY
    assert start_checkout("pro", T0)[1] == [Transition(None, "incomplete", T0, "checkout_started")]


def test_subscription_refuses_inconsistent_rows() -> None:
    with pytest.raises(ValueError):
        Subscription("frozen", "pro", T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Subscription("trialing", "pro", T0)  # no trial end
    with pytest.raises(ValueError, match="timezone-aware"):
        start_trial("pro", datetime(2025, 1, 10, 9, 0))
    with pytest.raises(ValueError):
        Subscription("suspended", "pro", T0, suspended_reason="x", suspended_from="canceled")
    with pytest.raises(ValueError):
        Subscription(
            "active", "pro", T0, current_period_start=T0, current_period_end=T0, locked=True
        )


def test_trial_limits_apply_until_the_first_paid_period() -> None:
    assert effective_plan(start_trial("pro", T0)[0]).code == "trial"
    assert effective_plan(STATE_AT["paused"]()[0]).code == "trial"
    assert effective_plan(record_payment(start_trial("pro", T0)[0], T0 + DAY)[0]).code == "pro"


def test_transition_table_is_closed_over_the_states() -> None:
    for by_source in TRANSITIONS.values():
        for source, targets in by_source.items():
            assert source is None or source in STATES
            assert targets and targets <= set(STATES)
    assert ("canceled", "active") not in EDGES
    assert ("incomplete_expired", "active") not in EDGES
    assert not any(src == "incomplete_expired" for src, _ in EDGES)


# -- banner ----------------------------------------------------------------------------------


def test_banner_for_each_state() -> None:
    trial = _trial()
    assert str(banner(trial, T0)).startswith("Trial: 14 days left")
    assert "add a payment method" in str(banner(trial, T0))
    assert str(banner(trial, T0 + 14 * DAY - SECOND)).startswith("Trial: 1 day left")
    assert "Starter starts then" in banner(_trial(card=True), T0)  # type: ignore[operator]
    assert banner(*STATE_AT["active"]()) is None
    past_due = banner(*STATE_AT["past_due"]())
    assert past_due is not None and "2025-02-10" in past_due and "2025-02-24" in past_due
    expected_words = {
        "unpaid": "unpaid since 2025-02-24",
        "paused": "without a payment method",
        "suspended": "abuse: spam",
        "canceled": "read-only until 2025-02-14",
        "canceled_locked": "locked",
        "incomplete": "first payment",
        "incomplete_expired": "expired",
    }
    for state, words in expected_words.items():
        text = banner(*STATE_AT[state]())
        assert text is not None and words in text, (state, text)
        assert text[0].isupper() and text.endswith(".")


# -- the state machine under random events and clock jumps ------------------------------------

PAYABLE = {"trialing", "active", "past_due", "unpaid", "paused", "incomplete"}
LIVE = {"trialing", "active", "past_due", "unpaid", "paused"}
NO_INGEST = {"canceled", "suspended", "incomplete", "incomplete_expired"}


class SubscriptionMachine(RuleBasedStateMachine):
    """Random billing events and clock jumps; the log must follow the declared edges."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.sub: Subscription
        self.log: list[Transition] = []

    @initialize(
        trial=st.booleans(),
        card=st.booleans(),
        plan_code=st.sampled_from(["starter", "pro", "enterprise"]),
    )
    def start(self, trial: bool, card: bool, plan_code: str) -> None:
        begin = start_trial if trial else start_checkout
        self.sub, self.log = begin(plan_code, self.now, has_payment_method=card)

    @rule(
        seconds=st.sampled_from([1, 3_600, 23 * 3_600, 14 * 86_400, 30 * 86_400, 60 * 86_400])
        | st.integers(0, 100 * 86_400)
    )
    def wait(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def tick(self) -> None:
        self._apply(lambda: advance(self.sub, self.now))

    @rule(days=st.sampled_from([1, 30, 365]))
    def pay(self, days: int) -> None:
        before = self._state_now()
        if self._apply(lambda: record_payment(self.sub, self.now, days)):
            assert before in PAYABLE
            assert self.sub.state == "active"
            assert self.sub.current_period_end == self.now + timedelta(days=days)
        else:
            assert before not in PAYABLE

    @rule()
    def renewal_fails(self) -> None:
        before = self._state_now()
        since = self.sub.past_due_since
        if self._apply(lambda: renewal_failed(self.sub, self.now)):
            assert self.sub.state == "past_due"
            assert self.sub.past_due_since == (since if before == "past_due" else self.now)
        else:
            assert before not in {"trialing", "active", "past_due"}

    @rule(reason=st.sampled_from(["abuse", "chargeback", "legal hold"]))
    def suspend_tenant(self, reason: str) -> None:
        before = self._state_now()
        if self._apply(lambda: suspend(self.sub, reason, self.now)):
            assert before in LIVE and self.sub.suspended_from == before
        else:
            assert before not in LIVE

    @rule()
    def unsuspend_tenant(self) -> None:
        before = self.sub
        if self._apply(lambda: unsuspend(self.sub, self.now)):
            assert before.state == "suspended"
            assert self.sub.state in LIVE
        else:
            assert before.state != "suspended"

    @rule()
    def cancel_subscription(self) -> None:
        before = self._state_now()
        if self._apply(lambda: cancel(self.sub, self.now)):
            assert before in LIVE and self.sub.canceled_at == self.now
        else:
            assert before not in LIVE

    @rule(present=st.booleans())
    def card(self, present: bool) -> None:
        self._apply(lambda: set_payment_method(self.sub, present, self.now))
        assert self.sub.has_payment_method == present

    def _state_now(self) -> str:
        return advance(self.sub, self.now)[0].state

    def _apply(self, step: Callable[[], Outcome]) -> bool:
        try:
            after, moved = step()
        except InvalidTransition as err:
            assert err.code == "invalid_subscription_transition"
            return False
        due = advance(self.sub, self.now)[1]
        assert moved[: len(due)] == due, "the moves already due are recorded first"
        state = self.sub.state
        for t in moved:
            assert t.from_state == state, "the log chains"
            assert t.to_state in TRANSITIONS[t.reason][t.from_state], f"not an edge: {t}"
            assert t.at <= self.now
            state = t.to_state
        assert state == after.state
        self.log.extend(moved)
        self.sub = after
        return True

    @invariant()
    def log_is_ordered_and_along_edges(self) -> None:
        assert all(a.at <= b.at for a, b in zip(self.log, self.log[1:], strict=False))
        assert all((t.from_state, t.to_state) in EDGES for t in self.log)
        assert self.log[0].from_state is None
        assert self.log[-1].to_state == self.sub.state

    @invariant()
    def device_ingest_is_never_dropped(self) -> None:
        state = self._state_now()
        assert state in STATES
        decision = allows(self.sub, "device_ingest", now=self.now)
        if state in {"trialing", "active", "past_due"}:
            assert decision.ok
        elif state in {"unpaid", "paused"}:
            assert (decision.http_status, decision.code) == (402, "subscription_inactive")
            assert decision.retry_after_s is not None and decision.retry_after_s > 0
        else:
            assert state in NO_INGEST
            assert not decision.ok and decision.retry_after_s is None
            assert decision.http_status in (402, 403)

    @invariant()
    def reads_and_advance_are_consistent(self) -> None:
        state = self._state_now()
        read = allows(self.sub, "portal_read", now=self.now, role="viewer")
        assert read.ok == (state in LIVE or (state == "canceled" and not self._locked()))
        assert advance(advance(self.sub, self.now)[0], self.now)[1] == []
        assert (banner(self.sub, self.now) is None) == (state == "active")

    def _locked(self) -> bool:
        return advance(self.sub, self.now)[0].locked


SubscriptionMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSubscriptionMachine = SubscriptionMachine.TestCase


def test_plan_dataclass_is_frozen() -> None:
    p: Plan = plan("starter")
    with pytest.raises(AttributeError):
        p.max_users = 99  # type: ignore[misc]
