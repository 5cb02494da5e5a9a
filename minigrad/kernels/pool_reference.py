"""The reference max and average pooling, over any array module: a loop over the kh*kw kernel offsets.

Offset (i, j) reads the strided view ``xpad[:, :, i*dh : ... : sh, j*dw : ... : sw]`` of shape
(N, C, OH, OW) (``im2col.kernel_offsets``), k = i*kw + j:

    max  forward   running elementwise maximum over the offsets; ``argmax`` keeps the offset
                   of the first maximum (a later one wins only if strictly greater, or NaN),
                   so ties route their gradient like PyTorch's CPU kernel. Padding is -inf.
         backward  for each offset k: dxpad[view k] += where(argmax == k, dy, 0)
    avg  forward   sum of the zero-padded views / divisor
         backward  for each offset: dxpad[view] += dy / divisor

``geom`` is a ``minigrad.functional.pool.PoolGeometry``; the bottom/right pads include the ceil-mode
overhang.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module
from .im2col import kernel_offsets, pad_constant


def offsets(geom):
    """(k, rows, cols) of every kernel offset k into the padded input."""
    kw = geom.kernel[1]
    for i, j, rows, cols in kernel_offsets(geom.kernel, geom.stride, geom.dilation, geom.out_size):
        yield i * kw + j, rows, cols


def _padded_zeros(xp, shape, geom, dtype):
    top, bottom, left, right = geom.pads
    n, c, h, w = shape
    return xp.zeros((n, c, h + top + bottom, w + left + right), dtype=dtype)


def _crop(padded, geom):
    top, _, left, _ = geom.pads
    h, w = geom.in_size
    return padded[:, :, top:top + h, left:left + w]


def max_forward(x, geom):
    """x: (N, C, H, W) -> (y (N, C, OH, OW), argmax offset (N, C, OH, OW) in [0, kh*kw))."""
    xp = get_array_module(x)
    padded = pad_constant(x, geom.pads, -float("inf"))   # (N, C, H+pt+pb, W+pl+pr)
    out = argmax = None
    index_dtype = "uint8" if geom.kernel[0] * geom.kernel[1] <= 256 else "int32"
    for k, rows, cols in offsets(geom):
        view = padded[:, :, rows, cols]                  # (N, C, OH, OW)
        if out is None:
            out = view.copy()
            argmax = xp.zeros(out.shape, dtype=index_dtype)
            continue
        better = (view > out) | (view != view)           # strictly greater, or NaN (PyTorch's rule)
        out = xp.where(better, view, out)
        argmax = xp.where(better, k, argmax).astype(index_dtype, copy=False)
    return out, argmax


def max_backward(grad_out, argmax, in_shape, geom):
    """Route each dy to the input element that was the maximum. Returns (N, C, H, W)."""
    xp = get_array_module(grad_out, argmax)
    grad = _padded_zeros(xp, in_shape, geom, grad_out.dtype)
    for k, rows, cols in offsets(geom):
        grad[:, :, rows, cols] += xp.where(argmax == k, grad_out, 0.0)
    return _crop(grad, geom)


def avg_forward(x, geom, divisor):
    """x: (N, C, H, W) -> (N, C, OH, OW): sum of each zero-padded window / divisor."""
    padded = pad_constant(x, geom.pads, 0.0)             # (N, C, H+pt+pb, W+pl+pr)
    total = None
    for _, rows, cols in offsets(geom):
        view = padded[:, :, rows, cols]
        total = view.copy() if total is None else total + view
    return total / divisor


def avg_backward(grad_out, in_shape, geom, divisor):
    """Spread dy / divisor evenly over each window. Returns (N, C, H, W)."""
    xp = get_array_module(grad_out)
    share = grad_out / divisor
    grad = _padded_zeros(xp, in_shape, geom, grad_out.dtype)
    for _, rows, cols in offsets(geom):
        grad[:, :, rows, cols] += share
    return _crop(grad, geom)
