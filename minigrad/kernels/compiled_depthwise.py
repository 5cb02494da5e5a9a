"""Depthwise convolutions (groups == in_channels == out_channels) at stride 1 by the compiled loops
(``numba_conv``), when they run (``compiled.active()``): a table entry of kernels/dispatch.py ahead of
``cpu_depthwise``, with its signatures.

Plane by plane (plane p of the (N*C, H, W) batch has channel p % C) over a zero-padded copy in cache, each kernel
tap is one long vectorised loop over the output rows laid end to end (numba_conv.depthwise_*): y += w[i, j] * x,
dx += w[i, j] * dy, and dW[i, j] = the dot product of dy with the tap's view of x; dW and db are summed over the
samples in sample order. Blocks of planes run on the thread pool, cut by size only: the same bits on any thread
count.

Non-finite numbers: finite weights times the zero border add exact zeros, so y and dx hold an inf or nan in its own
windows only, as in PyTorch. Weights that are not all finite, and a dW or db that is not finite (a non-finite dy met
the border: inf * 0), hand the call to ``cpu_depthwise``, which skips the padding.
"""
from __future__ import annotations

import numpy as np

from . import compiled, cpu_depthwise
from .cpu_runtime import run_chunks, work_buffer

__all__ = ["applies", "conv_forward", "conv_backward"]

BLOCK_BYTES = 1 << 20       # input bytes per block of planes (the whole batch inline below that)


MIN_WIDTH = 14              # output rows at least this wide: narrower planes are faster on cpu_depthwise's GEMM
                            # paths (docs/benchmarks.md, the compiled kernels' depthwise rows)


def applies(geom) -> bool:
    """A depthwise geometry at stride 1 with output rows at least MIN_WIDTH wide and a non-empty batch, when the
    compiled kernels run. (At stride 2 the loops would read every other number, which LLVM does not vectorise:
    cpu_depthwise is faster there.)"""
    return (cpu_depthwise.applies(geom) and geom.stride == (1, 1) and geom.out_size[1] >= MIN_WIDTH
            and geom.batch > 0 and compiled.active())


def _scratch(geom, dtype):
    """This thread's padded plane (Hp, Wp) and wide rows (OH*Wp) buffers."""
    (h, w), (top, bottom, left, right) = geom.in_size, geom.pads
    wp = w + left + right
    return (work_buffer("dw_pad", (h + top + bottom, wp), dtype),
            work_buffer("dw_wide", (geom.out_size[0] * wp,), dtype))


def _options(geom):
    return geom.dilation[0], geom.dilation[1], geom.pads[0], geom.pads[2]


def conv_forward(x, weight, bias, geom, saved=None):
    """x (N, C, H, W), weight (C, 1, kh, kw), bias (C,) or None -> y (N, C, OH, OW)."""
    if not np.isfinite(weight).all():
        return cpu_depthwise.conv_forward(x, weight, bias, geom, saved)
    n, c, h, w = x.shape
    oh, ow = geom.out_size
    planes = n * c
    src = np.ascontiguousarray(x).reshape(planes, h, w)               # (N, C, H, W) -> (N*C, H, W)
    wt = np.ascontiguousarray(weight).reshape(c, *geom.kernel)        # (C, 1, kh, kw) -> (C, kh, kw)
    b = np.zeros(0, x.dtype) if bias is None else np.ascontiguousarray(bias)
    out = np.empty((planes, oh, ow), dtype=x.dtype)
    loop, options = compiled.conv_loops().depthwise_forward, _options(geom)
    run_chunks(compiled.blocks(planes, h * w * x.itemsize, BLOCK_BYTES),
               lambda p0, p1: loop(src[p0:p1], wt, b, out[p0:p1], *_scratch(geom, x.dtype), p0, *options))
    return out.reshape(n, c, oh, ow)                                  # (N*C, OH, OW) -> (N, C, OH, OW)


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx (N, C, H, W), dW (C, 1, kh, kw), db (C,)) of the depthwise convolution; each None when not needed."""
    if need_input and not np.isfinite(weight).all():
        return cpu_depthwise.conv_backward(x, weight, grad_out, geom, need_input, need_weight, need_bias, saved)
    n, c, h, w = geom.in_shape
    (kh, kw), (oh, ow) = geom.kernel, geom.out_size
    planes = n * c
    dtype = grad_out.dtype
    dy = np.ascontiguousarray(grad_out).reshape(planes, oh, ow)        # (N, C, OH, OW) -> (N*C, OH, OW)
    loops, options = compiled.conv_loops(), _options(geom)
    dx = grad_w = grad_b = None
    if need_input:
        wt = np.ascontiguousarray(weight).reshape(c, kh, kw)            # (C, 1, kh, kw) -> (C, kh, kw)
        dx = np.empty((planes, h, w), dtype=dtype)
    params = need_weight or need_bias
    if params:
        src = np.ascontiguousarray(x).reshape(planes, h, w)           # (N, C, H, W) -> (N*C, H, W)
        part_w = np.empty((planes, kh, kw), dtype=dtype)
        part_b = np.empty(planes, dtype=dtype)

    def per_block(p0, p1):
        pad, wide = _scratch(geom, dtype)
        if need_input:
            loops.depthwise_input_grad(dy[p0:p1], wt, dx[p0:p1], pad, wide, p0, *options)
        if params:
            loops.depthwise_param_grads(src[p0:p1], dy[p0:p1], part_w[p0:p1], part_b[p0:p1], pad, wide, *options)

    run_chunks(compiled.blocks(planes, h * w * dtype.itemsize, BLOCK_BYTES), per_block)
    if params and not (np.isfinite(part_w).all() and np.isfinite(part_b).all()):   # inf * 0 at the border
        return cpu_depthwise.conv_backward(x, weight, grad_out, geom, need_input, need_weight, need_bias, saved)
    if need_input:
        dx = dx.reshape(geom.in_shape)                                # (N*C, H, W) -> (N, C, H, W)
    if need_weight:
        grad_w = _sum_samples(part_w.reshape(n, c * kh * kw)).reshape(c, 1, kh, kw)   # (N, C*kh*kw) -> (C, 1, kh, kw)
    if need_bias:
        grad_b = _sum_samples(part_b.reshape(n, c))                   # (N*C,) -> (N, C) -> (C,)
    return dx, grad_w, grad_b


def _sum_samples(parts):
    """parts: (N, F) -> (F,): ((p0 + p1) + p2) + ..., in sample order."""
    total = parts[0].copy()
    for row in parts[1:]:
        total += row
    return total
