"""Convolutions with few input channels on the CPU: batch-innermost im2col + GEMM.

Channels-last columns (``cpu_conv``) copy runs of kw*C contiguous numbers; with few input channels
(LeNet's 1 and 6, an RGB stem's 3) those runs are 3-30 numbers long and the copies, not the GEMM,
take the time. Here the samples of a chunk go innermost instead (m samples, K = C*kh*kw, M = OH*OW*m):

    xt    = pad(x[chunk]) as (C, Hp, Wp, m)                         one transposing copy
    cols  = (C, kh, kw, OH, OW, m), cols[c, i, j, oh, ow] = xt[c, oh*sh + i*dh, ow*sw + j*dw]
            kh*kw slice copies, each over all C at once, in runs of OW*m (stride 1) or m numbers
    y     = W (O, K) @ cols (K, M)                                  (O, OH, OW, m) -> (m, O, OH, OW)
    dW   += dyt (O, M) @ cols^T (M, K)                              dyt = dy[chunk] as (O, OH, OW, m)
    dx    = col2im(W^T (K, O) @ dyt (O, M)): kh*kw strided adds of (C, OH, OW, m) blocks into
            a zeroed (C, Hp, Wp, m) buffer, then the interior back to (m, C, H, W)

The rows of the columns come in (c, i, j) order, the weight's own memory order, so W is a
(O, K) view and dW comes out in the weight's layout: no weight transposes. The scatter for dx adds
whole blocks with long runs (no np.add.at). Chunks of m samples keep the columns within the
runtime's budget and run on its thread pool (``cpu_runtime``); work buffers are per thread and reused.
"""
from __future__ import annotations

import numpy as np

from . import compiled
from .cpu_runtime import (batch_chunks, column_buffer, keeps_columns, matmul_long, matmul_wide, run_chunks,
                          work_buffer)

MAX_RUN = 32             # applies when channels-last runs (kw * C numbers) would be at most this long
KEEP_COLUMNS_MAX = 32 << 20  # forward keeps the batch's columns up to this size: few-channel columns are
                             # many small copies, dearer to redo than cpu_conv's (docs/benchmarks.md)
MAX_SAMPLE_BYTES = 4 << 20   # ... and one sample's float64 columns fit here (no row blocks: big images
                             # with few channels, e.g. a 224x224 stem, go to cpu_conv)


def applies(geom) -> bool:
    """Few input channels (kw * C <= MAX_RUN), groups 1, and one sample's columns within MAX_SAMPLE_BYTES."""
    return (geom.groups == 1 and geom.in_channels * geom.kernel[1] <= MAX_RUN
            and column_bytes(geom, np.float64, 1) <= MAX_SAMPLE_BYTES)


def column_bytes(geom, dtype, samples) -> int:
    """Bytes of the (C*kh*kw, OH*OW) columns of `samples` samples (this kernel's and cpu_samplemajor's)."""
    kh, kw = geom.kernel
    return geom.in_channels * kh * kw * geom.out_size[0] * geom.out_size[1] * samples * np.dtype(dtype).itemsize


def chunks(geom, dtype):
    """[(n0, n1), ...]: the batch cut so that a chunk's columns fit the runtime's budget."""
    return batch_chunks(geom.batch, column_bytes(geom, dtype, 1))


def _padded_batch_last(x, pads, name):
    """x: (m, C, H, W) -> per-thread buffer (C, H+pt+pb, W+pl+pr, m) with a zero border."""
    m, c, h, w = x.shape
    top, bottom, left, right = pads
    buf = work_buffer(name, (c, h + top + bottom, w + left + right, m), x.dtype)
    buf[:, :top] = 0
    buf[:, top + h:] = 0
    buf[:, top:top + h, :left] = 0
    buf[:, top:top + h, left + w:] = 0
    buf[:, top:top + h, left:left + w] = x.transpose(1, 2, 3, 0)      # (m, C, H, W) -> (C, H, W, m)
    return buf


def _window(buf, geom, i, j):
    """The (C, OH, OW, m) view of buf (C, Hp, Wp, m) that kernel tap (i, j) meets."""
    oh, ow = geom.out_size
    sh, sw = geom.stride
    r, q = i * geom.dilation[0], j * geom.dilation[1]
    return buf[:, r:r + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw]


def _columns(xt, geom, saved=None, chunk=None):
    """xt: (C, Hp, Wp, m) -> columns (K, M) in (c, i, j) x (oh, ow, n) order: the thread's work buffer, or
    a fresh array kept in ``saved`` for backward."""
    c, _, _, m = xt.shape
    kh, kw = geom.kernel
    oh, ow = geom.out_size
    cols = column_buffer(saved, chunk, (c, kh, kw, oh, ow, m), xt.dtype, "bl_cols")
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = _window(xt, geom, i, j)
    return cols.reshape(c * kh * kw, oh * ow * m)                       # (C, kh, kw, OH, OW, m) -> (K, M)


def _weight_matrix(weight):
    o = weight.shape[0]
    return np.ascontiguousarray(weight).reshape(o, -1)                 # (O, C, kh, kw) -> (O, K), a view


def conv_forward(x, weight, bias, geom, saved=None):
    """y = conv(x, W) + b; x: (N, C, H, W), weight: (O, C, kh, kw), bias: (O,) | None -> (N, O, OH, OW).

    saved: a dict that keeps the columns for ``conv_backward`` when the batch's fit KEEP_COLUMNS_MAX.
    """
    o = geom.out_channels
    saved = keeps_columns(saved, column_bytes(geom, x.dtype, geom.batch), KEEP_COLUMNS_MAX)
    oh, ow = geom.out_size
    wmat = _weight_matrix(weight)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    bias4 = None if bias is None else bias.reshape(1, o, 1, 1)          # (O,) -> (1, O, 1, 1)

    def per_chunk(c0, c1):
        m = c1 - c0
        cols = _columns(_padded_batch_last(x[c0:c1], geom.pads, "bl_x"), geom, saved, ("batchlast", c0, c1))
        y = matmul_wide(wmat, cols, work_buffer("bl_y", (o, oh * ow * m), x.dtype))
        y = y.reshape(o, oh, ow, m).transpose(3, 0, 1, 2)               # (O, M) -> (m, O, OH, OW)
        if bias4 is None:
            out[c0:c1] = y
        else:
            np.add(y, bias4, out=out[c0:c1])

    run_chunks(chunks(geom, x.dtype), per_chunk)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx (N, C, H, W) | None, dW (O, C, kh, kw) | None, db (O,) | None) of conv_forward (columns from
    ``saved`` when forward kept them, else recomputed)."""
    saved = saved or {}
    dtype = grad_out.dtype
    c, o = geom.in_channels, geom.out_channels
    kh, kw = geom.kernel
    h, w = geom.in_size
    oh, ow = geom.out_size
    top, bottom, left, right = geom.pads
    k = c * kh * kw
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    wmat_t = _weight_matrix(weight).T if need_input else None           # (O, K) -> (K, O)

    def per_chunk(c0, c1):
        m = c1 - c0
        M = oh * ow * m
        dyt = work_buffer("bl_dy", (o, oh, ow, m), dtype)
        dyt[...] = grad_out[c0:c1].transpose(1, 2, 3, 0)               # (m, O, OH, OW) -> (O, OH, OW, m)
        dym = dyt.reshape(o, M)                                         # (O, OH, OW, m) -> (O, M)
        db_part = dym.sum(axis=1) if need_bias else None
        dw_part = None
        if need_weight:
            cols = saved.get(("batchlast", c0, c1))
            if cols is None:
                cols = _columns(_padded_batch_last(x[c0:c1], geom.pads, "bl_x"), geom)
            cols = cols.reshape(k, M)                                   # (C, kh, kw, OH, OW, m) -> (K, M)
            dw_part = matmul_long(cols, dym).T                          # (K, O) -> (O, K), this chunk's own
        if need_input:
            dcols = matmul_wide(wmat_t, dym, work_buffer("bl_dcols", (k, M), dtype))
            dcols = dcols.reshape(c, kh, kw, oh, ow, m)                 # (K, M) -> (C, kh, kw, OH, OW, m)
            if compiled.takes(dcols, dx):                               # channel by channel in cache, compiled
                (sh, sw), (dh, dw) = geom.stride, geom.dilation
                compiled.conv_loops().col2im_batch_last(
                    dcols, dx[c0:c1], work_buffer("bl_plane", (h + top + bottom, w + left + right, m), dtype),
                    sh, sw, dh, dw, top, left)
                return dw_part, db_part
            dxt = work_buffer("bl_dx", (c, h + top + bottom, w + left + right, m), dtype)
            dxt[...] = 0
            for i in range(kh):
                for j in range(kw):
                    window = _window(dxt, geom, i, j)
                    np.add(window, dcols[:, i, j], out=window)
            # (C, H, W, m) interior -> (m, C, H, W)
            dx[c0:c1] = dxt[:, top:top + h, left:left + w].transpose(3, 0, 1, 2)
        return dw_part, db_part

    grad_w, grad_b = run_chunks(chunks(geom, dtype), per_chunk)
    if need_weight:
        grad_w = grad_w.reshape(geom.weight_shape)                      # (O, K) -> (O, C, kh, kw)
    return dx, grad_w, grad_b
