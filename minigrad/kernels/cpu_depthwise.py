"""Depthwise convolutions (groups == in_channels == out_channels) on the CPU: the kernel that kernels/dispatch.py
calls, and which of its three paths serves a geometry.

Each channel has its own kh x kw filter, so the grouped im2col + GEMM would be C tiny products with K = kh*kw.
Three paths instead, chosen by the plane sizes only (never the thread count):

dense (cpu_depthwise_dense.py; output planes of at most DENSE_MAX_OUT numbers whose input planes have at most
    DENSE_MAX_IN): per channel, one dense (OH*OW, H*W) matrix holding its weights; the forward, dx and dW are
    batched GEMMs over the channels.
rows (cpu_depthwise_rows.py; a band of kin = (kh-1)*dh + 1 input rows, kin*W numbers, of at most
    ROWS_MAX_K*sh*sw): every output row is one GEMM row over its band of input rows, every dx row one over its
    band of dy rows, and dW one GEMM per kernel row (or one dot product per tap) over all rows of the batch.
taps (cpu_depthwise_taps.py; wider planes): a loop over the kh*kw taps, each one multiply-add, dot product or
    scatter-add over a contiguous run of the stride-phase split input.

The GEMM paths do 2*H*W (dense) or 2*kin*W (rows) multiply-adds per output and product instead of kh*kw, but at
GEMM speed instead of a memory pass per tap (benchmarks/depthwise_ab.py times them against PyTorch).

Non-finite numbers. The GEMM paths' products include the zeros around each window, and inf * 0 is nan: one inf
or nan would make non-finite a whole plane of y or dx (dense), or a whole output row of every band that holds it
(rows), and dW sums whose windows never read it, where PyTorch and the other kernels give non-finite numbers
only in the windows that hold it. So a GEMM path hands back any result that one may have reached, and the taps
path, which keeps every inf and nan in its own windows, computes it instead:

    forward   rows: each block of x is checked in its padded copy (contiguous, in cache); dense: the first
              number of each plane of y (an inf or nan makes the whole plane non-finite)
    backward  dW is checked (C*kh*kw numbers): not all finite, dx and dW are redone. When dW is asked for and
              every output's window holds an input number (windows_read_input), an inf or nan of dy makes dW
              non-finite too, so this check stands for dy's; otherwise each block of dy is checked
    weights   not all finite: the taps path for the call

A check of a block is one read of its numbers (kernels/cpu_runtime.all_finite: a dot product with zeros, no
temporary), and finite numbers (with finite results) never take the taps path.

Threads take whole channel blocks (kernels/cpu_runtime.run_chunks); a block loops over its samples in a fixed
order and owns its channels' dW and db, so the sums never depend on the thread count.
"""
from __future__ import annotations

import functools

import numpy as np

from . import cpu_depthwise_dense, cpu_depthwise_rows, cpu_depthwise_taps

DENSE_MAX_OUT = 64      # output planes of at most this many numbers (8 x 8) take the dense-matrix path,
DENSE_MAX_IN = 1024     # when their input planes have at most this many
ROWS_MAX_K = 128        # the row-band GEMM path when a band of input rows (kin*W numbers) is at most this * sh*sw


def applies(geom) -> bool:
    """groups == in_channels == out_channels > 1 (one filter per channel)."""
    return geom.groups == geom.in_channels == geom.out_channels and geom.groups > 1


def dense_applies(geom) -> bool:
    """Small output planes: the dense product costs 2*H*W multiply-adds per output, the row bands 2*kin*W in
    smaller GEMMs (measured here: dense ahead up to 8 x 8 outputs, even at 10 x 10, behind at 12 x 12)."""
    return geom.out_size[0] * geom.out_size[1] <= DENSE_MAX_OUT and geom.in_size[0] * geom.in_size[1] <= DENSE_MAX_IN


def rows_applies(geom) -> bool:
    """Rows of moderate width: a band of input rows (kin*W numbers) of at most ROWS_MAX_K*sh*sw (a MobileNet's
    28 x 28 and 14 x 14 planes, and up to 42 wide at stride 1, 170 at stride 2)."""
    (kh, _), (sh, sw), (dh, _) = geom.kernel, geom.stride, geom.dilation
    return ((kh - 1) * dh + 1) * geom.in_size[1] <= ROWS_MAX_K * sh * sw


def path(geom) -> str:
    """"dense", "rows" or "taps": the path that serves this geometry when its numbers are finite."""
    if dense_applies(geom):
        return "dense"
    return "rows" if rows_applies(geom) else "taps"


_GEMM_PATHS = {"dense": cpu_depthwise_dense, "rows": cpu_depthwise_rows}


def chunks(geom, dtype):
    """[(n0, n1), ...]: the taps path's sample blocks (the batch cut so that one channel's split planes fit the
    block budget)."""
    return cpu_depthwise_taps.plan(geom, dtype)[0]


def conv_forward(x, weight, bias, geom, saved=None):
    """x (N, C, H, W), weight (C, 1, kh, kw), bias (C,) or None -> y (N, C, OH, OW)."""
    wt = weight.reshape(geom.in_channels, -1)                        # (C, 1, kh, kw) -> (C, kh*kw)
    gemm = _GEMM_PATHS.get(path(geom))
    if gemm is not None and np.isfinite(wt).all():
        out = gemm.forward(x, wt, bias, geom)
        if out is not None:
            return out
    return cpu_depthwise_taps.forward(x, wt, bias, geom)


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx (N, C, H, W), dW (C, 1, kh, kw), db (C,)) of the depthwise convolution; each None when not needed."""
    c, (kh, kw) = geom.in_channels, geom.kernel
    gemm = _GEMM_PATHS.get(path(geom))
    wt = weight.reshape(c, -1) if need_input else None               # (C, 1, kh, kw) -> (C, kh*kw); None: not given
    if gemm is None or (need_input and not np.isfinite(wt).all()):
        return cpu_depthwise_taps.backward(x, weight, grad_out, geom, need_input, need_weight, need_bias)
    check_dy = not (need_weight and windows_read_input(geom))     # else an inf or nan of dy shows in dW
    dx, dw, db = gemm.backward(x, wt, grad_out, geom, need_input, need_weight, need_bias, check_dy)
    if dw is not None:
        dw = dw.reshape(c, 1, kh, kw)                                 # (C, kh*kw) -> (C, 1, kh, kw)
    redo = (need_input and dx is None, need_weight and dw is None, need_bias and db is None)
    if any(redo):                     # an inf or nan reached a product: the taps keep it in its own windows
        again = cpu_depthwise_taps.backward(x, weight, grad_out, geom, *redo)
        dx, dw, db = (new if redone else old for new, old, redone in zip(again, (dx, dw, db), redo))
    return dx, dw, db


@functools.lru_cache(maxsize=64)
def windows_read_input(geom) -> bool:
    """Whether every output's window holds at least one input number (not only padding). Then an inf or nan of dy
    makes dW non-finite on both GEMM paths: it multiplies a whole input row (rows) or its sample's whole plane
    (dense), and at least one of those products is summed into dW."""
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
    (h, w), (oh, ow), top, left = geom.in_size, geom.out_size, geom.pads[0], geom.pads[2]
    rows = all(any(0 <= r * sh - top + i * dh < h for i in range(kh)) for r in range(oh))
    return rows and all(any(0 <= s * sw - left + j * dw < w for j in range(kw)) for s in range(ow))
