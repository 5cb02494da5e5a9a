"""The HTML around the run report's sections: one self-contained page (inline CSS, SVG and data-URI images).

    page(title, status_html, sections, refresh=10)   # the whole document; refresh=None: no reload
    png_data_uri(image)                              # (H, W) or (C, H, W) array -> "data:image/png;base64,..."

Nothing is loaded from anywhere: no script, no font, no style sheet, no image file. The layout is one column
that fits a phone and widens to a few columns of charts on a laptop; wide content (the network, the tables)
scrolls inside its own box rather than the page.
"""
from __future__ import annotations

import base64
import struct
import zlib
from html import escape

import numpy

__all__ = ["page", "png_data_uri", "png_bytes", "table", "section", "CSS"]

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       background: #f3f4f6; }
header { background: #1f2937; color: #f9fafb; padding: 14px 18px; }
header h1 { font-size: 1.25rem; margin: 0 0 4px; overflow-wrap: anywhere; }
header p { margin: 2px 0; color: #d1d5db; font-size: 0.9rem; overflow-wrap: anywhere; }
.status { display: inline-block; padding: 1px 9px; border-radius: 10px; font-weight: 600; font-size: 0.85rem; }
.status.final { background: #d1fae5; color: #065f46; }
.status.progress { background: #fef3c7; color: #92400e; }
.status.stopped { background: #fee2e2; color: #991b1b; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; padding: 8px 18px; background: #e5e7eb; font-size: 0.9rem; }
nav a { color: #1f4f8f; text-decoration: none; }
main { max-width: 1180px; margin: 0 auto; padding: 10px; }
section { background: white; border-radius: 8px; padding: 12px 16px; margin: 12px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 1.1rem; margin: 2px 0 8px; }
h3 { font-size: 0.98rem; margin: 12px 0 6px; }
p.note { color: #4b5563; font-size: 0.88rem; margin: 4px 0 8px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 440px), 1fr)); gap: 10px; }
.charts svg { display: block; background: white; }
.scroll { overflow: auto; max-width: 100%; }
.graph { max-height: 85vh; border: 1px solid #e5e7eb; border-radius: 6px; }
.graph svg { display: block; margin: 0 auto; max-width: 100%; height: auto; }
img.picture { display: block; max-width: 100%; height: auto; margin: 6px 0; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.86rem; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
th { background: #f9fafb; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv td:first-child { color: #4b5563; white-space: nowrap; }
table.kv td { overflow-wrap: anywhere; }
table.confusion td, table.confusion th { text-align: center; padding: 3px 6px; min-width: 2.2em;
          border: 1px solid #eef0f3; font-variant-numeric: tabular-nums; }
.wrong { display: grid; grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); gap: 8px; }
.wrong figure { margin: 0; text-align: center; font-size: 0.8rem; }
.wrong img { width: 84px; height: 84px; image-rendering: pixelated; border: 1px solid #ddd; }
code { font-size: 0.85em; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; overflow-wrap: anywhere; }
@media (max-width: 600px) { body { font-size: 14px; } main { padding: 4px; } section { padding: 10px; }
  .charts { grid-template-columns: 1fr; } th, td { padding: 3px 5px; } }
"""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(image) -> bytes:
    """An 8-bit PNG of ``image`` (H, W) grey or (3, H, W) / (1, H, W), scaled by its own min and max."""
    a = numpy.asarray(image, dtype=numpy.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3:
        a = a[:3].transpose(1, 2, 0) if a.shape[0] >= 3 else a.mean(axis=0)
    low, high = float(a.min()), float(a.max())
    a = numpy.zeros_like(a) + 0.5 if high <= low else (a - low) / (high - low)
    pixels = numpy.clip(numpy.round(a * 255), 0, 255).astype(numpy.uint8)
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)              # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + \
        _chunk(b"IEND", b"")


def png_data_uri(image=None, png: bytes | None = None) -> str:
    """A data URI of ``png`` bytes, or of ``image`` encoded with png_bytes."""
    data = png if png is not None else png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def table(header: list, rows: list, numeric=(), cls: str = "") -> str:
    """An HTML table; cells are escaped text (or markup wrapped in a tuple ("html", text)). ``numeric``: the
    indices of right-aligned columns."""
    def cell(tag, i, value):
        text = value[1] if isinstance(value, tuple) and value[:1] == ("html",) else escape(str(value))
        align = ' class="num"' if i in numeric else ""
        return f"<{tag}{align}>{text}</{tag}>"
    head = "".join(cell("th", i, h) for i, h in enumerate(header)) if header else ""
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (f'<div class="scroll"><table{attr}>'
            + (f"<thead><tr>{head}</tr></thead>" if head else "") + f"<tbody>{body}</tbody></table></div>")


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def page(title: str, header_html: str, sections: list[tuple[str, str, str]], refresh: int | None) -> str:
    """The document: ``sections`` are (id, title, body html); ``refresh``: seconds between reloads, or None."""
    meta = f'<meta http-equiv="refresh" content="{refresh}">\n' if refresh else ""
    nav = "".join(f'<a href="#{ident}">{escape(name)}</a>' for ident, name, _ in sections)
    body = "\n".join(section(*s) for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n' + meta +
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<header>{header_html}</header>\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n")
