"""What every ``mg.viz`` function returns: a picture that Jupyter shows inline and ``save`` writes to a file.

    picture = mg.viz.graph(model, (1, 1, 28, 28))
    picture                      # in Jupyter: drawn inline (``_repr_svg_``)
    picture.svg                  # the SVG text
    picture.save("lenet5.svg")   # the format comes from the suffix

``SvgPicture`` holds SVG text drawn by minigrad itself (the network graph); ``PlotPicture`` holds a
matplotlib drawing, rendered to PNG at once (``.png``, ``_repr_png_``) and to SVG when saved as ``.svg``.
Matplotlib is imported only here, when a picture is drawn, through ``runtime.optional.require`` (its error
names the ``[plot]`` extra); the figure is a ``matplotlib.figure.Figure`` rendered without pyplot, so drawing
never changes the user's matplotlib backend or opens a window.
"""
from __future__ import annotations

import base64
import html
import io
import os

from ..io.atomic_write import write_bytes_atomic
from ..runtime.optional import require

__all__ = ["SvgPicture", "PlotPicture", "new_figure", "render_figure"]


def _suffix(kind: str, path, allowed: tuple) -> str:
    """The lower-case suffix of ``path``; ValueError naming the picture, the path and what it accepts."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in allowed:
        got = f"suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(f"{kind}.save: cannot tell the format of {os.fspath(path)!r} ({got}); expected a path "
                         f"ending in {' or '.join(allowed)}")
    return suffix


class SvgPicture:
    """An SVG drawing made by minigrad: ``.svg`` (text), ``.save(path.svg)``, shown inline by Jupyter."""

    def __init__(self, svg: str, title: str = ""):
        self.svg = svg
        self.title = title

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path) -> str:
        """Write the SVG to ``path`` (which must end in .svg) atomically; returns the path."""
        _suffix(type(self).__name__, path, (".svg",))
        return write_bytes_atomic(os.fspath(path), self.svg.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title}: {len(self.svg):,} characters of SVG; .save('x.svg')>"


def new_figure(where: str, width: float, height: float):
    """A matplotlib Figure of ``width`` x ``height`` inches, made without pyplot (no window, no backend change).
    ImportError naming ``where`` and the ``[plot]`` extra when matplotlib is missing."""
    require("matplotlib", where)
    figure = require("matplotlib.figure", where)
    return figure.Figure(figsize=(width, height), dpi=100)


def render_figure(draw, where: str, size: tuple, fmt: str) -> bytes:
    """Draw into a new figure of ``size`` inches with ``draw(fig)`` and return it encoded as ``fmt`` ("png"/"svg")."""
    fig = new_figure(where, *size)
    draw(fig)
    out = io.BytesIO()
    fig.savefig(out, format=fmt, dpi=100, facecolor="white")
    return out.getvalue()


class PlotPicture:
    """A matplotlib drawing: ``.png`` (bytes), ``.save(path)`` as .png or .svg, shown inline by Jupyter.

    draw(fig): fills a matplotlib Figure; it is kept so that ``save("x.svg")`` can draw the same picture as
    vectors. size: (width, height) in inches at 100 dpi.
    """

    def __init__(self, draw, size: tuple, where: str, title: str = ""):
        self._draw, self._size, self._where = draw, tuple(size), where
        self.title = title
        self.png = render_figure(draw, where, self._size, "png")

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{_attr(self.title)}"/>'

    def save(self, path) -> str:
        """Write the picture to ``path``: .png (the bytes of ``.png``) or .svg (drawn again as vectors)."""
        suffix = _suffix(type(self).__name__, path, (".png", ".svg"))
        data = self.png if suffix == ".png" else render_figure(self._draw, self._where, self._size, "svg")
        return write_bytes_atomic(os.fspath(path), data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title}: {len(self.png):,} bytes of PNG; .save('x.png')>"


def _attr(text: str) -> str:
    return html.escape(text, quote=True)
