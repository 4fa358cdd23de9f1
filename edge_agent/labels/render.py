"""Labels as SVG and PNG (python-barcode symbols under the caption lines).

Sizes are in millimetres at the module width GS1 asks for in logistics (0.25 mm or
more) with a quiet zone of at least ten modules. Latin text uses the DejaVu Sans Mono
font python-barcode ships. It has no CJK glyphs, so a line with Chinese (an item's
name) is drawn in a CJK font: $LABEL_FONT, else the first installed of CJK_FONTS
(Debian's fonts-wqy-microhei, which `make` and .ci/run install, or Noto CJK, Droid
fallback). Without one the line falls back to DejaVu and its Chinese prints as boxes;
`cjk_font()` says which font is in use. SVG names the same families and leaves the
drawing to the viewer's fonts.
"""

from __future__ import annotations

import functools
import io
import os
import unicodedata
from typing import Literal
from xml.dom import minidom

import barcode
from barcode.writer import ImageWriter, SVGWriter
from PIL import Image, ImageDraw, ImageFont

from edge_agent.labels.code128 import make_barcode
from edge_agent.labels.kinds import Label, Symbol
from edge_agent.labels.zpl import render_zpl

Format = Literal["svg", "png", "zpl"]

MODULE_WIDTH_MM = 0.25
BAR_HEIGHT_MM = 12.0
QUIET_ZONE_MM = 3.0
CAPTION_PT = 10
SYMBOL_TEXT_PT = 8
MARGIN_MM = 3.0
FONT_PATH = os.path.join(os.path.dirname(barcode.__file__), "fonts", "DejaVuSansMono.ttf")
_MM_PER_PT = 25.4 / 72
_LINE_SPACING = 1.4
_MONO_ADVANCE = 0.6  # DejaVu Sans Mono advance width per em
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
SVG_CJK_FAMILIES = "'WenQuanYi Micro Hei','Noto Sans CJK SC','Droid Sans Fallback',sans-serif"
SVG_NS = "http://www.w3.org/2000/svg"
# The text under the bars is drawn by us, not python-barcode: its writer clips a text
# wider than the symbol (a GS1 interpretation line usually is).
_BARS_ONLY = {
    "module_width": MODULE_WIDTH_MM,
    "module_height": BAR_HEIGHT_MM,
    "quiet_zone": QUIET_ZONE_MM,
    "write_text": False,
}


def _mm_to_px(mm: float, dpi: int) -> int:
    return round(mm * dpi / 25.4)


def _line_mm(font_pt: int) -> float:
    return font_pt * _MM_PER_PT * _LINE_SPACING


def cjk_font() -> str | None:
    """The font file lines with CJK text are drawn in, or None (they print as boxes)."""
    chosen = os.environ.get("LABEL_FONT", "")
    if chosen:
        return chosen
    return next((path for path in CJK_FONTS if os.path.exists(path)), None)


def is_wide(line: str) -> bool:
    """Does the line hold a wide (CJK) character, which DejaVu cannot draw?"""
    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in line)


@functools.lru_cache(maxsize=32)
def _font(path: str, size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size_px)


def _font_for(line: str, size_px: int) -> ImageFont.FreeTypeFont:
    wide = cjk_font() if is_wide(line) else None
    return _font(wide or FONT_PATH, size_px)


def _text_image(lines: tuple[str, ...], font_pt: int, dpi: int) -> Image.Image:
    size_px = _mm_to_px(font_pt * _MM_PER_PT, dpi)
    fonts = [_font_for(line, size_px) for line in lines]
    line_px, margin_px = _mm_to_px(_line_mm(font_pt), dpi), _mm_to_px(MARGIN_MM, dpi)
    width = max(round(f.getlength(line)) for f, line in zip(fonts, lines, strict=True))
    image = Image.new("L", (width + 2 * margin_px, line_px * len(lines) + margin_px // 2), 255)
    draw = ImageDraw.Draw(image)
    for index, (font, line) in enumerate(zip(fonts, lines, strict=True)):
        draw.text((margin_px, margin_px // 2 + index * line_px), line, font=font, fill=0)
    return image


def _bars_image(symbol: Symbol, dpi: int) -> Image.Image:
    code = make_barcode(symbol.symbology, symbol.data, writer=ImageWriter(mode="L", dpi=dpi))
    image: Image.Image = code.render(dict(_BARS_ONLY))
    return image


def _stack(blocks: list[Image.Image]) -> Image.Image:
    canvas = Image.new("L", (max(b.width for b in blocks), sum(b.height for b in blocks)), 255)
    top = 0
    for block in blocks:
        canvas.paste(block, (0, top))
        top += block.height
    return canvas


def render_image(label: Label, *, dpi: int = 300) -> Image.Image:
    """The label as one greyscale image: caption lines, then each symbol and its text."""
    blocks = [_text_image(label.caption(), CAPTION_PT, dpi)]
    for symbol in label.symbols():
        blocks += [_bars_image(symbol, dpi), _text_image((symbol.text,), SYMBOL_TEXT_PT, dpi)]
    return _stack(blocks)


def render_png(label: Label, *, dpi: int = 300) -> bytes:
    out = io.BytesIO()
    render_image(label, dpi=dpi).save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def _root(document: minidom.Document) -> minidom.Element:
    root = document.documentElement
    if root is None:
        raise ValueError("SVG document without a root element")
    return root


def _bars_svg(symbol: Symbol) -> minidom.Element:
    writer = SVGWriter()
    writer.with_doctype = False
    code = make_barcode(symbol.symbology, symbol.data, writer=writer)
    return _root(minidom.parseString(code.render(dict(_BARS_ONLY))))


def _mm(value: float) -> str:
    return f"{value:.3f}mm"


def _length_mm(attribute: str) -> float:
    return float(attribute.removesuffix("mm"))


class _SvgCanvas:
    """Blocks stacked top to bottom in one SVG document, sizes in mm."""

    def __init__(self) -> None:
        self.document = minidom.getDOMImplementation().createDocument(SVG_NS, "svg", None)
        self.root = _root(self.document)
        self.root.setAttribute("xmlns", SVG_NS)
        self.root.setAttribute("version", "1.1")
        self.width_mm, self.top_mm = 0.0, MARGIN_MM / 2

    def add_text(self, line: str, font_pt: int) -> None:
        self.top_mm += _line_mm(font_pt)
        text = self.document.createElement("text")
        text.setAttribute("x", _mm(MARGIN_MM))
        text.setAttribute("y", _mm(self.top_mm))
        family = SVG_CJK_FAMILIES if is_wide(line) else "monospace"
        text.setAttribute("style", f"font-family:{family};font-size:{font_pt}pt")
        text.appendChild(self.document.createTextNode(line))
        self.root.appendChild(text)
        em_mm = font_pt * _MM_PER_PT  # a wide character is an em, the others 0.6 em
        ems = sum(1.0 if is_wide(ch) else _MONO_ADVANCE for ch in line)
        self.width_mm = max(self.width_mm, ems * em_mm + 2 * MARGIN_MM)

    def add_svg(self, element: minidom.Element, element_id: str) -> None:
        inner = self.document.importNode(element, True)
        inner.setAttribute("x", _mm(0))
        inner.setAttribute("y", _mm(self.top_mm))
        for group in inner.getElementsByTagName("g"):
            group.setAttribute("id", element_id)
        self.root.appendChild(inner)
        self.width_mm = max(self.width_mm, _length_mm(inner.getAttribute("width")))
        self.top_mm += _length_mm(inner.getAttribute("height"))

    def to_bytes(self) -> bytes:
        self.root.setAttribute("width", _mm(self.width_mm))
        self.root.setAttribute("height", _mm(self.top_mm + MARGIN_MM))
        return self.document.toxml(encoding="UTF-8")


def render_svg(label: Label) -> bytes:
    """The label as one SVG document: caption `<text>` lines, then each symbol's bars
    (a nested `<svg>` from python-barcode) and its text."""
    canvas = _SvgCanvas()
    for line in label.caption():
        canvas.add_text(line, CAPTION_PT)
    for index, symbol in enumerate(label.symbols()):
        canvas.add_svg(_bars_svg(symbol), f"symbol_{index}")
        canvas.add_text(symbol.text, SYMBOL_TEXT_PT)
    return canvas.to_bytes()


def render(label: Label, fmt: Format, *, copies: int = 1) -> bytes:
    """The label in one of the formats; `copies` only matters to ZPL (`^PQ`)."""
    if fmt == "svg":
        return render_svg(label)
    if fmt == "png":
        return render_png(label)
    return render_zpl(label, copies=copies)
