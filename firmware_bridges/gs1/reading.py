"""What a workstation scan carries of GS1: the policy between the scanner and the
session, on top of ``parse_scan``.

- Plain symbologies (``]C0``, ``]A0``, ``]d1`` ...) carry no GS1: None.
- A scan whose identifier says GS1 or EAN/UPC and that does not parse is refused with
  the parser's stable code.
- A plain QR code (``]Q1``) is a Digital Link when it parses as one, else plain.
- A scan without identifier (keyboard entry, scanners without AIM ids) is read by its
  shape. It is plain text when the parser finds no GS1 in it ("WO-0001", "1000",
  "0123"), but it is refused when it is GTIN-shaped (all digits, 8/12/13/14 long) or
  when a key in it has a wrong check digit: such a scan is a misread or mistyped
  product code, and taken as plain text it became a work-order code, an item code or
  a quantity (96,385,074 units from an EAN-8; issue 15).
"""

from firmware_bridges.gs1.parse import Gs1Error, ScanData, looks_like_gtin, parse_scan
from firmware_bridges.scanner.aim import may_carry_gs1

_PLAIN_QR = "]Q1"
_ALWAYS_REFUSED = frozenset({"gs1_check_digit"})


def read_gs1(data: str | bytes, symbology: str | None) -> ScanData | None:
    """The GS1 content of a scan, or None for a plain code (a work order, a badge, a
    typed quantity). Raises ``Gs1Error`` as the module docstring says."""
    if not may_carry_gs1(symbology):
        return None
    try:
        scan = parse_scan(data, symbology)
    except Gs1Error as error:
        if symbology == _PLAIN_QR:
            return None
        if symbology is None and not _refused_unidentified(data, error):
            return None
        raise
    return None if scan.kind == "plain" else scan


def _refused_unidentified(data: str | bytes, error: Gs1Error) -> bool:
    text = data if isinstance(data, str) else data.decode("latin-1")
    return error.code in _ALWAYS_REFUSED or looks_like_gtin(text)
