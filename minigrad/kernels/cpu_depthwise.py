"""Depthwise convolutions (groups == in_channels == out_channels) on the CPU, without matmuls.

Each channel has its own kh x kw filter, so im2col + GEMM would be C tiny matmuls. Instead, loop over
the kh*kw kernel taps; each tap is one view of the padded input (planes = samples x channels):

    y       = sum_t  w[:, t] * tap_t(xs)                  (m*C, OH, Wh) -> (m, C, OH, OW)
    dW[:, t] = sum_{n,p} dy * tap_t(xs)                    one dot product per plane and tap
    dx      = stride 1: the same correlation of pad(dy) with the flipped filters
              otherwise: unsplit(sum_t tap_t^T(w[:, t] * dy)), scatter-adds into the same layout

``xs`` is the zero-padded input split into its sh x sw stride phases: phase (a, b) holds padded rows
a, a+sh, ... and columns b, b+sw, ... . Tap (i, j) then reads phase ((i*dh) % sh, (j*dw) % sw) at a
fixed offset, with unit steps: computed over the phase width Wh (the Wh - OW extra columns are
dropped, and are zeros in dy), a tap of every plane is one contiguous run of OH*Wh numbers, so every
multiply-add, dot product and scatter is a long vector loop, for any stride and dilation.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .cpu_runtime import batch_chunks, run_chunks, work_buffer


def applies(geom) -> bool:
    """groups == in_channels == out_channels > 1 (one filter per channel)."""
    return geom.groups == geom.in_channels == geom.out_channels and geom.groups > 1


class _Layout:
    """Sizes of the phase-split planes: (planes, sh, sw, Hh, Wh) plus a zero tail."""

    def __init__(self, kernel, stride, dilation, in_size, pads, out_size):
        kh, kw = kernel
        self.sh, self.sw = stride
        self.dh, self.dw = dilation
        self.h, self.w = in_size
        self.top, self.left = pads[0], pads[2]
        self.oh, self.ow = out_size
        self.hh = self.oh + (kh - 1) * self.dh // self.sh
        self.wh = self.ow + (kw - 1) * self.dw // self.sw
        self.tail = (kw - 1) * self.dw // self.sw
        self.sub = self.hh * self.wh                      # one phase of one plane

    @classmethod
    def of(cls, geom):
        return cls(geom.kernel, geom.stride, geom.dilation, geom.in_size, geom.pads, geom.out_size)

    def taps(self, kernel):
        """(t, offset of tap t within a plane's phases)."""
        kh, kw = kernel
        for i in range(kh):
            for j in range(kw):
                a, r = divmod(i * self.dh, self.sh)[::-1]  # phase row a, row offset r
                b, q = divmod(j * self.dw, self.sw)[::-1]
                yield i * kw + j, (a * self.sw + b) * self.sub + r * self.wh + q

    def view(self, flat, planes, offset, writeable=False):
        """(planes, OH, Wh) window of the flat phase buffer starting at offset."""
        isz = flat.itemsize
        return as_strided(flat[offset:], shape=(planes, self.oh, self.wh),
                          strides=(self.sh * self.sw * self.sub * isz, self.wh * isz, isz), writeable=writeable)

    def phases(self, flat, planes):
        return flat[:planes * self.sh * self.sw * self.sub].reshape(planes, self.sh, self.sw, self.hh, self.wh)

    def blocks(self):
        """(a, b, phase rows, phase cols, input rows, input cols) of every stride phase."""
        h, w, top, left = self.h, self.w, self.top, self.left
        for a in range(self.sh):
            r0 = max(0, -(-(top - a) // self.sh))           # first phase row inside the input
            y0 = r0 * self.sh + a - top
            nr = min(self.hh - r0, len(range(y0, h, self.sh)))
            for b in range(self.sw):
                q0 = max(0, -(-(left - b) // self.sw))
                x0 = q0 * self.sw + b - left
                nq = min(self.wh - q0, len(range(x0, w, self.sw)))
                if nr > 0 and nq > 0:
                    yield (a, b, slice(r0, r0 + nr), slice(q0, q0 + nq),
                           slice(y0, y0 + self.sh * (nr - 1) + 1, self.sh), slice(x0, x0 + self.sw * (nq - 1) + 1, self.sw))


def _split(x, lay, name):
    """x (m, C, H, W) -> flat zero-padded phase buffer (m*C*sh*sw*Hh*Wh + tail,)."""
    m, c = x.shape[:2]
    flat = work_buffer(name, (m * c * lay.sh * lay.sw * lay.sub + lay.tail,), x.dtype)
    flat[...] = 0
    phases = lay.phases(flat, m * c).reshape(m, c, lay.sh, lay.sw, lay.hh, lay.wh)
    for a, b, rows, cols, ys, xs in lay.blocks():
        phases[:, :, a, b, rows, cols] = x[:, :, ys, xs]
    return flat


def chunks(geom, dtype):
    """[(n0, n1), ...]: the batch cut so that a chunk's phase-split input fits the budget."""
    lay = _Layout.of(geom)
    per_sample = geom.in_channels * lay.sh * lay.sw * lay.sub * np.dtype(dtype).itemsize
    return batch_chunks(geom.batch, per_sample)


def _correlate(src, lay, kernel, wt, out, b4):
    """out (m, C, OH, OW) = sum_t wt[:, t] * tap_t(split(src)) (+ b4); src (m, C, H, W), wt (C, kh*kw)."""
    m, c = src.shape[:2]
    flat = _split(src, lay, "dw_x")
    acc = work_buffer("dw_acc", (m * c, lay.oh, lay.wh), src.dtype)
    tmp = work_buffer("dw_tmp", acc.shape, src.dtype)
    wrep = np.tile(wt.T, (1, m))[:, :, None, None]                   # (kh*kw, C) -> (kh*kw, m*C, 1, 1)
    for t, offset in lay.taps(kernel):
        view = lay.view(flat, m * c, offset)
        if t == 0:
            np.multiply(view, wrep[t], out=acc)
        else:
            np.multiply(view, wrep[t], out=tmp)
            acc += tmp
    y = acc.reshape(m, c, lay.oh, lay.wh)[:, :, :, :lay.ow]          # (m*C, OH, Wh) -> (m, C, OH, OW)
    if b4 is None:
        out[...] = y
    else:
        np.add(y, b4, out=out)


def conv_forward(x, weight, bias, geom, saved=None):
    """x: (N, C, H, W), weight: (C, 1, kh, kw) -> (N, C, OH, OW)."""
    c = geom.in_channels
    kh, kw = geom.kernel
    lay = _Layout.of(geom)
    wt = weight.reshape(c, kh * kw)                                   # (C, 1, kh, kw) -> (C, kh*kw)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    b4 = None if bias is None else bias.reshape(1, c, 1, 1)          # (C,) -> (1, C, 1, 1)

    def per_chunk(c0, c1):
        _correlate(x[c0:c1], lay, geom.kernel, wt, out[c0:c1], b4)

    run_chunks(chunks(geom, x.dtype), per_chunk)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None):
    """(dx, dW, db) of the depthwise convolution; each is None when not needed."""
    c = geom.in_channels
    kh, kw = geom.kernel
    lay = _Layout.of(geom)
    oh, ow = lay.oh, lay.ow
    dtype = grad_out.dtype
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    wt = weight.reshape(c, kh * kw) if need_input else None           # (C, 1, kh, kw) -> (C, kh*kw)
    top, bottom, left, right = geom.pads
    kh1, kw1 = (kh - 1) * geom.dilation[0], (kw - 1) * geom.dilation[1]
    gather = geom.stride == (1, 1) and max(top, bottom) <= kh1 and max(left, right) <= kw1
    if need_input and gather:   # stride 1: dx = correlation of pad(dy) with the flipped filters
        dy_pads = (kh1 - top, kh1 - bottom, kw1 - left, kw1 - right)
        lay_dx = _Layout(geom.kernel, (1, 1), geom.dilation, (oh, ow), dy_pads, geom.in_size)
        wt_flipped = weight[:, :, ::-1, ::-1].reshape(c, kh * kw)

    def per_chunk(c0, c1):
        m = c1 - c0
        dy = grad_out[c0:c1]                                          # (m, C, OH, OW)
        db_part = dy.reshape(m, c, oh * ow).sum(axis=2).sum(axis=0) if need_bias else None
        dw_part = np.empty((c, kh * kw), dtype=dtype) if need_weight else None   # this chunk's own
        if need_input and gather:
            _correlate(dy, lay_dx, geom.kernel, wt_flipped, dx[c0:c1], None)
        if not (need_weight or (need_input and not gather)):
            return dw_part, db_part
        dyx = work_buffer("dw_dy", (m * c, oh, lay.wh), dtype)        # dy, zero in the extra columns
        dyx.reshape(m, c, oh, lay.wh)[:, :, :, :ow] = dy
        dyx[:, :, ow:] = 0
        dy2 = dyx.reshape(m * c, oh * lay.wh)
        if need_weight:
            flat = _split(x[c0:c1], lay, "dw_x")
            for t, offset in lay.taps(geom.kernel):
                view = lay.view(flat, m * c, offset).reshape(m * c, oh * lay.wh)
                dw_part[:, t] = np.vecdot(dy2, view).reshape(m, c).sum(axis=0)
        if need_input and not gather:
            _dx_scatter(dyx, wt, lay, geom, m, dx[c0:c1])
        return dw_part, db_part

    grad_w, grad_b = run_chunks(chunks(geom, dtype), per_chunk)
    if need_weight:
        grad_w = grad_w.reshape(c, 1, kh, kw)
    return dx, grad_w, grad_b


def _dx_scatter(dyx, wt, lay, geom, m, dx):
    """dx (m, C, H, W): every tap adds w[:, t] * dy into its window of a zeroed phase buffer, then unsplit."""
    c = geom.in_channels
    flat = work_buffer("dw_dx", (m * c * lay.sh * lay.sw * lay.sub + lay.tail,), dyx.dtype)
    flat[...] = 0
    tmp = work_buffer("dw_tmp", dyx.shape, dyx.dtype)
    wrep = np.tile(wt.T, (1, m))[:, :, None, None]                   # (kh*kw, C) -> (kh*kw, m*C, 1, 1)
    for t, offset in lay.taps(geom.kernel):
        np.multiply(dyx, wrep[t], out=tmp)
        view = lay.view(flat, m * c, offset, writeable=True)
        np.add(view, tmp, out=view)
    phases = lay.phases(flat, m * c).reshape(m, c, lay.sh, lay.sw, lay.hh, lay.wh)
    dx[...] = 0
    for a, b, rows, cols, ys, xs in lay.blocks():
        dx[:, :, ys, xs] = phases[:, :, a, b, rows, cols]
