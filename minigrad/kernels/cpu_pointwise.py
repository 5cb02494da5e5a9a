"""1x1 convolutions on the CPU: no im2col at all, one GEMM per sample in NCHW.

A 1x1 convolution (groups=1, no padding) is a matrix multiply per sample, with stride as slicing:

    xs    = x[:, :, ::sh, ::sw]                       (N, C, OH, OW) -> (N, C, L)
    y[n]  = W (O, C) @ xs[n] (C, L) + b               (N, O, L) -> (N, O, OH, OW)
    dW    = sum_n dy[n] (O, L) @ xs[n]^T (L, C)       (O, C) -> (O, C, 1, 1)
    dx[n] = W^T (C, O) @ dy[n] (O, L)                 written back at the strided positions
    db    = dy summed over (N, L)

The batch is split over the thread pool (single-threaded BLAS per thread), in chunks of a few MiB.
"""
from __future__ import annotations

import numpy as np

from .cpu_conv import COLUMN_BUDGET, _parallel, sum_pieces, work_buffer


def applies(geom) -> bool:
    return geom.kernel == (1, 1) and geom.groups == 1 and not any(geom.pads)


def _samples_per_chunk(geom, itemsize):
    oh, ow = geom.out_size
    per_sample = oh * ow * max(geom.in_channels, geom.out_channels) * itemsize
    return max(1, COLUMN_BUDGET // max(per_sample, 1))


def _strided_input(x, geom, c0, c1):
    """x[c0:c1] at the stride positions as a contiguous (g, C, L) array (a view when stride is 1)."""
    sh, sw = geom.stride
    g, c = c1 - c0, geom.in_channels
    oh, ow = geom.out_size
    if (sh, sw) == (1, 1):
        return x[c0:c1].reshape(g, c, oh * ow)                       # (g, C, H, W) -> (g, C, L)
    xs = work_buffer("pw_x", (g, c, oh, ow), x.dtype)
    xs[...] = x[c0:c1, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw]
    return xs.reshape(g, c, oh * ow)                                 # (g, C, OH, OW) -> (g, C, L)


def conv_forward(x, weight, bias, geom):
    """x: (N, C, H, W), weight: (O, C, 1, 1) -> (N, O, OH, OW)."""
    n, o = geom.batch, geom.out_channels
    oh, ow = geom.out_size
    w2 = weight.reshape(o, geom.in_channels)                         # (O, C, 1, 1) -> (O, C)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    step = _samples_per_chunk(geom, x.itemsize)
    b2 = None if bias is None else bias.reshape(o, 1)                 # (O,) -> (O, 1)

    def piece(n0, n1):
        for c0 in range(n0, n1, step):
            c1 = min(c0 + step, n1)
            y = out[c0:c1].reshape(c1 - c0, o, oh * ow)             # (g, O, OH, OW) -> (g, O, L)
            np.matmul(w2, _strided_input(x, geom, c0, c1), out=y)
            if b2 is not None:
                y += b2

    _parallel(n, piece)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True):
    """(dx, dW, db) of the 1x1 convolution; each is None when not needed."""
    n, c, o = geom.batch, geom.in_channels, geom.out_channels
    oh, ow = geom.out_size
    h, w = geom.in_size
    sh, sw = geom.stride
    dtype = grad_out.dtype
    step = _samples_per_chunk(geom, grad_out.itemsize)
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    wt = weight.reshape(o, c).T if need_input else None               # (O, C, 1, 1) -> (C, O)

    def piece(n0, n1):
        dw_part = np.zeros((o, c), dtype=dtype) if need_weight else None
        db_part = np.zeros(o, dtype=dtype) if need_bias else None
        for c0 in range(n0, n1, step):
            c1 = min(c0 + step, n1)
            g = c1 - c0
            dy = grad_out[c0:c1].reshape(g, o, oh * ow)              # (g, O, OH, OW) -> (g, O, L)
            if need_bias:
                db_part += dy.sum(axis=2).sum(axis=0)
            if need_weight:
                xs = _strided_input(x, geom, c0, c1)
                tmp = np.matmul(dy, xs.transpose(0, 2, 1), out=work_buffer("pw_dw", (g, o, c), dtype))
                dw_part += tmp.sum(axis=0)
            if need_input:
                if (sh, sw) == (1, 1):
                    np.matmul(wt, dy, out=dx[c0:c1].reshape(g, c, h * w))
                else:
                    res = np.matmul(wt, dy, out=work_buffer("pw_dx", (g, c, oh * ow), dtype))
                    dst = dx[c0:c1]
                    dst[...] = 0
                    dst[:, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw] = res.reshape(g, c, oh, ow)
        return dw_part, db_part

    grad_w, grad_b = sum_pieces(_parallel(n, piece))
    if need_weight:
        grad_w = grad_w.reshape(o, c, 1, 1)
    return dx, grad_w, grad_b
