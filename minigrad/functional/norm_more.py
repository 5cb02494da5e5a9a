"""GroupNorm, InstanceNorm and LocalResponseNorm: the math of ``nn.GroupNorm``, ``nn.InstanceNorm2d`` and
``nn.LocalResponseNorm``, and torch.nn.functional's ``group_norm``, ``instance_norm``, ``local_response_norm``.

GroupNorm and InstanceNorm share one normalisation on the (N, C, L) view of x: (N, C, *), with the statistics of
each group of C/G channels of a sample (InstanceNorm: G = C), m = C/G * L values. With xhat = (x - mean) * r,
r = 1/sqrt(var + eps) (var biased), y = xhat * weight + bias per channel and g = dy * weight:

    dx = r * (g - sum(g)/m - xhat * sum(g * xhat)/m)      sums over the group
    dweight = sum(dy * xhat),  dbias = sum(dy)             sums over N and L, per channel

The group sums are gathered from the per-channel sums sum(dy) and sum(dy * xhat) (times weight), so backward
reads dy and the cached centred x once each for them. Forward caches x - mean and r (per channel).

InstanceNorm with running statistics (eval, track_running_stats=True) normalises with constants:
dx = dy * weight * r. In training it moves them as PyTorch does: running = (1 - m) running + m * mean over
the batch of each sample's mean / *unbiased* variance (PyTorch passes momentum=None as m = 0).

LocalResponseNorm across channels (PyTorch pads the channel window size//2 before, (size-1)//2 after, and
divides by size whatever the edge): d_c = k + alpha/size * sum_{j in W(c)} x_j^2, y = x * d^-beta,

    dx_m = dy_m * d_m^-beta - (2 alpha beta / size) * x_m * sum_{c : m in W(c)} dy_c * y_c / d_c

where {c : m in W(c)} is the window with its two paddings swapped ((size-1)//2 before, size//2 after).
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..kernels.cpu_runtime import run_chunks, work_buffer
from ..runtime.backend import get_array_module, is_array
from ..runtime.checks import check_float_array, check_same_dtype
from .batch_stats import one_pass_ok, row_dot, row_sum, sample_chunks

__all__ = ["group_norm", "instance_norm", "local_response_norm", "grouped_norm_forward",
           "grouped_norm_backward", "group_norm_forward", "group_norm_backward",
           "instance_norm_forward", "instance_norm_backward", "lrn_forward", "lrn_backward", "check_lrn_options",
           "check_group_input", "channels_view"]


# -- the shared pieces -------------------------------------------------------------------------------------
def channels_view(x):
    """x: (N, C, *) -> the (N, C, L) view (a copy for a strided input), L = prod(*) (1 for (N, C))."""
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))          # (N, C, *) -> (N, C, L)


def _expand(a, per: int):
    """(N, G) -> (N, G * per): each group's value for each of its channels."""
    n, groups = a.shape
    return get_array_module(a).broadcast_to(a[:, :, None], (n, groups, per)).reshape(n, groups * per)


def grouped_norm_forward(centred, r, weight, bias, out=None):
    """y = centred * r * weight + bias: centred (N, C, L); r (N, C) or (1, C); weight, bias (C,) or None."""
    scale = r if weight is None else r * weight
    y = get_array_module(centred).multiply(centred, scale[:, :, None], out=out)
    if bias is not None:
        y += bias[:, None]
    return y


def grouped_norm_backward(dy3, centred, r, groups: int, weight, has_bias: bool, use_stats: bool = True, out=None):
    """dy3: (N, C, L) -> (dx3, dweight or None, dbias or None) of y = xhat * weight + bias, xhat = centred * r.

    With the statistics of each group (use_stats), g = dy * weight and m values in a group:
    dx = r * (g - sum(g)/m - xhat * sum(g * xhat)/m), the sums over the group, gathered from the per-channel
    sums sum(dy) and sum(dy * xhat) (also the bias and weight gradients) times weight; else dx = g * r.
    """
    xp = get_array_module(dy3)
    n, c, length = dy3.shape
    sum_dy = dy3.sum(axis=2)                                                    # (N, C)
    sum_dy_xhat = row_dot(xp, dy3, centred) * r                       # (N, C)
    dweight = sum_dy_xhat.sum(axis=0) if weight is not None else None
    dbias = sum_dy.sum(axis=0) if has_bias else None
    dx = xp.multiply(dy3, (r if weight is None else r * weight)[:, :, None], out=out)
    if use_stats:
        per = c // groups
        if weight is not None:
            sum_dy, sum_dy_xhat = sum_dy * weight, sum_dy_xhat * weight         # the sums of g and g * xhat
        sum_g = _expand(sum_dy.reshape(n, groups, per).sum(axis=2), per)        # (N, C) -> (N, G) -> (N, C)
        sum_gx = _expand(sum_dy_xhat.reshape(n, groups, per).sum(axis=2), per)
        count = per * length
        dx -= centred * (r * r * sum_gx / count)[:, :, None]                    # r * xhat * sum(g xhat) / m
        dx -= (r * sum_g / count)[:, :, None]
    return dx, dweight, dbias


def _check_vector(x, vector, name: str, size: int, where: str):
    if vector is None:
        return None
    if not is_array(vector):
        raise TypeError(f"{where}: expected {name} to be a NumPy or CuPy array, got {type(vector).__name__}")
    get_array_module(x, vector, names=("input", name), where=where)
    if tuple(vector.shape) != (size,):
        raise ValueError(f"{where}: expected {name} of shape ({size},) (one value per channel), got "
                         f"{tuple(vector.shape)} for input of shape {tuple(x.shape)}")
    check_same_dtype(x, vector, where, "input", name)
    return vector


def _array(value):
    """A parameter's array (``mg.nn.Parameter`` passed as torch users pass ``layer.weight``), else the value."""
    data = getattr(value, "data", None)
    return data if not is_array(value) and is_array(data) else value


# -- GroupNorm --------------------------------------------------------------------------------------------
def check_group_input(x, num_groups: int, where: str):
    """PyTorch's refusals for group_norm's input: rank >= 2, channels > 0 divisible by num_groups, a non-empty
    spatial size and more than one value in N * C/G * prod(spatial)."""
    check_float_array(x, where)
    if x.ndim < 2:
        raise ValueError(f"{where}: expected input of at least 2 dimensions (N, C, *), got {x.ndim}-D input "
                         f"of shape {tuple(x.shape)}")
    n, c, spatial = x.shape[0], x.shape[1], math.prod(x.shape[2:])
    if c == 0 or c % num_groups:
        raise ValueError(f"{where}: expected a number of channels (dimension 1) divisible by num_groups="
                         f"{num_groups}, got input of shape {tuple(x.shape)}")
    if spatial == 0:
        raise ValueError(f"{where}: expected spatial dimensions of size > 0, got input of shape {tuple(x.shape)}")
    if n * (c // num_groups) * spatial == 1:
        raise ValueError(f"{where}: expected more than 1 value per channel when training, got input of shape "
                         f"{tuple(x.shape)}")


def _moments(x3, groups: int, eps: float, scratch=None):
    """x3: (N, C, L) -> (mean per channel (N, C), r = 1/sqrt(biased var + eps) per channel (N, C), mean (N, G),
    var (N, G)) of each group of C/G channels of each sample.

    One pass reads the sums of x and x * x (var = E[x^2] - mean^2) and keeps them where that is well conditioned:
    mean^2 <= var in every group, so the subtraction loses at most one bit to the sum of squares' own rounding.
    Otherwise (data far from zero mean, NaN, inf, float16) the two-pass form: the sum, then the squares of x - mean, written
    to scratch (a chunk-sized buffer) or a new array."""
    xp = get_array_module(x3)
    n, c, length = x3.shape
    per = c // groups
    count = per * length
    mean = row_sum(xp, x3).reshape(n, groups, per).sum(axis=2) / count                # (N, C) -> (N, G)
    mean_c = _expand(mean, per)                                                         # (N, C)
    var = None
    if x3.dtype.itemsize >= 4:                      # (float16 sums of squares overflow: two passes)
        squares = row_dot(xp, x3, x3).reshape(n, groups, per).sum(axis=2) / count   # (N, C) -> (N, G)
        var = squares - mean * mean
    if var is None or not one_pass_ok(xp, mean, var):
        centred = xp.subtract(x3, mean_c[:, :, None], out=scratch)
        var = row_dot(xp, centred, centred).reshape(n, groups, per).sum(axis=2) / count   # (N, G)
    return mean_c, _expand(1.0 / xp.sqrt(var + eps), per), mean, var


def _affine(x3, mean_c, r, weight, bias, out):
    """out = x * a + b per channel, a = r * weight, b = bias - mean * a (PyTorch's form of (x - mean) r w + bias)."""
    scale = r if weight is None else r * weight                                         # (N, C)
    shift = -mean_c * scale if bias is None else bias - mean_c * scale                  # (N, C)
    xp = get_array_module(x3)
    xp.multiply(x3, scale[:, :, None], out=out)
    out += shift[:, :, None]
    return out


def _grouped_forward(x3, groups: int, eps: float, weight, bias):
    """x3: (N, C, L) -> (y (N, C, L), mean per channel (N, C), r (N, C), mean (N, G), var (N, G)): statistics over
    each group of C/G channels of one sample. A large NumPy batch runs in chunks of samples of about
    batch_stats.CHUNK_BYTES bytes on minigrad's thread pool (each sample's statistics are its own, and the cut depends on
    sizes only: the same bits on any number of threads)."""
    xp = get_array_module(x3)
    chunks = sample_chunks(x3)
    y = xp.empty_like(x3)
    if len(chunks) == 1:
        mean_c, r, mean, var = _moments(x3, groups, eps)
        return _affine(x3, mean_c, r, weight, bias, y), mean_c, r, mean, var
    mean_c, r = numpy.empty((2,) + x3.shape[:2], x3.dtype)                             # (N, C) each
    mean, var = numpy.empty((2, x3.shape[0], groups), x3.dtype)                        # (N, G) each

    def part(n0, n1):
        scratch = work_buffer("norm_scratch", (n1 - n0,) + x3.shape[1:], x3.dtype)
        mean_c[n0:n1], r[n0:n1], mean[n0:n1], var[n0:n1] = _moments(x3[n0:n1], groups, eps, scratch)
        _affine(x3[n0:n1], mean_c[n0:n1], r[n0:n1], weight, bias, y[n0:n1])

    run_chunks(chunks, part)
    return y, mean_c, r, mean, var


def _affine_backward(dy3, x3, mean_c, r, groups: int, weight, has_bias: bool, out, scratch=None):
    """dy3, x3: (N, C, L) -> (dx written to out, dweight partial (C,) or None, dbias partial (C,) or None) of
    y = xhat * weight + bias, xhat = (x - mean) r with the statistics of each group of m values: with g = dy * weight,
    dx = r (g - sum(g)/m - xhat sum(g xhat)/m) = A dy + B x + C per channel, from the sums of dy and dy * x over
    each channel (PyTorch's formulation)."""
    xp = get_array_module(dy3)
    n, c, length = dy3.shape
    per = c // groups
    count = per * length
    sum_dy = row_sum(xp, dy3)                                                          # (N, C)
    sum_dy_xhat = (row_dot(xp, dy3, x3) - mean_c * sum_dy) * r                 # (N, C)
    dweight = sum_dy_xhat.sum(axis=0) if weight is not None else None
    dbias = sum_dy.sum(axis=0) if has_bias else None
    if weight is not None:
        sum_dy, sum_dy_xhat = sum_dy * weight, sum_dy_xhat * weight                     # the sums of g and g xhat
    sum_g = _expand(sum_dy.reshape(n, groups, per).sum(axis=2), per)                    # (N, C) -> (N, G) -> (N, C)
    sum_gx = _expand(sum_dy_xhat.reshape(n, groups, per).sum(axis=2), per)
    a = r if weight is None else r * weight
    b = r * r * sum_gx / count
    shift = (b * mean_c - r * sum_g / count)[:, :, None]                                # (N, C, 1)
    xp.multiply(dy3, a[:, :, None], out=out)
    scaled = xp.multiply(x3, b[:, :, None], out=scratch)
    scaled -= shift
    out -= scaled
    return out, dweight, dbias


def _grouped_backward(dy3, x3, mean_c, r, groups: int, weight, has_bias: bool):
    """_affine_backward in the same chunks of samples as _grouped_forward; the parameter gradients are the chunks'
    sums added in chunk order."""
    xp = get_array_module(dy3)
    dx = xp.empty_like(dy3)
    chunks = sample_chunks(dy3)
    if len(chunks) == 1:
        return _affine_backward(dy3, x3, mean_c, r, groups, weight, has_bias, dx)

    def part(n0, n1):
        scratch = work_buffer("norm_scratch", (n1 - n0,) + dy3.shape[1:], dy3.dtype)
        _, dweight, dbias = _affine_backward(dy3[n0:n1], x3[n0:n1], mean_c[n0:n1], r[n0:n1], groups, weight, has_bias,
                                             dx[n0:n1], scratch)
        return tuple(g for g in (dweight, dbias) if g is not None) or None

    sums = iter(run_chunks(chunks, part) or ())
    dweight = next(sums) if weight is not None else None
    dbias = next(sums) if has_bias else None
    return dx, dweight, dbias


def group_norm_forward(x, num_groups: int, weight, bias, eps: float):
    """x: (N, C, *) -> (y of x's shape, saved = (x (N, C, L), mean per channel (N, C), r (N, C), num_groups))."""
    x3 = channels_view(x)                                                               # (N, C, *) -> (N, C, L)
    y, mean_c, r, _, _ = _grouped_forward(x3, num_groups, eps, weight, bias)
    return y.reshape(x.shape), (x3, mean_c, r, num_groups)                              # (N, C, L) -> (N, C, *)


def group_norm_backward(saved, grad_out, weight, has_bias: bool):
    """grad_out: (N, C, *) -> (dx, dweight or None, dbias or None) of group_norm_forward."""
    x3, mean_c, r, groups = saved
    dx, dweight, dbias = _grouped_backward(channels_view(grad_out), x3, mean_c, r, groups, weight, has_bias)
    return dx.reshape(grad_out.shape), dweight, dbias                                  # (N, C, L) -> (N, C, *)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5):
    """Group normalisation of input: (N, C, *) -> same shape; weight, bias: (C,) or None."""
    where = "group_norm"
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups < 1:
        raise ValueError(f"{where}: num_groups must be a positive int, got {num_groups!r}")
    check_group_input(input, int(num_groups), where)
    weight = _check_vector(input, _array(weight), "weight", input.shape[1], where)
    bias = _check_vector(input, _array(bias), "bias", input.shape[1], where)
    return group_norm_forward(input, int(num_groups), weight, bias, float(eps))[0]


# -- InstanceNorm -----------------------------------------------------------------------------------------
def instance_norm_forward(x3, running_mean, running_var, weight, bias, use_input_stats: bool, momentum: float,
                          eps: float):
    """x3: (N, C, L) -> (y (N, C, L), saved = (centred (N, C, L), r, use_input_stats)).

    With use_input_stats each sample's channel is normalised by its own statistics (r: (N, C)), and the running
    statistics given (updated in place) move by momentum towards the batch average of the samples' mean and
    unbiased variance; else running_mean/running_var normalise (r: (1, C)).
    """
    xp = get_array_module(x3)
    if x3.size == 0:                           # nothing to normalise: an empty output, the statistics kept
        return x3.copy(), None
    if use_input_stats:
        y, mean_c, r, mean, var = _grouped_forward(x3, x3.shape[1], eps, weight, bias)
        length = x3.shape[2]
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean.mean(axis=0)
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += (momentum * length / (length - 1)) * var.mean(axis=0)
        return y, (x3, mean_c, r, True)
    centred = x3 - running_mean[None, :, None]
    r = (1.0 / xp.sqrt(running_var + eps))[None]                               # (C,) -> (1, C)
    return grouped_norm_forward(centred, r, weight, bias), (centred, r, use_input_stats)


def instance_norm_backward(saved, dy3, weight, has_bias: bool):
    """dy3: (N, C, L) -> (dx3, dweight or None, dbias or None) of instance_norm_forward."""
    xp = get_array_module(dy3)
    if saved is None:
        zeros = None if weight is None else xp.zeros_like(weight)
        return dy3.copy(), zeros, zeros.copy() if has_bias and zeros is not None else None
    if saved[-1]:                                  # the input's own statistics: (x3, mean per channel, r, True)
        x3, mean_c, r, _ = saved
        return _grouped_backward(dy3, x3, mean_c, r, dy3.shape[1], weight, has_bias)
    centred, r, _ = saved                          # the running statistics: (x - running_mean, r (1, C), False)
    return grouped_norm_backward(dy3, centred, r, dy3.shape[1], weight, has_bias, False)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5):
    """Instance normalisation of input: (N, C, *) (at least one spatial axis) -> same shape. running_mean and
    running_var (C,) are updated in place when use_input_stats, else they normalise; weight, bias: (C,)."""
    where = "instance_norm"
    check_float_array(input, where)
    if input.ndim < 3 and use_input_stats or input.ndim < 2:
        raise ValueError(f"{where}: expected input (N, C, *) with at least one spatial dimension, got "
                         f"{input.ndim}-D input of shape {tuple(input.shape)}")
    c = input.shape[1]
    if use_input_stats and math.prod(input.shape[2:]) == 1:
        raise ValueError(f"{where}: expected more than 1 spatial element when training, got input of shape "
                         f"{tuple(input.shape)}")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise ValueError(f"{where}: use_input_stats=False needs running_mean and running_var")
    arrays = [_check_vector(input, _array(a), name, c, where) for a, name in
              ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"), (bias, "bias"))]
    y, _ = instance_norm_forward(channels_view(input), *arrays, bool(use_input_stats), float(momentum), float(eps))
    return y.reshape(input.shape)                                  # (N, C, L) -> (N, C, *)


# -- LocalResponseNorm ------------------------------------------------------------------------------------
def check_lrn_options(size, alpha, beta, k, where: str):
    """size: a positive int; alpha, beta, k: finite numbers. -> (size, alpha, beta, k)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"{where}: size must be a positive int (the number of channels in the window), "
                         f"got {size!r}")
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    return int(size), float(alpha), float(beta), float(k)


def _window_sum(a, before: int, after: int):
    """a: (N, C, L) -> (N, C, L): out[:, c] = sum of a[:, j] for c - before <= j <= c + after, 0 <= j < C."""
    c = a.shape[1]
    out = a.copy()
    for offset in range(1, min(before, c - 1) + 1):        # j = c - offset
        out[:, offset:] += a[:, :c - offset]
    for offset in range(1, min(after, c - 1) + 1):         # j = c + offset
        out[:, :c - offset] += a[:, offset:]
    return out


def lrn_forward(x, size: int, alpha: float, beta: float, k: float):
    """x: (N, C, *) -> (y of x's shape, saved = (x3, d, d^beta)); d = k + alpha/size * window sum of x^2."""
    if x.size == 0:
        return x.copy(), None
    xp = get_array_module(x)
    x3 = channels_view(x)                                          # (N, C, *) -> (N, C, L)
    d = _window_sum(x3 * x3, size // 2, (size - 1) // 2)
    d /= size                                                      # PyTorch's average pool: sum / size
    d *= alpha
    d += k
    scale = xp.power(d, beta)
    return (x3 / scale).reshape(x.shape), (x3, d, scale)           # (N, C, L) -> (N, C, *)


def lrn_backward(saved, grad_out, size: int, alpha: float, beta: float):
    """grad_out: (N, C, *) -> dx (see the module docstring: the transposed window)."""
    if saved is None:
        return grad_out.copy()
    x3, d, scale = saved
    g = channels_view(grad_out)                                    # (N, C, *) -> (N, C, L)
    t = g * x3
    t /= scale
    t /= d                                                         # dy * y / d
    back = _window_sum(t, (size - 1) // 2, size // 2)
    back *= x3
    back *= 2.0 * alpha * beta / size
    dx = g / scale
    dx -= back
    return dx.reshape(grad_out.shape)                              # (N, C, L) -> (N, C, *)


def local_response_norm(input, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """Local response normalisation across channels of input: (N, C, *) (3-D or more) -> same shape."""
    where = "local_response_norm"
    size, alpha, beta, k = check_lrn_options(size, alpha, beta, k, where)
    check_float_array(input, where)
    if input.ndim < 3:
        raise ValueError(f"{where}: expected 3-D or higher input (N, C, *), got {input.ndim}-D input of shape "
                         f"{tuple(input.shape)}")
    return lrn_forward(input, size, alpha, beta, k)[0]
