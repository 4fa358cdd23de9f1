"""Cost pools: the valuation state of one item in one internal location, and of one
work order's work in progress. Pure Python on Decimal, no I/O.

Invariants (checked by the property tests and the books-check):
- a pool's value is the sum of the values of the moves applied to it, so the stock
  sub-ledger equals the stock accounts to the cent;
- taking everything a pool holds takes all of its value (no residue left behind);
- on-hand per lot never goes below zero unless the tenant allows negative stock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from cloud_api.domain.money import ZERO, money, share, unit_cost
from cloud_api.errors import Held


def insufficient(what: str, needed: Decimal, available: Decimal) -> Held:
    return Held(
        "insufficient_stock",
        f"not enough stock of {what}: needed {needed}, available {available} at that time; "
        "it posts by itself once the missing receipt does",
        needed=str(needed),
        available=str(available),
    )


@dataclass(frozen=True, slots=True)
class Layer:
    """An open FIFO layer. Immutable: a take returns the layer that is left, so a
    pool's snapshot (for rollback) is a copy of the list, never of the layers."""

    ref: Hashable  # the inbound move that opened the layer
    quantity_in: Decimal
    value_in: Decimal
    quantity_left: Decimal
    value_left: Decimal

    def take(self, quantity: Decimal) -> tuple[Layer, Decimal]:
        """Take `quantity` out; value follows the cumulative share of the layer, so
        rounding never accumulates and the last unit takes what is left. Returns the
        layer left behind and the value taken."""
        left_after = self.quantity_left - quantity
        value_after = self.value_in - share(
            self.value_in, self.quantity_in - left_after, self.quantity_in
        )
        taken = self.value_left - value_after
        return replace(self, quantity_left=left_after, value_left=value_after), taken


@dataclass
class StockPool:
    """Stock of one item in one internal location: quantity, value, lots, FIFO layers."""

    method: str  # moving_average or fifo
    label: str
    allow_negative: bool = False
    quantity: Decimal = ZERO
    value: Decimal = ZERO
    last_unit_cost: Decimal | None = None
    lots: dict[str, Decimal] = field(default_factory=dict)
    layers: list[Layer] = field(default_factory=list)

    def clone(self) -> StockPool:
        """A snapshot for rollback: layers are immutable, so copying the containers
        is enough (the hot path: one clone per event per pool it touches)."""
        return replace(self, lots=dict(self.lots), layers=list(self.layers))

    def current_unit_cost(self) -> Decimal | None:
        if self.quantity > 0:
            return unit_cost(self.value, self.quantity)
        return self.last_unit_cost

    # -- inbound -------------------------------------------------------------
    def receive(self, quantity: Decimal, value: Decimal, lot: str, ref: Hashable) -> None:
        self.quantity += quantity
        self.value += value
        self.lots[lot] = self.lots.get(lot, ZERO) + quantity
        self.last_unit_cost = unit_cost(value, quantity) if quantity else self.last_unit_cost
        if self.method == "fifo":
            self.layers.append(Layer(ref, quantity, value, quantity, value))

    def revalue(self, value: Decimal, ref: Hashable) -> None:
        """Add `value` to the stock on hand without changing its quantity (a closed
        work order's residual settled into its goods). A FIFO pool spreads it over
        its open layers in proportion to their quantity, the rounding residue on
        the last."""
        if value == 0:
            return
        if self.quantity <= 0:
            raise AssertionError(f"{self.label}: nothing on hand to take {value}")
        self.value += value
        if self.method != "fifo":
            return
        left, layers = value, []
        for index, layer in enumerate(self.layers):
            part = (
                left
                if index == len(self.layers) - 1
                else share(value, layer.quantity_left, self.quantity)
            )
            left -= part
            # rebased on what is left, so later takes share the new value out evenly
            # (Layer.take works from quantity_in / value_in)
            layers.append(
                Layer(
                    layer.ref,
                    layer.quantity_left,
                    layer.value_left + part,
                    layer.quantity_left,
                    layer.value_left + part,
                )
            )
        self.layers = layers

    def inbound_value_at_current_cost(self, quantity: Decimal) -> Decimal | None:
        cost = self.current_unit_cost()
        return None if cost is None else money(cost * quantity)

    # -- outbound ------------------------------------------------------------
    def issue(self, quantity: Decimal, lot: str) -> Decimal:
        """Take `quantity` at the pool's valuation cost and return its value."""
        self._take_lot(quantity, lot)
        value = self._take_fifo(quantity) if self.method == "fifo" else self._take_average(quantity)
        self.quantity -= quantity
        self.value -= value
        return value

    def remove(self, quantity: Decimal, value: Decimal, lot: str, ref: Hashable | None) -> None:
        """Take `quantity` out at a given value (a reversal mirrors its original).
        In a FIFO pool the reversed receipt's own layer must still be whole."""
        self._take_lot(quantity, lot)
        if self.method == "fifo":
            self._remove_layer(ref, quantity, value)
        self.quantity -= quantity
        self.value -= value

    def _take_lot(self, quantity: Decimal, lot: str) -> None:
        on_hand = self.lots.get(lot, ZERO)
        if on_hand < quantity and not self.allow_negative:
            what = f"{self.label} lot {lot}" if lot else self.label
            raise insufficient(what, quantity, on_hand)
        self.lots[lot] = on_hand - quantity

    def _take_average(self, quantity: Decimal) -> Decimal:
        if 0 < quantity <= self.quantity:
            return share(self.value, quantity, self.quantity)
        # Going negative (only when the tenant allows it): all that is left, and the
        # shortfall at the last known unit cost.
        held = max(self.quantity, ZERO)
        cost = self.last_unit_cost or ZERO
        return (self.value if held > 0 else ZERO) + money((quantity - held) * cost)

    def _take_fifo(self, quantity: Decimal) -> Decimal:
        if quantity > self.quantity:
            # FIFO pools never go negative: a layer cannot hold a negative quantity.
            raise insufficient(self.label, quantity, self.quantity)
        value, remaining = ZERO, quantity
        while remaining > 0:
            step = min(remaining, self.layers[0].quantity_left)
            layer, taken = self.layers[0].take(step)
            value += taken
            remaining -= step
            if layer.quantity_left == 0:
                self.layers.pop(0)
            else:
                self.layers[0] = layer
        return value

    def _remove_layer(self, ref: Hashable | None, quantity: Decimal, value: Decimal) -> None:
        for index, layer in enumerate(self.layers):
            whole = layer.quantity_left == layer.quantity_in == quantity
            if layer.ref == ref and whole and layer.value_left == value:
                del self.layers[index]
                return
        raise Held(
            "reversal_not_possible",
            f"the receipt of {self.label} being reversed has already been consumed in part; "
            "return the goods with a new event instead",
        )


@dataclass
class WipPool:
    """Work in progress of one work order: the value collected and how it leaves."""

    label: str
    planned_quantity: Decimal
    value: Decimal = ZERO
    completed_quantity: Decimal = ZERO  # good and scrapped units accounted for
    good_quantity: Decimal = ZERO  # good units completed
    materials: dict[Hashable, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def clone(self) -> WipPool:
        return replace(self, materials=dict(self.materials))

    def add_material(self, item: Hashable, quantity: Decimal, value: Decimal) -> None:
        had_qty, had_value = self.materials.get(item, (ZERO, ZERO))
        self.materials[item] = (had_qty + quantity, had_value + value)
        self.value += value

    def charge(self, value: Decimal) -> None:
        self.value += value

    def return_value(self, item: Hashable, quantity: Decimal) -> Decimal:
        """Material comes back at the average cost it was issued at."""
        issued_qty, issued_value = self.materials.get(item, (ZERO, ZERO))
        if quantity > issued_qty:
            raise Held(
                "return_exceeds_issued",
                f"returning {quantity} to stock but only {issued_qty} was issued to {self.label}",
            )
        return share(issued_value, quantity, issued_qty)

    def take_material(self, item: Hashable, quantity: Decimal, value: Decimal) -> None:
        issued_qty, issued_value = self.materials.get(item, (ZERO, ZERO))
        self.materials[item] = (issued_qty - quantity, issued_value - value)
        self.value -= value

    def completion_value(self, quantity: Decimal, scrap: Decimal = ZERO) -> Decimal:
        """A completion of `quantity` good and `scrap` scrapped units takes the WIP
        collected so far in proportion to the units it accounts for (good + scrap) out
        of those still to be made; the completion that reaches the planned quantity
        takes it all. Scrapped units leave nothing behind: their share goes with the
        good ones. What comes in after the last completion, or stays because the order
        closed short, is settled at close (posting_rules.work_order_close)."""
        units = quantity + scrap
        still_to_make = self.planned_quantity - self.completed_quantity
        return share(self.value, units, max(still_to_make, units))

    def settle(self, value: Decimal) -> None:
        """The close of the order takes what is left (see posting_rules.work_order_close)."""
        self.value -= value

    def complete(self, units: Decimal, value: Decimal, good: Decimal) -> None:
        """`units` good and scrapped leave with `value`; negative when reversed."""
        self.completed_quantity += units
        self.good_quantity += good
        self.value -= value

    def residual_on_hand_value(self, on_hand: Decimal) -> Decimal:
        """The share of what is left that belongs to the order's goods still on hand:
        min(on hand, good units made) / good units made (the variance policy
        "finished_goods", posting_rules.work_order_close)."""
        if self.good_quantity <= 0 or on_hand <= 0:
            return ZERO
        return share(self.value, min(on_hand, self.good_quantity), self.good_quantity)
