"""Labels as ZPL II for Zebra-compatible thermal printers (203 dpi, 4 in wide by default).

Barcodes use `^BC` in mode N with the code sets spelled out (see `code128.zpl_field_data`),
so the printer draws the same symbol python-barcode draws for the PNG proof; GS1-128
starts `>;>8` and has `>8` (FNC1) after each variable-length field that is not last.
The printer's own interpretation line is off: we print the GS1 `(AI)value` text
ourselves. Text fields go through `^FH` hex escapes in UTF-8 (`^CI28`), so `^`, `~`
and `_` in names cannot break the format; printing CJK still needs a font on the
printer that has the glyphs (the built-in font 0 does not).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.labels.code128 import module_count, zpl_field_data
from edge_agent.labels.errors import InvalidLabel
from edge_agent.labels.kinds import Label, Symbol

MAX_COPIES = 999
_SAFE_TEXT = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#$%&'()*+,-./:;<=>?@[]{}|"
)


@dataclass(frozen=True)
class ZplLayout:
    """Geometry in printer dots (8 dots/mm at 203 dpi)."""

    width_dots: int = 812
    margin_dots: int = 40  # >= 10 modules of quiet zone at 2 dots per module
    module_dots: int = 2  # 0.25 mm at 203 dpi
    bar_height_dots: int = 100
    caption_font_dots: int = 30
    text_font_dots: int = 24
    gap_dots: int = 10


def zpl_text(text: str) -> str:
    """`text` for a `^FH^FD` field: anything outside a plain ASCII set as `_XX` UTF-8 hex."""
    return "".join(
        char if char in _SAFE_TEXT else "".join(f"_{byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )


def _text_field(x: int, y: int, size: int, text: str) -> str:
    return f"^FO{x},{y}^A0N,{size},{size}^FH^FD{zpl_text(text)}^FS"


def _symbol_fields(symbol: Symbol, y: int, layout: ZplLayout) -> tuple[list[str], int]:
    width = module_count(symbol.symbology, symbol.data) * layout.module_dots
    if width + 2 * layout.margin_dots > layout.width_dots:
        raise InvalidLabel(
            "label_too_wide",
            f"{symbol.text} needs {width} dots of bars; the label has"
            f" {layout.width_dots - 2 * layout.margin_dots} between its quiet zones",
        )
    x = layout.margin_dots
    bars = (
        f"^FO{x},{y}^BY{layout.module_dots}^BCN,{layout.bar_height_dots},N,N,N,N"
        f"^FD{zpl_field_data(symbol.symbology, symbol.data)}^FS"
    )
    y += layout.bar_height_dots + layout.gap_dots
    text = _text_field(x, y, layout.text_font_dots, symbol.text)
    return [bars, text], y + layout.text_font_dots + 2 * layout.gap_dots


def render_zpl(label: Label, *, copies: int = 1, layout: ZplLayout | None = None) -> bytes:
    """One `^XA ... ^XZ` format printing `copies` labels (`^PQ`); pure ASCII bytes."""
    layout = layout or ZplLayout()
    if not 1 <= copies <= MAX_COPIES:
        raise InvalidLabel("invalid_copies", f"copies must be 1..{MAX_COPIES}, got {copies}")
    body: list[str] = []
    y = layout.margin_dots // 2
    for line in label.caption():
        body.append(_text_field(layout.margin_dots, y, layout.caption_font_dots, line))
        y += layout.caption_font_dots + layout.gap_dots
    y += layout.gap_dots
    for symbol in label.symbols():
        fields, y = _symbol_fields(symbol, y, layout)
        body += fields
    head = ["^XA", "^CI28", f"^PW{layout.width_dots}", f"^LL{y + layout.margin_dots // 2}"]
    lines = [*head, *body, f"^PQ{copies}", "^XZ"]
    return ("\n".join(lines) + "\n").encode("ascii")
