"""Server-rendered SVG charts: no JavaScript, no CDN, works offline and under a strict CSP.

Every chart is decorative for assistive technology apart from its title (``role="img"`` with a label);
the numbers are always in the HTML table next to it. Colours use SVG presentation attributes (not inline
CSS), so ``style-src 'self'`` holds. Floats are used only to place shapes, never for a shown figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from markupsafe import Markup

#: Okabe-Ito (colour-blind safe) plus two neutrals; "(other)" is always grey
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#8C564B",
    "#7F7F7F",
)
OTHER_COLOUR = "#B0B0B0"
WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 40


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Decimal | None]
    colour: str = ""
    dashed: bool = False


def colour_for(index: int, name: str) -> str:
    return OTHER_COLOUR if name == "(other)" else PALETTE[index % len(PALETTE)]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = float(10 ** len(str(int(value)))) / 10
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _short(value: float, currency: str) -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, "")
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{symbol}{text}{suffix}"
    return f"{symbol}{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{symbol}{value:.0f}"


def _frame(label: str, ymax: float, currency: str, body: list[str], labels: Sequence[str]) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    plot_w = WIDTH - LEFT - RIGHT
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg" focusable="false">'
    ]
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#444">'
            f"{escape(_short(ymax * i / 4, currency))}</text>"
        )
    parts.extend(body)
    n = len(labels)
    if n:
        every = max(1, (n + 7) // 8)
        step = plot_w / n
        for i, text in enumerate(labels):
            if i % every:
                continue
            x = LEFT + step * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
                f'fill="#444">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(label: str, buckets: Sequence[str], series: Sequence[Series], currency: str) -> Markup:
    """One bar per bucket, one stacked segment per series (negative values are not drawn)."""
    totals = [
        sum(float(s.values[i] or 0) for s in series if (s.values[i] or 0) > 0) for i in range(len(buckets))
    ]
    ymax = _nice_max(max(totals, default=0.0))
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    bar_w = max(step * 0.75, 1.0)
    body = []
    for i in range(len(buckets)):
        base = 0.0
        x = LEFT + step * i + (step - bar_w) / 2
        for s in series:
            v = float(s.values[i] or 0)
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y = TOP + plot_h - plot_h * (base + v) / ymax
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{s.colour}"/>'
            )
            base += v
    return _frame(label, ymax, currency, body, buckets)


def lines(
    label: str,
    buckets: Sequence[str],
    series: Sequence[Series],
    currency: str,
    *,
    rules: Sequence[tuple[str, Decimal, str]] = (),
) -> Markup:
    """A line per series (None = gap) and horizontal rules (label, value, colour), e.g. thresholds."""
    values = [float(v) for s in series for v in s.values if v is not None]
    values += [float(v) for _, v, _ in rules]
    ymax = _nice_max(max(values, default=0.0))
    plot_h = HEIGHT - TOP - BOTTOM
    step = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    body = []
    for name, value, colour in rules:
        y = TOP + plot_h - plot_h * float(value) / ymax
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            'stroke-width="1.5" stroke-dasharray="2 3"/>'
        )
        body.append(
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{colour}">{escape(name)}</text>'
        )
    for s in series:
        points: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(s.values):
            if v is None:
                if points:
                    segments.append(points)
                points = []
                continue
            x = LEFT + step * (i + 0.5)
            y = TOP + plot_h - plot_h * float(v) / ymax
            points.append(f"{x:.1f},{y:.1f}")
        if points:
            segments.append(points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{s.colour}"/>')
            else:
                body.append(
                    f'<polyline points="{" ".join(seg)}" fill="none" stroke="{s.colour}" '
                    f'stroke-width="2"{dash}/>'
                )
    return _frame(label, ymax, currency, body, buckets)


def hbars(label: str, items: Sequence[tuple[str, Decimal]], currency: str) -> Markup:
    """Horizontal bars, one per item (largest first as given)."""
    row_h = 26
    height = TOP + row_h * max(len(items), 1) + 8
    label_w = 200
    vmax = _nice_max(max((float(v) for _, v in items), default=0.0))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg" focusable="false">'
    ]
    for i, (name, value) in enumerate(items):
        y = TOP + row_h * i
        w = max((WIDTH - label_w - 90) * max(float(value), 0) / vmax, 0)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" font-size="12" fill="#222">'
            f"{escape(name[:30])}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{colour_for(i, name)}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12" fill="#222">'
            f"{escape(_short(float(value), currency))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def swatch(colour: str) -> Markup:
    """A small colour square for a legend (an SVG, so no inline style is needed)."""
    return Markup(
        f'<svg class="swatch" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" '
        f'focusable="false"><rect width="12" height="12" fill="{escape(colour)}"/></svg>'
    )
