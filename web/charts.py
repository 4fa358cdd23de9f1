"""Charts as inline SVG, drawn on the server: no JavaScript, no build step. Pure
functions from figures to markup; every label is escaped."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    text: str  # the value as the page shows it (formatted, in the page's language)


def _scale(bars: list[Bar]) -> Decimal:
    top = max((abs(b.value) for b in bars), default=Decimal(0))
    return top if top > 0 else Decimal(1)


def bar_chart(bars: list[Bar], title: str, width: int = 480) -> Markup:
    """Horizontal bars, one row each: the label, the bar, the value."""
    row_h, label_w, text_w = 28, 150, 120
    bar_w = width - label_w - text_w
    height = max(row_h * len(bars), row_h)
    top = _scale(bars)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = i * row_h
        length = int(bar_w * abs(bar.value) / top)
        parts.append(
            f'<text x="0" y="{y + 18}" class="chart-label">{escape(bar.label)}</text>'
            f'<rect x="{label_w}" y="{y + 6}" width="{max(length, 1)}" height="16" '
            f'class="chart-bar" rx="2"/>'
            f'<text x="{label_w + max(length, 1) + 6}" y="{y + 18}" class="chart-value">'
            f"{escape(bar.text)}</text>"
        )
    parts.append("</svg>")
    # every text in it went through escape()
    return Markup("".join(parts))  # nosec B704


def column_chart(bars: list[Bar], title: str, width: int = 480, height: int = 160) -> Markup:
    """Vertical columns over time (one a day), labelled under the first, the middle
    and the last; each column's value in its tooltip."""
    axis_h = 20
    plot_h = height - axis_h
    top = _scale(bars)
    slot = width / max(len(bars), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" class="chart-axis"/>',
    ]
    anchors = {0: "start", len(bars) // 2: "middle", len(bars) - 1: "end"}
    for i, bar in enumerate(bars):
        h = int((plot_h - 4) * max(bar.value, Decimal(0)) / top)
        x = i * slot + slot * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{plot_h - h}" width="{slot * 0.7:.1f}" height="{h}" '
            f'class="chart-bar"><title>{escape(bar.label)}: {escape(bar.text)}</title></rect>'
        )
        if i in anchors:
            at = {"start": i * slot, "middle": (i + 0.5) * slot, "end": (i + 1) * slot}
            anchor = anchors[i]
            parts.append(
                f'<text x="{at[anchor]:.1f}" y="{height - 4}" text-anchor="{anchor}" '
                f'class="chart-label">{escape(bar.label)}</text>'
            )
    parts.append("</svg>")
    # every text in it went through escape()
    return Markup("".join(parts))  # nosec B704


def line_chart(points: list[Bar], title: str, width: int = 480, height: int = 160) -> Markup:
    """A line over time (one point a day) that may go below zero: the zero line drawn,
    labelled under the first, the middle and the last point; each value in its point's
    tooltip."""
    axis_h, pad = 20, 6
    plot_h = height - axis_h
    top = max((p.value for p in points), default=Decimal(0))
    bottom = min((p.value for p in points), default=Decimal(0))
    top, bottom = max(top, Decimal(0)), min(bottom, Decimal(0))
    span = top - bottom if top > bottom else Decimal(1)
    slot = width / max(len(points), 1)

    def y_of(value: Decimal) -> float:
        return pad + float((top - value) / span) * (plot_h - 2 * pad)

    coords = [((i + 0.5) * slot, y_of(p.value)) for i, p in enumerate(points)]
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="0" y1="{y_of(Decimal(0)):.1f}" x2="{width}" y2="{y_of(Decimal(0)):.1f}" '
        f'class="chart-axis"/>',
    ]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" class="chart-line" fill="none"/>')
    anchors = {0: "start", len(points) // 2: "middle", len(points) - 1: "end"}
    for i, (point, (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="chart-point">'
            f"<title>{escape(point.label)}: {escape(point.text)}</title></circle>"
        )
        if i in anchors:
            at = {"start": i * slot, "middle": x, "end": (i + 1) * slot}[anchors[i]]
            parts.append(
                f'<text x="{at:.1f}" y="{height - 4}" text-anchor="{anchors[i]}" '
                f'class="chart-label">{escape(point.label)}</text>'
            )
    parts.append("</svg>")
    # every text in it went through escape()
    return Markup("".join(parts))  # nosec B704
