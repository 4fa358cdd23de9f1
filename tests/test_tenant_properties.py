"""SAAS.md case 10: a Hypothesis state machine posts receipts, issues and reversals
into two tenants at random (as erp_app on PostgreSQL). After every step, for each
tenant: every journal entry balances, the trial balance balances, the books-check
finds nothing, and the stock and WIP accounts hold exactly what that tenant's own
posted receipts (less its posted reversals of them) brought in: B's traffic never
moves A's figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, select

from cloud_api.db import models as m
from tests.conftest import Api
from tests.factory import issue, receipt, reversal, setup_workshop

quantity = st.integers(min_value=1, max_value=9)
price = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("40"), places=2)


def machine(db: Engine) -> type[RuleBasedStateMachine]:
    class TwoTenants(RuleBasedStateMachine):
        receipts = Bundle("receipts")

        def __init__(self) -> None:
            super().__init__()
            self.apis = {name: Api(db) for name in "AB"}
            for api in self.apis.values():
                setup_workshop(api)
            self.brought_in = {name: Decimal("0.00") for name in "AB"}
            self.minute = 0

        def _tick(self) -> float:
            self.minute += 1
            return self.minute

        @rule(target=receipts, tenant=st.sampled_from("AB"), qty=quantity, unit=price)
        def receive(self, tenant: str, qty: int, unit: Decimal) -> Any:
            (result,) = self.apis[tenant].events(receipt(self._tick(), "RAW", str(qty), str(unit)))
            assert result["status"] == "posted", result
            value = (unit * qty).quantize(Decimal("0.01"))
            self.brought_in[tenant] += value
            return (tenant, result["event_id"], value)

        @rule(tenant=st.sampled_from("AB"), qty=quantity)
        def issue_to_work_order(self, tenant: str, qty: int) -> None:
            (result,) = self.apis[tenant].events(issue(self._tick(), "RAW", str(qty)))
            assert result["status"] in ("posted", "held"), result  # held: not enough stock

        @rule(posted=consumes(receipts))
        def reverse(self, posted: tuple[str, str, Decimal]) -> None:
            tenant, event_id, value = posted
            (result,) = self.apis[tenant].events(reversal(self._tick(), event_id))
            # refused when the stock it brought in has been issued since: never negative
            assert result["status"] in ("posted", "held"), result
            if result["status"] == "posted":
                self.brought_in[tenant] -= value

        @invariant()
        def each_tenant_keeps_its_own_books(self) -> None:
            for name, api in self.apis.items():
                balances = api.balances()
                held_value = balances.get("1403", Decimal(0)) + balances.get("5001", Decimal(0))
                assert held_value == self.brought_in[name], name
                tb = api.get("/reports/trial-balance").json()
                assert Decimal(tb["total_debit"]) == Decimal(tb["total_credit"])
                assert api.reconcile() == []
                jl = m.SQLModel.metadata.tables["journal_line"]
                with db.connect() as conn:
                    unbalanced = conn.execute(
                        select(jl.c.entry_id)
                        .where(jl.c.tenant_id == api.tenant.id)
                        .group_by(jl.c.entry_id)
                        .having(func.sum(jl.c.debit) != func.sum(jl.c.credit))
                    ).all()
                assert unbalanced == []

    return TwoTenants


@pytest.mark.postgres
def test_two_tenants_random_post_and_reverse_on_postgres(pg_db: Engine) -> None:
    run_state_machine_as_test(
        machine(pg_db),
        settings=settings(
            max_examples=8,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_two_tenants_random_post_and_reverse_on_sqlite(sqlite_db: Engine) -> None:
    run_state_machine_as_test(
        machine(sqlite_db),
        settings=settings(
            max_examples=8,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
