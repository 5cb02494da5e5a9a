"""Small line charts as inline SVG text, for the run report (no matplotlib, no script).

    svg = line_chart("loss", [Series("train", xs, ys, "#1f77b4")], x_label="epoch", y_label="loss", log_y=True)

The SVG scales to the width of its container (``viewBox``, ``width="100%"``); every point is a small circle
with a ``<title>`` that the browser shows on hover ("test · epoch 3: 0.0412"). A series with one point is
drawn as that point alone. Values that are None or not finite are left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "line_chart", "nice_ticks", "COLOURS"]

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
WIDTH, HEIGHT = 480, 290
LEFT, RIGHT, TOP, BOTTOM = 74, 14, 32, 46
MAX_MARKERS = 200          # a long series gets its hover points thinned to about this many


@dataclass
class Series:
    """One line: its legend name, x and y values (same length) and colour."""

    name: str
    x: list
    y: list
    colour: str = COLOURS[0]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers (1, 2, 2.5, 5 x 10^k steps) covering [low, high]."""
    if high - low <= 1e-9 * max(abs(low), abs(high)):       # a constant (to rounding): a range around it
        low, high = low - (abs(low) or 1.0) * 0.1, high + (abs(high) or 1.0) * 0.1
    raw = (high - low) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    for i in range(4 * count + 2):                               # bounded, whatever the rounding
        value = first + i * step
        ticks.append(round(value, 12))
        if value >= high - step * 1e-9:
            break
    return ticks if len(ticks) > 1 else [first, first + step]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def line_chart(title: str, series: list[Series], x_label: str, y_label: str, log_y: bool = False,
               chart_id: str = "") -> str:
    """SVG text of the ``series`` on shared axes, with a legend; an empty-data chart says so."""
    lines = [(s, [(x, y) for x, y in zip(s.x, s.y) if _finite(x) and _finite(y) and (y > 0 or not log_y)])
             for s in series]
    lines = [(s, points) for s, points in lines if points]
    ident = f' id="{escape(chart_id)}"' if chart_id else ""
    head = (f'<svg{ident} class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" '
            f'font-size="13"><title>{escape(title)}</title>'
            f'<text x="8" y="19" font-size="15" font-weight="bold" fill="#222">{escape(title)}</text>')
    if not lines:
        return head + (f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#777">'
                       "no values recorded yet</text></svg>")
    xs = [x for _, points in lines for x, _ in points]
    ys = [math.log10(y) if log_y else y for _, points in lines for _, y in points]
    x_ticks = nice_ticks(min(xs), max(xs))
    if log_y:
        low, high = math.floor(min(ys)), math.ceil(max(ys))
        y_ticks = list(range(low, high + 1)) if high > low else [low, low + 1]
    else:
        y_ticks = nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y):
        y = math.log10(y) if log_y else y
        return TOP + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    out = [head, f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fcfcfc" stroke="#ccc"/>']
    for t in y_ticks:
        y = TOP + plot_h - (t - y0) / ((y1 - y0) or 1) * plot_h
        text = _label(10.0 ** t) if log_y else _label(t)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{text}</text>')
    for t in x_ticks:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#eeeeee"/>'
                   f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#555">{_label(t)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#333">'
               f"{escape(x_label)}</text>"
               f'<text transform="translate(16 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" fill="#333">'
               f"{escape(y_label)}{' (log scale)' if log_y else ''}</text>")
    for s, points in lines:
        path = " ".join(f"{'M' if i == 0 else 'L'} {px(x):.1f} {py(y):.1f}" for i, (x, y) in enumerate(points))
        out.append(f'<g class="series" data-name="{escape(s.name)}">')
        if len(points) > 1:
            out.append(f'<path d="{path}" fill="none" stroke="{s.colour}" stroke-width="1.8"/>')
        every = max(1, len(points) // MAX_MARKERS)
        radius = 3.2 if len(points) <= 40 else 2.2
        for x, y in points[::every]:
            tip = f"{s.name} · {x_label} {x:g}: {y:.6g}"
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{radius}" fill="{s.colour}">'
                       f"<title>{escape(tip)}</title></circle>")
        out.append("</g>")
    x = WIDTH - RIGHT                            # the legend: right-aligned on the title's line
    for s, _ in reversed(lines):
        x -= len(s.name) * 7 + 26
        out.append(f'<rect x="{x:.0f}" y="9" width="10" height="10" fill="{s.colour}"/>'
                   f'<text x="{x + 14:.0f}" y="18" fill="#222">{escape(s.name)}</text>')
    out.append("</svg>")
    return "".join(out)
