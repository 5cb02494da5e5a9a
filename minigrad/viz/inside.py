"""What a convolutional network has learned and what it sees: its filters and its feature maps.

    mg.viz.filters(model)            # the first Conv2d's filters, one tile per output channel
    mg.viz.feature_maps(model, x)    # every Conv2d's output for one sample x: (1, C, H, W)

Both copy what they draw to the host (CuPy arrays included) and return a PlotPicture (``.png``, ``.save``).
``feature_maps`` runs one forward pass under ``mg.no_grad()`` with every layer in eval mode, catching the
convolutions' outputs with forward hooks: the model's caches, gradients, modes and random state are left as
they were.
"""
from __future__ import annotations

import math

import numpy

from ..nn.conv import Conv2d
from ..nn.grad_mode import no_grad
from ..runtime.backend import backend_of, is_array, to_backend
from .picture import PlotPicture

__all__ = ["filters", "feature_maps", "convolutions", "host", "FiltersPicture", "FeatureMapsPicture"]

TILE_IN = 1.0          # inches per tile


def host(array) -> numpy.ndarray:
    """A NumPy float64 copy of a NumPy or CuPy array (``.get()`` for CuPy)."""
    return numpy.array(to_backend(array, "numpy"), dtype=numpy.float64)


def convolutions(model, where: str) -> list:
    """[(qualified name, Conv2d), ...] of ``model`` (itself included), in registration order. TypeError naming
    ``where`` and the model's type when there is none."""
    if isinstance(model, Conv2d):
        return [(model.name or "Conv2d", model)]
    if not hasattr(model, "named_modules"):
        raise TypeError(f"{where}: expected a minigrad model or Conv2d layer, got {type(model).__name__}")
    convs = [(name or type(layer).__name__, layer) for name, layer in model.named_modules()
             if isinstance(layer, Conv2d)]
    if not convs:
        kinds = sorted({type(layer).__name__ for layer in model.modules() if layer is not model})
        raise TypeError(f"{where}: the {type(model).__name__} has no Conv2d layer (it has: "
                        f"{', '.join(kinds) or 'no sub-layers'}); give a model with a convolution or a Conv2d")
    return convs


def _grid(n: int, max_cols: int = 8) -> tuple[int, int]:
    cols = min(max_cols, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def _normalise(tile: numpy.ndarray) -> numpy.ndarray:
    """Scale to [0, 1] by the tile's own minimum and maximum (a constant tile becomes mid-grey)."""
    low, high = tile.min(), tile.max()
    return numpy.full_like(tile, 0.5) if high - low <= 0 else (tile - low) / (high - low)


def _frame(ax):
    """No ticks, a light grey frame: a tile's white pixels stay apart from the white page."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#bbbbbb")


class FiltersPicture(PlotPicture):
    """The filters of a Conv2d: ``.tiles`` (O images, (kh, kw) or (kh, kw, 3), in [0, 1]), ``.grid``
    (rows, cols) and ``.weights`` (the host copy of the weight, (O, C/groups, kh, kw))."""


def filters(layer) -> FiltersPicture:
    """The filters of ``layer`` (a Conv2d, or the first Conv2d of a model) as a grid of tiles, one per output
    channel. Weight (O, C, kh, kw): with C == 3 a tile is the filter as an RGB image (kh, kw, 3), otherwise
    the mean over its C input channels (kh, kw) in grey; each tile scaled to [0, 1] by its own range."""
    where = "mg.viz.filters"
    name, conv = convolutions(layer, where)[0]
    weights = host(conv.weight.data)                                   # (O, C/groups, kh, kw)
    rgb = weights.shape[1] == 3
    tiles = [_normalise(w.transpose(1, 2, 0) if rgb else w.mean(axis=0)) for w in weights]
    rows, cols = _grid(len(tiles))
    title = f"{name} · Conv2d: {len(tiles)} filters of {weights.shape[1]}x{weights.shape[2]}x{weights.shape[3]}" + \
        (" (RGB)" if rgb else " (mean over input channels)" if weights.shape[1] > 1 else "")

    def draw(fig):
        fig.set_layout_engine("constrained")
        fig.suptitle(title, fontsize=10)
        for i, tile in enumerate(tiles):
            ax = fig.add_subplot(rows, cols, i + 1)
            ax.imshow(tile, cmap=None if rgb else "gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(str(i), fontsize=8)
            _frame(ax)

    picture = FiltersPicture(draw, (max(4.0, cols * TILE_IN * 1.2), rows * TILE_IN * 1.2 + 0.5), where, title)
    picture.tiles, picture.grid, picture.weights = tiles, (rows, cols), weights
    return picture


class FeatureMapsPicture(PlotPicture):
    """The feature maps of one sample: ``.maps`` {name of the conv's node: host array (C, H, W)}, in the
    order the convolutions ran (a Conv2d shared by two nodes appears under both names)."""


def _one_sample(x, sample: int, model, where: str):
    if not is_array(x):
        raise TypeError(f"{where}: x must be a NumPy or CuPy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{where}: x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)} "
                         f"({x.ndim}-D); one image of shape (C, H, W) is x[None]")
    if not 0 <= sample < x.shape[0]:
        raise IndexError(f"{where}: sample {sample} is out of range for a batch of {x.shape[0]}")
    params = model.parameters()
    x = x[sample:sample + 1]
    return to_backend(x, backend_of(params[0].data)) if params else x   # where the model lives


def feature_maps(model, x, sample: int = 0, max_channels: int = 16) -> FeatureMapsPicture:
    """The output of every Conv2d of ``model`` for one sample of ``x`` ((N, C, H, W); ``x[sample]`` is drawn),
    one grid per convolution titled with its node name and shape (C, H, W); at most ``max_channels``
    channels each, every map scaled by its own range."""
    where = "mg.viz.feature_maps"
    convs = convolutions(model, where)
    x = _one_sample(x, sample, model, where)
    maps = []                                                          # [(node name, (C, H, W) host array)]

    def catch(layer, args, output):
        maps.append((layer.name or "Conv2d", host(output[0])))         # the node name while the node runs

    handles = [conv.register_forward_hook(catch) for _, conv in dict((id(c), (n, c)) for n, c in convs).values()]
    modes = [(layer, layer.training) for layer in model.modules()]
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        for layer, mode in modes:
            object.__setattr__(layer, "training", mode)
    names = [name for name, _ in maps]
    shown = [(name if names.count(name) == 1 else f"{name} (use {names[:i + 1].count(name)})", fmap[:max_channels],
              fmap.shape) for i, (name, fmap) in enumerate(maps)]
    grids = [(math.ceil(len(fmap) / 8), min(8, len(fmap))) for _, fmap, _ in shown]     # rows of up to 8 maps
    cols = max(c for _, c in grids)

    def draw(fig):
        panels = fig.subfigures(len(shown), 1, height_ratios=[r + 0.5 for r, _ in grids], squeeze=False)[:, 0]
        for panel, (name, fmap, shape), (rows, _) in zip(panels, shown, grids):
            more = f" ({len(fmap)} of {shape[0]} channels shown)" if len(fmap) < shape[0] else ""
            panel.suptitle(f"{name} · Conv2d: {shape[0]} x {shape[1]} x {shape[2]}{more}", fontsize=10)
            for i, plane in enumerate(fmap):
                ax = panel.add_subplot(rows, cols, i + 1)
                ax.imshow(_normalise(plane), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
                ax.set_title(str(i), fontsize=7)
                _frame(ax)

    height = sum((rows + 0.5) * TILE_IN for rows, _ in grids)
    title = f"feature maps of {type(model).__name__}, {len(maps)} convolution(s)"
    picture = FeatureMapsPicture(draw, (max(5.0, cols * TILE_IN), height), where, title)
    picture.maps = dict(zip([name for name, _, _ in shown], [fmap for _, fmap in maps]))
    return picture
