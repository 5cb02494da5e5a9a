"""Few input channels and wide outputs on the CPU: sample-major im2col + a batched GEMM straight into NCHW.

LeNet's first layer (1 channel, 28 wide) or an RGB stem (3 channels, 32 wide): the columns are small
(K = C*kh*kw is 25 or 27) and each window row is a run of OW >= MIN_WIDTH numbers, long enough to copy
well, so the batch-innermost layout of ``cpu_batchlast`` buys nothing and its transposes of the output
and of dy back and forth cost more than the products. Here the samples of a chunk stay outermost
(m samples, K = C*kh*kw, L = OH*OW):

    xpad  = pad(x[chunk])                                  (m, C, Hp, Wp), zero border
    cols  = kh*kw slice copies of xpad                     (m, C, kh, kw, OH, OW) = (m, K, L)
    y     = W (O, K) @ cols (m, K, L)                      (m, O, L), written into the NCHW output
    dW   += sum_n dy[n] (O, L) @ cols[n]^T (L, K)          (O, K) = the weight's own layout
    dx    = col2im(W^T (K, O) @ dy (m, O, L))              kh*kw strided adds into a zeroed padded chunk

These are the reference kernel's own products and its own im2col/col2im (kernels/reference_conv.py,
kernels/im2col.py), run in chunks on the thread pool with per-thread buffers (``cpu_runtime``).
"""
from __future__ import annotations

import numpy as np

from . import compiled
from .cpu_batchlast import KEEP_COLUMNS_MAX, MAX_RUN, MAX_SAMPLE_BYTES, column_bytes
from .cpu_runtime import batch_chunks, column_buffer, keeps_columns, padded_buffer, run_chunks, work_buffer
from .im2col import col2im, fold_size, im2col

MIN_WIDTH = 16      # output columns per window row from which sample-major copies beat batch-innermost ones


def applies(geom) -> bool:
    """Few input channels (kw * C <= MAX_RUN), groups 1, stride 1, outputs at least MIN_WIDTH wide, and one
    sample's float64 columns within MAX_SAMPLE_BYTES."""
    return (geom.groups == 1 and geom.in_channels * geom.kernel[1] <= MAX_RUN and geom.stride == (1, 1)
            and geom.out_size[1] >= MIN_WIDTH and column_bytes(geom, np.float64, 1) <= MAX_SAMPLE_BYTES)


def chunks(geom, dtype):
    """[(n0, n1), ...]: the batch cut so that a chunk's columns fit the runtime's budget."""
    return batch_chunks(geom.batch, column_bytes(geom, dtype, 1))


def _columns(x, geom, saved=None, chunk=None):
    """x: (m, C, H, W) -> columns (m, K, L), rows in the weight's (c, i, j) order: the thread's work buffer,
    or a fresh array kept in ``saved`` for backward."""
    m, c = x.shape[:2]
    kh, kw = geom.kernel
    oh, ow = geom.out_size
    xpad = padded_buffer("sm_x", x, geom.pads)                         # (m, C, Hp, Wp), zero border
    cols = column_buffer(saved, chunk, (m, c, kh, kw, oh, ow), x.dtype, "sm_cols")
    im2col(xpad, geom.kernel, geom.stride, (0, 0, 0, 0), geom.dilation, out=cols)   # the reference's unfold
    return cols.reshape(m, c * kh * kw, oh * ow)                      # (m, C, kh, kw, OH, OW) -> (m, K, L)


def _fold(dcols, geom, dx):
    """dx (m, C, H, W) = the reference fold of dcols (m, C, kh, kw, OH, OW): compiled plane by plane when it runs (its
    rows of OW >= MIN_WIDTH numbers are long enough for the loop; the unfold's copies stay NumPy's, which the
    compiled loop did not beat on LeNet's first layer)."""
    if compiled.takes(dcols, dx):
        (sh, sw), (dh, dw) = geom.stride, geom.dilation
        plane = work_buffer("sm_plane", fold_size(geom.in_size, geom.kernel, geom.stride, geom.pads, geom.dilation,
                                                  geom.out_size), dx.dtype)
        compiled.conv_loops().col2im_nchw(dcols, dx, plane, sh, sw, dh, dw, geom.pads[0], geom.pads[2])
    else:
        dx[...] = col2im(dcols, geom.in_size, geom.stride, geom.pads, geom.dilation)   # the reference's fold


def conv_forward(x, weight, bias, geom, saved=None):
    """y = conv(x, W) + b; x: (N, C, H, W), weight: (O, C, kh, kw), bias: (O,) | None -> (N, O, OH, OW).

    saved: a dict that keeps the columns for ``conv_backward`` when the batch's fit KEEP_COLUMNS_MAX.
    """
    o = geom.out_channels
    saved = keeps_columns(saved, column_bytes(geom, x.dtype, geom.batch), KEEP_COLUMNS_MAX)
    length = geom.out_size[0] * geom.out_size[1]
    wmat = np.ascontiguousarray(weight).reshape(o, -1)                # (O, C, kh, kw) -> (O, K)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    bias2 = None if bias is None else bias.reshape(o, 1)              # (O,) -> (O, 1)

    def per_chunk(c0, c1):
        y = out[c0:c1].reshape(c1 - c0, o, length)                    # (m, O, OH, OW) -> (m, O, L)
        np.matmul(wmat, _columns(x[c0:c1], geom, saved, ("samplemajor", c0, c1)), out=y)
        if bias2 is not None:
            y += bias2

    run_chunks(chunks(geom, x.dtype), per_chunk)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx (N, C, H, W) | None, dW (O, C, kh, kw) | None, db (O,) | None) of conv_forward (columns from
    ``saved`` when forward kept them, else recomputed)."""
    saved, dtype = saved or {}, grad_out.dtype
    c, o, (kh, kw) = geom.in_channels, geom.out_channels, geom.kernel
    oh, ow = geom.out_size
    k, length = c * kh * kw, oh * ow
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    wmat_t = np.ascontiguousarray(weight).reshape(o, k).T if need_input else None   # (O, K) -> (K, O)

    def per_chunk(c0, c1):
        m = c1 - c0
        dy = grad_out[c0:c1].reshape(m, o, length)                    # (m, O, OH, OW) -> (m, O, L)
        db_part = dy.sum(axis=2).sum(axis=0) if need_bias else None
        dw_part = None
        if need_weight:
            cols = saved.get(("samplemajor", c0, c1))
            if cols is None:
                cols = _columns(x[c0:c1], geom)
            cols = cols.reshape(m, k, length)                         # (m, C, kh, kw, OH, OW) -> (m, K, L)
            dw_part = np.matmul(dy, cols.transpose(0, 2, 1)).sum(axis=0)   # (m, O, K) -> (O, K), this chunk's own
        if need_input:
            dcols = np.matmul(wmat_t, dy, out=work_buffer("sm_dcols", (m, k, length), dtype))   # (m, K, L)
            dcols = dcols.reshape(m, c, kh, kw, oh, ow)               # (m, K, L) -> (m, C, kh, kw, OH, OW)
            _fold(dcols, geom, dx[c0:c1])
        return dw_part, db_part

    grad_w, grad_b = run_chunks(chunks(geom, dtype), per_chunk)
    if need_weight:
        grad_w = grad_w.reshape(geom.weight_shape)                    # (O, K) -> (O, C, kh, kw)
    return dx, grad_w, grad_b
