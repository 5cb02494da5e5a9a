"""A layered drawing of boxes and arrows as plain SVG text (no graphviz).

    svg = draw_svg(boxes, arrows, title="Sequential, input (1, 1, 28, 28)")

The layout, in four steps (the Sugiyama scheme, kept small):

1. rows: a box sits one row below the lowest box it takes an arrow from (its longest path from an input);
2. an arrow that skips rows (a residual connection) gets a waypoint in every row it crosses, so it runs in a
   lane of its own beside the boxes instead of through them;
3. order within a row: a few sweeps that sort each row by the mean position of its boxes' sources;
4. x: each box wants to sit under the mean of its sources (boxes under boxes, not under waypoints); the
   positions closest to those wishes that keep neighbours apart are a weighted isotonic regression, solved by
   pooling adjacent violators. A straight chain stays one straight column.

Every arrow is a smooth path (vertical at both ends) with an arrowhead; a box that takes several arrows
receives them at separate points of its top edge. Elements: ``<g class="node">`` per layer use,
``<g class="input">`` / ``<g class="output">`` per graph input / output, ``<path class="edge">`` per arrow.
All text is XML-escaped.
"""
from __future__ import annotations

from html import escape     # & < > " ' (xml.sax.saxutils would import urllib, ssl and email: slow)

__all__ = ["draw_svg", "node_lines"]

CHAR_W = 7.4            # px per character at 12-13 px sans-serif, rounded up so that text fits its box
LINE_H = 15
PAD_X, PAD_Y = 12, 7
MIN_W = 150
ROW_GAP = 24            # vertical space between rows
BOX_GAP, LANE_GAP = 28, 18
MARGIN = 24
HEADER_H = 34

# fill, stroke per kind of layer (matched on the class name)
COLOURS = (
    (("Conv",), ("#dceaf7", "#3f6fa8")),
    (("Linear",), ("#e8ddf3", "#6b4c9a")),
    (("Pool",), ("#fde6cc", "#b86e1b")),
    (("Norm",), ("#f7f0c6", "#9a8520")),
    (("ReLU", "LU", "Sigmoid", "Tanh", "Softmax", "GELU", "Swish", "Mish"), ("#dff1d8", "#4c8a3a")),
    (("Add", "Concat", "Mul"), ("#ececec", "#555555")),
)
PLAIN = ("#f7f7f7", "#777777")
TERMINAL = ("#ffffff", "#333333")


def node_lines(box) -> list[str]:
    """The text lines of a box: name and class; output shape; parameter count (or which node it shares)."""
    if box.kind != "layer":
        return [box.name, box.shape]
    if box.params is None:
        params = f"shared with {box.shared_with}" if box.shared_with else "shared"
    else:
        params = f"{box.params:,} params" if box.params else "no params"
    return [f"{box.name} · {box.type_name}", box.shape, params]


def _colours(box):
    if box.kind != "layer":
        return TERMINAL
    for keys, colours in COLOURS:
        if any(key in box.type_name for key in keys):
            return colours
    return PLAIN


def _rows(keys, sources):
    row = {}
    for key in keys:                                 # keys are in a topological order
        row[key] = 1 + max((row[s] for s in sources[key]), default=-1)
    return row


def _isotonic(targets, weights):
    """Non-decreasing y minimising sum w (y - t)^2: pool adjacent violators."""
    blocks = []                                      # [mean, weight, count]
    for t, w in zip(targets, weights):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return [m for m, _, c in blocks for _ in range(c)]


def _layout(boxes, arrows):
    """Positions {key: (x centre, y top, w, h)} of boxes and waypoints, and each arrow's chain of keys."""
    keys = [b.key for b in boxes]
    sources = {k: [] for k in keys}
    for a, b in arrows:
        sources[b].append(a)
    row = _rows(keys, sources)
    size = {}
    for box in boxes:
        lines = node_lines(box)
        size[box.key] = (max(MIN_W if box.kind == "layer" else 110, max(len(t) for t in lines) * CHAR_W + 2 * PAD_X),
                         len(lines) * LINE_H + 2 * PAD_Y)
    chains, preds, real = [], {k: [] for k in keys}, set(keys)
    for index, (a, b) in enumerate(arrows):
        chain = [a] + [f"w{index}:{r}" for r in range(row[a] + 1, row[b])] + [b]
        for key in chain[1:-1]:
            row[key], size[key] = int(key.split(":")[-1]), (0.0, 0.0)
            preds[key] = []
        for u, v in zip(chain, chain[1:]):
            preds[v].append(u)
        chains.append(chain)
    n_rows = max(row.values()) + 1
    layers = [[] for _ in range(n_rows)]
    for key in list(keys) + [k for k in row if k not in real]:
        layers[row[key]].append(key)
    for _ in range(3):                               # barycentre sweeps (stable: ties keep their order)
        for r in range(1, n_rows):
            place = {k: i for i, k in enumerate(layers[r - 1])}
            order = {k: i for i, k in enumerate(layers[r])}
            layers[r].sort(key=lambda k: (sum(place[p] for p in preds[k]) / len(preds[k]) if preds[k] else order[k],
                                          k not in real, order[k]))
    x = {}
    for r, layer in enumerate(layers):
        wish = []
        for key in layer:
            ps = [p for p in preds[key] if p in real] or preds[key]
            wish.append(sum(x[p] for p in ps) / len(ps) if ps else 0.0)
        offsets = [0.0]
        for left, right in zip(layer, layer[1:]):
            gap = BOX_GAP if left in real and right in real else LANE_GAP
            offsets.append(offsets[-1] + (size[left][0] + size[right][0]) / 2 + gap)
        weights = [1.0 if k in real else 1e-3 for k in layer]   # boxes stay, lanes move
        fitted = _isotonic([w - o for w, o in zip(wish, offsets)], weights)
        for key, y0, off in zip(layer, fitted, offsets):
            x[key] = y0 + off
    tops, y = [], MARGIN + HEADER_H
    for layer in layers:
        tops.append(y)
        y += max(size[k][1] for k in layer) + ROW_GAP
    left = min(x[k] - size[k][0] / 2 for k in row)
    position = {}
    for r, layer in enumerate(layers):
        height = max(size[k][1] for k in layer)
        for key in layer:
            h = size[key][1] if key in real else height
            position[key] = (x[key] - left + MARGIN, tops[r] + (height - h) / 2, size[key][0], h)
    return position, chains


def _edge_path(chain, position, port):
    """SVG path data through the chain's points: out of the source's bottom, into the target's top at ``port``."""
    x0, y0, _, h0 = position[chain[0]]
    points = [(x0, y0 + h0)]
    for key in chain[1:-1]:
        x, top, _, h = position[key]
        points += [(x, top), (x, top + h)]
    xe, ye, _, _ = position[chain[-1]]
    points.append((xe + port, ye))
    d = [f"M {points[0][0]:.1f} {points[0][1]:.1f}"]
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        if abs(xa - xb) < 0.5:
            d.append(f"L {xb:.1f} {yb:.1f}")
        else:
            mid = (ya + yb) / 2
            d.append(f"C {xa:.1f} {mid:.1f} {xb:.1f} {mid:.1f} {xb:.1f} {yb:.1f}")
    return " ".join(d)


def draw_svg(boxes, arrows, title: str = "") -> str:
    """SVG text of ``boxes`` (network.Box, in a topological order) joined by ``arrows`` ((from key, to key))."""
    position, chains = _layout(boxes, arrows)
    width = max(x + w / 2 for x, _, w, _ in position.values()) + MARGIN
    width = max(width, len(title) * CHAR_W * 1.25 + 2 * MARGIN)    # the title is bold and larger
    height = max(y + h for _, y, _, h in position.values()) + MARGIN
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Verdana, Arial, sans-serif" '
           'font-size="12">',
           f"<title>{escape(title)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs>',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
           f'<text x="{MARGIN}" y="{MARGIN + 12}" font-size="14" font-weight="bold" fill="#222">{escape(title)}</text>']
    incoming = {}
    for a, b in arrows:
        incoming.setdefault(b, []).append(a)
    seen = {}
    for (a, b), chain in zip(arrows, chains):
        k, i = len(incoming[b]), seen.get(b, 0)
        seen[b] = i + 1
        spread = min(26.0, position[b][2] / (k + 1))
        d = _edge_path(chain, position, (i - (k - 1) / 2) * spread)
        out.append(f'<path class="edge" data-from="{escape(a)}" data-to="{escape(b)}" d="{d}" fill="none" '
                   'stroke="#444" stroke-width="1.4" marker-end="url(#arrow)"/>')
    for box in boxes:
        x, y, w, h = position[box.key]
        fill, stroke = _colours(box)
        lines = node_lines(box)
        cls = "node" if box.kind == "layer" else box.kind
        rx = h / 2 if box.kind != "layer" else 6
        out.append(f'<g class="{cls}" data-name="{escape(box.name)}">')
        out.append(f"<title>{escape(' | '.join(lines))}</title>")
        out.append(f'<rect x="{x - w / 2:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx:.1f}" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="1.3"/>')
        for j, line in enumerate(lines):
            weight = ' font-weight="bold"' if j == 0 else ""
            colour = "#111" if j < 2 else "#555"
            out.append(f'<text x="{x:.1f}" y="{y + PAD_Y + 11.5 + j * LINE_H:.1f}" text-anchor="middle" '
                       f'fill="{colour}"{weight}>{escape(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
