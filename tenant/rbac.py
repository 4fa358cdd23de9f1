"""Who may do what (SAAS.md's RBAC matrix), as data. Pure: the API maps each route to
an action and asks `can(role, action)`.

Actions:
- read              every GET (reports, lists, the cost report...)
- masterdata.write  items, locations, BOMs, work centres, operators, parties
- events.post       send events (each is checked by its kind, below), re-post or void
                    one in the exception queue
- stock.post        stock movements: receipts, issues, returns, shipments, counts
- production.progress  work-order progress: completions, labour
- production.write  work orders: create, release, cancel, close
- journal.post      draft and post a manual journal entry
- journal.reverse   reverse a posted entry (never one's own: segregation of duties)
- period.close      close a fiscal period
- period.reopen     reopen one (owner only; audited)
- settings.write    the tenant's production and costing settings
- devices.manage    enrollment codes, key rotation, revocation
- users.manage      invite, change role, remove; the invoices
- billing           cancel the subscription (what an unpaid or paused tenant may still do)
- export            the tenant's export and the audit log (reads, but not for every role)
"""

from __future__ import annotations

ROLES = (
    "owner",
    "finance_mgr",
    "accountant",
    "warehouse",
    "production",
    "viewer",
    "auditor",
)
EVERYONE = frozenset(ROLES)

ACTIONS: dict[str, frozenset[str]] = {
    "read": EVERYONE,
    "masterdata.write": frozenset({"owner", "warehouse", "production"}),
    "events.post": frozenset({"owner", "warehouse", "production"}),
    "stock.post": frozenset({"owner", "warehouse"}),
    "production.progress": frozenset({"owner", "production"}),
    "production.write": frozenset({"owner", "production"}),
    "journal.post": frozenset({"owner", "finance_mgr", "accountant"}),
    "journal.reverse": frozenset({"owner", "finance_mgr"}),  # + segregation of duties
    "period.close": frozenset({"owner", "finance_mgr"}),
    "period.reopen": frozenset({"owner"}),
    "settings.write": frozenset({"owner"}),
    "devices.manage": frozenset({"owner", "warehouse", "production"}),
    "users.manage": frozenset({"owner"}),
    "billing": frozenset({"owner"}),  # cancel the subscription: allowed while unpaid
    "export": frozenset({"owner", "finance_mgr", "auditor"}),
    "session": EVERYONE,  # signing out
}


# what a person's event of each kind needs (reversals and journal entries are checked
# with their own rules: journal.reverse with segregation of duties, journal.post)
EVENT_ACTIONS: dict[str, str] = {
    "purchase_receipt": "stock.post",
    "material_issue": "stock.post",
    "material_return": "stock.post",
    "sales_shipment": "stock.post",
    "stock_count": "stock.post",
    "production_completion": "production.progress",
    "labour": "production.progress",
    "work_order_close": "production.write",
}


# what a person needs to re-post or void a queued event of each kind
QUEUE_ACTIONS: dict[str, str] = {
    **EVENT_ACTIONS,
    "reversal": "journal.reverse",
    "journal_entry": "journal.post",
}

# the device scope each of those actions needs (tenant/security/keys.py DEVICE_SCOPES;
# "events:post" covers them all)
DEVICE_SCOPE_OF = {
    "stock.post": "stock:post",
    "production.progress": "progress:post",
    "production.write": "progress:post",
}


def device_may_send(scopes: frozenset[str], event_type: str) -> bool:
    """May a device with `scopes` send an event of `event_type`?"""
    needed = DEVICE_SCOPE_OF.get(EVENT_ACTIONS.get(event_type, ""))
    return needed is None or "events:post" in scopes or needed in scopes


def can(role: str, action: str) -> bool:
    """Unknown actions are refused: a route nobody mapped is nobody's."""
    return role in ACTIONS.get(action, frozenset())
