"""Decimal rounding rules (DESIGN.md §3.6): amounts 2 places, quantities and unit
costs 6 places, half-up. Rounding happens once, where a value is booked."""

from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def qty(value: Decimal) -> Decimal:
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


def unit_cost(value: Decimal, quantity: Decimal) -> Decimal:
    return qty(value / quantity) if quantity else ZERO


def share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`total` × part / whole, rounded to the cent; the whole takes all of `total`,
    so taking the parts one after another never leaves a residue behind."""
    if part >= whole:
        return total
    return money(total * part / whole)
