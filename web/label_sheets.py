"""Sheets of labels: the edge's label images (edge_agent/labels/render.py) laid out in
a grid on A4 pages, as PNG, SVG or PDF. Pure: labels in, bytes out, no I/O.

Labels are never scaled when they fit: every cell is the size of the largest label on
the sheet, so the bars keep the module width the renderer chose (0.25 mm at 300 dpi)
and scan as well as a single label. A PNG or SVG is one page; more labels than one
page holds are refused (`SheetTooLong`), a PDF takes as many pages as needed."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from xml.dom import minidom

from PIL import Image

from edge_agent.labels.kinds import Label
from edge_agent.labels.render import render_image, render_svg

SheetFormat = Literal["png", "svg", "pdf"]
FORMATS: tuple[SheetFormat, ...] = ("pdf", "png", "svg")
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
A4_MM = (210.0, 297.0)
PAGE_MARGIN_MM = 10.0
GAP_MM = 3.0
DPI = 300
SVG_NS = "http://www.w3.org/2000/svg"


class SheetTooLong(Exception):
    """More labels than one page holds, in a one-page format."""

    def __init__(self, labels: int, per_page: int) -> None:
        super().__init__(f"{labels} labels; one page holds {per_page}")
        self.labels = labels
        self.per_page = per_page


@dataclass(frozen=True)
class Grid:
    """Cells of one size on a page, in the page's unit (pixels or millimetres)."""

    cell_w: float
    cell_h: float
    cols: int
    rows: int
    margin: float
    gap: float
    scale: float  # < 1 only for a label wider or taller than the printable page

    @property
    def per_page(self) -> int:
        return self.cols * self.rows

    def origin(self, slot: int) -> tuple[float, float]:
        """The top-left corner of the slot-th cell of a page (row by row)."""
        row, col = divmod(slot % self.per_page, self.cols)
        return (
            self.margin + col * (self.cell_w + self.gap),
            self.margin + row * (self.cell_h + self.gap),
        )


def grid(sizes: Sequence[tuple[float, float]], page: tuple[float, float], mm: float) -> Grid:
    """The grid for labels of `sizes` on `page`, both in a unit of which `mm` is one
    millimetre."""
    margin, gap = PAGE_MARGIN_MM * mm, GAP_MM * mm
    usable_w, usable_h = page[0] - 2 * margin, page[1] - 2 * margin
    cell_w = max(w for w, _ in sizes)
    cell_h = max(h for _, h in sizes)
    scale = min(1.0, usable_w / cell_w, usable_h / cell_h)
    cell_w, cell_h = cell_w * scale, cell_h * scale
    cols = max(1, int((usable_w + gap) // (cell_w + gap)))
    rows = max(1, int((usable_h + gap) // (cell_h + gap)))
    return Grid(cell_w, cell_h, cols, rows, margin, gap, scale)


def render_sheet(labels: Sequence[Label], copies: int, fmt: SheetFormat) -> bytes:
    """Each label `copies` times, one after another, on A4 pages."""
    if not labels or copies < 1:
        raise ValueError("a sheet needs at least one label and one copy")
    if fmt == "svg":
        return _svg_sheet(labels, copies)
    return _image_sheet(labels, copies, fmt)


def _pages_needed(count: int, per_page: int, fmt: SheetFormat) -> int:
    pages = -(-count // per_page)
    if pages > 1 and fmt != "pdf":
        raise SheetTooLong(count, per_page)
    return pages


def _image_sheet(labels: Sequence[Label], copies: int, fmt: SheetFormat) -> bytes:
    images = [render_image(label, dpi=DPI) for label in labels]
    mm = DPI / 25.4
    page_px = (round(A4_MM[0] * mm), round(A4_MM[1] * mm))
    g = grid([im.size for im in images], page_px, mm)
    if g.scale < 1:
        images = [
            im.resize((max(1, int(im.width * g.scale)), max(1, int(im.height * g.scale))))
            for im in images
        ]
    placed = [im for im in images for _ in range(copies)]
    pages = [
        Image.new("L", page_px, 255) for _ in range(_pages_needed(len(placed), g.per_page, fmt))
    ]
    for slot, image in enumerate(placed):
        x, y = g.origin(slot)
        pages[slot // g.per_page].paste(image, (round(x), round(y)))
    out = io.BytesIO()
    if fmt == "pdf":
        pages[0].save(out, format="PDF", save_all=True, append_images=pages[1:], resolution=DPI)
    else:
        pages[0].save(out, format="PNG", dpi=(DPI, DPI))
    return out.getvalue()


def _mm(value: float) -> str:
    return f"{value:.3f}mm"


def _svg_sheet(labels: Sequence[Label], copies: int) -> bytes:
    """One A4 SVG page; each label is the renderer's own SVG document, nested."""
    parsed = [minidom.parseString(render_svg(label)).documentElement for label in labels]
    sizes = [
        (float(e.getAttribute("width")[:-2]), float(e.getAttribute("height")[:-2]))
        for e in parsed
        if e is not None
    ]
    g = grid(sizes, A4_MM, 1.0)
    count = len(parsed) * copies
    _pages_needed(count, g.per_page, "svg")
    document = minidom.getDOMImplementation().createDocument(SVG_NS, "svg", None)
    root = document.documentElement
    assert root is not None  # createDocument made it
    for name, value in (
        ("xmlns", SVG_NS),
        ("version", "1.1"),
        ("width", _mm(A4_MM[0])),
        ("height", _mm(A4_MM[1])),
    ):
        root.setAttribute(name, value)
    for slot in range(count):
        source = parsed[slot // copies]
        assert source is not None
        label = document.importNode(source, True)
        x, y = g.origin(slot)
        label.setAttribute("x", _mm(x))
        label.setAttribute("y", _mm(y))
        for group in label.getElementsByTagName("g"):
            if group.hasAttribute("id"):  # ids are one per document: copies repeat them
                group.removeAttribute("id")
        root.appendChild(label)
    return document.toxml(encoding="UTF-8")
