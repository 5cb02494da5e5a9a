"""Max pooling on the CPU (NumPy float32/float64): in-place passes over blocks of planes.

The reference (``minigrad.functional.pool``) keeps a running maximum with ``where`` over the whole
batch and allocates new arrays at every kernel offset. Here the N*C planes go in blocks of about
BLOCK_BYTES of padded input, so each of the K = kh*kw passes over a block stays in cache, and with
views v_k (planes, OH, OW) of the -inf-padded block:

    forward   y = v_0, then y = maximum(y, v_k) in place (NaN wins, as in PyTorch)
              argmax = min over k of (k where v_k == y else 255)    the first maximum, uint8 passes
    backward  dxpad[view k] += select(argmax == k, dy)                exact where(), per block

Windows of more than 255 offsets are not taken (``applies``); when y holds a NaN (its argmax is the
last NaN of the window, which v_k == y cannot find) the forward hands the batch to ``pool_reference``.
"""
from __future__ import annotations

import numpy as np

from . import pool_reference
from .cpu_elementwise import select
from .cpu_runtime import supported

__all__ = ["applies", "max_forward", "max_backward"]

BLOCK_BYTES = 2 << 20       # padded input bytes per block of planes


def applies(op, geom, x, argmax=None) -> bool:
    """Max pooling of plain NumPy float32/float64 with at most 255 offsets per window (uint8 argmax)."""
    return (op == "max" and supported(x) and geom.kernel[0] * geom.kernel[1] <= 255
            and (argmax is None or (type(argmax) is np.ndarray and argmax.dtype == np.uint8)))


def _plan(in_shape, pads, itemsize):
    n, c, h, w = in_shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    return n * c, (hp, wp), max(1, BLOCK_BYTES // (hp * wp * itemsize))


def max_forward(x, geom):
    """x: (N, C, H, W) -> (y, argmax uint8), both (N, C, OH, OW)."""
    pads, out_size, views = geom.pads, geom.out_size, list(pool_reference.offsets(geom))
    n, c, h, w = x.shape
    top, _, left, _ = pads
    planes, (hp, wp), step = _plan(x.shape, pads, x.itemsize)
    src = x.reshape(planes, h, w)                                      # (N, C, H, W) -> (N*C, H, W)
    out = np.empty((planes,) + tuple(out_size), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.uint8)
    unpadded = not any(pads)
    padded = None if unpadded else np.full((step, hp, wp), -np.inf, dtype=x.dtype)   # border stays -inf
    equal = np.empty((step,) + tuple(out_size), dtype=bool)
    index = np.empty(equal.shape, dtype=np.uint8)
    for p0 in range(0, planes, step):
        p1 = min(p0 + step, planes)
        if unpadded:
            block = src[p0:p1]
        else:
            block = padded[:p1 - p0]
            block[:, top:top + h, left:left + w] = src[p0:p1]
        windows = [block[:, rows, cols] for _, rows, cols in views]   # K views (planes, OH, OW)
        y, am = out[p0:p1], argmax[p0:p1]
        np.copyto(y, windows[0])
        for window in windows[1:]:
            np.maximum(y, window, out=y)
        if np.isnan(y).any():
            return pool_reference.max_forward(x, geom)
        am.fill(255)
        eq, ix = equal[:p1 - p0], index[:p1 - p0]
        for k, window in enumerate(windows):
            np.equal(window, y, out=eq)
            np.subtract(np.uint8(255), np.multiply(eq, np.uint8(255 - k), out=ix), out=ix)   # k, or 255
            np.minimum(am, ix, out=am)
    shape = (n, c) + tuple(out_size)
    return out.reshape(shape), argmax.reshape(shape)                   # (N*C, OH, OW) -> (N, C, OH, OW)


def max_backward(grad_out, argmax, in_shape, geom):
    """(N, C, H, W) gradient: each dy goes to the input position its window took the maximum from."""
    pads, views = geom.pads, list(pool_reference.offsets(geom))
    n, c, h, w = in_shape
    top, _, left, _ = pads
    planes, (hp, wp), step = _plan(in_shape, pads, grad_out.itemsize)
    out_size = grad_out.shape[2:]
    dy = grad_out.reshape((planes,) + tuple(out_size))                # (N, C, OH, OW) -> (N*C, OH, OW)
    am = argmax.reshape(dy.shape)
    dx = np.empty((planes, h, w), dtype=grad_out.dtype)
    unpadded = (hp, wp) == (h, w)
    padded = None if unpadded else np.empty((step, hp, wp), dtype=grad_out.dtype)
    mask = np.empty((step,) + tuple(out_size), dtype=bool)
    for p0 in range(0, planes, step):
        p1 = min(p0 + step, planes)
        block, m = (dx[p0:p1] if unpadded else padded[:p1 - p0]), mask[:p1 - p0]
        block.fill(0)
        for k, rows, cols in views:
            np.equal(am[p0:p1], k, out=m)
            target = block[:, rows, cols]
            np.add(target, select(m, dy[p0:p1]), out=target)
        if not unpadded:
            dx[p0:p1] = block[:, top:top + h, left:left + w]
    return dx.reshape(in_shape)                                        # (N*C, H, W) -> (N, C, H, W)
