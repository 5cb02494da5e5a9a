"""Depthwise convolutions, the dense path (small output planes: a MobileNet's 7 x 7 and 4 x 4 stages, 14 x 14 -> 7 x 7).

Each channel's convolution is one dense (OH*OW, H*W) matrix M_c holding its kh*kw weights (zeros elsewhere); the
three products are batched GEMMs over the channels on NCHW's own memory, no copies:

    y_c (N, OH*OW) = x_c (N, H*W) @ M_c^T     dx_c = dy_c @ M_c     dM_c = dy_c^T @ x_c -> dW[c, t]
                                                                    (the sum of dM_c over tap t's places)

2*H*W multiply-adds per output and product instead of kh*kw, at GEMM speed. The products include the zeros
around each window, so an inf or nan of x makes its sample's whole plane of y non-finite (every number of it is
a dot product with the whole plane: the inf times a weight or a zero), and the first number of each plane shows
it: ``forward`` returns None when one is not finite. ``backward`` returns None for every output when asked to
check dy and dy is not all finite, and for dx and dW when dW is not; the caller (kernels/cpu_depthwise.py) then
runs the taps path.
"""
from __future__ import annotations

import functools

import numpy as np

from .cpu_depthwise_taps import block_budget, channel_blocks
from .cpu_runtime import all_finite, run_chunks, work_buffer


class Dense:
    """Where each tap's weight sits in a channel's (OH*OW, H*W) matrix, and the channel blocks (each block's
    matrices about block_budget() bytes)."""

    def __init__(self, geom, dtype):
        (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
        (h, w), (oh, ow), top, left = geom.in_size, geom.out_size, geom.pads[0], geom.pads[2]
        self.hw, self.ohw = h * w, oh * ow
        r, s = np.arange(oh), np.arange(ow)
        self.places = []                                  # per tap: flat places o*H*W + p of its (output, input) pairs
        places_t = []                                     # the same in the transposed (H*W, OH*OW) matrix
        for i in range(kh):
            for j in range(kw):
                y, xs = r * sh - top + i * dh, s * sw - left + j * dw
                inside_y, inside_x = (y >= 0) & (y < h), (xs >= 0) & (xs < w)
                o = (r[inside_y][:, None] * ow + s[inside_x]).ravel()
                p = (y[inside_y][:, None] * w + xs[inside_x]).ravel()
                self.places.append(o * self.hw + p)
                places_t.append(p * self.ohw + o)
        self.all_places = {False: np.concatenate(self.places), True: np.concatenate(places_t)}
        self.all_taps = np.repeat(np.arange(kh * kw), [len(p) for p in self.places])
        matrix = self.ohw * self.hw * np.dtype(dtype).itemsize
        self.channels = channel_blocks(geom.in_channels, max(1, block_budget() // matrix))

    @staticmethod
    def of(geom, dtype):
        """The Dense of a geometry, kept: its index arrays take longer to build than a small layer's products."""
        return _dense_of(geom, np.dtype(dtype), block_budget())

    def matrices(self, wt, transposed=False):
        """wt (cs, kh*kw) -> the thread's work buffer (cs, OH*OW, H*W) of the channels' convolution matrices, or
        (cs, H*W, OH*OW) of their transposes (a GEMM reads a transposed view several times slower)."""
        m = work_buffer("dw_m", (wt.shape[0], self.ohw * self.hw), wt.dtype)
        m[...] = 0
        m[:, self.all_places[transposed]] = wt[:, self.all_taps]
        return m.reshape((wt.shape[0],) + ((self.hw, self.ohw) if transposed else (self.ohw, self.hw)))


@functools.lru_cache(maxsize=64)
def _dense_of(geom, dtype, budget):
    return Dense(geom, dtype)


def planes(a):
    """(N, C, H, W) -> (C, N, H*W), a view when a is C-contiguous (a copy otherwise)."""
    n, c = a.shape[:2]
    return a.reshape(n, c, -1).transpose(1, 0, 2)


def forward(x, wt, bias, geom):
    """x (N, C, H, W), wt (C, kh*kw), bias (C,) or None -> y (N, C, OH, OW); None when an inf or a nan reached a
    product."""
    dense = Dense.of(geom, x.dtype)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    xv, ov = planes(x), planes(out)
    finite = []

    def per_block(c0, c1):
        with np.errstate(invalid="ignore"):           # inf * 0 of the zeros around the windows: redone by the taps
            np.matmul(xv[c0:c1], dense.matrices(wt[c0:c1], transposed=True), out=ov[c0:c1])
        if bias is not None:
            ov[c0:c1] += bias[c0:c1, None, None]
        finite.append(bool(np.isfinite(ov[c0:c1, :, 0]).all()))      # y's first number of each plane

    run_chunks(dense.channels, per_block)
    return out if all(finite) else None


def backward(x, wt, grad_out, geom, need_input, need_weight, need_bias, check_dy=True):
    """(dx (N, C, H, W), dW (C, kh*kw), db (C,)) from x, wt (C, kh*kw) and grad_out (N, C, OH, OW); each None when
    not needed. Every one None when check_dy and dy holds an inf or a nan; dx and dW None when dW is not all finite
    (an inf or nan of x, or one of dy that check_dy left to dW: kernels/cpu_depthwise.py)."""
    dense = Dense.of(geom, grad_out.dtype)
    c, taps = geom.in_channels, len(dense.places)
    dtype = grad_out.dtype
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    dw = np.zeros((c, taps), dtype=dtype) if need_weight else None
    db = np.empty(c, dtype=dtype) if need_bias else None
    dyv = planes(grad_out)
    xv = planes(x) if need_weight else None
    dxv = planes(dx) if need_input else None
    finite_dy = []

    def per_block(c0, c1):
        if check_dy and (need_input or need_weight):
            finite_dy.append(all_finite(dyv[c0:c1]))
            if not finite_dy[-1]:
                return
        with np.errstate(invalid="ignore"):           # inf * 0 of the zeros around the windows: redone by the taps
            if need_input:
                np.matmul(dyv[c0:c1], dense.matrices(wt[c0:c1]), out=dxv[c0:c1])
            if need_weight:
                dm = work_buffer("dw_dm", (c1 - c0, dense.ohw, dense.hw), dtype)
                np.matmul(dyv[c0:c1].transpose(0, 2, 1), xv[c0:c1], out=dm)
                dm = dm.reshape(c1 - c0, -1)
                for t, places in enumerate(dense.places):
                    if len(places):
                        np.sum(dm[:, places], axis=1, out=dw[c0:c1, t])
        if need_bias:
            np.sum(dyv[c0:c1], axis=(1, 2), out=db[c0:c1])

    run_chunks(dense.channels, per_block)
    if not all(finite_dy):
        return None, None, None
    if need_weight and not np.isfinite(dw).all():
        return None, None, db
    return dx, dw, db
