"""2-D max, average and adaptive-average pooling with their gradients, over any array module.

This module holds the geometry (output sizes, pads, divisors), the whole-argument operations the pooling
layers run (``max_pool`` / ``max_pool_backward`` ..., errors naming the caller) and torch.nn.functional's
forms (``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``; forward only); the
passes themselves run in the kernel ``minigrad.kernels.dispatch.pool_kernel`` picks: one CUDA kernel
per pass on CuPy, in-place passes over blocks of planes for NumPy max pooling (``cpu_pool``), else
the reference loop over the kh*kw kernel offsets (``pool_reference``):

    max  forward   running elementwise maximum over the offsets; ``argmax`` keeps the offset
                   of the first maximum (a later one wins only if strictly greater, or NaN),
                   so ties route their gradient like PyTorch's CPU kernel.
         backward  for each offset k: dxpad[view k] += where(argmax == k, dy, 0)
    avg  forward   sum of the zero-padded views / divisor(oh, ow)
         backward  for each offset: dxpad[view] += dy / divisor
    adaptive avg   y = A_h @ x @ A_w^T, A (out, in) holding 1/len of PyTorch's bins
                   [floor(i*in/out), ceil((i+1)*in/out)); dx = A_h^T @ dy @ A_w

Output sizes follow PyTorch: out = floor((H + 2p - d(k-1) - 1 + (s-1 if ceil_mode)) / s) + 1,
minus one in ceil mode when the last window would start past the input and the left padding.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy

from ..kernels.dispatch import pool_kernel
from ..runtime.backend import backend_of, get_array_module
from ..runtime.checks import check_float_array, check_grad_like, check_ndim, positive_pair
from ..runtime.memory import check_bytes
from .activation import relu_backward

__all__ = ["PoolGeometry", "pool_out_size", "make_pool_geometry", "max_pool2d_forward",
           "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "adaptive_bins", "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
           "pool_options", "check_divisor_override", "adaptive_output_size", "as_batched", "check_pool_grad",
           "flat_indices", "max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward", "adaptive_avg_pool",
           "adaptive_avg_pool_backward", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]


def pool_out_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling_output_shape (the last window must start inside the input or left pad)."""
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * pad - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True)
class PoolGeometry:
    """Sizes of one 2-D pooling: input (H, W), kernel, stride, padding, dilation and output (OH, OW).

    pads is (top, bottom, left, right) of the padded array the views are read from; the
    bottom/right pads include the ceil-mode overhang past the right padding.
    """
    in_size: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    out_size: tuple
    pads: tuple
    where: str = field(default="pool2d", compare=False)     # the layer or function, for error messages


def _check_memory(geom, shape, like, outputs=1):
    """MemoryError naming the layer unless ``outputs`` arrays of ``shape`` and the padded input fit
    (minigrad/runtime/memory.py)."""
    n, c = shape[:2]
    padded = n * c * (geom.in_size[0] + geom.pads[0] + geom.pads[1]) * (geom.in_size[1] + geom.pads[2] + geom.pads[3])
    check_bytes((outputs * math.prod(shape) + padded) * like.dtype.itemsize, geom.where, shape, like=like)


def make_pool_geometry(in_shape, kernel, stride, padding, dilation, ceil_mode, where):
    """Validate a pooling configuration for an (N, C, H, W) input; raise ValueError like PyTorch."""
    h, w = in_shape[-2:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{where}: padding should be at most half of the kernel size, got padding "
                         f"{padding} with kernel_size {kernel}")
    out_h = pool_out_size(h, kh, sh, ph, dh, ceil_mode)
    out_w = pool_out_size(w, kw, sw, pw, dw, ceil_mode)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{where}: input of shape {tuple(in_shape)} is too small for kernel_size {kernel} "
                         f"(dilation {dilation}, padding {padding}, stride {stride}): the output would be "
                         f"{out_h}x{out_w}")
    bottom = max(ph, (out_h - 1) * sh + dh * (kh - 1) + 1 - h - ph)
    right = max(pw, (out_w - 1) * sw + dw * (kw - 1) + 1 - w - pw)
    return PoolGeometry((h, w), kernel, stride, padding, dilation, (out_h, out_w), (ph, bottom, pw, right), where)


# ----------------------------------------------------------------------------- max pooling

def max_pool2d_forward(x, geom: PoolGeometry):
    """x: (N, C, H, W) -> (y (N, C, OH, OW), argmax offset (N, C, OH, OW) in [0, kh*kw))."""
    _check_memory(geom, tuple(x.shape[:2]) + geom.out_size, x, outputs=2)
    return pool_kernel("max", geom, x).max_forward(x, geom)


def max_pool2d_backward(grad_out, argmax, in_shape, geom: PoolGeometry):
    """Route each dy to the input element that was the maximum. Returns (N, C, H, W)."""
    get_array_module(grad_out, argmax, names=("grad_out", "argmax"), where="max_pool2d_backward")
    _check_memory(geom, tuple(in_shape), grad_out)
    return pool_kernel("max", geom, grad_out, argmax).max_backward(grad_out, argmax, tuple(in_shape), geom)


# ----------------------------------------------------------------------------- average pooling

def _counts(size, kernel, stride, pad, out, count_include_pad):
    """PyTorch's per-axis divisor: window length clipped to input+pad (or to the input alone)."""
    counts = []
    for o in range(out):
        start = o * stride - pad
        end = min(start + kernel, size + pad)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(min(end, size) - max(start, 0))
    return counts


def avg_divisor(xp, geom: PoolGeometry, count_include_pad: bool, divisor_override, dtype):
    """(OH, OW) array of the numbers each window sum is divided by (or a Python number)."""
    if divisor_override:
        return float(divisor_override)
    rows = _counts(geom.in_size[0], geom.kernel[0], geom.stride[0], geom.padding[0], geom.out_size[0],
                   count_include_pad)
    cols = _counts(geom.in_size[1], geom.kernel[1], geom.stride[1], geom.padding[1], geom.out_size[1],
                   count_include_pad)
    return xp.asarray(rows, dtype=dtype).reshape(-1, 1) * xp.asarray(cols, dtype=dtype).reshape(1, -1)


def avg_pool2d_forward(x, geom: PoolGeometry, divisor):
    """x: (N, C, H, W) -> (N, C, OH, OW): sum of each zero-padded window / divisor."""
    _check_memory(geom, tuple(x.shape[:2]) + geom.out_size, x)
    return pool_kernel("avg", geom, x).avg_forward(x, geom, divisor)


def avg_pool2d_backward(grad_out, in_shape, geom: PoolGeometry, divisor):
    """Spread dy / divisor evenly over each window. Returns (N, C, H, W)."""
    _check_memory(geom, tuple(in_shape), grad_out)
    return pool_kernel("avg", geom, grad_out).avg_backward(grad_out, tuple(in_shape), geom, divisor)


# ----------------------------------------------------------------------------- adaptive average

def adaptive_bins(size: int, out: int):
    """PyTorch's adaptive bins: [floor(i*size/out), ceil((i+1)*size/out)) for i in range(out)."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _averaging_matrix(xp, size, out, dtype):
    """(out, size) matrix whose row i averages bin i."""
    matrix = numpy.zeros((out, size), dtype=dtype)
    for row, (start, end) in enumerate(adaptive_bins(size, out)):
        matrix[row, start:end] = 1.0 / (end - start)
    return xp.asarray(matrix)


def adaptive_avg_pool2d_forward(x, out_size):
    """x: (N, C, H, W) -> (N, C, OH, OW). Evenly dividing sizes (incl. 1x1) are a reshaped mean."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = out_size
    if h % oh == 0 and w % ow == 0:
        blocks = x.reshape(n, c, oh, h // oh, ow, w // ow)   # (N, C, H, W) -> (N, C, OH, bh, OW, bw)
        return blocks.mean(axis=(3, 5))
    a_h = _averaging_matrix(xp, h, oh, x.dtype)              # (OH, H)
    a_w = _averaging_matrix(xp, w, ow, x.dtype)              # (OW, W)
    return a_h @ x @ a_w.T                                   # (OH, H) @ (N, C, H, W) @ (W, OW)


def adaptive_avg_pool2d_backward(grad_out, in_shape):
    """dy: (N, C, OH, OW) -> dx: (N, C, H, W)."""
    xp = get_array_module(grad_out)
    n, c, h, w = in_shape
    _, _, oh, ow = grad_out.shape
    if h % oh == 0 and w % ow == 0:
        bh, bw = h // oh, w // ow
        share = (grad_out / (bh * bw)).reshape(n, c, oh, 1, ow, 1)  # (N, C, OH, OW) -> (N, C, OH, 1, OW, 1)
        spread = share * xp.ones((1, 1, 1, bh, 1, bw), dtype=grad_out.dtype)  # -> (N, C, OH, bh, OW, bw)
        return spread.reshape(n, c, h, w)                                     # -> (N, C, H, W)
    a_h = _averaging_matrix(xp, h, oh, grad_out.dtype)
    a_w = _averaging_matrix(xp, w, ow, grad_out.dtype)
    return a_h.T @ grad_out @ a_w                            # (H, OH) @ (N, C, OH, OW) @ (OW, W)


# -- whole-argument operations: what nn.MaxPool2d / AvgPool2d / AdaptiveAvgPool2d and the torch forms run --
def pool_options(kernel_size, stride, padding, dilation, where: str):
    """Normalise (kernel_size, stride, padding, dilation) to pairs, PyTorch's rules (stride None: kernel_size;
    padding at most half the kernel)."""
    kernel = positive_pair(kernel_size, "kernel_size", where)
    stride = kernel if stride is None or stride == [] else positive_pair(stride, "stride", where)
    padding = positive_pair(padding, "padding", where, allow_zero=True)
    dilation = positive_pair(dilation, "dilation", where)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{where}: padding should be at most half of the kernel size, got padding "
                         f"{padding} with kernel_size {kernel}")
    return kernel, stride, padding, dilation


def check_divisor_override(divisor_override, where: str):
    if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(
            divisor_override, numbers.Integral) or divisor_override == 0):
        raise ValueError(f"{where}: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    return divisor_override


def adaptive_output_size(output_size, where: str):
    """output_size: int or pair; None in a pair keeps that input size."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and None in output_size:
        return tuple(None if v is None else positive_pair(v, "output_size", where)[0] for v in output_size)
    return positive_pair(output_size, "output_size", where)


def as_batched(x, where: str):
    """Check x and return it as (N, C, H, W) plus whether it was unbatched (C, H, W)."""
    check_float_array(x, where)
    check_ndim(x, (3, 4), where, "(N, C, H, W) or (C, H, W)")
    if x.ndim == 3:
        return x[None], True                              # (C, H, W) -> (1, C, H, W)
    return x, False


def check_pool_grad(grad_out, where: str, expected_shape, unbatched, like):
    """grad_out must have the output's shape and the input's backend and dtype; like = (backend, dtype).
    Returns it as (N, C, OH, OW)."""
    if unbatched:
        expected_shape = expected_shape[1:]
    check_grad_like(grad_out, where, expected_shape, *like)
    return grad_out[None] if unbatched else grad_out      # (C, OH, OW) -> (1, C, OH, OW)


def flat_indices(argmax, geom: PoolGeometry):
    """argmax offsets -> PyTorch's indices h*W + w into each (H, W) input plane (int64)."""
    xp = get_array_module(argmax)
    kw = geom.kernel[1]
    (sh, sw), (ph, pw), (dh, dw) = geom.stride, geom.padding, geom.dilation
    oh, ow = geom.out_size
    k = argmax.astype("int64")
    rows = xp.arange(oh, dtype="int64").reshape(-1, 1) * sh - ph + (k // kw) * dh   # (N, C, OH, OW)
    cols = xp.arange(ow, dtype="int64").reshape(1, -1) * sw - pw + (k % kw) * dw
    return rows * geom.in_size[1] + cols


def max_pool(x, options, ceil_mode, return_indices, where):
    """-> (y, saved) or ((y, indices), saved); x: (N, C, H, W) or (C, H, W). options: pool_options(...)."""
    x4, unbatched = as_batched(x, where)
    geom = make_pool_geometry(x4.shape, *options, ceil_mode, where)
    y, argmax = max_pool2d_forward(x4, geom)
    saved = (argmax, tuple(x4.shape), geom, unbatched, (backend_of(x4), x4.dtype))
    if unbatched:
        y = y[0]                                          # (1, C, OH, OW) -> (C, OH, OW)
    if return_indices:
        indices = flat_indices(argmax, geom)
        return (y, indices[0] if unbatched else indices), saved
    return y, saved


def max_pool_backward(saved, grad_out, where, relu_mask=None):
    """relu_mask: the mask of a ReLU that ran on the pool's output (nn/fusion.py), applied to dy first."""
    argmax, in_shape, geom, unbatched, like = saved
    dy = check_pool_grad(grad_out, where, argmax.shape, unbatched, like)
    if relu_mask is not None:
        dy = relu_backward(relu_mask.reshape(dy.shape), dy)       # mask: the pooled output's shape
    grad = max_pool2d_backward(dy, argmax, in_shape, geom)
    return grad[0] if unbatched else grad


def avg_pool(x, options, ceil_mode, count_include_pad, divisor_override, where):
    """-> (y, saved); x: (N, C, H, W) or (C, H, W). options: pool_options(...) with dilation 1."""
    x4, unbatched = as_batched(x, where)
    geom = make_pool_geometry(x4.shape, *options, ceil_mode, where)
    out_shape = tuple(x4.shape[:2]) + geom.out_size                 # the output and the (OH, OW) divisor first
    check_bytes((math.prod(out_shape) + math.prod(geom.out_size)) * x4.dtype.itemsize, where, out_shape, like=x4)
    divisor = avg_divisor(get_array_module(x4), geom, count_include_pad, divisor_override, x4.dtype)
    y = avg_pool2d_forward(x4, geom, divisor)
    return (y[0] if unbatched else y), (tuple(x4.shape), geom, divisor, unbatched, (backend_of(x4), x4.dtype))


def avg_pool_backward(saved, grad_out, where):
    in_shape, geom, divisor, unbatched, like = saved
    dy = check_pool_grad(grad_out, where, in_shape[:2] + geom.out_size, unbatched, like)
    grad = avg_pool2d_backward(dy, in_shape, geom, divisor)
    return grad[0] if unbatched else grad


def adaptive_avg_pool(x, output_size, where):
    """-> (y, saved); output_size from adaptive_output_size (None entries keep the input's size)."""
    x4, unbatched = as_batched(x, where)
    h, w = x4.shape[2:]
    if h < 1 or w < 1:
        raise ValueError(f"{where}: expected non-empty spatial dimensions, got input of shape {tuple(x.shape)}")
    out = (output_size[0] or h, output_size[1] or w)
    n, c = x4.shape[:2]
    if h % out[0] or w % out[1]:              # the averaging matrices, (N, C, OH, W) between the products, the output
        need = out[0] * h + out[1] * w + n * c * out[0] * w + n * c * out[0] * out[1]
    else:
        need = n * c * out[0] * out[1]
    check_bytes(need * x4.dtype.itemsize, where, (n, c) + out, like=x4)
    y = adaptive_avg_pool2d_forward(x4, out)
    return (y[0] if unbatched else y), (tuple(x4.shape), out, unbatched, (backend_of(x4), x4.dtype))


def adaptive_avg_pool_backward(saved, grad_out, where):
    in_shape, out, unbatched, like = saved
    dy = check_pool_grad(grad_out, where, in_shape[:2] + out, unbatched, like)
    grad = adaptive_avg_pool2d_backward(dy, in_shape)
    return grad[0] if unbatched else grad


# -- torch.nn.functional's forms (forward only) --------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over windows. x: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) (and the indices with
    ``return_indices=True``); padding is -inf."""
    options = pool_options(kernel_size, stride, padding, dilation, "max_pool2d")
    return max_pool(input, options, bool(ceil_mode), bool(return_indices), "max_pool2d")[0]


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average over windows. x: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW)."""
    options = pool_options(kernel_size, stride, padding, 1, "avg_pool2d")
    divisor_override = check_divisor_override(divisor_override, "avg_pool2d")
    return avg_pool(input, options, bool(ceil_mode), bool(count_include_pad), divisor_override, "avg_pool2d")[0]


def adaptive_avg_pool2d(input, output_size):
    """Mean over PyTorch's adaptive bins. x: (N, C, H, W) or (C, H, W) -> (N, C, *output_size)."""
    return adaptive_avg_pool(input, adaptive_output_size(output_size, "adaptive_avg_pool2d"),
                             "adaptive_avg_pool2d")[0]
