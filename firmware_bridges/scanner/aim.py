"""AIM / ISO/IEC 15424 symbology identifiers: ``]`` + code character + modifier.

A scanner with "transmit AIM ID" enabled starts every frame with such an identifier.
It is kept next to the data because it says how to read the data: ``]C1`` is GS1-128
(element strings), ``]C0`` is plain Code 128 even when the text looks like GS1.
"""

import re

# ISO/IEC 15424 code characters are letters; modifiers are one digit or letter. The
# ``]Y`` system-expansion form with several modifiers is not used by our scanners.
_IDENTIFIER = re.compile(rb"\][A-Za-z][0-9A-Za-z]")

SYMBOLOGY_NAMES: dict[str, str] = {
    "]C0": "Code 128",
    "]C1": "GS1-128",
    "]E0": "EAN-13/UPC",
    "]E3": "EAN-13/UPC with add-on",
    "]E4": "EAN-8",
    "]e0": "GS1 DataBar",
    "]d1": "Data Matrix",
    "]d2": "GS1 DataMatrix",
    "]Q1": "QR Code",
    "]Q3": "GS1 QR Code",
    "]I0": "ITF",
    "]I1": "ITF",
    "]A0": "Code 39",
    "]J1": "GS1 DotCode",
}

# Symbologies whose data are GS1 element strings (FNC1 in first position).
_GS1_SYMBOLOGIES = frozenset({"]C1", "]e0", "]e1", "]e2", "]d2", "]Q3", "]J1"})
# EAN/UPC: a GTIN (]E0 EAN-13/UPC, ]E4 EAN-8), an add-on alone (]E1, ]E2) or both
# (]E3). With the GS1 ones: data that name a product, never a number keyed by hand.
_EAN_UPC_SYMBOLOGIES = frozenset({"]E0", "]E1", "]E2", "]E3", "]E4"})
_PRODUCT_SYMBOLOGIES = _GS1_SYMBOLOGIES | _EAN_UPC_SYMBOLOGIES
# Worth handing to the GS1 parser: the product ones, ITF (]I1: a GTIN-14 on cartons)
# and plain QR (]Q1), which may carry a GS1 Digital Link URI.
_MAY_CARRY_GS1 = _PRODUCT_SYMBOLOGIES | {"]I1", "]Q1"}


def split_identifier(content: bytes) -> tuple[str | None, bytes]:
    """Split ``]cm`` off the front of a frame.

    Returns ``(identifier, data)``; ``(None, content)`` when the frame does not start
    with an identifier. ``identifier + data == content`` always holds.
    """
    if _IDENTIFIER.match(content):
        return content[:3].decode("ascii"), content[3:]
    return None, content


def symbology_name(symbology: str | None) -> str | None:
    """The human name of an identifier such as ``]C1``; None when unknown or absent."""
    if symbology is None:
        return None
    return SYMBOLOGY_NAMES.get(symbology)


def is_gs1(symbology: str | None) -> bool:
    """True when the identifier says the data are GS1 element strings (FNC1 mode).

    EAN/UPC (``]E0``) carry a bare GTIN, not element strings, so they are not GS1 here.
    """
    return symbology in _GS1_SYMBOLOGIES


def is_product_code(symbology: str | None) -> bool:
    """True when the identifier says the data name a product: EAN/UPC (and their
    add-ons) or GS1 element strings. Such a scan is never a quantity or a code typed
    by the operator, whatever its digits."""
    return symbology in _PRODUCT_SYMBOLOGIES


def may_carry_gs1(symbology: str | None) -> bool:
    """True when the data may be a GTIN, GS1 element strings or a Digital Link: the
    product symbologies, ITF, plain QR, and a scan without identifier (whose shape
    decides). Code 128 (]C0), Code 39, Data Matrix (]d1) ... are plain."""
    return symbology is None or symbology in _MAY_CARRY_GS1
