"""Account roles from the tenant's own chart and item categories.

A tenant may book a category to any stock account of its chart, so no read model may
assume the default chart's codes (1403 raw materials, 1405 finished goods). The roles
that are fixed by the posting rules (work in progress, receivables, the default cost
of sales) come from cloud_api.domain.posting_rules, the one place that names them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, and_, select

from cloud_api.db import models as m
from cloud_api.domain import posting_rules as rules

T = m.SQLModel.metadata.tables


@dataclass(frozen=True)
class AccountRoles:
    """Which of the tenant's accounts play which part.

    Invariant: raw_materials and finished_goods are disjoint and together make
    stock_accounts; wip is not among them (it is work in progress, not stock on hand).
    """

    raw_materials: frozenset[str]
    finished_goods: frozenset[str]
    cost_of_sales: frozenset[str]
    revenue: frozenset[str]
    wip: str = rules.WIP
    receivables: str = rules.RECEIVABLES

    @property
    def stock_accounts(self) -> frozenset[str]:
        return self.raw_materials | self.finished_goods

    def is_raw_material(self, stock_account: str) -> bool:
        return stock_account in self.raw_materials


def raw_material_accounts(kinds_by_account: dict[str, set[str]]) -> frozenset[str]:
    """The stock accounts that hold raw materials: those whose categories hold only
    raw items; an account whose categories hold no items yet keeps the role the
    default chart gives it (posting_rules.RAW_MATERIALS). Pure, for unit tests."""
    return frozenset(
        account
        for account, kinds in kinds_by_account.items()
        if (kinds == {"raw"}) or (not kinds and account == rules.RAW_MATERIALS)
    )


def account_roles(conn: Connection, tenant_id: uuid.UUID) -> AccountRoles:
    """The tenant's account roles, read from its item categories and their items."""
    cat, item = T["item_category"], T["item"]
    rows = conn.execute(
        select(cat.c.stock_account, cat.c.cogs_account, cat.c.revenue_account, item.c.kind)
        .select_from(cat)
        .outerjoin(
            item, and_(item.c.tenant_id == cat.c.tenant_id, item.c.category_code == cat.c.code)
        )
        .where(cat.c.tenant_id == tenant_id)
    ).all()
    kinds: dict[str, set[str]] = {}
    for r in rows:
        kinds.setdefault(r.stock_account, set()).update({r.kind} if r.kind else set())
    raw = raw_material_accounts(kinds)
    return AccountRoles(
        raw_materials=raw,
        finished_goods=frozenset(kinds) - raw,
        cost_of_sales=frozenset({r.cogs_account for r in rows} | {rules.COST_OF_SALES}),
        revenue=frozenset({r.revenue_account for r in rows} | {rules.REVENUE}),
    )
