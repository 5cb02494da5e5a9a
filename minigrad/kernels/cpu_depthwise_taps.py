"""Depthwise convolutions, the taps path (wide planes; and any call whose numbers are not all finite): a loop over
the kh*kw kernel taps, each tap one view of the padded input

    y        = sum_t  w[:, t] * tap_t(xs)                  (cs, ns*Hh*Wh) -> (ns, cs, OH, OW)
    dW[:, t] = sum_{n,p} dy * tap_t(xs)                    one dot product per channel and tap
    dx       = stride 1: the same correlation of pad(dy) with the flipped filters
               otherwise: unsplit(sum_t tap_t^T(w[:, t] * dy)), scatter-adds into the same layout

in blocks of cs channels x ns samples whose buffers stay in the core's L2 cache while the taps pass over them
(``BLOCK`` bytes of split input and output-sized buffers; the whole batch per channel when it fits, so a
channel's samples are one long run). ``xs`` is a block's zero-padded input split into its sh x sw stride phases,
phase-major: phase (a, b) holds padded rows a, a+sh, ... and columns b, b+sw, ... of every plane, as
(cs, ns, Hh, Wh); the phases follow each other in one flat buffer with a zero tail. Tap (i, j) reads phase
((i*dh) % sh, (j*dw) % sw) at a fixed offset with unit steps: computed over whole phase planes (the Hh - OH
extra rows and Wh - OW extra columns are dropped, and are zeros in dy), a tap of the whole block is ONE contiguous
run of cs*ns*Hh*Wh numbers, one channel's weight per ns*Hh*Wh of them, so every multiply-add, dot product and
scatter is one long vector loop per channel and call. (A valid output's window never leaves its own plane; the
extra positions read into the next plane or the tail, and are dropped or multiplied by dy's zeros.)

Non-finite numbers: y and dx hold them exactly in the windows that hold one (the extra positions are dropped, or
scatter zeros). dW's long dot products multiply dy's zeros at the extra positions by whatever input they read,
so an inf or nan there would reach a tap whose valid windows never read it: a block whose dW part is not all
finite is recomputed over the valid positions only (``weight_grad_valid``), which gives the windows' own sums.

BLOCK and ``channel_blocks`` size the blocks of all three depthwise paths (kernels/cpu_depthwise.py).
"""
from __future__ import annotations

import numpy as np

from . import cpu_runtime
from .cpu_runtime import MIN_CHUNKS, batch_chunks, run_chunks, split_range, work_buffer

BLOCK = 1 << 20         # bytes of a block's working set (taps: split input and three output-sized buffers;
                        # rows: the padded input and dy; dense: the matrices)


def block_budget() -> int:
    """Bytes of one block's working set: BLOCK, or kernels/cpu_runtime.BUDGET when that is smaller."""
    return min(BLOCK, cpu_runtime.BUDGET)


def channel_blocks(c, per_block):
    """[(c0, c1), ...]: c channels in blocks of about per_block, at least MIN_CHUNKS (a multiple of it) when there
    are that many channels, so every thread of a small pool has work."""
    count = -(-c // per_block)
    return split_range(c, min(c, MIN_CHUNKS * -(-count // MIN_CHUNKS)))


class Layout:
    """Sizes of a block's phase-split planes: sh*sw phases of (planes, Hh, Wh), then a zero tail."""

    def __init__(self, kernel, stride, dilation, in_size, pads, out_size):
        self.kernel = kh, kw = kernel
        self.sh, self.sw = stride
        self.dh, self.dw = dilation
        self.h, self.w = in_size
        self.top, self.left = pads[0], pads[2]
        self.oh, self.ow = out_size
        self.hh = self.oh + (kh - 1) * self.dh // self.sh
        self.wh = self.ow + (kw - 1) * self.dw // self.sw
        self.sub = self.hh * self.wh                      # one phase of one plane
        self.phases = self.sh * self.sw
        self.taps = []                                    # (t, phase, offset within the phase's planes)
        for i in range(kh):
            for j in range(kw):
                a, r = divmod(i * self.dh, self.sh)[::-1]  # phase row a, row offset r
                b, q = divmod(j * self.dw, self.sw)[::-1]
                self.taps.append((i * kw + j, a * self.sw + b, r * self.wh + q))
        self.tail = max(offset for _, _, offset in self.taps)   # a tap's run reaches this far past the end
        self.covers = sum((r.stop - r.start) * (c.stop - c.start) for *_, r, c in self.blocks()) == self.h * self.w

    @classmethod
    def of(cls, geom):
        return cls(geom.kernel, geom.stride, geom.dilation, geom.in_size, geom.pads, geom.out_size)

    def size(self, planes):
        """Numbers in the flat buffer of `planes` planes: the phases and the tail."""
        return self.phases * planes * self.sub + self.tail

    def runs(self, flat, cs, ns):
        """(t, (cs, ns*Hh*Wh) view of tap t): each one contiguous run of the flat phase buffer."""
        run = cs * ns * self.sub
        for t, phase, offset in self.taps:
            start = phase * run + offset
            yield t, flat[start:start + run].reshape(cs, ns * self.sub)

    def split_view(self, flat, cs, ns):
        """The flat buffer's phases as (sh, sw, cs, ns, Hh, Wh)."""
        return flat[:self.phases * cs * ns * self.sub].reshape(self.sh, self.sw, cs, ns, self.hh, self.wh)

    def blocks(self):
        """[(a, b, input rows, input cols, phase rows, phase cols)] of every stride phase that holds input."""
        h, w, top, left = self.h, self.w, self.top, self.left
        cuts = []
        for a in range(self.sh):
            r0 = max(0, -(-(top - a) // self.sh))           # first phase row inside the input
            y0 = r0 * self.sh + a - top
            nr = min(self.hh - r0, len(range(y0, h, self.sh)))
            for b in range(self.sw):
                q0 = max(0, -(-(left - b) // self.sw))
                x0 = q0 * self.sw + b - left
                nq = min(self.wh - q0, len(range(x0, w, self.sw)))
                if nr > 0 and nq > 0:
                    cuts.append((a, b, slice(y0, y0 + self.sh * (nr - 1) + 1, self.sh),
                                 slice(x0, x0 + self.sw * (nq - 1) + 1, self.sw), slice(r0, r0 + nr),
                                 slice(q0, q0 + nq)))
        return cuts


def split(x, lay, name):
    """x (ns, cs, H, W) -> the thread's flat buffer `name`: zero-padded phases (sh, sw, cs, ns, Hh, Wh), zero tail."""
    ns, cs = x.shape[:2]
    flat = work_buffer(name, (lay.size(cs * ns),), x.dtype)
    phases = lay.split_view(flat, cs, ns)
    xt = x.transpose(1, 0, 2, 3)                                      # (ns, cs, H, W) -> (cs, ns, H, W)
    flat[...] = 0                   # one memset: faster than zeroing only the padding, in short strided runs
    for a, b, ys, xs, rows, cols in lay.blocks():
        phases[a, b, :, :, rows, cols] = xt[:, :, ys, xs]
    return flat


def plan(geom, dtype):
    """(sample blocks, channel blocks): the batch cut so that one channel's planes of a sample block fit the
    block budget (block_budget() bytes of split input and three output-sized buffers: the accumulator, the
    product and dy); when the whole batch fits, several channels per block (channel_blocks). Sizes only, never
    the thread count."""
    lay = Layout.of(geom)
    plane = (lay.phases + 3) * lay.sub * np.dtype(dtype).itemsize
    budget = block_budget()
    samples = batch_chunks(geom.batch, plane, budget, min_chunks=1)
    per_block = max(1, budget // (plane * geom.batch)) if len(samples) == 1 else 1
    return samples, channel_blocks(geom.in_channels, per_block)


def correlate(src, lay, wt, out, bias, name):
    """out (ns, cs, OH, OW) = sum_t wt[:, t] * tap_t(split(src)) (+ bias); src (ns, cs, H, W), wt (cs, kh*kw).
    Returns the split buffer of src (the thread's work buffer `name`)."""
    ns, cs = src.shape[:2]
    flat = split(src, lay, name)
    acc = work_buffer("dw_acc", (cs, ns * lay.sub), src.dtype)
    tmp = work_buffer("dw_tmp", acc.shape, src.dtype)
    for t, view in lay.runs(flat, cs, ns):
        if t == 0:
            np.multiply(view, wt[:, :1], out=acc)
        else:
            np.multiply(view, wt[:, t:t + 1], out=tmp)
            np.add(acc, tmp, out=acc)
    y = acc.reshape(cs, ns, lay.hh, lay.wh)[:, :, :lay.oh, :lay.ow]   # (cs, ns*Hh*Wh) -> (cs, ns, OH, OW)
    out_t = out.transpose(1, 0, 2, 3)                                 # (ns, cs, OH, OW) -> (cs, ns, OH, OW)
    if bias is None:
        np.copyto(out_t, y)
    else:
        np.add(y, bias[:, None, None, None], out=out_t)
    return flat


def forward(x, wt, bias, geom):
    """x (N, C, H, W), wt (C, kh*kw), bias (C,) or None -> y (N, C, OH, OW)."""
    lay = Layout.of(geom)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    samples, channels = plan(geom, x.dtype)

    def per_block(c0, c1):
        for n0, n1 in samples:
            correlate(x[n0:n1, c0:c1], lay, wt[c0:c1], out[n0:n1, c0:c1], None if bias is None else bias[c0:c1], "dw_x")

    run_chunks(channels, per_block)
    return out


def backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True):
    """(dx (N, C, H, W), dW (C, 1, kh, kw), db (C,)) from x, weight (C, 1, kh, kw) and grad_out (N, C, OH, OW);
    each None when not needed."""
    c = geom.in_channels
    kh, kw = geom.kernel
    taps = kh * kw
    lay = Layout.of(geom)
    oh, ow = lay.oh, lay.ow
    dtype = grad_out.dtype
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    dw = np.empty((c, taps), dtype=dtype) if need_weight else None
    db = np.empty(c, dtype=dtype) if need_bias else None
    wt = weight.reshape(c, taps) if need_input else None              # (C, 1, kh, kw) -> (C, kh*kw)
    top, bottom, left, right = geom.pads
    kh1, kw1 = (kh - 1) * geom.dilation[0], (kw - 1) * geom.dilation[1]
    gather = geom.stride == (1, 1) and max(top, bottom) <= kh1 and max(left, right) <= kw1
    shift = None
    if need_input and gather:   # stride 1: dx = correlation of pad(dy) with the flipped filters
        dy_pads = (kh1 - top, kh1 - bottom, kw1 - left, kw1 - right)
        lay_dx = Layout(geom.kernel, (1, 1), geom.dilation, (oh, ow), dy_pads, geom.in_size)
        wt_flipped = weight[:, :, ::-1, ::-1].reshape(c, taps)
        if (lay_dx.hh, lay_dx.wh) == (lay.hh, lay.wh):   # pad(dy), shifted, is dy in the forward's layout
            shift = (kh1 - top) * lay.wh + (kw1 - left)
    samples, channels = plan(geom, dtype)

    def per_block(c0, c1):
        cs = c1 - c0
        for k, (n0, n1) in enumerate(samples):
            ns = n1 - n0
            run = cs * ns * lay.sub
            dy = grad_out[n0:n1, c0:c1]                               # (ns, cs, OH, OW)
            dyl = None
            if need_input and gather:
                dyp = correlate(dy, lay_dx, wt_flipped[c0:c1], dx[n0:n1, c0:c1], None, "dw_dyp")
                if shift is not None:
                    dyl = dyp[shift:shift + run].reshape(cs, ns * lay.sub)
            if not (need_weight or need_bias or (need_input and not gather)):
                continue
            if dyl is None:                                           # dy in the forward's layout, zero outside
                dyl = work_buffer("dw_dy", (cs, ns * lay.sub), dtype)
                d4 = dyl.reshape(cs, ns, lay.hh, lay.wh)
                d4[:, :, :oh, :ow] = dy.transpose(1, 0, 2, 3)
                d4[:, :, :oh, ow:] = 0
                d4[:, :, oh:] = 0
            if need_bias:
                part = dyl.sum(axis=1)
                if k == 0:
                    db[c0:c1] = part
                else:
                    db[c0:c1] += part
            if need_weight:
                flat = split(x[n0:n1, c0:c1], lay, "dw_x")
                part = np.empty((cs, taps), dtype=dtype)
                with np.errstate(invalid="ignore"):      # inf * 0 at the extra positions: the part is redone
                    for t, view in lay.runs(flat, cs, ns):
                        np.vecdot(dyl, view, out=part[:, t])
                if not np.isfinite(part).all():   # an inf or nan: perhaps only at positions the windows never read
                    weight_grad_valid(dyl, flat, lay, cs, ns, part)
                if k == 0:
                    dw[c0:c1] = part
                else:
                    dw[c0:c1] += part
            if need_input and not gather:
                dx_scatter(dyl, wt[c0:c1], lay, cs, ns, dx[n0:n1, c0:c1])

    run_chunks(channels, per_block)
    if need_weight:
        dw = dw.reshape(c, 1, kh, kw)
    return dx, dw, db


def weight_grad_valid(dyl, flat, lay, cs, ns, part):
    """part (cs, kh*kw) = sum over the valid outputs (n, r, s) of dy * tap_t(xs): the taps' products at the
    windows' own positions only (dyl: dy in the forward's layout; flat: the split input)."""
    d4 = dyl.reshape(cs, ns, lay.hh, lay.wh)[:, :, :lay.oh, :lay.ow]
    for t, view in lay.runs(flat, cs, ns):
        v4 = view.reshape(cs, ns, lay.hh, lay.wh)[:, :, :lay.oh, :lay.ow]
        np.sum(d4 * v4, axis=(1, 2, 3), out=part[:, t])


def dx_scatter(dyl, wt, lay, cs, ns, dx):
    """dx (ns, cs, H, W): every tap adds w[:, t] * dy into its window of a zeroed phase buffer, then unsplit."""
    flat = work_buffer("dw_dx", (lay.size(cs * ns),), dyl.dtype)
    flat[...] = 0
    tmp = work_buffer("dw_tmp", dyl.shape, dyl.dtype)
    for t, view in lay.runs(flat, cs, ns):
        np.multiply(dyl, wt[:, t:t + 1], out=tmp)
        np.add(view, tmp, out=view)
    phases = lay.split_view(flat, cs, ns)
    dxt = dx.transpose(1, 0, 2, 3)                                    # (ns, cs, H, W) -> (cs, ns, H, W)
    if not lay.covers:
        dxt[...] = 0
    for a, b, ys, xs, rows, cols in lay.blocks():
        dxt[:, :, ys, xs] = phases[a, b, :, :, rows, cols]
