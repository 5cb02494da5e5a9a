"""Batch transforms that run on arrays of either backend: Normalize, Pad, RandomCrop, RandomHorizontalFlip, Compose.

Every transform takes a batch ``x: (N, C, H, W)`` (already on the device when used from a
DataLoader) and returns a new batch; ``x`` is not modified. Random choices (crop offsets,
flips) are drawn on the host from ``rng`` (a ``numpy.random.Generator``; the DataLoader
passes one per batch so runs are reproducible and resumable; None uses minigrad's global
generator), then applied with the array module of ``x``: the same code runs on NumPy and CuPy.
"""
from __future__ import annotations

import numbers

import numpy

from ..runtime import random as mg_random
from ..runtime.backend import get_array_module
from ..runtime.checks import check_float_array, check_ndim, pair

__all__ = ["Compose", "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip"]


def _check_batch(x, where):
    check_float_array(x, where)
    check_ndim(x, 4, where, "(N, C, H, W)")


def _rng(rng):
    return mg_random.generator() if rng is None else rng


class Compose:
    """Apply transforms in order: ``Compose([RandomCrop(28, padding=2), Normalize(0.5, 0.5)])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {type(t).__name__}")

    def __call__(self, x, rng=None):
        rng = _rng(rng)
        for t in self.transforms:
            x = t(x, rng=rng)
        return x

    def __repr__(self):
        inner = "".join(f"\n  {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel; mean and std are numbers or one value per channel."""

    def __init__(self, mean, std):
        self.mean = tuple(float(m) for m in (mean if isinstance(mean, (tuple, list)) else (mean,)))
        self.std = tuple(float(s) for s in (std if isinstance(std, (tuple, list)) else (std,)))
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has {len(self.std)}")
        if min(self.std) <= 0:
            raise ValueError(f"Normalize: std must be positive, got {self.std}")
        self._constants = {}    # (module, GPU, dtype, values) -> (mean, std) arrays: one copy to a GPU, not per batch

    def __call__(self, x, rng=None):
        where = "Normalize"
        _check_batch(x, where)
        channels = x.shape[1]
        if len(self.mean) not in (1, channels):
            raise ValueError(f"{where}: {len(self.mean)} mean/std values for an input with {channels} channels "
                             f"(shape {tuple(x.shape)}); give 1 or {channels}")
        xp = get_array_module(x)
        key = (xp.__name__, getattr(getattr(x, "device", None), "id", None), x.dtype.str, self.mean, self.std)
        if key not in self._constants:
            self._constants[key] = (xp.asarray(self.mean, dtype=x.dtype).reshape(1, -1, 1, 1),  # (C,) -> (1, C, 1, 1)
                                    xp.asarray(self.std, dtype=x.dtype).reshape(1, -1, 1, 1))
        mean, std = self._constants[key]
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Pad:
    """Pad every example by ``padding`` pixels on each side (int or (pad_h, pad_w)) with ``fill``."""

    def __init__(self, padding, fill=0.0):
        self.padding = pair(padding, "padding", "Pad")
        if min(self.padding) < 0:
            raise ValueError(f"Pad: padding must be non-negative, got {padding!r}")
        self.fill = float(fill)

    def __call__(self, x, rng=None):
        _check_batch(x, "Pad")
        ph, pw = self.padding
        return get_array_module(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant",
                                       constant_values=self.fill)

    def __repr__(self):
        return f"Pad(padding={self.padding}, fill={self.fill})"


class RandomCrop:
    """Pad by ``padding`` then cut a random ``size`` window, independently per example (as torchvision).

    Args:
        size: output (height, width), an int or a pair.
        padding: pixels added on each side, an int or (pad_h, pad_w); 0/None for no padding.
        fill: value of the padded pixels (in the units of x, e.g. normalized units).
        padding_mode: "constant" (fill), "edge" or "reflect".
    """

    def __init__(self, size, padding=None, fill=0.0, padding_mode="constant"):
        self.size = pair(size, "size", "RandomCrop")
        self.padding = pair(padding or 0, "padding", "RandomCrop")
        if min(self.size) < 1 or min(self.padding) < 0:
            raise ValueError(f"RandomCrop: size must be positive and padding non-negative, got size={size!r}, "
                             f"padding={padding!r}")
        if padding_mode not in ("constant", "edge", "reflect"):
            raise ValueError(f"RandomCrop: padding_mode must be 'constant', 'edge' or 'reflect', "
                             f"got {padding_mode!r}")
        if not isinstance(fill, numbers.Real):
            raise TypeError(f"RandomCrop: fill must be a number, got {type(fill).__name__}")
        self.fill, self.padding_mode = float(fill), padding_mode

    def __call__(self, x, rng=None):
        where = "RandomCrop"
        _check_batch(x, where)
        xp = get_array_module(x)
        n, _, h, w = x.shape
        (th, tw), (ph, pw) = self.size, self.padding
        if h + 2 * ph < th or w + 2 * pw < tw:
            raise ValueError(f"{where}: crop size {self.size} is larger than the padded input "
                             f"({h + 2 * ph}, {w + 2 * pw}) (input of shape {tuple(x.shape)}, padding {self.padding})")
        if ph or pw:
            widths = ((0, 0), (0, 0), (ph, ph), (pw, pw))
            if self.padding_mode == "constant":
                x = xp.pad(x, widths, mode="constant", constant_values=self.fill)
            else:
                x = xp.pad(x, widths, mode=self.padding_mode)
        rng = _rng(rng)
        top = rng.integers(0, x.shape[2] - th + 1, size=n)                # host draws, (N,)
        left = rng.integers(0, x.shape[3] - tw + 1, size=n)
        rows = xp.asarray(top[:, None] + numpy.arange(th))                # (N, th)
        cols = xp.asarray(left[:, None] + numpy.arange(tw))               # (N, tw)
        batch = xp.arange(n)[:, None, None]                               # (N, 1, 1)
        out = x[batch, :, rows[:, :, None], cols[:, None, :]]             # advanced dims first: (N, th, tw, C)
        return xp.ascontiguousarray(out.transpose(0, 3, 1, 2))           # (N, th, tw, C) -> (N, C, th, tw)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill}, " \
               f"padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip:
    """Mirror each example left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        _check_batch(x, "RandomHorizontalFlip")
        xp = get_array_module(x)
        flip = xp.asarray(_rng(rng).random(x.shape[0]) < self.p).reshape(-1, 1, 1, 1)  # (N,) -> (N, 1, 1, 1)
        return xp.where(flip, x[..., ::-1], x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
