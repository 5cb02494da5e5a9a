"""1-d convolution and pooling over (N, C, L) or unbatched (C, L): the 2-D operations with H = 1.

Each operation views its input as (N, C, 1, L), runs the 2-D code (the same unfold kernel as Conv2d, the same
pooling kernels) with kernel (1, k), stride (1, s), padding (0, p), dilation (1, d), and views the result back
as (N, C', L'); backward does the same with the gradient. Nothing is copied for the views. The arguments and
shapes are checked here first, in 1-d terms, so an error names the 1-d layer and its 1-d shapes.
"""
from __future__ import annotations

import numbers

from ..runtime.backend import backend_of, get_array_module
from ..runtime.checks import check_float_array, check_grad_like, check_ndim, check_same_dtype
from . import pool as P
from . import pool_more as M
from .conv import conv2d
from .pool import pool_out_size

__all__ = ["single", "pool1d_options", "conv1d_padding", "check_conv1d", "lift", "lift_backward", "conv1d",
           "max_pool1d", "avg_pool1d", "adaptive_avg_pool1d", "adaptive_max_pool1d", "lp_pool1d"]

LAYOUT = "(N, C, L) or (C, L)"


def single(value, name: str, where: str, allow_zero: bool = False) -> int:
    """An int or a 1-sequence of one int (PyTorch's _single), checked > 0 (>= 0 with allow_zero)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int or a 1-tuple of an int, got {value!r}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{where}: {name} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}")
    return int(value)


def pool1d_options(kernel_size, stride, padding, dilation, where):
    """(kernel, stride, padding, dilation) as ints, PyTorch's rules (stride None: kernel_size; padding at most
    half the kernel), and as the 2-D pool's pairs (1, k), (1, s), (0, p), (1, d)."""
    k = single(kernel_size, "kernel_size", where)
    s = k if stride is None or stride == [] else single(stride, "stride", where)
    p = single(padding, "padding", where, allow_zero=True)
    d = single(dilation, "dilation", where)
    if p > k // 2:
        raise ValueError(f"{where}: padding should be at most half of the kernel size, got padding {p} with "
                         f"kernel_size {k}")
    return (k, s, p, d), ((1, k), (1, s), (0, p), (1, d))


def _check_length(x, k, s, p, d, ceil_mode, where):
    check_float_array(x, where)                          # (before x.shape: a list or a 4-D input named as such)
    check_ndim(x, (2, 3), where, LAYOUT)
    length = x.shape[-1]
    out = pool_out_size(length, k, s, p, d, ceil_mode)
    if out < 1:
        raise ValueError(f"{where}: input of shape {tuple(x.shape)} is too small for kernel_size {k} (dilation {d}, "
                         f"padding {p}, stride {s}): the output length would be {out}")


def lift(op, x, where, *args):
    """Run the 2-D operation ``op(x viewed as (.., 1, L), *args)`` -> (out, saved) and view its output(s) back:
    (N, C, 1, OL) -> (N, C, OL). Returns (out, saved for lift_backward)."""
    check_float_array(x, where)
    check_ndim(x, (2, 3), where, LAYOUT)
    out, saved = op(x[..., None, :], *args)                            # (N, C, L) -> (N, C, 1, L)
    pair = isinstance(out, tuple)
    out = tuple(o[..., 0, :] for o in out) if pair else out[..., 0, :]   # (N, C, 1, OL) -> (N, C, OL)
    shape = tuple((out[0] if pair else out).shape)
    return out, (saved, shape, backend_of(x), x.dtype)


def lift_backward(backward, lifted, grad_out, where):
    """The gradient of a lifted operation: grad_out (N, C, OL) checked in 1-d terms -> dx (N, C, L)."""
    saved, shape, backend, dtype = lifted
    check_grad_like(grad_out, where, shape, backend, dtype)
    return backward(saved, grad_out[..., None, :], where)[..., 0, :]   # (N, C, OL) -> (N, C, 1, OL); back


# -- the whole-argument operations the layers run: (x, options..., where) -> (out, saved) -----------------------
def max_pool(x, options, ceil_mode, return_indices, where):
    (k, s, p, d), pairs = options
    _check_length(x, k, s, p, d, ceil_mode, where)
    return lift(lambda x4: P.max_pool(x4, pairs, ceil_mode, return_indices, where), x, where)


def avg_pool(x, options, ceil_mode, count_include_pad, where):
    (k, s, p, d), pairs = options
    _check_length(x, k, s, p, d, ceil_mode, where)
    return lift(lambda x4: P.avg_pool(x4, pairs, ceil_mode, count_include_pad, None, where), x, where)


def lp_pool(x, norm_type, options, ceil_mode, where):
    (k, s, p, d), pairs = options
    _check_length(x, k, s, p, d, ceil_mode, where)
    return lift(lambda x4: M.lp_pool(x4, norm_type, pairs, ceil_mode, where), x, where)


def adaptive_avg_pool(x, size, where):
    return lift(lambda x4: P.adaptive_avg_pool(x4, (1, size), where), x, where)


def adaptive_max_pool(x, size, return_indices, where):
    return lift(lambda x4: M.adaptive_max_pool(x4, (1, size), return_indices, where), x, where)


# -- convolution -----------------------------------------------------------------------------------------------
def conv1d_padding(padding, kernel, stride, dilation, where):
    """padding: int, 1-tuple, 'valid' or 'same' -> (the 2-D padding argument, (left, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return "valid", (0, 0)
        if padding == "same":
            if stride != 1:
                raise ValueError(f"{where}: padding='same' is not supported for strided convolutions (stride="
                                 f"{stride}); give the padding as a number")
            total = dilation * (kernel - 1)
            return "same", (total // 2, total - total // 2)
        raise ValueError(f"{where}: padding must be an int, a 1-tuple, 'valid' or 'same', got {padding!r}")
    p = single(padding, "padding", where, allow_zero=True)
    return (0, p), (p, p)


def check_conv1d(x_shape, weight_shape, kernel, pads, dilation, groups, where):
    """Raise ValueError in 1-d terms unless the input's channels fit the weight and the kernel fits the input."""
    cg = weight_shape[1]
    if x_shape[1] != cg * groups:
        raise ValueError(f"{where}: expected input with {cg * groups} channels (weight of shape {tuple(weight_shape)}, "
                         f"groups={groups}), got input of shape {tuple(x_shape)}")
    span, padded = dilation * (kernel - 1) + 1, x_shape[2] + pads[0] + pads[1]
    if span > padded:
        raise ValueError(f"{where}: kernel of size {kernel} with dilation {dilation} spans {span}, longer than the "
                         f"padded input ({padded}; input of shape {tuple(x_shape)}, padding {pads})")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation), like ``torch.nn.functional.conv1d``: ``conv2d`` with H = 1.

    input: (N, C, L) or unbatched (C, L); weight: (O, C/groups, k); bias: (O,) or None; padding: int,
    1-tuple, 'valid' or 'same'. Returns (N, O, OL) (or (O, OL)).
    """
    where = "conv1d"
    get_array_module(input, weight, names=("input", "weight"), where=where)
    check_float_array(input, where)
    check_float_array(weight, where, "weight")
    check_ndim(input, (2, 3), where, LAYOUT)
    check_ndim(weight, 3, where, "(out_channels, in_channels/groups, k)", "weight")
    check_same_dtype(input, weight, where, "input", "weight")
    s, d = single(stride, "stride", where), single(dilation, "dilation", where)
    padding2d, pads = conv1d_padding(padding, weight.shape[2], s, d, where)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r}")
    batched = input if input.ndim == 3 else input[None]                 # (C, L) -> (1, C, L)
    check_conv1d(batched.shape, weight.shape, weight.shape[2], pads, d, groups, where)
    y = conv2d(input[..., None, :], weight[:, :, None, :], bias, (1, s), padding2d, (1, d), groups)
    return y[..., 0, :]                                                  # (N, O, 1, OL) -> (N, O, OL)


# -- torch.nn.functional's forms (forward only) --------------------------------------------------------------
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over windows. x: (N, C, L) or (C, L) -> (N, C, OL) (and int64 indices into L with
    ``return_indices=True``); padding is -inf."""
    options = pool1d_options(kernel_size, stride, padding, dilation, "max_pool1d")
    return max_pool(input, options, bool(ceil_mode), bool(return_indices), "max_pool1d")[0]


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average over windows. x: (N, C, L) or (C, L) -> (N, C, OL)."""
    options = pool1d_options(kernel_size, stride, padding, 1, "avg_pool1d")
    return avg_pool(input, options, bool(ceil_mode), bool(count_include_pad), "avg_pool1d")[0]


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over each window of x^p)^(1/p), as PyTorch computes it. x: (N, C, L) or (C, L) -> (N, C, OL)."""
    p = M.check_norm_type(norm_type, "lp_pool1d")
    return lp_pool(input, p, pool1d_options(kernel_size, stride, 0, 1, "lp_pool1d"), bool(ceil_mode), "lp_pool1d")[0]


def adaptive_avg_pool1d(input, output_size):
    """Mean over PyTorch's adaptive bins. x: (N, C, L) or (C, L) -> (N, C, output_size)."""
    return adaptive_avg_pool(input, single(output_size, "output_size", "adaptive_avg_pool1d"),
                             "adaptive_avg_pool1d")[0]


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max over PyTorch's adaptive bins. x: (N, C, L) or (C, L) -> (N, C, output_size) (and the indices)."""
    return adaptive_max_pool(input, single(output_size, "output_size", "adaptive_max_pool1d"), bool(return_indices),
                             "adaptive_max_pool1d")[0]
