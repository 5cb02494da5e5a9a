"""Fast CPU convolution: chunked channels-last im2col + GEMM, spread over a small thread pool.

Shapes (G groups, Cg = C/G, Og = O/G, K = kh*kw*Cg; a chunk holds m samples and `rows` output rows):

    xpad  = pad(x[chunk]) channels-last                    (m, Hp, Wp, C)
    cols  = windows of xpad, (i, j, c) fastest             (G, m*rows*OW, K)
    y     = cols @ Wk                                      (G, M, Og) -> (m, O, rows, OW) (+ bias)
    dW   += cols^T @ dy                                    (G, K, Og) -> (O, Cg, kh, kw)
    dx    = stride 1: windows of pad(dy) @ flipped W       (G, m*H*W, Cg) -> (m, C, H, W)
            otherwise: col2im(dy @ Wk^T)                   (G, M, K) -> (m, C, H, W)

Why it is fast: the column buffer of a chunk is a few MiB (it stays in cache between the copy that
writes it and the GEMM that reads it) and is reused, never the whole batch's (9x the input);
channels-last windows copy runs of kw*C contiguous numbers; chunks of samples run on a pool of
threads (kernels/cpu_runtime), each with single-threaded BLAS, so the copies run in parallel too;
forward keeps its columns for backward when the whole batch's fit a small budget (else backward
recomputes them); for stride 1 the input gradient is a plain correlation of the padded output
gradient with the flipped kernel (gather copies and one GEMM, no scatter-add).
The result buffers of each call are fresh arrays; work buffers are per thread and reused.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import compiled
from .cpu_runtime import batch_chunks, column_buffer, keeps_columns, row_block, run_chunks, work_buffer


def applies(geom) -> bool:
    """Every geometry (the last entry of the CPU table)."""
    return True


def pad_channels_last(x, pads, name: str):
    """x: (m, C, H, W) -> per-thread buffer (m, H+pt+pb, W+pl+pr, C) with a zero border."""
    m, c, h, w = x.shape
    top, bottom, left, right = pads
    buf = work_buffer(name, (m, h + top + bottom, w + left + right, c), x.dtype)
    if top:
        buf[:, :top] = 0
    if bottom:
        buf[:, top + h:] = 0
    if left:
        buf[:, top:top + h, :left] = 0
    if right:
        buf[:, top:top + h, left + w:] = 0
    buf[:, top:top + h, left:left + w] = x.transpose(0, 2, 3, 1)   # (m, C, H, W) -> (m, H, W, C)
    return buf


def im2col_channels_last(xpad, kernel, stride, dilation, groups, r0, r1, out_w, cols):
    """Windows of xpad (m, Hp, Wp, C) for output rows [r0, r1) into cols (G, m*rows*OW, kh*kw*Cg).

    cols[gr, (n, r, ow), (i, j, c)] = xpad[n, (r0 + r)*sh + i*dh, ow*sw + j*dw, gr*Cg + c]
    """
    m, _, _, c = xpad.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    cg = c // groups
    rows = r1 - r0
    s_n, s_h, s_w, s_c = xpad.strides
    dst = cols.reshape(groups, m, rows, out_w, kh, kw, cg)        # (G, M, K) -> (G, m, rows, OW, kh, kw, Cg)
    for gr in range(groups):
        for i in range(kh):
            start = xpad[:, r0 * sh + i * dh:, :, gr * cg:]
            # one (m, rows, OW, kw, Cg) window view per kernel row; the (kw, Cg) part is contiguous for dw=1
            src = as_strided(start, shape=(m, rows, out_w, kw, cg),
                             strides=(s_n, sh * s_h, sw * s_w, dw * s_w, s_c), writeable=False)
            dst[gr, :, :, :, i] = src
    return cols


class Plan:
    """Sizes of one convolution's chunks: the work bytes per sample, and output rows per block
    when one sample's columns exceed the budget (row blocks only ever hold one sample)."""

    def __init__(self, geom, dtype):
        kh, kw = geom.kernel
        self.oh, self.ow = geom.out_size
        self.h, self.w = geom.in_size
        self.k = kh * kw * geom.group_in
        self.k2 = kh * kw * geom.group_out
        kh1, kw1 = (kh - 1) * geom.dilation[0], (kw - 1) * geom.dilation[1]
        top, bottom, left, right = geom.pads
        # stride 1 with pads within the kernel extent: dx is a correlation of pad(dy) with flipped W,
        # unless its columns (H*W x kh*kw*Og) would be much bigger than col2im's (OH*OW x K)
        self.gather_dx = (geom.stride == (1, 1) and max(top, bottom) <= kh1 and max(left, right) <= kw1
                          and self.h * self.w * self.k2 <= 2 * self.oh * self.ow * self.k)
        self.dy_pads = (kh1 - top, kh1 - bottom, kw1 - left, kw1 - right)
        isz = np.dtype(dtype).itemsize
        self.sample_bytes = self.oh * self.ow * self.k * geom.groups * isz
        if self.gather_dx:
            self.sample_bytes = max(self.sample_bytes, self.h * self.w * self.k2 * geom.groups * isz)
        self.rows = row_block(self.oh, self.ow * self.k * geom.groups * isz)
        self.rows_in = row_block(self.h, self.w * self.k2 * geom.groups * isz)
        self.chunks = batch_chunks(geom.batch, self.sample_bytes)


class Columns:
    """A chunk's columns, row block by row block, from its padded channels-last copy (made once per chunk): by one
    compiled copy loop when the compiled kernels run (kernels/compiled.py), else by NumPy's window views."""

    def __init__(self, x, geom, plan):
        self.x, self.geom, self.plan, self.xpad = x, geom, plan, None

    def fill(self, r0, r1, cols):
        """Write the windows of output rows [r0, r1) into cols (G, m*rows*OW, K) and return it."""
        geom = self.geom
        if self.xpad is None:
            self.xpad = pad_channels_last(self.x, geom.pads, "xpad")
        if compiled.takes(self.xpad, cols):
            (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
            compiled.conv_loops().im2col(self.xpad, cols, kh, kw, sh, sw, dh, dw, r0, r1 - r0, self.plan.ow)
            return cols
        return im2col_channels_last(self.xpad, geom.kernel, geom.stride, geom.dilation, geom.groups, r0, r1,
                                    self.plan.ow, cols)


def chunks(geom, dtype):
    """[(n0, n1), ...]: the batch's chunks for this geometry and dtype."""
    return Plan(geom, dtype).chunks


# ----------------------------------------------------------------------------- general conv

def weight_matrix(weight, groups):
    """(O, Cg, kh, kw) -> (G, kh*kw*Cg, Og), rows in (i, j, c) order, contiguous."""
    o, cg, kh, kw = weight.shape
    w = weight.reshape(groups, o // groups, cg, kh, kw)               # -> (G, Og, Cg, kh, kw)
    return np.ascontiguousarray(w.transpose(0, 3, 4, 2, 1)).reshape(groups, kh * kw * cg, o // groups)


def flipped_weight_matrix(weight, groups):
    """(O, Cg, kh, kw) -> (G, kh*kw*Og, Cg): W[o, c, kh-1-i, kw-1-j] at row (i, j, o), for dx by correlation."""
    o, cg, kh, kw = weight.shape
    w = weight.reshape(groups, o // groups, cg, kh, kw)[:, :, :, ::-1, ::-1]   # (G, Og, Cg, kh, kw) flipped
    return np.ascontiguousarray(w.transpose(0, 3, 4, 1, 2)).reshape(groups, kh * kw * (o // groups), cg)


def conv_forward(x, weight, bias, geom, saved=None):
    """y = conv(x, W) + b; x: (N, C, H, W), weight: (O, Cg, kh, kw), bias: (O,) | None -> (N, O, OH, OW).

    saved: a dict that keeps the columns for ``conv_backward`` when the batch's fit SAVED_COLUMNS_MAX.
    """
    plan = Plan(geom, x.dtype)
    saved = keeps_columns(saved, geom.batch * plan.oh * plan.ow * plan.k * geom.groups * x.dtype.itemsize)
    G, og = geom.groups, geom.group_out
    wk = weight_matrix(weight, G)                                      # (G, K, Og)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    bias5 = None if bias is None else bias.reshape(1, G, og, 1, 1)    # (O,) -> (1, G, Og, 1, 1)

    def per_chunk(c0, c1):
        m = c1 - c0
        columns = Columns(x[c0:c1], geom, plan)
        for r0 in range(0, plan.oh, plan.rows):
            r1 = min(r0 + plan.rows, plan.oh)
            M = m * (r1 - r0) * plan.ow
            cols = columns.fill(r0, r1, column_buffer(saved, ("conv", c0, c1, r0), (G, M, plan.k), x.dtype, "cols"))
            y = np.matmul(cols, wk, out=work_buffer("y", (G, M, og), x.dtype))
            # (G, m*rows*OW, Og) -> (m, G, Og, rows, OW)
            y = y.reshape(G, m, r1 - r0, plan.ow, og).transpose(1, 0, 4, 2, 3)
            dst = out[c0:c1, :, r0:r1].reshape(m, G, og, r1 - r0, plan.ow)
            if bias5 is None:
                dst[...] = y
            else:
                np.add(y, bias5, out=dst)

    run_chunks(plan.chunks, per_chunk)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx (N, C, H, W) | None, dW (O, Cg, kh, kw) | None, db (O,) | None) of conv_forward (columns from
    ``saved`` when forward kept them, else recomputed)."""
    saved = saved or {}
    dtype = grad_out.dtype
    plan = Plan(geom, dtype)
    G, og, cg = geom.groups, geom.group_out, geom.group_in
    kh, kw = geom.kernel
    oh, ow = plan.oh, plan.ow
    if need_input:
        dx = np.empty(geom.in_shape, dtype=dtype)
        if plan.gather_dx:
            w2k = flipped_weight_matrix(weight, G)                    # (G, kh*kw*Og, Cg)
        else:
            wkt = weight_matrix(weight, G).transpose(0, 2, 1)         # (G, K, Og) -> (G, Og, K)

    def per_chunk(c0, c1):
        m = c1 - c0
        dw_part = db_part = None
        dyh = work_buffer("dyh", (G, m, oh, ow, og), dtype)
        # (m, O, OH, OW) -> (G, m, OH, OW, Og)
        dyh[...] = grad_out[c0:c1].reshape(m, G, og, oh, ow).transpose(1, 0, 3, 4, 2)
        if need_bias:
            db_part = dyh.reshape(G, m * oh * ow, og).sum(axis=1)
        if need_weight:
            columns = Columns(x[c0:c1], geom, plan)
            for r0 in range(0, oh, plan.rows):
                r1 = min(r0 + plan.rows, oh)
                M = m * (r1 - r0) * ow
                cols = saved.get(("conv", c0, c1, r0))
                if cols is None:
                    cols = columns.fill(r0, r1, work_buffer("cols", (G, M, plan.k), dtype))
                dyr = dyh[:, :, r0:r1].reshape(G, M, og)               # m == 1 whenever rows < OH
                if dw_part is None:
                    dw_part = np.matmul(cols.transpose(0, 2, 1), dyr)  # (G, K, Og), this chunk's own
                else:
                    dw_part += np.matmul(cols.transpose(0, 2, 1), dyr,
                                         out=work_buffer("dw_tmp", (G, plan.k, og), dtype))
        if need_input:
            if plan.gather_dx:
                _dx_gather(dyh, w2k, geom, plan, dx[c0:c1])
            else:
                _dx_scatter(dyh, wkt, geom, plan, dx[c0:c1])
        return dw_part, db_part

    total, grad_b = run_chunks(plan.chunks, per_chunk)
    grad_w = None
    if need_weight:
        # (G, kh*kw*Cg, Og) -> (G, kh, kw, Cg, Og) -> (O, Cg, kh, kw)
        grad_w = np.ascontiguousarray(total.reshape(G, kh, kw, cg, og).transpose(0, 4, 3, 1, 2))
        grad_w = grad_w.reshape(geom.weight_shape)
    if need_bias:
        grad_b = grad_b.reshape(geom.out_channels)
    return (dx if need_input else None), grad_w, grad_b


def _dx_gather(dyh, w2k, geom, plan, dx):
    """Stride 1: dx = correlation of pad(dy) with the flipped kernel. dyh: (G, m, OH, OW, Og) -> dx (m, C, H, W)."""
    G, og, cg = geom.groups, geom.group_out, geom.group_in
    _, m, oh, ow, _ = dyh.shape
    h, w = plan.h, plan.w
    qt, qb, ql, qr = plan.dy_pads
    dypad = work_buffer("dypad", (m, oh + qt + qb, ow + ql + qr, G * og), dyh.dtype)
    dypad[:, :qt] = 0                                                # zero border only: the interior is
    dypad[:, qt + oh:] = 0                                           # overwritten just below
    dypad[:, qt:qt + oh, :ql] = 0
    dypad[:, qt:qt + oh, ql + ow:] = 0
    # (G, m, OH, OW, Og) -> (m, OH, OW, G, Og)
    dypad[:, qt:qt + oh, ql:ql + ow].reshape(m, oh, ow, G, og)[...] = dyh.transpose(1, 2, 3, 0, 4)
    for r0 in range(0, h, plan.rows_in):
        r1 = min(r0 + plan.rows_in, h)
        M = m * (r1 - r0) * w
        cols = work_buffer("cols", (G, M, plan.k2), dyh.dtype)
        im2col_channels_last(dypad, geom.kernel, (1, 1), geom.dilation, G, r0, r1, w, cols)
        res = np.matmul(cols, w2k, out=work_buffer("dxr", (G, M, cg), dyh.dtype))
        # (G, m*rows*W, Cg) -> (m, G, Cg, rows, W)
        dx[:, :, r0:r1].reshape(m, G, cg, r1 - r0, w)[...] = res.reshape(G, m, r1 - r0, w, cg).transpose(1, 0, 4, 2, 3)


def _dx_scatter(dyh, wkt, geom, plan, dx):
    """Any stride: dx = col2im(dy @ Wk^T), summed window by window into a padded channels-last buffer."""
    G, og, cg = geom.groups, geom.group_out, geom.group_in
    _, m, oh, ow, _ = dyh.shape
    h, w = plan.h, plan.w
    kh, kw = geom.kernel
    sh, sw = geom.stride
    dh, dw = geom.dilation
    top, bottom, left, right = geom.pads
    hp, wp = h + top + bottom, w + left + right
    one_block = plan.rows >= oh and compiled.takes(dyh, dx)   # the compiled col2im takes all rows, sample by sample
    if not one_block:
        dxpad = work_buffer("dxpad", (m, hp, wp, G * cg), dyh.dtype)
        dxpad[...] = 0
    for r0 in range(0, oh, plan.rows):
        r1 = min(r0 + plan.rows, oh)
        rows = r1 - r0
        M = m * rows * ow
        dcols = np.matmul(dyh[:, :, r0:r1].reshape(G, M, og), wkt,
                          out=work_buffer("cols", (G, M, plan.k), dyh.dtype))
        dcols = dcols.reshape(G, m, rows, ow, kh, kw, cg)          # (G, M, K) -> (G, m, rows, OW, kh, kw, Cg)
        if one_block:                                              # rows == OH: straight into dx (NCHW)
            compiled.conv_loops().col2im(dcols, dx, work_buffer("dxplane", (hp, wp, G * cg), dyh.dtype),
                                         sh, sw, dh, dw, top, left)
            return
        for gr in range(G):
            for i in range(kh):
                row = r0 * sh + i * dh
                for j in range(kw):
                    col = j * dw
                    dst = dxpad[:, row:row + sh * (rows - 1) + 1:sh, col:col + sw * (ow - 1) + 1:sw,
                                gr * cg:(gr + 1) * cg]
                    dst += dcols[gr, :, :, :, i, j]
    # (m, H, W, G*Cg) -> (m, C, H, W)
    dx[...] = dxpad[:, top:top + h, left:left + w].transpose(0, 3, 1, 2)
