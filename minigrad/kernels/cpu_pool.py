"""Max pooling on the CPU (NumPy float32/float64): in-place passes over blocks of planes.

The reference (``pool_reference``) keeps a running maximum with ``where`` over the whole batch and
allocates new arrays at every kernel offset. Here the N*C planes go in blocks of about BLOCK_BYTES of
padded input, run on the thread pool (``cpu_runtime``), so each of the K = kh*kw passes over a block
stays in cache, and with
views v_k (planes, OH, OW) of the -inf-padded block:

    forward   y = v_0, then y = maximum(y, v_k) in place (NaN wins, as in PyTorch)
              argmax = min over k of (k where v_k == y else 255)    the first maximum, uint8 passes
              (2 x 2 windows: the larger of each row's pair, then of the rows: three comparisons)
    backward  dxpad[view k] += select(argmax == k, dy)                exact where(), per block
              (windows that tile the input, as MaxPool2d(2) on even sizes: dx[view k] = ..., no fill)

Windows of more than 255 offsets are not taken (``applies``); when y holds a NaN (its argmax is the
last NaN of the window, which v_k == y cannot find) the forward hands the batch to ``pool_reference``.
"""
from __future__ import annotations

import numpy as np

from . import pool_reference
from .cpu_elementwise import select
from .cpu_runtime import batch_chunks, padded_buffer, run_chunks, supported, work_buffer

__all__ = ["applies", "max_forward", "max_backward"]

BLOCK_BYTES = 2 << 20       # padded input bytes per block of planes


def applies(op, geom, x, argmax=None) -> bool:
    """Max pooling of plain NumPy float32/float64 with at most 255 offsets per window (uint8 argmax)."""
    return (op == "max" and supported(x) and geom.kernel[0] * geom.kernel[1] <= 255
            and (argmax is None or (type(argmax) is np.ndarray and argmax.dtype == np.uint8)))


def _blocks(in_shape, pads, itemsize):
    """(N*C planes, padded plane size, [(p0, p1), ...] blocks of planes of at most BLOCK_BYTES each: a
    batch below that is one block, run inline, since waking a thread costs more than it saves there)."""
    n, c, h, w = in_shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    return n * c, (hp, wp), batch_chunks(n * c, hp * wp * itemsize, BLOCK_BYTES, min_chunks=1)


def max_forward(x, geom):
    """x: (N, C, H, W) -> (y, argmax uint8), both (N, C, OH, OW). Blocks of planes run on the thread pool."""
    pads, out_size, views = geom.pads, tuple(geom.out_size), list(pool_reference.offsets(geom))
    n, c, h, w = x.shape
    planes, _, blocks = _blocks(x.shape, pads, x.itemsize)
    src = x.reshape(planes, h, w)                                      # (N, C, H, W) -> (N*C, H, W)
    out = np.empty((planes,) + out_size, dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.uint8)
    unpadded = not any(pads)
    pairs = tuple(geom.kernel) == (2, 2) and tuple(geom.dilation) == (1, 1)

    def per_block(p0, p1):
        block = src[p0:p1] if unpadded else padded_buffer("pool_x", src[p0:p1], pads, -np.inf)   # -inf border
        windows = [block[:, rows, cols] for _, rows, cols in views]   # K views (planes, OH, OW)
        y, am = out[p0:p1], argmax[p0:p1]
        if pairs:
            _max_2x2(windows, y, am)
            if np.isnan(y).any():
                nan_blocks.append(p0)
            return
        np.copyto(y, windows[0])
        for window in windows[1:]:
            np.maximum(y, window, out=y)
        if np.isnan(y).any():
            nan_blocks.append(p0)                                      # a NaN: the reference decides ties
            return
        am.fill(255)
        eq = work_buffer("pool_eq", y.shape, bool)
        ix = work_buffer("pool_ix", y.shape, np.uint8)
        for k, window in enumerate(windows):
            np.equal(window, y, out=eq)
            np.subtract(np.uint8(255), np.multiply(eq, np.uint8(255 - k), out=ix), out=ix)   # k, or 255
            np.minimum(am, ix, out=am)

    nan_blocks = []
    run_chunks(blocks, per_block)
    if nan_blocks:
        return pool_reference.max_forward(x, geom)
    shape = (n, c) + out_size
    return out.reshape(shape), argmax.reshape(shape)                   # (N*C, OH, OW) -> (N, C, OH, OW)


def _max_2x2(windows, y, am):
    """A 2 x 2 window's maximum and its first position in row-major order (k = 2 * row + column) from three
    comparisons: the larger of each row's pair (the left one on a tie), then of the two rows (the top one on a
    tie). windows: the views of offsets (0, 0), (0, 1), (1, 0), (1, 1); y, am: the block's outputs."""
    top_left, top_right, bottom_left, bottom_right = windows
    right_top = np.greater(top_right, top_left, out=work_buffer("pool_eq", y.shape, bool))
    right_bottom = np.greater(bottom_right, bottom_left, out=work_buffer("pool_eq2", y.shape, bool))
    top = np.maximum(top_left, top_right, out=y)
    bottom = np.maximum(bottom_left, bottom_right, out=work_buffer("pool_row", y.shape, y.dtype))
    lower = np.greater(bottom, top, out=work_buffer("pool_eq3", y.shape, bool))
    np.maximum(top, bottom, out=y)
    # k = right_top + lower * (2 + right_bottom - right_top), in uint8
    np.add(right_bottom.view(np.uint8), np.uint8(2), out=am)
    am -= right_top.view(np.uint8)
    am *= lower.view(np.uint8)
    am += right_top.view(np.uint8)


def _tiles_input(geom) -> bool:
    """The windows tile the input exactly: kernel == stride, no padding or dilation, sizes divisible."""
    (kh, kw), (oh, ow), (h, w) = geom.kernel, geom.out_size, geom.in_size
    return (tuple(geom.stride) == (kh, kw) and tuple(geom.dilation) == (1, 1) and not any(geom.pads)
            and (oh * kh, ow * kw) == (h, w))


def _max_backward_tiled(grad_out, argmax, in_shape, geom):
    """Windows that tile the input: every input element belongs to one window, so each offset's share is
    written, not added (no zero fill, no read-back). dx viewed as (N*C, OH, kh, OW, kw)."""
    n, c, h, w = in_shape
    (kh, kw), (oh, ow) = geom.kernel, geom.out_size
    dx = np.empty(in_shape, dtype=grad_out.dtype)
    tiles = dx.reshape(n * c, oh, kh, ow, kw)                          # (N, C, H, W) -> (N*C, OH, kh, OW, kw)
    dy = grad_out.reshape(n * c, oh, ow)                               # (N, C, OH, OW) -> (N*C, OH, OW)
    am = argmax.reshape(dy.shape)
    mask = np.empty(dy.shape, dtype=bool)
    for i in range(kh):
        for j in range(kw):
            np.equal(am, i * kw + j, out=mask)
            tiles[:, :, i, :, j] = select(mask, dy)
    return dx


def max_backward(grad_out, argmax, in_shape, geom):
    """(N, C, H, W) gradient: each dy goes to the input position its window took the maximum from."""
    if _tiles_input(geom):
        return _max_backward_tiled(grad_out, argmax, in_shape, geom)
    pads, views = geom.pads, list(pool_reference.offsets(geom))
    n, c, h, w = in_shape
    top, _, left, _ = pads
    planes, (hp, wp), blocks = _blocks(in_shape, pads, grad_out.itemsize)
    out_size = tuple(grad_out.shape[2:])
    dy = grad_out.reshape((planes,) + out_size)                       # (N, C, OH, OW) -> (N*C, OH, OW)
    am = argmax.reshape(dy.shape)
    dx = np.empty((planes, h, w), dtype=grad_out.dtype)
    unpadded = (hp, wp) == (h, w)

    def per_block(p0, p1):
        block = dx[p0:p1] if unpadded else work_buffer("pool_dx", (p1 - p0, hp, wp), grad_out.dtype)
        mask = work_buffer("pool_eq", (p1 - p0,) + out_size, bool)
        block.fill(0)
        for k, rows, cols in views:
            np.equal(am[p0:p1], k, out=mask)
            target = block[:, rows, cols]
            np.add(target, select(mask, dy[p0:p1]), out=target)
        if not unpadded:
            dx[p0:p1] = block[:, top:top + h, left:left + w]

    run_chunks(blocks, per_block)
    return dx.reshape(in_shape)                                        # (N*C, H, W) -> (N, C, H, W)
