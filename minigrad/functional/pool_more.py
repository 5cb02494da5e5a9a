"""Adaptive max pooling and power-average (LP) pooling with their gradients, over any array module.

    adaptive max   y[i, j] = max over PyTorch's bin rows [floor(iH/OH), ceil((i+1)H/OH)) x the same for columns;
                   indices[i, j] = h*W + w of the maximum: the first in row-major order, a NaN wins (the last NaN,
                   as PyTorch's CPU kernel: ``val > max || isnan(val)``). A rectangle's maximum is separable:
                   the maximum over each bin's columns first (per row), then over its rows, which keeps exactly
                   that order. backward: every input element gathers dy of the (few) bins that contain it and
                   chose it, in row-major order of the outputs, so overlapping bins add like PyTorch's loop.
    lp pool        PyTorch's formula, step by step: o = avg_pool2d(x^p) (padding 0, count_include_pad, ceil_mode),
                   t = sign(o) * relu(|o|) * kh*kw, y = t^(1/p); p = +-inf: max_pool2d(|x|) / -max_pool2d(-|x|).
                   backward: the chain rule through the same steps, as autograd writes it (``relu`` passes no
                   gradient where |o| = 0: a window whose sum of x^p is 0 gets gradient 0, as torch documents).
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..runtime.backend import backend_of, get_array_module
from ..runtime.checks import check_float_array
from ..runtime.memory import check_bytes
from . import pool as P

__all__ = ["adaptive_max_pool", "adaptive_max_pool_backward", "lp_pool", "lp_pool_backward", "check_norm_type",
           "adaptive_max_pool2d", "lp_pool2d"]


# ----------------------------------------------------------------------------- adaptive max

def _bin_max(xp, a, size: int, out: int):
    """Running maximum over each of PyTorch's bins along axis 0 of a (size, ...) (a later element wins if greater
    or NaN) -> (values, positions) of shape (out, ...); positions index axis 0 (int64). Each step is a few passes
    over contiguous slabs a[p]: the value is maximum(best, a[p]) (NaN propagates, as the rule keeps a NaN) and,
    positions only growing, the position is maximum(position, p * won)."""
    values = xp.empty((out,) + a.shape[1:], dtype=a.dtype)
    positions = xp.empty((out,) + a.shape[1:], dtype=xp.int64)
    has_nan = bool(xp.isnan(a).any()) if a.size else False
    for j, (start, stop) in enumerate(P.adaptive_bins(size, out)):
        best, arg = values[j], positions[j]
        best[...] = a[start]
        arg.fill(start)
        for p in range(start + 1, stop):
            candidate = a[p]
            won = candidate > best
            if has_nan:
                won |= xp.isnan(candidate)
            xp.maximum(arg, xp.multiply(won, p, dtype=xp.int64), out=arg)
            xp.maximum(best, candidate, out=best)
    return values, positions


def adaptive_max_pool2d_forward(x, out_size):
    """x: (N, C, H, W) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int64: h*W + w of each maximum).

    In the layout (H, W, N*C), so that every step of the running maximum is one pass over a contiguous slab of
    all planes: the maximum over each bin's columns first (per row), then over its rows."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = out_size
    planes_last = xp.ascontiguousarray(x.transpose(2, 3, 0, 1)).reshape(h, w, n * c)   # -> (H, W, N*C)
    row_max, cols = _bin_max(xp, planes_last.transpose(1, 0, 2), w, ow)           # (OW, H, N*C) each
    y, rows = _bin_max(xp, row_max.transpose(1, 0, 2), h, oh)                     # (OH, OW, N*C) each
    cols = xp.take_along_axis(cols.transpose(1, 0, 2), rows, axis=0)              # (H, OW, NC) -> (OH, OW, NC)
    indices = rows * w + cols
    y = xp.ascontiguousarray(y.reshape(oh, ow, n, c).transpose(2, 3, 0, 1))       # -> (N, C, OH, OW)
    return y, xp.ascontiguousarray(indices.reshape(oh, ow, n, c).transpose(2, 3, 0, 1))


def adaptive_max_pool2d_backward(grad_out, indices, in_shape):
    """dy, indices: (N, C, OH, OW) -> dx: (N, C, H, W); each dy added to the input it came from (overlapping
    bins can send several to one input: they are added in the outputs' row-major order, as PyTorch's loop does;
    NumPy: np.add.at in the gradient's dtype, CuPy: one bincount over the planes' flat indices)."""
    xp = get_array_module(grad_out)
    n, c, h, w = in_shape
    planes = xp.arange(n * c, dtype=xp.int64).reshape(n, c, 1, 1) * (h * w)     # each plane's first flat index
    flat = (indices.astype(xp.int64) + planes).reshape(-1)                        # (N*C*OH*OW,) into (N*C*H*W,)
    if xp is numpy:
        dx = numpy.zeros(n * c * h * w, dtype=grad_out.dtype)                     # (N*C*H*W,)
        numpy.add.at(dx, flat, grad_out.reshape(-1))
        return dx.reshape(n, c, h, w)
    sums = xp.bincount(flat, weights=grad_out.reshape(-1), minlength=n * c * h * w)   # float64 sums
    return sums.astype(grad_out.dtype, copy=False).reshape(n, c, h, w)


def adaptive_max_pool(x, output_size, return_indices, where):
    """-> (y or (y, indices), saved); x: (N, C, H, W) or (C, H, W); output_size from P.adaptive_output_size.
    Sizes that divide (the bins are then the windows of MaxPool2d(H/OH, W/OW)) run MaxPool2d's kernel."""
    x4, unbatched = P.as_batched(x, where)
    n, c, h, w = x4.shape
    if h < 1 or w < 1:
        raise ValueError(f"{where}: expected non-empty spatial dimensions, got input of shape {tuple(x.shape)}")
    out = (output_size[0] or h, output_size[1] or w)
    like = (backend_of(x4), x4.dtype)
    if h % out[0] == 0 and w % out[1] == 0:
        window = (h // out[0], w // out[1])
        geom = P.make_pool_geometry(x4.shape, window, window, (0, 0), (1, 1), False, where)
        y, argmax = P.max_pool2d_forward(x4, geom)                  # the same first maximum / NaN rule
        indices = P.flat_indices(argmax, geom)
        saved = (argmax, tuple(x4.shape), unbatched, like, geom)
    else:   # the input in planes-last layout, the row maxima and their columns (N, C, H, OW), the output and its
        # indices (int64), each step of the running maximum holding the old and new maxima, the candidate, the old and
        # new positions and the masks
        check_bytes(n * c * (h * w * x4.dtype.itemsize + (h * out[1] + out[0] * out[1]) * (3 * x4.dtype.itemsize + 19)),
                    where, (n, c) + out, like=x4)
        y, indices = adaptive_max_pool2d_forward(x4, out)
        saved = (indices, tuple(x4.shape), unbatched, like, None)
    if unbatched:
        y, indices = y[0], indices[0]                                 # (1, C, OH, OW) -> (C, OH, OW)
    return ((y, indices) if return_indices else y), saved


def adaptive_max_pool_backward(saved, grad_out, where):
    indices, in_shape, unbatched, like, geom = saved
    dy = P.check_pool_grad(grad_out, where, indices.shape, unbatched, like)
    if geom is not None:                                              # indices are MaxPool2d's argmax offsets
        grad = P.max_pool2d_backward(dy, indices, in_shape, geom)
    else:
        n, c, h, w = in_shape
        check_bytes(4 * n * c * h * w * dy.dtype.itemsize, where, in_shape, what="input gradient", like=dy)
        grad = adaptive_max_pool2d_backward(dy, indices, in_shape)
    return grad[0] if unbatched else grad


# ----------------------------------------------------------------------------- LP pooling

def check_norm_type(norm_type, where: str) -> float:
    """A real, non-zero norm_type (PyTorch's ValueError for 0); returned as a float."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or math.isnan(norm_type):
        raise TypeError(f"{where}: norm_type must be a real number, got {norm_type!r}")
    if norm_type == 0:
        raise ValueError(f"{where}: norm_type must be a non-zero value, but got {norm_type}")
    return float(norm_type)


def _sign(xp, a):
    """PyTorch's sign/sgn: 0 for NaN (NumPy's is NaN)."""
    return xp.where(xp.isnan(a), 0, xp.sign(a))


def lp_pool(x, norm_type: float, options, ceil_mode: bool, where):
    """-> (y, saved); x: (N, C, H, W) or (C, H, W); options: P.pool_options(kernel, stride, 0, 1, ...)."""
    check_float_array(x, where)
    xp = get_array_module(x)
    p = norm_type
    if math.isinf(p):                                 # max_pool2d(|x|), or -max_pool2d(-|x|) for -inf
        y, pooled = P.max_pool(xp.abs(x) if p > 0 else -xp.abs(x), options, ceil_mode, False, where)
        return (y if p > 0 else -y), (x, p, pooled, None)
    area = options[0][0] * options[0][1]
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
        o, averaged = P.avg_pool(x ** p, options, ceil_mode, True, None, where)     # (N, C, OH, OW)
        t = _sign(xp, o) * xp.maximum(xp.abs(o), 0) * area
        y = t ** (1.0 / p)
    return y, (x, p, averaged, (o, t, area))


def lp_pool_backward(saved, grad_out, where):
    """grad_out: the output's shape -> the input's gradient (the chain rule of lp_pool, step by step)."""
    x, p, pooled, state = saved
    xp = get_array_module(x)
    if state is None:                                 # p = +-inf: pooled is max_pool's (argmax, in_shape, ...)
        P.check_pool_grad(grad_out, where, pooled[0].shape, pooled[3], pooled[4])
        grad = P.max_pool_backward(pooled, grad_out if p > 0 else -grad_out, where)
        return (grad if p > 0 else -grad) * _sign(xp, x)             # d|x| = sign(x) dx
    in_shape, geom, _, unbatched, like = pooled
    P.check_pool_grad(grad_out, where, in_shape[:2] + geom.out_size, unbatched, like)
    o, t, area = state
    sign = _sign(xp, o)
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
        g = grad_out * ((1.0 / p) * t ** (1.0 / p - 1.0))             # d t^(1/p)
        g = g * area * sign                                           # through * area, then sign(o) * relu(|o|)
        g = xp.where(xp.maximum(xp.abs(o), 0) <= 0, 0, g) * sign      # relu passes nothing where |o| <= 0; d|o|
        g = P.avg_pool_backward(pooled, g, where)                     # (N, C, H, W): d o -> d x^p
        return g * (p * x ** (p - 1.0))                               # d x^p = p x^(p-1) dx


# -- torch.nn.functional's forms (forward only) --------------------------------------------------------------
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over PyTorch's adaptive bins. x: (N, C, H, W) or (C, H, W) -> (N, C, *output_size) (and the int64
    indices h*W + w with ``return_indices=True``); None in output_size keeps that input size."""
    where = "adaptive_max_pool2d"
    return adaptive_max_pool(input, P.adaptive_output_size(output_size, where), bool(return_indices), where)[0]


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over each window of x^p)^(1/p), computed as PyTorch does (avg_pool2d of x^p times kh*kw).
    x: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW)."""
    where = "lp_pool2d"
    p = check_norm_type(norm_type, where)
    return lp_pool(input, p, P.pool_options(kernel_size, stride, 0, 1, where), bool(ceil_mode), where)[0]
