"""The labels the shop floor prints, as plain data (no rendering, no I/O).

Each kind says which symbols it carries (`symbols()`: what a scanner must read back,
GS 0x1D between GS1 fields) and which lines of text an operator reads (`caption()`).
Quantities are `Decimal` and are printed exactly as given (`12.500` stays `12.500`).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Protocol

from edge_agent.labels.code128 import Symbology, check_encodable
from edge_agent.labels.errors import InvalidLabel
from firmware_bridges.gs1 import encode as gs1

CODE_MAX_CHARS = 40
TEXT_MAX_CHARS = 60
GS1_128_MAX_CHARS = 48  # GS1 GenSpecs 5.4.1: data characters per GS1-128 symbol


@dataclass(frozen=True)
class Symbol:
    """One barcode on a label: `data` is what the scanner transmits, `text` is printed."""

    symbology: Symbology
    data: str
    text: str


class Label(Protocol):
    kind: ClassVar[str]

    def symbols(self) -> tuple[Symbol, ...]: ...

    def caption(self) -> tuple[str, ...]: ...


def format_quantity(quantity: Decimal) -> str:
    """Fixed-point text of a Decimal, never through float and never in E notation."""
    return format(quantity, "f")


def _check_code(field: str, value: str) -> None:
    if not 1 <= len(value) <= CODE_MAX_CHARS or value != value.strip():
        raise InvalidLabel(
            "invalid_code",
            f"{field} must be 1..{CODE_MAX_CHARS} characters without outer spaces: {value!r}",
        )
    check_encodable("code128", value)


def _check_text(field: str, value: str) -> None:
    control = [c for c in value if unicodedata.category(c) == "Cc"]
    if not 1 <= len(value) <= TEXT_MAX_CHARS or value != value.strip() or control:
        raise InvalidLabel(
            "invalid_text",
            f"{field} must be 1..{TEXT_MAX_CHARS} characters, one line: {value!r}",
        )


def _check_quantity(field: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise InvalidLabel("invalid_quantity", f"{field} must be a positive Decimal, got {value!r}")


def _code128(code: str) -> Symbol:
    return Symbol("code128", code, code)


def _gs1_128(fields: list[tuple[str, str]]) -> Symbol:
    try:
        data = gs1.element_string(fields)
    except gs1.Gs1EncodeError as exc:
        raise InvalidLabel(exc.code, exc.message) from exc
    if len(data) > GS1_128_MAX_CHARS:
        raise InvalidLabel(
            "gs1_128_too_long",
            f"{gs1.human_readable(fields)} needs {len(data)} characters;"
            f" a GS1-128 symbol holds {GS1_128_MAX_CHARS}",
        )
    return Symbol("gs1_128", data, gs1.human_readable(fields))


@dataclass(frozen=True)
class WorkOrderLabel:
    """Travels with the job: the work order's code as Code 128."""

    kind: ClassVar[str] = "work_order"
    code: str
    item_code: str
    quantity: Decimal

    def __post_init__(self) -> None:
        _check_code("work order code", self.code)
        _check_text("item code", self.item_code)
        _check_quantity("quantity", self.quantity)

    def symbols(self) -> tuple[Symbol, ...]:
        return (_code128(self.code),)

    def caption(self) -> tuple[str, ...]:
        return (
            f"Work order {self.code}",
            f"Item {self.item_code}",
            f"Quantity {format_quantity(self.quantity)}",
        )


@dataclass(frozen=True)
class ItemLabel:
    """A bin or shelf label: the item code, plus (01) GTIN in GS1-128 when it has one."""

    kind: ClassVar[str] = "item"
    code: str
    name: str
    gtin: str | None = None

    def __post_init__(self) -> None:
        _check_code("item code", self.code)
        _check_text("item name", self.name)
        if self.gtin is not None:
            try:
                object.__setattr__(self, "gtin", gs1.gtin14(self.gtin))
            except gs1.Gs1EncodeError as exc:
                raise InvalidLabel(exc.code, exc.message) from exc

    def symbols(self) -> tuple[Symbol, ...]:
        if self.gtin is None:
            return (_code128(self.code),)
        return (_code128(self.code), _gs1_128([("01", self.gtin)]))

    def caption(self) -> tuple[str, ...]:
        return (self.name, f"Item {self.code}")


LOT_UNITS = ("EA", "KG")


@dataclass(frozen=True)
class LotLabel:
    """A lot's GS1-128: (01) GTIN, (17) expiry, quantity, (10) lot.

    The quantity goes as (30) count for `EA` (whole numbers) and as (310n) net weight
    for `KG` (up to 5 decimals). Fixed-length fields come first so at most one GS is
    needed; (30) has to pair with the GTIN of a variable-measure item in strict GS1 use.
    """

    kind: ClassVar[str] = "lot"
    gtin: str
    lot: str
    expiry: date
    quantity: Decimal
    unit: str = "EA"

    def __post_init__(self) -> None:
        _check_quantity("quantity", self.quantity)
        if self.unit not in LOT_UNITS:
            raise InvalidLabel(
                "unsupported_unit", f"lot quantity unit must be one of {LOT_UNITS}: {self.unit!r}"
            )
        if not isinstance(self.expiry, date):
            raise InvalidLabel("invalid_date", f"expiry must be a date, got {self.expiry!r}")
        try:
            object.__setattr__(self, "gtin", gs1.gtin14(self.gtin))
        except gs1.Gs1EncodeError as exc:
            raise InvalidLabel(exc.code, exc.message) from exc
        self.symbols()  # a label that cannot be encoded is refused when it is made

    def gs1_fields(self) -> list[tuple[str, str]]:
        try:
            head = [("01", self.gtin), ("17", gs1.date_yymmdd(self.expiry))]
            if self.unit == "KG":
                return [*head, gs1.net_weight_kg(self.quantity), ("10", self.lot)]
            return [*head, ("10", self.lot), gs1.variable_count(self.quantity)]
        except gs1.Gs1EncodeError as exc:
            raise InvalidLabel(exc.code, exc.message) from exc

    def symbols(self) -> tuple[Symbol, ...]:
        return (_gs1_128(self.gs1_fields()),)

    def caption(self) -> tuple[str, ...]:
        return (
            f"GTIN {self.gtin}",
            f"Lot {self.lot}",
            f"Expiry {self.expiry.isoformat()}",
            f"Quantity {format_quantity(self.quantity)} {self.unit}",
        )


@dataclass(frozen=True)
class LocationLabel:
    kind: ClassVar[str] = "location"
    code: str

    def __post_init__(self) -> None:
        _check_code("location code", self.code)

    def symbols(self) -> tuple[Symbol, ...]:
        return (_code128(self.code),)

    def caption(self) -> tuple[str, ...]:
        return (f"Location {self.code}",)


@dataclass(frozen=True)
class BadgeLabel:
    """An operator's badge: scanned at a terminal to say who is working."""

    kind: ClassVar[str] = "badge"
    operator_code: str
    name: str

    def __post_init__(self) -> None:
        _check_code("operator code", self.operator_code)
        _check_text("operator name", self.name)

    def symbols(self) -> tuple[Symbol, ...]:
        return (_code128(self.operator_code),)

    def caption(self) -> tuple[str, ...]:
        return (self.name, f"Operator {self.operator_code}")


LABEL_KINDS: dict[str, type[Any]] = {
    cls.kind: cls for cls in (WorkOrderLabel, ItemLabel, LotLabel, LocationLabel, BadgeLabel)
}


def _parse_quantity(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise InvalidLabel("invalid_quantity", f"quantity {text!r} is not a number") from exc


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidLabel("invalid_date", f"{text!r} is not a YYYY-MM-DD date") from exc


_PARSERS: dict[str, Callable[[str], Any]] = {"quantity": _parse_quantity, "expiry": _parse_date}


def label_fields(label: Label) -> dict[str, str]:
    """The label as text fields (the inverse of `label_from_fields`)."""
    out: dict[str, str] = {}
    for field in dataclasses.fields(label):  # type: ignore[arg-type]
        value = getattr(label, field.name)
        if value is None:
            continue
        if isinstance(value, Decimal):
            value = format_quantity(value)
        elif isinstance(value, date):
            value = value.isoformat()
        out[field.name] = value
    return out


def label_from_fields(kind: str, fields: Mapping[str, str]) -> Label:
    """Build a label of `kind` from text fields (CLI options, a stored print job)."""
    cls = LABEL_KINDS.get(kind)
    if cls is None:
        raise InvalidLabel(
            "unknown_label_kind", f"label kind must be one of {sorted(LABEL_KINDS)}: {kind!r}"
        )
    declared = dataclasses.fields(cls)
    names = {f.name for f in declared}
    required = {f.name for f in declared if f.default is dataclasses.MISSING}
    unknown, missing = set(fields) - names, required - set(fields)
    if unknown or missing:
        raise InvalidLabel(
            "invalid_label_fields",
            f"a {kind} label takes {sorted(names)} (required {sorted(required)});"
            f" missing {sorted(missing)}, unknown {sorted(unknown)}",
        )
    kwargs = {name: _PARSERS.get(name, str)(value) for name, value in fields.items()}
    label: Label = cls(**kwargs)
    return label
