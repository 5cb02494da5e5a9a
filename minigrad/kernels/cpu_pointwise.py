"""1x1 convolutions on the CPU: no im2col at all, one GEMM per sample in NCHW.

A 1x1 convolution (groups=1, no padding) is a matrix multiply per sample, with stride as slicing:

    xs    = x[:, :, ::sh, ::sw]                       (N, C, OH, OW) -> (N, C, L)
    y[n]  = W (O, C) @ xs[n] (C, L) + b               (N, O, L) -> (N, O, OH, OW)
    dW    = sum_n dy[n] (O, L) @ xs[n]^T (L, C)       (O, C) -> (O, C, 1, 1)
    dx[n] = W^T (C, O) @ dy[n] (O, L)                 written back at the strided positions
    db    = dy summed over (N, L)

The batch runs in chunks of a few MiB on the thread pool (``cpu_runtime``, single-threaded BLAS per thread).
"""
from __future__ import annotations

import numpy as np

from .cpu_runtime import batch_chunks, run_chunks, work_buffer


def applies(geom) -> bool:
    """1x1 kernel, groups 1, no padding."""
    return geom.kernel == (1, 1) and geom.groups == 1 and not any(geom.pads)


def chunks(geom, dtype):
    """[(n0, n1), ...]: the batch cut so that a chunk's (strided) input or output fits the budget."""
    oh, ow = geom.out_size
    per_sample = oh * ow * max(geom.in_channels, geom.out_channels) * np.dtype(dtype).itemsize
    return batch_chunks(geom.batch, per_sample)


def _strided_input(x, geom, c0, c1):
    """x[c0:c1] at the stride positions as a contiguous (m, C, L) array (a view when stride is 1)."""
    sh, sw = geom.stride
    m, c = c1 - c0, geom.in_channels
    oh, ow = geom.out_size
    if (sh, sw) == (1, 1):
        return x[c0:c1].reshape(m, c, oh * ow)                       # (m, C, H, W) -> (m, C, L)
    xs = work_buffer("pw_x", (m, c, oh, ow), x.dtype)
    xs[...] = x[c0:c1, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw]
    return xs.reshape(m, c, oh * ow)                                 # (m, C, OH, OW) -> (m, C, L)


def conv_forward(x, weight, bias, geom, saved=None):
    """x: (N, C, H, W), weight: (O, C, 1, 1) -> (N, O, OH, OW)."""
    o = geom.out_channels
    oh, ow = geom.out_size
    w2 = weight.reshape(o, geom.in_channels)                         # (O, C, 1, 1) -> (O, C)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    b2 = None if bias is None else bias.reshape(o, 1)                 # (O,) -> (O, 1)

    def per_chunk(c0, c1):
        y = out[c0:c1].reshape(c1 - c0, o, oh * ow)                 # (m, O, OH, OW) -> (m, O, L)
        np.matmul(w2, _strided_input(x, geom, c0, c1), out=y)
        if b2 is not None:
            y += b2

    run_chunks(chunks(geom, x.dtype), per_chunk)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx, dW, db) of the 1x1 convolution; each is None when not needed."""
    c, o = geom.in_channels, geom.out_channels
    oh, ow = geom.out_size
    h, w = geom.in_size
    sh, sw = geom.stride
    dtype = grad_out.dtype
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    wt = weight.reshape(o, c).T if need_input else None               # (O, C, 1, 1) -> (C, O)

    def per_chunk(c0, c1):
        m = c1 - c0
        dy = grad_out[c0:c1].reshape(m, o, oh * ow)                  # (m, O, OH, OW) -> (m, O, L)
        db_part = dy.sum(axis=2).sum(axis=0) if need_bias else None
        dw_part = None
        if need_weight:
            xs = _strided_input(x, geom, c0, c1)
            tmp = np.matmul(dy, xs.transpose(0, 2, 1), out=work_buffer("pw_dw", (m, o, c), dtype))
            dw_part = tmp.sum(axis=0)                                 # (m, O, C) -> (O, C), this chunk's own
        if need_input:
            if (sh, sw) == (1, 1):
                np.matmul(wt, dy, out=dx[c0:c1].reshape(m, c, h * w))
            else:
                res = np.matmul(wt, dy, out=work_buffer("pw_dx", (m, c, oh * ow), dtype))
                dst = dx[c0:c1]
                dst[...] = 0
                dst[:, :, :sh * (oh - 1) + 1:sh, :sw * (ow - 1) + 1:sw] = res.reshape(m, c, oh, ow)
        return dw_part, db_part

    grad_w, grad_b = run_chunks(chunks(geom, dtype), per_chunk)
    if need_weight:
        grad_w = grad_w.reshape(o, c, 1, 1)
    return dx, grad_w, grad_b
