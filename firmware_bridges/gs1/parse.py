"""Reading GS1 barcode data (element strings, Digital Link URIs, bare GTINs) with biip.

biip does the GS1 work: AI table, patterns, dates, decimals, check digits. This module
decides *how* to read a scan (from its AIM symbology identifier, or from its shape
when there is none), maps the AIs the shop floor uses to named fields, and turns
every failure into a ``Gs1Error`` with a stable code.

Invariants:
- a GTIN, SSCC or GLN with a wrong check digit is never returned: it raises
  ``Gs1Error("gs1_check_digit")``;
- ``gtin`` and ``content_gtin`` are always 14 digits (GTIN-8/12/13 zero-padded), so
  one product has one key however it was scanned;
- dates are ``datetime.date``; DD=00 means the last day of the month;
- quantities and weights are ``Decimal`` with the scale the barcode states.

How a scan is read (see PROTOCOL.md):
- ``]C1 ]e0 ]e1 ]e2 ]d2 ]Q3 ]J1``: GS1 element strings (``]d2``/``]Q3`` may also
  carry a Digital Link URI); anything unreadable raises.
- ``]E0 ]E4``: a GTIN; ``]I1``: a GTIN-14 when it has 14 digits, else plain.
- any other identifier (``]C0 ]A0 ]d1 ]Q1`` ...): plain text, or a Digital Link when
  the text is a URI that parses as one.
- no identifier (keyboard entry, scanners without AIM ids): a URI is tried as a Digital
  Link; ``(01)...`` is read as human-readable (HRI) text; digits of GTIN length with a
  valid check digit are a GTIN; text containing GS or starting with AI 00/01/02 must be
  element strings; other all-digit text is element strings only when every AI in it
  is fixed-length (so "1000" stays plain instead of becoming lot "00"); digits of GTIN
  length that fit nothing raise ``gs1_check_digit`` (``gs1_bad_date`` when they are
  exactly fixed-length element strings but for an impossible date, "17211300");
  everything else is plain.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from biip import ParseConfig, ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin

Kind = Literal["gs1", "gtin", "digital_link", "plain"]

GS = "\x1d"
_CONFIG = ParseConfig(separator_chars=(GS,))
_LENIENT_DATES = ParseConfig(separator_chars=(GS,), gs1_element_strings_verify_date=False)
_IDENTIFIER = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_END_TRIM = " \t\r\n" + GS  # a leading GS is FNC1 in first position, a trailing one noise
_GTIN_LENGTHS = (8, 12, 13, 14)
_KEY_AIS = ("00", "01", "02")

_ELEMENT_SYMBOLOGIES = frozenset({"]C1", "]e0", "]e1", "]e2", "]d2", "]Q3", "]J1"})
_DIGITAL_LINK_SYMBOLOGIES = frozenset({"]d2", "]Q3"})
_GTIN_SYMBOLOGIES = frozenset({"]E0", "]E4"})
_ITF_14 = "]I1"

_TEXT_FIELDS = {
    "00": "sscc",
    "01": "gtin",
    "02": "content_gtin",
    "10": "lot",
    "21": "serial",
    "400": "purchase_order",
    "410": "ship_to_gln",
    "414": "location_gln",
    "422": "origin_country",
}
_DATE_FIELDS = {
    "11": "production_date",
    "13": "packaging_date",
    "15": "best_before",
    "17": "expiry",
}
_COUNT_AIS = ("30", "37")
_NET_WEIGHT_KG_PREFIX = "310"


class Gs1Error(Exception):
    """A scan that claims to be GS1 but cannot be used; ``code`` is stable.

    Codes: ``gs1_check_digit`` (GTIN/SSCC/GLN check digit wrong), ``gs1_bad_date``
    (a YYMMDD field is not a date), ``gs1_malformed`` (anything else: unknown AI,
    wrong length, bad characters, empty scan, one AI with two values).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ScanData:
    """What a scan says. ``elements`` keeps every (AI, value) pair in scan order;
    the named fields hold the first value of the AIs the shop floor uses."""

    kind: Kind
    value: str
    symbology: str | None = None
    elements: tuple[tuple[str, str], ...] = ()
    gtin: str | None = None
    content_gtin: str | None = None
    sscc: str | None = None
    lot: str | None = None
    serial: str | None = None
    production_date: date | None = None
    packaging_date: date | None = None
    best_before: date | None = None
    expiry: date | None = None
    quantity: Decimal | None = None
    net_weight_kg: Decimal | None = None
    purchase_order: str | None = None
    ship_to_gln: str | None = None
    location_gln: str | None = None
    origin_country: str | None = None

    def first(self, ai: str) -> str | None:
        """The first value of ``ai`` (e.g. ``"90"``, ``"7003"``), or None."""
        return next((value for key, value in self.elements if key == ai), None)

    @property
    def hri(self) -> str:
        """Human-readable form, ``(01)07032069804988(10)0329``; empty for plain scans."""
        return "".join(f"({ai}){value}" for ai, value in self.elements)


def parse_scan(data: str | bytes, symbology: str | None = None) -> ScanData:
    """Read one scan. ``symbology`` is the AIM identifier (``"]C1"`` or ``"C1"``) when
    the caller already split it off; otherwise one at the start of ``data`` is used.

    Bytes are decoded as UTF-8, falling back to Latin-1 (as ``ScanFrame.text`` does).
    Raises ``Gs1Error``; never returns a key with a wrong check digit.
    """
    text = _decode(data)
    symbology, text = _split_symbology(text, symbology)
    body = text.strip(_END_TRIM)
    if not body:
        raise Gs1Error("gs1_malformed", "the scan is empty")
    if symbology is None:
        return _parse_unidentified(body)
    return _parse_identified(body, symbology)


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _split_symbology(text: str, symbology: str | None) -> tuple[str | None, str]:
    if symbology:
        return ("]" + symbology.removeprefix("]")), text
    if _IDENTIFIER.match(text):
        return text[:3], text[3:]
    return None, text


def _parse_identified(body: str, symbology: str) -> ScanData:
    if symbology in _ELEMENT_SYMBOLOGIES:
        if symbology in _DIGITAL_LINK_SYMBOLOGIES and _is_uri(body):
            return _from_digital_link(body, symbology, strict=True)
        return _from_elements(_element_strings(body), body, symbology)
    if symbology in _GTIN_SYMBOLOGIES:
        return _from_gtin(body, symbology)
    if symbology == _ITF_14 and len(body) == 14 and body.isdigit():
        return _from_gtin(body, symbology)
    if _is_uri(body):
        return _from_digital_link(body, symbology, strict=False)
    return ScanData(kind="plain", value=body, symbology=symbology)


def _parse_unidentified(body: str) -> ScanData:
    if _is_uri(body):
        return _from_digital_link(body, None, strict=False)
    if re.match(r"\(\d", body):
        return _from_hri(body)
    gtin_like = looks_like_gtin(body)
    if gtin_like and _check_digit_ok(body):
        return _from_gtin(body, None)
    strong = GS in body or body.startswith(_KEY_AIS)
    try:
        elements = _element_strings(body)
    except Gs1Error as exc:
        # "17211300" fits neither reading; when the digits are exactly fixed-length
        # element strings but for the date, the date AI's complaint is the more useful.
        # Otherwise ("1234567890123") they are a GTIN with a wrong check digit.
        if gtin_like and not (exc.code == "gs1_bad_date" and _misdated_fixed_fields(body)):
            raise _gtin_error(body) from None
        if strong or gtin_like:
            raise
        return ScanData(kind="plain", value=body)
    if strong or (body.isdigit() and all(not e.ai.separator_required for e in elements)):
        return _from_elements(elements, body, None)
    if gtin_like:
        raise _gtin_error(body)
    return ScanData(kind="plain", value=body)


def _element_strings(body: str) -> list[GS1ElementString]:
    """Split an element string into elements, as biip's GS1Message.parse does, but
    one element at a time so a failure can be pinned on its AI."""
    elements: list[GS1ElementString] = []
    rest = body
    while rest:  # each turn consumes at least the AI (>= 2 characters)
        try:
            element = GS1ElementString.extract(rest, config=_CONFIG)
        except ParseError as exc:
            raise _element_error(rest, exc) from exc
        elements.append(element)
        rest = rest[len(element) :].lstrip(GS)
    return elements


def _misdated_fixed_fields(body: str) -> bool:
    """True when ``body`` splits into fixed-length element strings if the YYMMDD
    fields are taken at their length whatever their value ("17211300" is (17)211300,
    month 13). biip's date pattern rejects such a field even with date checks off,
    so the date AIs are measured here."""
    rest = body
    while rest:
        try:
            ai = GS1ApplicationIdentifier.extract(rest)
        except ParseError:
            return False
        if ai.separator_required:
            return False
        if "YYMMDD" in ai.description:
            length = len(ai.ai) + 6
        else:
            try:
                length = len(GS1ElementString.extract(rest, config=_CONFIG))
            except ParseError:
                return False
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


def looks_like_gtin(text: str) -> bool:
    """All digits, of a GTIN's length (8, 12, 13, 14), once trimmed: a product key
    whatever its check digit, never a number typed at a prompt."""
    body = text.strip(_END_TRIM)
    return body.isdigit() and body.isascii() and len(body) in _GTIN_LENGTHS


def _element_error(rest: str, exc: ParseError) -> Gs1Error:
    try:
        ai = GS1ApplicationIdentifier.extract(rest)
    except ParseError:
        return Gs1Error("gs1_malformed", f"no GS1 application identifier at {rest[:24]!r}")
    if "YYMMDD" in ai.description:
        return Gs1Error("gs1_bad_date", f"AI ({ai.ai}) needs a valid YYMMDD date: {exc}")
    return Gs1Error("gs1_malformed", f"AI ({ai.ai}) {ai.format}: {exc}")


def _from_hri(body: str) -> ScanData:
    try:
        message = GS1Message.parse_hri(body, config=_CONFIG)
    except ParseError as exc:
        raise _lenient_retry_error(body, exc, GS1Message.parse_hri) from exc
    return _from_elements(list(message.element_strings), body, None)


def _from_digital_link(body: str, symbology: str | None, *, strict: bool) -> ScanData:
    """A Digital Link URI; when not ``strict`` a URI that is not one is plain text."""
    try:
        uri = GS1DigitalLinkURI.parse(body, config=_CONFIG)
    except ParseError as exc:
        error = _lenient_retry_error(body, exc, GS1DigitalLinkURI.parse)
        if strict or error.code == "gs1_bad_date":
            raise error from exc
        return ScanData(kind="plain", value=body, symbology=symbology)
    return _from_elements(list(uri.element_strings), body, symbology, kind="digital_link")


def _lenient_retry_error(body: str, exc: ParseError, parser: Callable[..., object]) -> Gs1Error:
    # biip reports a bad date like any other failure; if the same text parses with
    # date checks off, the date was the only thing wrong.
    try:
        parser(body, config=_LENIENT_DATES)
    except ParseError:
        return Gs1Error("gs1_malformed", str(exc))
    return Gs1Error("gs1_bad_date", str(exc))


def _from_gtin(body: str, symbology: str | None) -> ScanData:
    try:
        gtin = Gtin.parse(body, config=_CONFIG)
    except ParseError as exc:
        raise _gtin_error(body) from exc
    gtin_14 = gtin.as_gtin_14()
    return ScanData(
        kind="gtin", value=body, symbology=symbology, elements=(("01", gtin_14),), gtin=gtin_14
    )


def _from_elements(
    elements: list[GS1ElementString], value: str, symbology: str | None, kind: Kind = "gs1"
) -> ScanData:
    _check_keys(elements)
    _check_no_conflicts(elements)
    named: dict[str, Any] = {}
    for element in elements:
        for name, field_value in _named_fields(element):
            named.setdefault(name, field_value)
    pairs = tuple((e.ai.ai, e.value) for e in elements)
    return ScanData(kind=kind, value=value, symbology=symbology, elements=pairs, **named)


def _named_fields(element: GS1ElementString) -> Iterator[tuple[str, object]]:
    ai = element.ai.ai
    if ai in _TEXT_FIELDS:
        yield _TEXT_FIELDS[ai], element.value
    if ai in _DATE_FIELDS and element.date is not None:
        yield _DATE_FIELDS[ai], element.date
    if ai in _COUNT_AIS:
        yield "quantity", Decimal(element.value)
    if ai.startswith(_NET_WEIGHT_KG_PREFIX) and element.decimal is not None:
        yield "net_weight_kg", element.decimal


def _check_keys(elements: list[GS1ElementString]) -> None:
    """Raise for the first GTIN, SSCC or GLN that biip rejected."""
    for element in elements:
        error = element.gtin_error or element.sscc_error or element.gln_error
        if error:
            code = "gs1_malformed" if _check_digit_ok(element.value) else "gs1_check_digit"
            raise Gs1Error(code, f"({element.ai.ai}){element.value}: {error}")


def _check_no_conflicts(elements: list[GS1ElementString]) -> None:
    seen: dict[str, str] = {}
    for element in elements:
        ai, value = element.ai.ai, element.value
        if seen.setdefault(ai, value) != value:
            raise Gs1Error("gs1_malformed", f"AI ({ai}) appears with two values")


def _gtin_error(body: str) -> Gs1Error:
    if body.isdigit() and len(body) in _GTIN_LENGTHS and not _check_digit_ok(body):
        return Gs1Error("gs1_check_digit", f"{body} is not a valid GTIN: wrong check digit")
    return Gs1Error("gs1_malformed", f"{body!r} is not a GTIN-8, -12, -13 or -14")


def _check_digit_ok(digits: str) -> bool:
    """GS1 mod-10 (weights 3,1,3... from the right), computed by biip."""
    if len(digits) < 2 or not digits.isdigit():
        return False
    return gs1_standard_check_digit(digits[:-1]) == int(digits[-1])


def _is_uri(body: str) -> bool:
    return body.lower().startswith(("http://", "https://"))
