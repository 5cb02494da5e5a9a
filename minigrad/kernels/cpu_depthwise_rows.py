"""Depthwise convolutions, the rows path (rows of moderate width: a MobileNet's 28 x 28 and 14 x 14 planes, and up
to 42 wide at stride 1, 170 at stride 2): every output row is one GEMM row over its band of kin = (kh-1)*dh + 1
input rows, every input-gradient row one over its band of dy rows, and dW one GEMM per kernel row over all rows
of the batch (class Rows has the details).

2*kin*W multiply-adds per output and product instead of kh*kw, at GEMM speed, with two contiguous copies (the
padded input and dy) and no stride phases. The products include the zeros around each window (and dW's, the
padding rows of dy against whole input rows), so an inf or nan in x or dy would make nan of a whole band:
``forward`` returns None when a block of x holds an inf or a nan, ``backward`` returns None for every output
when asked to check dy and a block of dy does, and for dx and dW when dW is not all finite; the caller
(kernels/cpu_depthwise.py) then runs the taps path. x and dy are checked in their padded copies, contiguous and
in cache (kernels/cpu_runtime.all_finite).
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .cpu_depthwise_taps import block_budget, channel_blocks
from .cpu_runtime import all_finite, batch_chunks, run_chunks, work_buffer

DOTS_MIN_W = 20         # stride 1, OW == W: dW as kh*kw dot products from this width up (else kh GEMMs)


class Rows:
    """The row-band path: every output row is one GEMM row of a band of input rows.

    xp        the input, channel-major (cs, ns, Hp, W), with zero rows above (top) and below: Hp = sh * Hdp rows
    dyp       dy, channel-major (cs, ns, Hdp, OW), with pt zero rows above and some below
    forward   y[n, r, :] (OW) = xp[n, r*sh : r*sh + kin, :] (kin*W numbers) @ F_c (kin*W, OW): batched over
              (channel, output row), N rows each
    dx        dx rows y with the same (y + top) % sh (a "class") read the same kernel rows, from cnt consecutive
              rows of dyp: dx[n, y, :] (W) = dyp[n, rows(y)] (cnt*OW) @ B_class (cnt*OW, W); one batched GEMM per
              class, written into dx's rows y0, y0 + sh, ...
    dW        for kernel row i, G_i (OW, W) = sum over dyp's rows (n, q) of dyp[n, q, :]^T xp[n, (q - pt)*sh + i*dh, :]:
              because Hp = sh * Hdp, dyp's row (n, q) and that input row are each one stride apart, so this is ONE
              GEMM per channel over all ns*Hdp rows (dyp's zero rows add nothing, wherever their input row falls);
              then dW[i, j] = sum_s G_i[s, s*sw - left + j*dw]. With stride 1 and OW == W, from DOTS_MIN_W
              columns up, kh*kw dot products over the block instead (2 reads per number and tap against 2*W
              multiply-adds per number and kernel row).

    """

    def __init__(self, geom, dtype):
        (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
        (h, w), (oh, ow), top, left = geom.in_size, geom.out_size, geom.pads[0], geom.pads[2]
        self.kin = kin = (kh - 1) * dh + 1
        self.kh, self.dh = kh, dh
        self.h, self.w, self.oh, self.ow, self.sh, self.top = h, w, oh, ow, sh, top
        s = np.arange(ow)
        cols = [s * sw - left + j * dw for j in range(kw)]
        valid = [(c >= 0) & (c < w) for c in cols]

        def places(rows_of_kernel_rows, transpose):
            """Flat places and taps of the weights in F (kin*W, OW) or in B (cnt*OW, W)."""
            p, t = [], []
            for i, row in rows_of_kernel_rows.items():
                for j in range(kw):
                    ok = valid[j]
                    if transpose:   # B: row row*OW + s, column col
                        p.append((row * ow + s[ok]) * w + cols[j][ok])
                    else:           # F: row row*W + col, column s
                        p.append((row * w + cols[j][ok]) * ow + s[ok])
                    t.append(np.full(int(ok.sum()), i * kw + j))
            return np.concatenate(p), np.concatenate(t)

        self.fwd = places({i: i * dh for i in range(kh)}, False)
        self.classes = []                                             # (y0, rows, first dy row, cnt, places, taps)
        for rho in range(sh):
            y0 = next((y for y in range(h) if (y + top) % sh == rho), None)
            if y0 is None:
                continue
            n = len(range(y0, h, sh))
            rows = {i: (y0 + top - i * dh) // sh for i in range(kh) if (i * dh) % sh == rho}
            if not rows:
                self.classes.append((y0, n, None, 0, None, None))
                continue
            first, cnt = min(rows.values()), max(rows.values()) - min(rows.values()) + 1
            self.classes.append((y0, n, first, cnt) + places({i: r - first for i, r in rows.items()}, True))
        used = [c for c in self.classes if c[2] is not None]
        self.pt = max([0] + [-c[2] for c in used])                     # dyp: zero rows above dy
        hdp = self.pt + max([oh] + [c[2] + c[3] + c[1] - 1 for c in used])
        hp = max(top + h, (oh - 1) * sh + kin)                        # xp: what the forward bands need
        self.hdp = max(hdp, -(-hp // sh))
        self.hp = sh * self.hdp
        # zeros around xp, read against dyp's zero rows (and its zeroed edge columns, by the dot products)
        self.margin = (kin + self.pt * sh + sh) * w + (kw - 1) * dw + left
        slot = ow * w                                                 # dW: G_i's places, and one zero after them
        gather = np.full((kh * kw, ow), kh * (slot + 1) - 1)   # each tap's places in (kh, slot + 1); pads: a zero
        for i in range(kh):
            for j in range(kw):
                p = s[valid[j]] * w + cols[j][valid[j]]
                gather[i * kw + j, :len(p)] = i * (slot + 1) + p
        self.gather = gather
        # stride 1 with OW == W: dyp's number (n, q, s) and its input number for tap (i, j) are one fixed offset apart,
        # (i*dh - pt)*W + j*dw - left: dW[i, j] is one dot product over the whole block, with dyp's columns whose
        # window column falls outside the row zeroed for it (they would read the next or previous row)
        self.dots = (sh, sw) == (1, 1) and ow == w and w >= DOTS_MIN_W
        self.edges = []                                               # per j: (column offset, dy columns to zero)
        for j in range(kw):
            e = j * dw - left
            self.edges.append((e, slice(0, min(-e, w)) if e < 0 else slice(max(w - e, 0), w)))
        self.per_sample = (self.hp * w + self.hdp * ow) * np.dtype(dtype).itemsize
        budget = block_budget()
        self.samples = batch_chunks(geom.batch, self.per_sample, budget, min_chunks=1)
        per_block = max(1, budget // (self.per_sample * geom.batch)) if len(self.samples) == 1 else 1
        self.channels = channel_blocks(geom.in_channels, per_block)

    @staticmethod
    def of(geom, dtype):
        """The Rows of a geometry, kept (keyed by the settings it reads too)."""
        return _rows_of(geom, np.dtype(dtype), block_budget(), DOTS_MIN_W)

    @staticmethod
    def matrix(wt, shape, places, name):
        m = work_buffer(name, (wt.shape[0], shape[0] * shape[1]), wt.dtype)
        m[...] = 0
        m[:, places[0]] = wt[:, places[1]]
        return m.reshape((wt.shape[0],) + shape)

    def padded_x(self, x):
        """x (ns, cs, H, W) -> the thread's xp (cs, ns, Hp, W) and the flat buffer around it (zero margins)."""
        ns, cs = x.shape[:2]
        w, hp, top, h, margin = self.w, self.hp, self.top, self.h, self.margin
        size = cs * ns * hp * w
        flat = work_buffer("dwr_xp", (size + 2 * margin,), x.dtype)
        flat[:margin] = 0
        flat[margin + size:] = 0
        xp = flat[margin:margin + size].reshape(cs, ns, hp, w)
        xp[:, :, :top] = 0
        xp[:, :, top + h:] = 0
        xp[:, :, top:top + h] = x.transpose(1, 0, 2, 3)
        return xp, flat

    def padded_dy(self, dy):
        ns, cs = dy.shape[:2]
        pt, oh = self.pt, self.oh
        dyp = work_buffer("dwr_dyp", (cs, ns, self.hdp, self.ow), dy.dtype)
        dyp[:, :, :pt] = 0
        dyp[:, :, pt + oh:] = 0
        dyp[:, :, pt:pt + oh] = dy.transpose(1, 0, 2, 3)
        return dyp

    def forward(self, x, wt, out, bias):
        """out (ns, cs, OH, OW) from x (ns, cs, H, W), wt (cs, kh*kw); False (out not written) when x holds an inf
        or a nan, else True."""
        ns, cs = x.shape[:2]
        w, hp, isz = self.w, self.hp, x.itemsize
        xp, _ = self.padded_x(x)
        if not all_finite(xp):                                        # contiguous and in cache
            return False
        bands = as_strided(xp, shape=(cs, self.oh, ns, self.kin * w),
                           strides=(ns * hp * w * isz, self.sh * w * isz, hp * w * isz, isz))
        y = out.transpose(1, 2, 0, 3)                                   # (ns, cs, OH, OW) -> (cs, OH, ns, OW)
        np.matmul(bands, self.matrix(wt, (self.kin * w, self.ow), self.fwd, "dwr_m")[:, None], out=y)
        if bias is not None:
            y += bias[:, None, None, None]
        return True

    def input_grad(self, dyp, wt, dx):
        """dx (ns, cs, H, W) from dyp (cs, ns, Hdp, OW)."""
        cs, ns = dyp.shape[:2]
        ow, hdp, pt, isz = self.ow, self.hdp, self.pt, dyp.itemsize
        dxt = dx.transpose(1, 2, 0, 3)                                  # (ns, cs, H, W) -> (cs, H, ns, W)
        for y0, n, first, cnt, places, taps in self.classes:
            rows = dxt[:, y0::self.sh]
            if first is None:                                          # no kernel row reaches these rows
                rows[...] = 0
                continue
            bands = as_strided(dyp.reshape(-1)[(first + pt) * ow:], shape=(cs, n, ns, cnt * ow),
                               strides=(ns * hdp * ow * isz, ow * isz, hdp * ow * isz, isz))
            np.matmul(bands, self.matrix(wt, (cnt * ow, self.w), (places, taps), "dwr_m")[:, None], out=rows)

    def weight_grad(self, x, dyp, part):
        """part (cs, kh*kw) = this block's dW, from x (ns, cs, H, W) and dyp (cs, ns, Hdp, OW); dyp's numbers are
        the same afterwards (its edge columns are zeroed and restored)."""
        ns, cs = x.shape[:2]
        w, ow, hp, hdp, isz = self.w, self.ow, self.hp, self.hdp, x.itemsize
        _, flat = self.padded_x(x)
        if self.dots:
            size = ns * hdp * w                                       # == ns*Hp*W: stride 1
            d = dyp.reshape(cs, size)
            kw = len(self.edges)
            for j, (e, cols) in enumerate(self.edges):
                kept = dyp[:, :, :, cols].copy() if cols.start < cols.stop else None
                if kept is not None:
                    dyp[:, :, :, cols] = 0
                for i in range(self.kh):
                    start = self.margin + (i * self.dh - self.pt) * w + e
                    xv = as_strided(flat[start:], shape=(cs, size), strides=(ns * hp * w * isz, isz))
                    np.vecdot(d, xv, out=part[:, i * kw + j])
                if kept is not None:
                    dyp[:, :, :, cols] = kept
            return
        a_t = dyp.reshape(cs, ns * hdp, ow).transpose(0, 2, 1)          # (cs, OW, ns*Hdp)
        slot = ow * w
        g = work_buffer("dwr_g", (cs, self.kh, slot + 1), x.dtype)    # G_0, 0, G_1, 0, ...: every tap one gather
        g[:, :, slot] = 0
        for i in range(self.kh):
            start = self.margin + (i * self.dh - self.pt * self.sh) * w
            xi = as_strided(flat[start:], shape=(cs, ns * hdp, w), strides=(ns * hp * w * isz, self.sh * w * isz, isz))
            np.matmul(a_t, xi, out=g[:, i, :slot].reshape(cs, ow, w))
        np.sum(g.reshape(cs, -1)[:, self.gather], axis=2, out=part)


@functools.lru_cache(maxsize=64)
def _rows_of(geom, dtype, budget, dots_min_w):
    return Rows(geom, dtype)


def forward(x, wt, bias, geom):
    """x (N, C, H, W), wt (C, kh*kw), bias (C,) or None -> y (N, C, OH, OW); None when x holds an inf or a nan."""
    rows = Rows.of(geom, x.dtype)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    finite = []

    def per_block(c0, c1):
        for n0, n1 in rows.samples:
            finite.append(rows.forward(x[n0:n1, c0:c1], wt[c0:c1], out[n0:n1, c0:c1],
                                       None if bias is None else bias[c0:c1]))
            if not finite[-1]:
                return

    run_chunks(rows.channels, per_block)
    return out if all(finite) else None


def backward(x, wt, grad_out, geom, need_input, need_weight, need_bias, check_dy=True):
    """(dx (N, C, H, W), dW (C, kh*kw), db (C,)) from x, wt (C, kh*kw) and grad_out (N, C, OH, OW); each None when
    not needed. Every one None when check_dy and dy holds an inf or a nan; dx and dW None when dW is not all finite
    (an inf or nan of x, or one of dy that check_dy left to dW: kernels/cpu_depthwise.py)."""
    rows = Rows.of(geom, grad_out.dtype)
    c, taps = geom.in_channels, geom.kernel[0] * geom.kernel[1]
    dtype = grad_out.dtype
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    dw = np.empty((c, taps), dtype=dtype) if need_weight else None
    db = np.empty(c, dtype=dtype) if need_bias else None
    finite_dy = []

    def per_block(c0, c1):
        for k, (n0, n1) in enumerate(rows.samples):
            dy = grad_out[n0:n1, c0:c1]
            if need_input or need_weight:
                dyp = rows.padded_dy(dy)
                if check_dy:                          # in its padded copy, contiguous and in cache
                    finite_dy.append(all_finite(dyp))
                    if not finite_dy[-1]:
                        return
            with np.errstate(invalid="ignore"):       # inf * 0 of the zeros around the windows: redone by the taps
                if need_input:
                    rows.input_grad(dyp, wt[c0:c1], dx[n0:n1, c0:c1])
                if need_weight:
                    part = np.empty((c1 - c0, taps), dtype=dtype)
                    rows.weight_grad(x[n0:n1, c0:c1], dyp, part)
                    if k == 0:
                        dw[c0:c1] = part
                    else:
                        dw[c0:c1] += part
            if need_bias:
                part = dy.sum(axis=(0, 2, 3))
                if k == 0:
                    db[c0:c1] = part
                else:
                    db[c0:c1] += part

    run_chunks(rows.channels, per_block)
    if not all(finite_dy):
        return None, None, None
    if need_weight and not np.isfinite(dw).all():
        return None, None, db
    return dx, dw, db
