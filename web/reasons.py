"""Why an event is held or rejected, in plain words, and what fixes it: one entry per
code (cloud_api raises them as `Held(code, message)` and `Rejected(code, message)`).
The texts are message ids, shown translated; the service's own message, with the
figures, is shown under them."""

from __future__ import annotations

from dataclasses import dataclass


def _(message: str) -> str:
    """Marks a message id for the catalogs; translated when rendered."""
    return message


@dataclass(frozen=True)
class Reason:
    title: str
    fix: str
    link: str | None = None  # the page where the fix is made, if the portal has it


REASONS: dict[str, Reason] = {
    "insufficient_stock": Reason(
        _("Not enough stock"),
        _("Receive the missing stock (or post the count): the event then posts by itself."),
        "/inventory",
    ),
    "reserved_for_other_orders": Reason(
        _("The stock is reserved for other work orders"),
        _("Receive more, or release or close the orders that hold it, then re-post."),
    ),
    "backflush_lot_unavailable": Reason(
        _("A lot needed for backflush is not in stock"),
        _("Receive the lot: the completion then posts by itself."),
        "/inventory",
    ),
    "item_has_no_cost": Reason(
        _("The item has no cost yet"),
        _("Post the item's first receipt, then re-post."),
    ),
    "period_locked": Reason(
        _("The period is closed"),
        _("Open the period (owner, with a reason): its events then post by themselves."),
    ),
    "unknown_item": Reason(
        _("Unknown item"),
        _("Map the unknown item: create it with this code, and the event posts by itself."),
    ),
    "unknown_location": Reason(
        _("Unknown location"),
        _("Create the location with this code, and the event posts by itself."),
    ),
    "unknown_work_order": Reason(
        _("Unknown work order"),
        _("Create and release the work order, and the event posts by itself."),
    ),
    "unknown_work_center": Reason(
        _("Unknown work centre"),
        _("Create the work centre with this code, then re-post."),
    ),
    "work_order_not_released": Reason(
        _("The work order is not released"),
        _("Release the work order, then re-post."),
    ),
    "work_order_closed": Reason(
        _("The work order is closed"),
        _("Book it to an open work order instead, or void this event with a reason."),
    ),
    "completion_exceeds_order": Reason(
        _("More completed than the order allows"),
        _("Raise the work order's quantity or the completion tolerance, then re-post."),
    ),
    "return_exceeds_issued": Reason(
        _("More returned than was issued"),
        _("Check the quantity; void this event with a reason and post the right one."),
    ),
    "event_not_posted": Reason(
        _("The event it reverses has not posted"),
        _("Fix and re-post the original event first, then re-post this one."),
    ),
    "reversal_not_possible": Reason(
        _("It can no longer be reversed"),
        _("Return the goods with a new event instead, and void this one with a reason."),
    ),
    "missing_virtual_location": Reason(
        _("A system location is missing"),
        _("Contact support: the tenant's virtual locations are incomplete."),
    ),
}
UNKNOWN = Reason(
    _("Held"),
    _("Read the message below, fix the cause, then re-post; or void it with a reason."),
)


UNKNOWN_MASTER_DATA = Reason(
    _("Unknown master data"),
    _("Create the missing record named below, then re-post."),
)


def reason_for(code: str | None) -> Reason:
    if code and code.startswith("unknown_") and code not in REASONS:
        return UNKNOWN_MASTER_DATA
    return REASONS.get(code or "", UNKNOWN)


REJECTIONS: dict[str, Reason] = {
    "lot_required": Reason(
        _("The item is lot-tracked, and no lot was given"),
        _("Scan the lot's label and post it again; void this one with a reason."),
    ),
    "lot_not_tracked": Reason(
        _("A lot was given for an item without lots"),
        _("If the item should track lots, turn that on and re-post; else void this one."),
    ),
    "expiry_without_lot": Reason(
        _("An expiry date without a lot"),
        _("Receive it again with its lot (or without the date), and void this one."),
    ),
    "location_not_internal": Reason(
        _("Stock cannot be kept at that location"),
        _("Scan a warehouse or bin location instead, and void this one with a reason."),
    ),
    "component_is_backflushed": Reason(
        _("The component is issued by the order's completions"),
        _("Nothing to scan: void this one with a reason (or stop backflushing it)."),
    ),
    "labour_hours_and_times": Reason(
        _("Both hours and start/stop times were given"),
        _("Book the labour again with one of them, and void this one with a reason."),
    ),
    "labour_without_hours": Reason(
        _("Labour without hours"),
        _("Book the labour again with the hours or both times; void this one."),
    ),
    "labour_stop_before_start": Reason(
        _("The stop time is not after the start time"),
        _("Check the terminal's clock; book the labour again and void this one."),
        "/devices",
    ),
    "already_reversed": Reason(
        _("It was already reversed"),
        _("Nothing to do twice: void this one with a reason."),
    ),
    "cannot_reverse_reversal": Reason(
        _("A reversal cannot be reversed"),
        _("Post the original event again instead, and void this one."),
    ),
    "cannot_reverse_close": Reason(
        _("A work order's close cannot be reversed"),
        _("Void this one with a reason; post a correcting event instead."),
    ),
    "reversal_before_original": Reason(
        _("The reversal is dated before the event it reverses"),
        _("Post the reversal again with a later date, and void this one."),
    ),
    "journal_not_allowed": Reason(
        _("A device may not post journal entries"),
        _("A finance user posts it in the portal; void this one with a reason."),
    ),
    "forbidden": Reason(
        _("The sender's role may not do this"),
        _("Someone with the right role posts it; void this one with a reason."),
        "/users",
    ),
    "location_outside_site": Reason(
        _("The device is enrolled at another site than this location"),
        _("Post it from a device at the location's site, or void this one with a reason."),
        "/devices",
    ),
    "sod_violation": Reason(
        _("Who posted an entry may not reverse it"),
        _("Another owner or finance manager re-posts it."),
    ),
}
UNKNOWN_REJECTION = Reason(
    _("Rejected"),
    _(
        "Read the message below: correct the master data and re-post, or void it with a "
        "reason and post a corrected event."
    ),
)


def rejection_for(code: str | None) -> Reason:
    return REJECTIONS.get(code or "", UNKNOWN_REJECTION)
