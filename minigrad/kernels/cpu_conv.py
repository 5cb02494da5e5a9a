"""Fast CPU convolution: chunked channels-last im2col + GEMM, spread over a small thread pool.

Shapes (G groups, Cg = C/G, Og = O/G, K = kh*kw*Cg; a chunk holds g samples and `rows` output rows):

    xpad  = pad(x[chunk]) channels-last                    (g, Hp, Wp, C)
    cols  = windows of xpad, (i, j, c) fastest             (G, g*rows*OW, K)
    y     = cols @ Wk                                      (G, M, Og) -> (g, O, rows, OW) (+ bias)
    dW   += cols^T @ dy                                    (G, K, Og) -> (O, Cg, kh, kw)
    dx    = stride 1: windows of pad(dy) @ flipped W       (G, g*H*W, Cg) -> (g, C, H, W)
            otherwise: col2im(dy @ Wk^T)                   (G, M, K) -> (g, C, H, W)

Why it is fast: the column buffer of a chunk is a few MiB (it stays in cache between the copy that
writes it and the GEMM that reads it) and is reused, never the whole batch's (9x the input);
channels-last windows copy runs of kw*C contiguous numbers; chunks of samples run on a pool of
threads, each with single-threaded BLAS, so the copies run in parallel too; backward recomputes the
columns instead of keeping them; for stride 1 the input gradient is a plain correlation of the padded
output gradient with the flipped kernel (gather copies and one GEMM, no scatter-add).
The result buffers of each call are fresh arrays; work buffers are per thread and reused.
"""
from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import threads
from .cpu_memory import tune_allocator

COLUMN_BUDGET = 2 << 20        # bytes of column buffer per chunk (per thread)
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_local = threading.local()
tune_allocator()                 # big outputs/gradients reuse heap pages instead of page-faulting each step
_stores: list = []               # every thread's buffer dict, so release_buffers can clear them
_stores_lock = threading.Lock()


# ----------------------------------------------------------------------------- helpers

def supported(*arrays) -> bool:
    """True when every non-None array is a plain numpy.ndarray of one float32/float64 dtype."""
    dtype = None
    for a in arrays:
        if a is None:
            continue
        if type(a) is not np.ndarray or a.dtype not in _FAST_DTYPES:
            return False
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            return False
    return dtype is not None


def work_buffer(name: str, shape, dtype):
    """A per-thread reusable array (contents undefined), grown as needed, never shrunk."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
        with _stores_lock:
            _stores.append(store)
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = store.get(name)
    if raw is None or raw.size < size:
        store.pop(name, None)   # free the old one before allocating the bigger one
        raw = store[name] = np.empty(max(size, 64), dtype=np.uint8)
    return raw[:size].view(dtype).reshape(shape)


def release_buffers() -> None:
    """Free every thread's work buffers (call while no kernel runs; they regrow on the next call)."""
    with _stores_lock:
        for store in _stores:
            store.clear()


def split_range(n: int, parts: int):
    """[(start, stop), ...]: n items in at most `parts` contiguous, nearly equal, non-empty ranges."""
    parts = max(1, min(parts, n))
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


def pad_channels_last(x, pads, name: str):
    """x: (g, C, H, W) -> per-thread buffer (g, H+pt+pb, W+pl+pr, C) with a zero border."""
    g, c, h, w = x.shape
    top, bottom, left, right = pads
    buf = work_buffer(name, (g, h + top + bottom, w + left + right, c), x.dtype)
    if top:
        buf[:, :top] = 0
    if bottom:
        buf[:, top + h:] = 0
    if left:
        buf[:, top:top + h, :left] = 0
    if right:
        buf[:, top:top + h, left + w:] = 0
    buf[:, top:top + h, left:left + w] = x.transpose(0, 2, 3, 1)   # (g, C, H, W) -> (g, H, W, C)
    return buf


def im2col_channels_last(xpad, kernel, stride, dilation, groups, r0, r1, out_w, cols):
    """Windows of xpad (g, Hp, Wp, C) for output rows [r0, r1) into cols (G, g*rows*OW, kh*kw*Cg).

    cols[gr, (n, r, ow), (i, j, c)] = xpad[n, (r0 + r)*sh + i*dh, ow*sw + j*dw, gr*Cg + c]
    """
    g, _, _, c = xpad.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    cg = c // groups
    rows = r1 - r0
    s_n, s_h, s_w, s_c = xpad.strides
    dst = cols.reshape(groups, g, rows, out_w, kh, kw, cg)        # (G, M, K) -> (G, g, rows, OW, kh, kw, Cg)
    for gr in range(groups):
        for i in range(kh):
            start = xpad[:, r0 * sh + i * dh:, :, gr * cg:]
            # one (g, rows, OW, kw, Cg) window view per kernel row; the (kw, Cg) part is contiguous for dw=1
            src = as_strided(start, shape=(g, rows, out_w, kw, cg),
                             strides=(s_n, sh * s_h, sw * s_w, dw * s_w, s_c), writeable=False)
            dst[gr, :, :, :, i] = src
    return cols


def _row_block(rows_total: int, row_bytes: int, budget: int) -> int:
    return max(1, min(rows_total, budget // max(row_bytes, 1)))


class _Plan:
    """Chunking of one convolution: g samples per chunk, and output rows per block within a sample."""

    def __init__(self, geom, dtype, budget=None):
        budget = COLUMN_BUDGET if budget is None else budget
        self.geom = geom
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
        per_sample = self.oh * self.ow * self.k * geom.groups * isz
        if self.gather_dx:
            per_sample = max(per_sample, self.h * self.w * self.k2 * geom.groups * isz)
        self.samples = max(1, budget // max(per_sample, 1))
        self.rows = _row_block(self.oh, self.ow * self.k * geom.groups * isz, budget)
        self.rows_in = _row_block(self.h, self.w * self.k2 * geom.groups * isz, budget)
        if self.samples > 1:
            self.rows, self.rows_in = self.oh, self.h

    def chunks(self, n0, n1):
        for c0 in range(n0, n1, self.samples):
            yield c0, min(c0 + self.samples, n1)


def _parallel(n: int, fn):
    """Run fn(n0, n1) over the batch split across the thread pool; returns the pieces' results."""
    parts = threads.get_num_threads()
    return threads.parallel_map(lambda r: fn(*r), split_range(n, parts))


def sum_pieces(results):
    """[(dW part | None, db part | None), ...] of the pieces -> (dW | None, db | None), added in piece order."""
    grad_w, grad_b = results[0]
    for part_w, part_b in results[1:]:
        if grad_w is not None:
            grad_w += part_w
        if grad_b is not None:
            grad_b += part_b
    return grad_w, grad_b


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


def conv_forward(x, weight, bias, geom):
    """y = conv(x, W) + b; x: (N, C, H, W), weight: (O, Cg, kh, kw), bias: (O,) | None -> (N, O, OH, OW)."""
    plan = _Plan(geom, x.dtype)
    G, og = geom.groups, geom.group_out
    wk = weight_matrix(weight, G)                                      # (G, K, Og)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    bias5 = None if bias is None else bias.reshape(1, G, og, 1, 1)    # (O,) -> (1, G, Og, 1, 1)

    def piece(n0, n1):
        for c0, c1 in plan.chunks(n0, n1):
            g = c1 - c0
            xpad = pad_channels_last(x[c0:c1], geom.pads, "xpad")
            for r0 in range(0, plan.oh, plan.rows):
                r1 = min(r0 + plan.rows, plan.oh)
                m = g * (r1 - r0) * plan.ow
                cols = work_buffer("cols", (G, m, plan.k), x.dtype)
                im2col_channels_last(xpad, geom.kernel, geom.stride, geom.dilation, G, r0, r1, plan.ow, cols)
                y = np.matmul(cols, wk, out=work_buffer("y", (G, m, og), x.dtype))
                # (G, g*rows*OW, Og) -> (g, G, Og, rows, OW)
                y = y.reshape(G, g, r1 - r0, plan.ow, og).transpose(1, 0, 4, 2, 3)
                dst = out[c0:c1, :, r0:r1].reshape(g, G, og, r1 - r0, plan.ow)
                if bias5 is None:
                    dst[...] = y
                else:
                    np.add(y, bias5, out=dst)

    _parallel(geom.batch, piece)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True):
    """(dx (N, C, H, W) | None, dW (O, Cg, kh, kw) | None, db (O,) | None) of conv_forward."""
    dtype = grad_out.dtype
    plan = _Plan(geom, dtype)
    G, og, cg = geom.groups, geom.group_out, geom.group_in
    kh, kw = geom.kernel
    h, w = geom.in_size
    oh, ow = plan.oh, plan.ow
    if need_input:
        dx = np.empty(geom.in_shape, dtype=dtype)
        if plan.gather_dx:
            w2k = flipped_weight_matrix(weight, G)                    # (G, kh*kw*Og, Cg)
        else:
            wkt = weight_matrix(weight, G).transpose(0, 2, 1)         # (G, K, Og) -> (G, Og, K)

    def piece(n0, n1):
        dw_part = np.zeros((G, plan.k, og), dtype=dtype) if need_weight else None
        db_part = np.zeros((G, og), dtype=dtype) if need_bias else None
        for c0, c1 in plan.chunks(n0, n1):
            g = c1 - c0
            dyh = work_buffer("dyh", (G, g, oh, ow, og), dtype)
            # (g, O, OH, OW) -> (G, g, OH, OW, Og)
            dyh[...] = grad_out[c0:c1].reshape(g, G, og, oh, ow).transpose(1, 0, 3, 4, 2)
            if need_bias:
                db_part += dyh.reshape(G, g * oh * ow, og).sum(axis=1)
            if need_weight:
                xpad = pad_channels_last(x[c0:c1], geom.pads, "xpad")
                tmp = work_buffer("dw_tmp", (G, plan.k, og), dtype)
                for r0 in range(0, oh, plan.rows):
                    r1 = min(r0 + plan.rows, oh)
                    m = g * (r1 - r0) * ow
                    cols = work_buffer("cols", (G, m, plan.k), dtype)
                    im2col_channels_last(xpad, geom.kernel, geom.stride, geom.dilation, G, r0, r1, ow, cols)
                    dyr = dyh[:, :, r0:r1].reshape(G, m, og)           # g == 1 whenever rows < OH
                    dw_part += np.matmul(cols.transpose(0, 2, 1), dyr, out=tmp)
            if need_input:
                if plan.gather_dx:
                    _dx_gather(dyh, w2k, geom, plan, dx[c0:c1])
                else:
                    _dx_scatter(dyh, wkt, geom, plan, dx[c0:c1])
        return dw_part, db_part

    total, grad_b = sum_pieces(_parallel(geom.batch, piece))
    grad_w = None
    if need_weight:
        # (G, kh*kw*Cg, Og) -> (G, kh, kw, Cg, Og) -> (O, Cg, kh, kw)
        grad_w = np.ascontiguousarray(total.reshape(G, kh, kw, cg, og).transpose(0, 4, 3, 1, 2))
        grad_w = grad_w.reshape(geom.weight_shape)
    if need_bias:
        grad_b = grad_b.reshape(geom.out_channels)
    return (dx if need_input else None), grad_w, grad_b


def _dx_gather(dyh, w2k, geom, plan, dx):
    """Stride 1: dx = correlation of pad(dy) with the flipped kernel. dyh: (G, g, OH, OW, Og) -> dx (g, C, H, W)."""
    G, og, cg = geom.groups, geom.group_out, geom.group_in
    _, g, oh, ow, _ = dyh.shape
    h, w = plan.h, plan.w
    qt, qb, ql, qr = plan.dy_pads
    dypad = work_buffer("dypad", (g, oh + qt + qb, ow + ql + qr, G * og), dyh.dtype)
    dypad[:, :qt] = 0                                                # zero border only: the interior is
    dypad[:, qt + oh:] = 0                                           # overwritten just below
    dypad[:, qt:qt + oh, :ql] = 0
    dypad[:, qt:qt + oh, ql + ow:] = 0
    # (G, g, OH, OW, Og) -> (g, OH, OW, G, Og)
    dypad[:, qt:qt + oh, ql:ql + ow].reshape(g, oh, ow, G, og)[...] = dyh.transpose(1, 2, 3, 0, 4)
    k2 = plan.k2
    for r0 in range(0, h, plan.rows_in):
        r1 = min(r0 + plan.rows_in, h)
        m = g * (r1 - r0) * w
        cols = work_buffer("cols", (G, m, k2), dyh.dtype)
        im2col_channels_last(dypad, geom.kernel, (1, 1), geom.dilation, G, r0, r1, w, cols)
        res = np.matmul(cols, w2k, out=work_buffer("dxr", (G, m, cg), dyh.dtype))
        # (G, g*rows*W, Cg) -> (g, G, Cg, rows, W)
        dx[:, :, r0:r1].reshape(g, G, cg, r1 - r0, w)[...] = res.reshape(G, g, r1 - r0, w, cg).transpose(1, 0, 4, 2, 3)


def _dx_scatter(dyh, wkt, geom, plan, dx):
    """Any stride: dx = col2im(dy @ Wk^T), summed window by window into a padded channels-last buffer."""
    G, og, cg = geom.groups, geom.group_out, geom.group_in
    _, g, oh, ow, _ = dyh.shape
    h, w = plan.h, plan.w
    kh, kw = geom.kernel
    sh, sw = geom.stride
    dh, dw = geom.dilation
    top, bottom, left, right = geom.pads
    hp, wp = h + top + bottom, w + left + right
    dxpad = work_buffer("dxpad", (g, hp, wp, G * cg), dyh.dtype)
    dxpad[...] = 0
    for r0 in range(0, oh, plan.rows):
        r1 = min(r0 + plan.rows, oh)
        rows = r1 - r0
        m = g * rows * ow
        dcols = np.matmul(dyh[:, :, r0:r1].reshape(G, m, og), wkt,
                          out=work_buffer("cols", (G, m, plan.k), dyh.dtype))
        dcols = dcols.reshape(G, g, rows, ow, kh, kw, cg)          # (G, M, K) -> (G, g, rows, OW, kh, kw, Cg)
        for gr in range(G):
            for i in range(kh):
                row = r0 * sh + i * dh
                for j in range(kw):
                    col = j * dw
                    dst = dxpad[:, row:row + sh * (rows - 1) + 1:sh, col:col + sw * (ow - 1) + 1:sw,
                                gr * cg:(gr + 1) * cg]
                    dst += dcols[gr, :, :, :, i, j]
    # (g, H, W, G*Cg) -> (g, C, H, W)
    dx[...] = dxpad[:, top:top + h, left:left + w].transpose(0, 3, 1, 2)
