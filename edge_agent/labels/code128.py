"""Code 128 / GS1-128 through python-barcode, and the same symbol as ZPL field data.

python-barcode 0.16.1 chooses the code sets; we reuse its codewords for ZPL so that the
PNG/SVG proof and the thermal label carry the very same symbol. Two quirks handled here:

* `Code128._try_to_optimize` folds "start C + CODE x" into "start x", but it also fires
  when the first codeword is the *data* value 99 in code set C, so any code starting
  with "99" lost those digits (`"99-9"` scanned as `"-9"`). `_Code128` skips the fold then.
* An instance keeps the code set it ended in and starts its next build there, so a
  barcode object is built once and thrown away (`make_barcode` makes a new one each time).

In GS1-128, python-barcode writes FNC1 as the character "\\xf1" (it adds the leading
one itself); a scanner transmits an inner FNC1 as GS (0x1D). `barcode_input` maps one
to the other.
"""

from __future__ import annotations

from typing import Literal

from barcode.codex import Code128, Gs1_128

from edge_agent.labels.errors import InvalidLabel

Symbology = Literal["code128", "gs1_128"]

GS = "\x1d"
FNC1 = Gs1_128.FNC1_CHAR

_START = {103: "A", 104: "B", 105: "C"}
# Values that switch code set, per current set (in A 101 is FNC4, in B 100 is FNC4).
_SWITCHES = {"A": {99: "C", 100: "B"}, "B": {99: "C", 101: "A"}, "C": {100: "B", 101: "A"}}
# ZPL ^BC invocation codes (ZPL II guide, table "Code 128 Invocation Characters").
_ZPL_START = {103: ">9", 104: ">:", 105: ">;"}
_ZPL_SWITCH = {99: ">5", 100: ">6", 101: ">7"}
_ZPL_FNC1 = ">8"
# ZPL reserves caret and tilde inside ^FD and uses ">" as the escape: value 30 is ">",
# 62 is "^", 94 is "~" in sets A/B.
_ZPL_ESCAPED_VALUE = {30: ">0", 62: "><", 94: ">="}


class _Code128(Code128):
    def _try_to_optimize(self, encoded: list[int]) -> list[int]:
        if self.code[:2].isdigit():  # encoded[1] is the data pair, not a code set switch
            return encoded
        return super()._try_to_optimize(encoded)


def barcode_input(symbology: Symbology, data: str) -> str:
    """What python-barcode needs for `data` as a scanner would transmit it."""
    if symbology == "gs1_128":
        return data.replace(GS, FNC1)
    return data


def make_barcode(symbology: Symbology, data: str, writer: object | None = None) -> Code128:
    """A fresh python-barcode object for one build (see the module docstring)."""
    cls = Gs1_128 if symbology == "gs1_128" else _Code128
    return cls(barcode_input(symbology, data), writer=writer)


def codewords(symbology: Symbology, data: str) -> list[int]:
    """Start code and symbol values, without the mod-103 check value and stop."""
    return make_barcode(symbology, data).encoded


def module_count(symbology: Symbology, data: str) -> int:
    """Width in modules: codewords, check value (11 each) and the 13-module stop."""
    return 11 * (len(codewords(symbology, data)) + 1) + 13


def _zpl_char(value: int, code_set: str) -> str:
    if value in _ZPL_ESCAPED_VALUE:
        return _ZPL_ESCAPED_VALUE[value]
    if value < 64 or (code_set == "B" and value < 95):
        return chr(value + 32)
    raise InvalidLabel(
        "unprintable_character", f"Code 128 value {value} in set {code_set} has no ZPL form here"
    )


def zpl_field_data(symbology: Symbology, data: str) -> str:
    """`^BC` mode N field data giving exactly python-barcode's codewords.

    Explicit start and code set switches (`>;`, `>6`...), set C as digit pairs, FNC1 as
    `>8`; so a GS1-128 symbol starts `>;>8` like the ZPL guide's examples.
    """
    words = codewords(symbology, data)
    code_set = _START[words[0]]
    out = [_ZPL_START[words[0]]]
    for value in words[1:]:
        if value in _SWITCHES[code_set]:
            out.append(_ZPL_SWITCH[value])
            code_set = _SWITCHES[code_set][value]
        elif value == 102:
            out.append(_ZPL_FNC1)
        elif code_set == "C":
            out.append(f"{value:02d}")
        else:
            out.append(_zpl_char(value, code_set))
    return "".join(out)


def check_encodable(symbology: Symbology, data: str) -> None:
    """Refuse anything but printable ASCII (and GS between GS1 fields)."""
    separator = GS if symbology == "gs1_128" else ""
    bad = sorted({c for c in data if not " " <= c <= "~" and c != separator})
    if bad:
        raise InvalidLabel(
            "unprintable_character", f"{data!r} has characters a label code cannot carry: {bad!r}"
        )
