"""What the system books, event by event (DESIGN.md §5). Read top to bottom.

Each rule turns one event into a `Plan`: the stock moves (from → to, and how each
move is valued) and the journal lines that are not stock moves (revenue, VAT,
labour). The journal lines of a stock move follow from the kinds of its two
locations (`ACCOUNT_OF_SIDE`), the same mapping is used for the revaluation of a
move after a late event, so an accountant only has to read this file.

Valuation bases of a move:
- fixed           the value comes with the event (purchase price × quantity)
- pool            the source stock pool's cost (moving average or FIFO)
- pool_in         the destination pool's current unit cost (a stock-count gain)
- wip_return      the average cost at which the work order received the item
- wip_completion  the work order's collected cost, in proportion (pools.WipPool)
- mirror          the current value of the move it reverses
- wip_residual    all that is left in the work order's WIP (the settlement at close)
- residual_stock  the share of it for the order's goods still on hand (policy
                  finished_goods)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from cloud_api.domain.money import ZERO, money, qty
from cloud_api.domain.refs import (
    ComponentRef,
    ItemRef,
    LocationRef,
    LotStock,
    PartyRef,
    WorkCenterRef,
    WorkOrderRef,
)
from cloud_api.errors import Held, Rejected
from contract import (
    Event,
    JournalEntry,
    Labour,
    LabourPayload,
    MaterialIssue,
    MaterialReturn,
    ProductionCompletion,
    PurchaseReceipt,
    SalesShipment,
    StockCount,
    WorkOrderClose,
)

# Default chart (Chinese Accounting Standards for Business Enterprises).
BANK = "1002"
RECEIVABLES = "1122"
RAW_MATERIALS = "1403"
FINISHED_GOODS = "1405"
PENDING_LOSSES = "1901"  # 待处理财产损溢: count differences, scrap, until approved
PAYABLES = "2202"
GOODS_RECEIVED_NOT_INVOICED = "220201"  # 应付账款-暂估
PAYROLL = "2211"
VAT = "2221"
WIP = "5001"
OVERHEAD = "5101"
REVENUE = "6001"
COST_OF_SALES = "6401"

# Which account stands for each kind of location, given the item (Tryton's rule:
# one function maps the pair of location kinds to the accounts).
ACCOUNT_OF_SIDE: dict[str, Callable[[ItemRef], str]] = {
    "supplier": lambda item: GOODS_RECEIVED_NOT_INVOICED,
    "customer": lambda item: item.cogs_account,
    "production": lambda item: WIP,
    "adjustment": lambda item: PENDING_LOSSES,
    "scrap": lambda item: PENDING_LOSSES,
    # A closed work order's residual WIP: a production variance, in cost of sales.
    "variance": lambda item: item.cogs_account,
    "warehouse": lambda item: item.stock_account,
    "bin": lambda item: item.stock_account,
}


@dataclass
class MoveSpec:
    line_no: int
    kind: str
    item: ItemRef
    lot: str
    source: LocationRef
    destination: LocationRef
    quantity: Decimal
    basis: str
    fixed_value: Decimal | None = None
    work_order: WorkOrderRef | None = None
    mirrors_move_id: uuid.UUID | None = None
    scrap_quantity: Decimal = ZERO  # a completion's scrapped units
    customer: PartyRef | None = None
    supplier: PartyRef | None = None


@dataclass
class ChargeSpec:
    line_no: int
    work_order: WorkOrderRef
    work_center_id: uuid.UUID | None
    cost_element: str  # labour, overhead
    hours: Decimal
    rate: Decimal
    value: Decimal
    credit_account: str


@dataclass
class LineSpec:
    account: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO
    item: ItemRef | None = None
    customer: PartyRef | None = None
    supplier: PartyRef | None = None


@dataclass
class Plan:
    memo: str
    moves: list[MoveSpec] = field(default_factory=list)
    charges: list[ChargeSpec] = field(default_factory=list)
    lines: list[LineSpec] = field(default_factory=list)
    # journal lines copied as they are (a reversal's mirror of the original's lines)
    raw_lines: list[dict[str, object]] = field(default_factory=list)
    reverses_event_id: uuid.UUID | None = None


class MasterData(Protocol):
    """Looks master data up by code; raises Held('unknown_…') when it is missing."""

    def item(self, code: str) -> ItemRef: ...
    def item_by_id(self, item_id: uuid.UUID) -> ItemRef: ...
    def location(self, code: str) -> LocationRef: ...
    def location_by_id(self, location_id: uuid.UUID) -> LocationRef: ...
    def virtual_location(self, kind: str) -> LocationRef: ...
    def work_order(self, code: str) -> WorkOrderRef: ...
    def work_order_by_id(self, work_order_id: uuid.UUID) -> WorkOrderRef: ...
    def production_location(self) -> LocationRef: ...
    def work_center(self, code: str) -> WorkCenterRef: ...
    def customer(self, code: str) -> PartyRef: ...
    def supplier(self, code: str) -> PartyRef: ...
    def on_hand(self, item: ItemRef, location: LocationRef, lot: str, at: datetime) -> Decimal: ...
    def backflush_components(self, order: WorkOrderRef) -> list[ComponentRef]:
        """The order's components whose item is issued by backflush, in line order."""
        ...

    def variance_policy(self) -> str: ...
    def accounts(self) -> set[str]:
        """The codes of the tenant's chart of accounts."""
        ...

    def control_accounts(self) -> set[str]:
        """The accounts the stock and WIP sub-ledgers own (stock accounts of the item
        categories, and WIP): no manual line may touch them."""
        ...

    def operator_rate(self, code: str) -> Decimal | None: ...
    def output_location(self, order: WorkOrderRef, at: datetime) -> LocationRef | None: ...
    def lots_on_hand(self, item: ItemRef, location: LocationRef) -> list[LotStock]:
        """The lots of `item` on hand in `location` now (quantity > 0)."""
        ...


def purchase_receipt(event: PurchaseReceipt, md: MasterData) -> Plan:
    """采购入库: supplier → warehouse at the order price.
    Dr stock (1403 / 1405) / Cr 220201 goods received not invoiced."""
    p = event.payload
    item, location = md.item(p.item), _internal(md, p.location)
    _check_lot(item, p.lot)
    if p.expiry is not None and not p.lot:
        raise Rejected(
            "expiry_without_lot",
            f"an expiry date belongs to a lot; item {p.item} is received without one, "
            "so send no expiry",
        )
    move = MoveSpec(
        1,
        "receipt",
        item,
        p.lot,
        md.virtual_location("supplier"),
        location,
        p.quantity,
        "fixed",
        fixed_value=money(p.quantity * p.unit_price),
        supplier=md.supplier(p.supplier),
    )
    return Plan(f"purchase receipt {p.item} × {p.quantity}", moves=[move])


def material_issue(event: MaterialIssue, md: MasterData) -> Plan:
    """生产领料: warehouse → work in progress at valuation cost.
    Dr 5001 [work order] / Cr stock."""
    p = event.payload
    order = _open_work_order(md, p.work_order)
    item, location = md.item(p.item), _internal(md, p.location)
    _check_lot(item, p.lot)
    if any(c.item.id == item.id for c in md.backflush_components(order)):
        # It is issued by the order's completions; a scan too would consume it twice.
        raise Rejected(
            "component_is_backflushed",
            f"{item.code} is backflushed on work order {p.work_order}: its completions "
            "issue it, so it is not scanned to the order",
        )
    move = MoveSpec(
        1,
        "issue",
        item,
        p.lot,
        location,
        md.production_location(),
        p.quantity,
        "pool",
        work_order=order,
    )
    return Plan(f"material issue {p.item} × {p.quantity} to {p.work_order}", moves=[move])


def material_return(event: MaterialReturn, md: MasterData) -> Plan:
    """退料: work in progress → warehouse at the cost the order received it at.
    Dr stock / Cr 5001 [work order]."""
    p = event.payload
    order = _open_work_order(md, p.work_order)
    item, location = md.item(p.item), _internal(md, p.location)
    _check_lot(item, p.lot)
    move = MoveSpec(
        1,
        "return",
        item,
        p.lot,
        md.production_location(),
        location,
        p.quantity,
        "wip_return",
        work_order=order,
    )
    return Plan(f"material return {p.item} × {p.quantity} from {p.work_order}", moves=[move])


def production_completion(event: ProductionCompletion, md: MasterData) -> Plan:
    """完工入库: work in progress → warehouse at the order's collected cost.
    Dr 1405 finished goods / Cr 5001 [work order]. Scrapped units are recorded on the
    move and count as made: their share of the WIP goes into the good units.

    Backflush (倒冲领料): the components whose item is issued by backflush are issued
    first, lines 1..k before the completion's own line, so they are valued first and
    the completion takes its share of them: each a material issue (Dr 5001 [work
    order] / Cr stock) of the component's planned quantity × the units this completion
    accounts for (good + scrap) / the order's planned quantity."""
    p = event.payload
    order = _open_work_order(md, p.work_order)
    item, location = md.item_by_id(order.item_id), _internal(md, p.location)
    _check_lot(item, p.lot)
    moves = backflush_issues(md, order, p.quantity + p.scrap_quantity)
    moves.append(
        MoveSpec(
            len(moves) + 1,
            "completion",
            item,
            p.lot,
            md.production_location(),
            location,
            p.quantity,
            "wip_completion",
            work_order=order,
            scrap_quantity=p.scrap_quantity,
        )
    )
    return Plan(f"completion {item.code} × {p.quantity} of {p.work_order}", moves=moves)


def backflush_issues(md: MasterData, order: WorkOrderRef, units: Decimal) -> list[MoveSpec]:
    """The issues of the order's backflushed components for `units` made, numbered
    from 1: one per component, or one per lot picked for a lot-tracked component."""
    moves: list[MoveSpec] = []
    production = md.production_location()
    for component in md.backflush_components(order):
        quantity = qty(component.planned_quantity * units / order.planned_quantity)
        if quantity == 0:
            continue
        item, location = component.item, component.location
        if item.lot_tracked:
            picks = pick_lots(item, location, quantity, md.lots_on_hand(item, location))
        else:
            picks = [("", quantity)]
        for lot, taken in picks:
            moves.append(
                MoveSpec(
                    len(moves) + 1,
                    "issue",
                    item,
                    lot,
                    location,
                    production,
                    taken,
                    "pool",
                    work_order=order,
                )
            )
    return moves


def pick_lots(
    item: ItemRef, location: LocationRef, needed: Decimal, lots: list[LotStock]
) -> list[tuple[str, Decimal]]:
    """Which lots a backflush takes `needed` from: FEFO (earliest expiry first, lots
    without an expiry after), then FIFO (first received first), then by lot code; a
    lot is emptied before the next is touched. Lots that cannot cover `needed` hold
    the event rather than drive a lot negative."""
    on_hand = sorted((lot for lot in lots if lot.quantity > 0 and lot.lot), key=_picking_order)
    available = sum((lot.quantity for lot in on_hand), ZERO)
    if available < needed:
        listed = ", ".join(f"{lot.lot} {lot.quantity}" for lot in on_hand) or "none"
        raise Held(
            "backflush_lot_unavailable",
            f"backflush of {item.code} needs {needed} from {location.code}, but its lots on "
            f"hand there have only {available} (lots: {listed}); receive the lot, then "
            "re-post this completion",
            item=item.code,
            needed=str(needed),
            available=str(available),
        )
    picks, remaining = [], needed
    for lot in on_hand:
        if remaining == 0:
            break
        taken = min(remaining, lot.quantity)
        picks.append((lot.lot, taken))
        remaining -= taken
    return picks


def _picking_order(lot: LotStock) -> tuple[bool, date, bool, datetime, str]:
    return (
        lot.expiry is None,
        lot.expiry or date.min,
        lot.first_received_at is None,
        lot.first_received_at or datetime.min.replace(tzinfo=UTC),
        lot.lot,
    )


def labour(event: Labour, md: MasterData) -> Plan:
    """报工工时: Dr 5001 [labour] / Cr 2211 payroll (hours × labour rate), and
    overhead applied: Dr 5001 [overhead] / Cr 5101 (hours × overhead rate). The labour
    rate is the reporting operator's grade's when they have one, else the work
    centre's; overhead is always the work centre's."""
    p = event.payload
    hours = labour_hours(p)
    order = _open_work_order(md, p.work_order)
    center = md.work_center(p.work_center)
    graded = md.operator_rate(event.operator) if event.operator else None
    rate = center.labour_rate if graded is None else graded
    charges = [
        ChargeSpec(1, order, center.id, "labour", hours, rate, money(hours * rate), PAYROLL),
        ChargeSpec(
            2,
            order,
            center.id,
            "overhead",
            hours,
            center.overhead_rate,
            money(hours * center.overhead_rate),
            OVERHEAD,
        ),
    ]
    return Plan(f"labour {hours} h on {p.work_order}", charges=charges)


def labour_hours(p: LabourPayload) -> Decimal:
    """The hours of a labour report: as given, or stop − start rounded half-up to
    6 places of an hour."""
    times = (p.started_at, p.stopped_at)
    if p.hours is not None:
        if times != (None, None):
            raise Rejected(
                "labour_hours_and_times", "give either hours or a start and stop time, not both"
            )
        return p.hours
    if p.started_at is None or p.stopped_at is None:
        raise Rejected(
            "labour_without_hours", "give the hours, or both the start and the stop time"
        )
    if p.stopped_at <= p.started_at:
        raise Rejected(
            "labour_stop_before_start",
            f"the stop time {p.stopped_at.isoformat()} is not after the start time "
            f"{p.started_at.isoformat()}",
        )
    # whole microseconds, exactly (total_seconds() is a float: at a half micro-hour
    # its binary error rounded the wrong way)
    seconds = Decimal((p.stopped_at - p.started_at) // MICROSECOND) / MICROSECONDS_PER_SECOND
    return qty(seconds / SECONDS_PER_HOUR)


def sales_shipment(event: SalesShipment, md: MasterData) -> Plan:
    """销售出库: warehouse → customer at valuation cost: Dr 6401 / Cr stock; and the
    sale: Dr 1122 receivables / Cr 6001 revenue, Cr 2221 output VAT."""
    p = event.payload
    item, location, customer = md.item(p.item), _internal(md, p.location), md.customer(p.customer)
    _check_lot(item, p.lot)
    move = MoveSpec(
        1,
        "shipment",
        item,
        p.lot,
        location,
        md.virtual_location("customer"),
        p.quantity,
        "pool",
        customer=customer,
    )
    revenue = money(p.quantity * p.unit_price)
    vat = money(revenue * p.vat_rate)
    lines = [
        LineSpec(RECEIVABLES, debit=revenue + vat, item=item, customer=customer),
        LineSpec(item.revenue_account, credit=revenue, item=item, customer=customer),
        LineSpec(VAT, credit=vat, item=item, customer=customer),
    ]
    return Plan(f"sales shipment {p.item} × {p.quantity} to {p.customer}", [move], [], lines)


def stock_count(event: StockCount, md: MasterData) -> Plan:
    """盘盈 / 盘亏: the difference between the counted and the booked quantity at the
    time of the count moves between the adjustment location and the warehouse:
    Dr stock / Cr 1901 for a gain (at the current unit cost, or the one given),
    Dr 1901 / Cr stock for a loss (at valuation cost). The difference is fixed
    when posted; a later back-dated event does not change it."""
    p = event.payload
    item, location = md.item(p.item), _internal(md, p.location)
    _check_lot(item, p.lot)
    difference = p.counted_quantity - md.on_hand(item, location, p.lot, event.occurred_at)
    adjustment = md.virtual_location("adjustment")
    if difference == 0:
        return Plan(f"stock count {p.item}: no difference")
    if difference > 0:
        fixed = None if p.unit_cost is None else money(difference * p.unit_cost)
        move = MoveSpec(
            1,
            "count",
            item,
            p.lot,
            adjustment,
            location,
            difference,
            "pool_in" if fixed is None else "fixed",
            fixed_value=fixed,
        )
    else:
        move = MoveSpec(1, "count", item, p.lot, location, adjustment, -difference, "pool")
    return Plan(f"stock count {p.item}: {difference:+}", moves=[move])


def journal_lines_of_move(
    item: ItemRef, source: LocationRef, destination: LocationRef, value: Decimal
) -> list[LineSpec]:
    """Dr the destination's account, Cr the source's; a negative value swaps sides.
    Used for a move when posted and for each revaluation of it."""
    if value == 0:
        return []
    debit = ACCOUNT_OF_SIDE[destination.kind](item)
    credit = ACCOUNT_OF_SIDE[source.kind](item)
    amount = abs(value)
    if value < 0:
        debit, credit = credit, debit
    return [LineSpec(debit, debit=amount, item=item), LineSpec(credit, credit=amount, item=item)]


def journal_lines_of_charge(charge: ChargeSpec) -> list[LineSpec]:
    if charge.value == 0:
        return []
    amount = abs(charge.value)
    debit, credit = (WIP, charge.credit_account)
    if charge.value < 0:
        debit, credit = credit, debit
    return [LineSpec(debit, debit=amount), LineSpec(credit, credit=amount)]


def _internal(md: MasterData, code: str) -> LocationRef:
    location = md.location(code)
    if not location.internal:
        raise Rejected(
            "location_not_internal",
            f"location {code} is a {location.kind} location; stock can only be held in a "
            "warehouse or bin",
        )
    return location


SECONDS_PER_HOUR = Decimal(3600)
MICROSECOND = timedelta(microseconds=1)
MICROSECONDS_PER_SECOND = Decimal(1_000_000)

# Statuses in which a work order takes issues, returns, labour and completions.
POSTABLE_STATUSES = frozenset({"released", "in_progress", "completed"})


def _open_work_order(md: MasterData, code: str) -> WorkOrderRef:
    order = md.work_order(code)
    if order.status == "draft":
        raise Held(
            "work_order_not_released",
            f"work order {code} is a draft; it posts once the order is released",
        )
    if order.status not in POSTABLE_STATUSES:
        raise Held(
            "work_order_closed",
            f"work order {code} is {order.status}; post to an open order instead",
        )
    return order


def _check_lot(item: ItemRef, lot: str) -> None:
    if item.lot_tracked and not lot:
        raise Rejected("lot_required", f"item {item.code} is lot-tracked: scan or give the lot")
    if lot and not item.lot_tracked:
        raise Rejected("lot_not_tracked", f"item {item.code} is not lot-tracked; send no lot")


def work_order_close(event: WorkOrderClose, md: MasterData) -> Plan:
    """关闭工单: what is left in the order's WIP after its completions (costs that
    came after the last completion, or an order closed short) is settled by moves of
    no quantity that take it all, so a later revaluation of the order's history
    re-settles it and WIP stays zero after close. Where it goes is the tenant's
    variance policy:

    - cost_of_sales (default): a production variance, Dr 6401 cost of sales /
      Cr 5001 [work order] (a credit to cost of sales when it is negative);
    - finished_goods: the share of the order's goods still on hand, min(on hand,
      good units made) ÷ good units made, is added to that stock's value where the
      order's last completion put it (Dr 1405 / Cr 5001; a FIFO pool spreads it over
      its open layers), and the rest goes to cost of sales as above. On hand means
      the item's stock at that location when the order closes."""
    p = event.payload
    order = _open_work_order(md, p.work_order)
    item = md.item_by_id(order.item_id)
    production = md.production_location()
    moves = []
    if md.variance_policy() == "finished_goods":
        output = md.output_location(order, event.occurred_at)
        if output is not None:
            moves.append(
                MoveSpec(
                    1,
                    "settlement",
                    item,
                    "",
                    production,
                    output,
                    ZERO,
                    "residual_stock",
                    work_order=order,
                )
            )
    moves.append(
        MoveSpec(
            len(moves) + 1,
            "settlement",
            item,
            "",
            production,
            md.virtual_location("variance"),
            ZERO,
            "wip_residual",
            work_order=order,
        )
    )
    reason = f": {p.reason}" if p.reason else ""
    return Plan(f"close of work order {p.work_order}{reason}", moves=moves)


def journal_entry(event: JournalEntry, md: MasterData) -> Plan:
    """A manual journal entry, as balanced as every other: each line a debit or a credit,
    on an account of the chart that no sub-ledger owns (stock and WIP accounts move only
    with stock moves, so the books-check stays exact); receivables name a customer."""
    p = event.payload
    accounts, control = md.accounts(), md.control_accounts()
    lines = []
    for n, line in enumerate(p.lines, 1):
        if (line.debit > 0) == (line.credit > 0):
            raise Rejected("bad_journal_line", f"line {n}: give a debit or a credit, not both")
        if line.account not in accounts:
            raise Rejected("unknown_account", f"line {n}: no account {line.account} in the chart")
        if line.account in control:
            raise Rejected(
                "control_account",
                f"line {n}: {line.account} is kept by the stock or WIP ledger; post stock "
                "moves (a receipt, an issue, a count) instead",
            )
        if line.account == RECEIVABLES and line.customer is None:
            raise Rejected("customer_required", f"line {n}: receivables need a customer")
        lines.append(
            LineSpec(
                line.account,
                debit=line.debit,
                credit=line.credit,
                customer=md.customer(line.customer) if line.customer else None,
                supplier=md.supplier(line.supplier) if line.supplier else None,
            )
        )
    debit, credit = sum(x.debit for x in lines), sum(x.credit for x in lines)
    if debit != credit:
        raise Rejected("unbalanced_entry", f"debits {debit} and credits {credit} differ")
    return Plan(p.memo, lines=lines)


RULES = {
    "purchase_receipt": purchase_receipt,
    "material_issue": material_issue,
    "material_return": material_return,
    "production_completion": production_completion,
    "labour": labour,
    "sales_shipment": sales_shipment,
    "stock_count": stock_count,
    "work_order_close": work_order_close,
    "journal_entry": journal_entry,
}

# Rules whose plan may read the ledger (a count's difference is counted minus on hand
# at that time; a completion's backflush picks from the lots on hand), so they are
# planned when the event posts, after the events before it in the same batch. The
# others read master data alone.
READS_LEDGER = frozenset({"stock_count", "production_completion"})


def plan_reads_ledger(event: Event, md: MasterData) -> bool:
    """Whether this event's plan depends on the ledger: a count always does; a
    completion only when its order backflushes components."""
    if isinstance(event, ProductionCompletion):  # type "production_completion"
        order = md.work_order(event.payload.work_order)
        return bool(md.backflush_components(order))
    if event.type == "work_order_close":  # where the goods went, under that policy
        return md.variance_policy() == "finished_goods"
    return event.type in READS_LEDGER
