"""Names the pages show for codes the services use (roles, event types, states):
message ids, translated when rendered."""

from __future__ import annotations


def _(message: str) -> str:
    """Marks a message id for the catalogs."""
    return message


ROLES = {
    "owner": _("Owner"),
    "finance_mgr": _("Finance manager"),
    "accountant": _("Accountant"),
    "warehouse": _("Warehouse"),
    "production": _("Production"),
    "viewer": _("Viewer"),
    "auditor": _("Auditor"),
}
EVENT_TYPES = {
    "purchase_receipt": _("Purchase receipt"),
    "material_issue": _("Material issue"),
    "material_return": _("Material return"),
    "labour": _("Labour"),
    "production_completion": _("Completion"),
    "sales_shipment": _("Sales shipment"),
    "stock_count": _("Stock count"),
    "reversal": _("Reversal"),
    "work_order_close": _("Work order close"),
}
STATES = {
    "trialing": _("Trial"),
    "active": _("Active"),
    "past_due": _("Past due"),
    "unpaid": _("Unpaid"),
    "paused": _("Paused"),
    "suspended": _("Suspended"),
    "canceled": _("Cancelled"),
    "incomplete": _("Incomplete"),
}
# href, title, and the path prefix that marks the entry as the current page
NAV = [
    ("/", _("Dashboard"), "/"),
    ("/inventory", _("Inventory"), "/inventory"),
    ("/production", _("Production"), "/production"),
    ("/finance/trial-balance", _("Finance"), "/finance"),
    ("/exceptions", _("Exceptions"), "/exceptions"),
    ("/devices", _("Devices"), "/devices"),
    ("/labels", _("Labels"), "/labels"),
    ("/subscription", _("Subscription"), "/subscription"),
    ("/users", _("Users"), "/users"),
]


def label(table: dict[str, str], code: str | None) -> str:
    """The message id for `code`, or the code itself when it has none."""
    return table.get(code or "", code or "")
