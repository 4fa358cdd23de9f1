"""Which scans may answer a quantity prompt (issue 15: an EAN-8 scanned at the
quantity prompt became a drafted issue of 96,385,074 units).

A quantity is what the operator keys (digits, a decimal point or comma), a quantity
barcode printed for the purpose (Code 128 / Code 39 / QR with the number, or ``Q:``
and the number, which no product code looks like), or a GS1 *count* barcode: element
strings holding nothing but AI (30) "variable count" or (37) "count of trade items"
(a kanban card or a count label). Everything else that names a product is refused
with a stable code and the operator is told to key the quantity:

- a scan that parsed as GS1 (GTIN, element strings, Digital Link), unless count-only:
  ``not_a_quantity``; a product label's count is taken at the item step, where the
  label names the item it counts;
- a scan whose AIM identifier says EAN/UPC or GS1 (``]E0 ]E4 ]C1 ]e0 ]d2 ]Q3`` ...),
  whatever its digits: ``not_a_quantity``;
- a scan without identifier whose digits read as GS1 (GTIN-shaped, or fixed-length
  element strings such as "17211200"): ``not_a_quantity``, or the parser's code
  (``gs1_check_digit`` ...) when it is GTIN-shaped but invalid. This repeats the
  scanner path's check for callers that hand the session bare text (tests, a
  keyboard, another bridge). So a number of exactly 8 digits cannot be keyed as a
  quantity; ``Q:12345678`` can.
Labour hours take no count barcode.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from firmware_bridges.gs1.parse import Gs1Error, looks_like_gtin, parse_scan
from firmware_bridges.scanner.aim import is_product_code, symbology_name

NOT_A_QUANTITY = "not_a_quantity"
COUNT_AIS = frozenset({"30", "37"})
_EXPLICIT = "Q:"


@dataclass(frozen=True)
class QuantityText:
    """What to read as the number: the scan's text, or a count barcode's count."""

    text: str


@dataclass(frozen=True)
class Refusal:
    """Why the scan is not a quantity: a stable ``code`` and words for the operator."""

    code: str
    why: str


def quantity_text(
    text: str, gs1: Any, symbology: str | None, *, counts: bool = True
) -> QuantityText | Refusal:
    """Decide whether a scan at a quantity prompt may be a quantity (module docstring);
    ``counts`` says whether a GS1 count barcode may give it."""
    if gs1 is not None:
        count = count_only(gs1)
        if counts and count is not None:
            return QuantityText(str(count))
        return Refusal(NOT_A_QUANTITY, f"{_describe(gs1, text)} is not a quantity")
    if is_product_code(symbology):
        name = symbology_name(symbology) or symbology
        return Refusal(NOT_A_QUANTITY, f"{name} barcode {text} is not a quantity")
    if symbology is None and not text.startswith(_EXPLICIT):
        refusal = _unidentified_gs1(text)
        if refusal is not None:
            return refusal
    return QuantityText(text)


def count_only(gs1: Any) -> Decimal | None:
    """The count of a GS1 scan made only of AI (30)/(37) with one value; else None."""
    elements = getattr(gs1, "elements", None) or ()
    if not elements or any(ai not in COUNT_AIS for ai, _ in elements):
        return None
    values = {Decimal(value) for _, value in elements}
    return values.pop() if len(values) == 1 else None


def _unidentified_gs1(text: str) -> Refusal | None:
    if not text.isdigit() or not text.isascii():
        return None  # "2.5", "1,5", "x": not GS1, read as a number or refused as one
    try:
        scan = parse_scan(text)
    except Gs1Error as error:
        if error.code == "gs1_check_digit" or looks_like_gtin(text):
            return Refusal(error.code, error.message)
        return None  # "0123": digits the parser rejects as GS1 are a keyed number
    if scan.kind == "plain":
        return None  # "1000", "3712": counts are variable-length, so digits stay plain
    return Refusal(NOT_A_QUANTITY, f"{_describe(scan, text)} is not a quantity")


def _describe(gs1: Any, text: str) -> str:
    gtin = getattr(gs1, "gtin", None)
    if gtin:
        return f"GTIN {gtin}"
    return f"GS1 {getattr(gs1, 'hri', '') or text}"
