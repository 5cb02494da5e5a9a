"""The compiled loops (Numba) of the convolutions: im2col and col2im for cpu_conv (channels-last columns), col2im for
cpu_samplemajor (the reference layout) and cpu_batchlast (samples innermost), and the depthwise convolution's
forward and gradients (compiled_depthwise). Same options and caching as numba_loops; arrays are C-contiguous."""
from __future__ import annotations

import numba

from .numba_loops import jit as _jit

__all__ = ["col2im", "im2col", "depthwise_forward", "depthwise_input_grad", "depthwise_param_grads", "col2im_nchw",
           "col2im_batch_last"]


@_jit
def col2im(dcols, grad_in, plane, sh, sw, dh, dw, top, left):
    """dcols: (G, m, OH, OW, kh, kw, Cg) -> grad_in (m, G*Cg, H, W); plane: a (Hp, Wp, G*Cg) scratch buffer.

    Sample by sample (its padded channels-last plane stays in cache): zero the plane, add the columns window by
    window in kernel-offset order (cpu_conv's NumPy scatter adds in that order, so the sums are the same bit for
    bit), then write the inside of the plane to NCHW."""
    groups, m, out_h, out_w, kh, kw, cg = dcols.shape
    channels, h, w = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for n in range(m):
        plane[:] = 0
        for g in range(groups):
            base = g * cg
            for i in range(kh):
                for j in range(kw):
                    for r in range(out_h):
                        row = r * sh + i * dh
                        for q in range(out_w):
                            col = q * sw + j * dw
                            for c in range(cg):
                                plane[row, col, base + c] += dcols[g, n, r, q, i, j, c]
        for c in range(channels):
            for y in range(h):
                for x in range(w):
                    grad_in[n, c, y, x] = plane[y + top, x + left, c]


@_jit
def im2col(xpad, cols, kh, kw, sh, sw, dh, dw, r0, rows, out_w):
    """xpad: (m, Hp, Wp, G*Cg), the zero-padded channels-last copy of cpu_conv.pad_channels_last -> cols (G,
    m*rows*OW, kh*kw*Cg), the windows of output rows [r0, r0 + rows): cols[g, (n, r, q), (i, j, c)] = xpad[n,
    (r0 + r)*sh + i*dh, q*sw + j*dw, g*Cg + c], each (i, j) a run of Cg contiguous numbers on both sides. A pure
    copy: the same columns as cpu_conv's NumPy im2col (one pass instead of NumPy's strided copy per kernel row, and
    faster than gathering each number across the channels of NCHW: docs/benchmarks.md)."""
    groups = cols.shape[0]
    cg = xpad.shape[3] // groups
    m = xpad.shape[0]
    for g in range(groups):
        c0 = g * cg
        for n in range(m):
            for r in range(rows):
                row0 = (r0 + r) * sh
                for q in range(out_w):
                    col0 = q * sw
                    index = (n * rows + r) * out_w + q
                    for i in range(kh):
                        for j in range(kw):
                            src = xpad[n, row0 + i * dh, col0 + j * dw, c0:c0 + cg]
                            dst = cols[g, index, (i * kw + j) * cg:(i * kw + j + 1) * cg]
                            for c in range(cg):
                                dst[c] = src[c]


@_jit
def _pad_plane(src, pad, top, left):
    """src: (H, W) -> pad (Hp, Wp): zero border, src inside."""
    h, w = src.shape
    pad[:] = 0
    for a in range(h):
        for b in range(w):
            pad[a + top, b + left] = src[a, b]


@_jit
def depthwise_forward(x, weight, bias, y, pad, wide, p0, dh, dw, top, left):
    """Stride 1. x: (P, H, W) planes p0 .. p0 + P of the batch (plane p has channel p % C), weight: (C, kh, kw)
    finite, bias: (C,) or (0,) -> y: (P, OH, OW). Scratch: pad (Hp, Wp), wide (OH*Wp).

    Per plane: a zero-padded copy, then one long loop per tap over "wide" output rows of Wp numbers, y_wide[r*Wp + q]
    += w[i, j] * pad_flat[r*Wp + q + i*dh*Wp + j*dw] (the columns q >= OW are thrown away), so each tap is
    one vectorised pass whatever the plane's width; then the OW columns of each row to y. Finite weights times the
    zero border add exact zeros: the same windows as skipping the padding."""
    planes = x.shape[0]
    channels, kh, kw = weight.shape
    out_h, out_w = y.shape[1], y.shape[2]
    hp, wp = pad.shape
    flat = pad.reshape(hp * wp)
    length = (out_h - 1) * wp + out_w
    for p in range(planes):
        ch = (p0 + p) % channels
        _pad_plane(x[p], pad, top, left)
        start = bias[ch] if bias.size else 0
        for k in range(length):
            wide[k] = start
        for i in range(kh):
            for j in range(kw):
                wt = weight[ch, i, j]
                src = flat[i * dh * wp + j * dw:]
                for k in range(length):                          # unit stride: LLVM vectorises it
                    wide[k] += wt * src[k]
        for r in range(out_h):
            for q in range(out_w):
                y[p, r, q] = wide[r * wp + q]


@_jit
def _wide_rows(src, wide, wp):
    """src: (OH, OW) -> wide (OH*Wp): each row followed by Wp - OW zeros."""
    out_h, out_w = src.shape
    wide[:] = 0
    for r in range(out_h):
        for q in range(out_w):
            wide[r * wp + q] = src[r, q]


@_jit
def depthwise_input_grad(grad_out, weight, grad_in, pad, wide, p0, dh, dw, top, left):
    """grad_out: (P, OH, OW), weight: (C, kh, kw) finite -> grad_in (P, H, W). Per plane: dy as wide rows (zeros past
    OW), one long scatter loop per tap into a zeroed padded plane, pad_flat[k + i*dh*Wp + j*dw] += w[i, j] *
    dy_wide[k], then its inside to grad_in (the border, where only padding taps land, is dropped)."""
    planes, h, w = grad_in.shape
    channels, kh, kw = weight.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    hp, wp = pad.shape
    flat = pad.reshape(hp * wp)
    length = (out_h - 1) * wp + out_w
    for p in range(planes):
        ch = (p0 + p) % channels
        _wide_rows(grad_out[p], wide, wp)
        flat[:] = 0
        for i in range(kh):
            for j in range(kw):
                wt = weight[ch, i, j]
                dst = flat[i * dh * wp + j * dw:]
                for k in range(length):
                    dst[k] += wt * wide[k]
        for a in range(h):
            for b in range(w):
                grad_in[p, a, b] = pad[a + top, b + left]


@numba.njit(nogil=True, cache=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _dot(a, b, length):
    """sum of a[k] * b[k] for 0 < k < length after a[0] * b[0], reassociated into vector lanes: a fixed order for a given build,
    the same on any thread count."""
    total = a[0] * b[0]
    for k in range(1, length):
        total += a[k] * b[k]
    return total


@numba.njit(nogil=True, cache=True, boundscheck=False, fastmath={"reassoc", "contract"})
def _sum(a, length):
    """sum of a[k] for k < length, reassociated into vector lanes (as _dot)."""
    total = a[0]
    for k in range(1, length):
        total += a[k]
    return total


@_jit
def depthwise_param_grads(x, grad_out, grad_w, grad_b, pad, wide, dh, dw, top, left):
    """x: (P, H, W), grad_out: (P, OH, OW) -> each plane's own weight gradient grad_w (P, kh, kw) = the dot product of
    dy's wide rows with each tap's view of the padded plane, and bias gradient grad_b (P,); summed over the
    batch by the caller. A non-finite dy meets the zero border here (inf * 0): the caller checks the result and
    recomputes such batches by cpu_depthwise, which skips the padding."""
    planes = x.shape[0]
    kh, kw = grad_w.shape[1], grad_w.shape[2]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    hp, wp = pad.shape
    flat = pad.reshape(hp * wp)
    length = (out_h - 1) * wp + out_w
    for p in range(planes):
        _pad_plane(x[p], pad, top, left)
        _wide_rows(grad_out[p], wide, wp)
        for i in range(kh):
            for j in range(kw):
                grad_w[p, i, j] = _dot(wide, flat[i * dh * wp + j * dw:], length)
        grad_b[p] = _sum(wide, length)


@_jit
def col2im_nchw(dcols, grad_in, plane, sh, sw, dh, dw, top, left):
    """dcols: (m, C, kh, kw, OH, OW) -> grad_in (m, C, H, W); plane: a (Hp, Wp) scratch buffer. Plane by plane (in
    cache): zero it, add the columns tap by tap in kernel-offset order (the reference fold's order, so the same sums
    bit for bit), then write its inside to grad_in."""
    m, channels, kh, kw, out_h, out_w = dcols.shape
    h, w = grad_in.shape[2], grad_in.shape[3]
    for n in range(m):
        for c in range(channels):
            plane[:] = 0
            for i in range(kh):
                for j in range(kw):
                    for r in range(out_h):
                        src = dcols[n, c, i, j, r]
                        dst = plane[r * sh + i * dh, j * dw:]
                        if sw == 1:
                            for q in range(out_w):
                                dst[q] += src[q]
                        else:
                            for q in range(out_w):
                                dst[q * sw] += src[q]
            for a in range(h):
                for b in range(w):
                    grad_in[n, c, a, b] = plane[a + top, b + left]


@_jit
def col2im_batch_last(dcols, grad_in, plane, sh, sw, dh, dw, top, left):
    """dcols: (C, kh, kw, OH, OW, m), samples innermost -> grad_in (m, C, H, W); plane: a (Hp, Wp, m) scratch buffer.
    Channel by channel (its plane of m samples in cache): zero it, add the columns tap by tap in kernel-offset order
    (cpu_batchlast's NumPy order, so the same sums bit for bit), then write its inside to grad_in."""
    channels, kh, kw, out_h, out_w, m = dcols.shape
    h, w = grad_in.shape[2], grad_in.shape[3]
    for c in range(channels):
        plane[:] = 0
        for i in range(kh):
            for j in range(kw):
                for r in range(out_h):
                    row = r * sh + i * dh
                    for q in range(out_w):
                        dst = plane[row, q * sw + j * dw]
                        src = dcols[c, i, j, r, q]
                        for n in range(m):
                            dst[n] += src[n]
        for n in range(m):
            for a in range(h):
                for b in range(w):
                    grad_in[n, c, a, b] = plane[a + top, b + left, n]
