"""Depthwise convolutions (groups == in_channels == out_channels) on the CPU, without matmuls.

Each channel has its own kh x kw filter, so im2col + GEMM would be C tiny matmuls. Instead, loop over
the kh*kw kernel taps; each tap is one strided view of the padded input (planes = samples x channels):

    y      = sum_t  w[:, t] * tap_t(pad(x))                     (g*C, OH, OWx) -> (g, C, OH, OW)
    dW[:,t]= sum_{n,p} dy * tap_t(pad(x))                        one dot product per plane and tap
    dx     = stride 1: sum_t w_flipped[:, t] * tap_t(pad(dy))    (a depthwise correlation again)
             otherwise: tap_t(dx_pad) += w[:, t] * dy            (scatter, tap by tap)

With stride 1 a tap is computed over the padded width (OWx = Wp): the view of every plane is then one
contiguous run of OH*Wp numbers, so each multiply-add is a long vector loop; the Wp - OW extra
columns are dropped at the end (and are zeros in dy for the weight gradient).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .cpu_conv import _parallel, work_buffer

PLANE_BUDGET = 2 << 20     # bytes of padded input per chunk (per thread): fewer, longer numpy calls


def applies(geom) -> bool:
    return geom.groups == geom.in_channels == geom.out_channels and geom.groups > 1


def _padded_planes(x, pads, extended, name):
    """x: (g, C, H, W) -> (buffer (g*C, Hp, Wp) zero-bordered, + a zero tail for the extended taps)."""
    g, c, h, w = x.shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right
    size = g * c * hp * wp
    flat = work_buffer(name, (size + extended,), x.dtype)
    flat[size:] = 0
    planes = flat[:size].reshape(g, c, hp, wp)
    if top:
        planes[:, :, :top] = 0
    if bottom:
        planes[:, :, top + h:] = 0
    if left:
        planes[:, :, top:top + h, :left] = 0
    if right:
        planes[:, :, top:top + h, left + w:] = 0
    planes[:, :, top:top + h, left:left + w] = x
    return flat, (g * c, hp, wp)


def _tap(flat, dims, i, j, stride, dilation, out_h, out_wx):
    """View (planes, OH, OWx): element [p, r, q] = plane p at row r*sh + i*dh, column q*sw + j*dw."""
    planes, hp, wp = dims
    sh, sw = stride
    dh, dw = dilation
    isz = flat.itemsize
    start = flat[i * dh * wp + j * dw:]
    return as_strided(start, shape=(planes, out_h, out_wx), strides=(hp * wp * isz, sh * wp * isz, sw * isz),
                      writeable=False)


def _correlate(flat, dims, wt, g, kernel, stride, dilation, out_h, out_wx, acc):
    """acc (g*C, OH, OWx) = sum over taps t of wt[:, t] * tap_t; wt: (C, kh*kw)."""
    kh, kw = kernel
    tmp = work_buffer("dw_tmp", acc.shape, acc.dtype)
    wrep = np.tile(wt.T, (1, g))[:, :, None, None]                    # (kh*kw, C) -> (kh*kw, g*C, 1, 1)
    for i in range(kh):
        for j in range(kw):
            t = i * kw + j
            view = _tap(flat, dims, i, j, stride, dilation, out_h, out_wx)
            if t == 0:
                np.multiply(view, wrep[t], out=acc)
            else:
                np.multiply(view, wrep[t], out=tmp)
                acc += tmp
    return acc


def _samples_per_chunk(geom, itemsize):
    h, w = geom.in_size
    top, bottom, left, right = geom.pads
    per_sample = geom.in_channels * (h + top + bottom) * (w + left + right) * itemsize
    return max(1, PLANE_BUDGET // max(per_sample, 1))


def conv_forward(x, weight, bias, geom):
    """x: (N, C, H, W), weight: (C, 1, kh, kw) -> (N, C, OH, OW)."""
    c = geom.in_channels
    kh, kw = geom.kernel
    oh, ow = geom.out_size
    wt = weight.reshape(c, kh * kw)                                   # (C, 1, kh, kw) -> (C, kh*kw)
    out = np.empty(geom.out_shape, dtype=x.dtype)
    step = _samples_per_chunk(geom, x.itemsize)
    extended = geom.stride == (1, 1)
    tail = (kw - 1) * geom.dilation[1] if extended else 0
    b4 = None if bias is None else bias.reshape(1, c, 1, 1)          # (C,) -> (1, C, 1, 1)

    def piece(n0, n1):
        for c0 in range(n0, n1, step):
            c1 = min(c0 + step, n1)
            g = c1 - c0
            flat, dims = _padded_planes(x[c0:c1], geom.pads, tail, "dw_x")
            owx = dims[2] if extended else ow
            acc = work_buffer("dw_acc", (g * c, oh, owx), x.dtype)
            _correlate(flat, dims, wt, g, geom.kernel, geom.stride, geom.dilation, oh, owx, acc)
            y = acc.reshape(g, c, oh, owx)[:, :, :, :ow]             # (g*C, OH, OWx) -> (g, C, OH, OW)
            if b4 is None:
                out[c0:c1] = y
            else:
                np.add(y, b4, out=out[c0:c1])

    _parallel(geom.batch, piece)
    return out


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True):
    """(dx, dW, db) of the depthwise convolution; each is None when not needed."""
    c = geom.in_channels
    kh, kw = geom.kernel
    oh, ow = geom.out_size
    h, w = geom.in_size
    dh, dw = geom.dilation
    sh, sw = geom.stride
    top, bottom, left, right = geom.pads
    dtype = grad_out.dtype
    step = _samples_per_chunk(geom, grad_out.itemsize)
    extended = geom.stride == (1, 1)
    tail = (kw - 1) * dw if extended else 0
    kh1, kw1 = (kh - 1) * dh, (kw - 1) * dw
    gather = extended and max(top, bottom) <= kh1 and max(left, right) <= kw1
    dx = np.empty(geom.in_shape, dtype=dtype) if need_input else None
    if need_input:
        wt = weight.reshape(c, kh * kw)                               # (C, 1, kh, kw) -> (C, kh*kw)
        wt_flipped = weight[:, :, ::-1, ::-1].reshape(c, kh * kw)

    def piece(n0, n1):
        dw_part = np.zeros((c, kh * kw), dtype=dtype) if need_weight else None
        db_part = np.zeros(c, dtype=dtype) if need_bias else None
        for c0 in range(n0, n1, step):
            c1 = min(c0 + step, n1)
            g = c1 - c0
            dy = grad_out[c0:c1]                                      # (g, C, OH, OW)
            if need_bias:
                db_part += dy.reshape(g, c, oh * ow).sum(axis=2).sum(axis=0)
            if need_weight:
                flat, dims = _padded_planes(x[c0:c1], geom.pads, tail, "dw_x")
                owx = dims[2] if extended else ow
                dyx = work_buffer("dw_dy", (g * c, oh, owx), dtype)   # dy, zero in the extra columns
                dyx.reshape(g, c, oh, owx)[:, :, :, :ow] = dy
                dyx[:, :, ow:] = 0
                for t in range(kh * kw):
                    view = _tap(flat, dims, t // kw, t % kw, geom.stride, geom.dilation, oh, owx)
                    dots = np.vecdot(dyx.reshape(g * c, oh * owx) if extended else dyx,
                                     view.reshape(g * c, oh * owx) if extended else view)
                    dw_part[:, t] += dots.reshape(g, c, -1).sum(axis=(0, 2))
            if need_input:
                if gather:
                    qt, qb, ql, qr = kh1 - top, kh1 - bottom, kw1 - left, kw1 - right
                    flat, dims = _padded_planes(dy, (qt, qb, ql, qr), tail, "dw_x")
                    acc = work_buffer("dw_acc", (g * c, h, dims[2]), dtype)
                    _correlate(flat, dims, wt_flipped, g, geom.kernel, (1, 1), geom.dilation, h, dims[2], acc)
                    dx[c0:c1] = acc.reshape(g, c, h, dims[2])[:, :, :, :w]
                else:
                    _dx_scatter(dy, wt, geom, dx[c0:c1])
        return dw_part, db_part

    results = _parallel(geom.batch, piece)
    grad_w = grad_b = None
    if need_weight:
        grad_w = results[0][0]
        for part, _ in results[1:]:
            grad_w += part
        grad_w = grad_w.reshape(c, 1, kh, kw)
    if need_bias:
        grad_b = results[0][1]
        for _, part in results[1:]:
            grad_b += part
    return dx, grad_w, grad_b


def _dx_scatter(dy, wt, geom, dx):
    """dx (g, C, H, W) = crop(sum_t tap_t^T(w[:, t] * dy)) for any stride."""
    g, c, oh, ow = dy.shape
    h, w = geom.in_size
    kh, kw = geom.kernel
    sh, sw = geom.stride
    dh, dw = geom.dilation
    top, bottom, left, right = geom.pads
    dxpad = work_buffer("dw_dxpad", (g, c, h + top + bottom, w + left + right), dy.dtype)
    dxpad[...] = 0
    tmp = work_buffer("dw_tmp", dy.shape, dy.dtype)
    for i in range(kh):
        for j in range(kw):
            np.multiply(dy, wt[:, i * kw + j].reshape(1, c, 1, 1), out=tmp)
            dxpad[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += tmp
    dx[...] = dxpad[:, :, top:top + h, left:left + w]
