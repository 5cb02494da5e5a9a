"""Elementwise activations and (log-)softmax: the math of ``nn.ReLU`` ... ``nn.LogSoftmax`` and their
``torch.nn.functional`` forms.

Every function takes a floating array of any shape and returns one of the same shape, dtype and backend.
Each ``*_forward(x, ...)`` returns ``(y, saved)``: ``saved`` is what the matching ``*_backward(saved, dy)``
needs (the layers cache it). Gradients (dy = grad_out, y = output):

    ReLU        y = max(x, 0)                    dx = 0 if x <= 0 else dy            saves not x <= 0
    LeakyReLU   y = x if x > 0 else a*x          dx = dy * (1 if x > 0 else a)       saves x > 0
    GELU        y = x * Phi(x)                   dx = dy * (Phi(x) + x * phi(x))     saves x
    GELU tanh   y = x/2 (1 + tanh(u)), u = c (x + 0.044715 x^3), c = sqrt(2/pi)
                dx = dy * (1/2 (1 + t) + x/2 (1 - t^2) c (1 + 3*0.044715 x^2))  saves x
    Sigmoid     y = 1 / (1 + exp(-x))            dx = dy * y (1 - y)                 saves y
                (exp(-x) = inf for very negative x gives y = 0, the correctly rounded value)
    Tanh        y = tanh(x)                      dx = dy * (1 - y^2)                 saves y
    Softmax     y = exp(x - max) / sum           dx = y * (dy - sum(dy * y))         saves y
    LogSoftmax  y = x - max - log(sum exp(x - max))  dx = dy - exp(y) * sum(dy)      saves y

Phi is the standard normal CDF 0.5 * erfc(-x / sqrt 2), phi its density. The functional forms compute the
forward only (no tape): to train through an activation, use its layer.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..kernels import compiled
from ..kernels.cpu_elementwise import select, where
from ..runtime.backend import get_array_module
from ..runtime.checks import check_float_array
from .special import erfc

__all__ = ["relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax",
           "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward", "check_negative_slope",
           "gelu_forward", "gelu_backward", "check_approximate", "sigmoid_forward", "sigmoid_backward",
           "tanh_forward", "tanh_backward", "softmax_dim", "softmax_along", "log_softmax_along",
           "softmax_backward", "log_softmax_backward"]

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


# -- the math, forward and backward ---------------------------------------------------------------------
def relu_forward(x):
    done = compiled.relu_forward(x)                            # one compiled pass (Numba), when it runs
    if done is not None:
        return done
    y = get_array_module(x).maximum(x, 0.0)                   # NaN stays NaN, like torch.relu
    return y, y != 0                                           # "not x <= 0": at NaN dy passes, as in torch


def relu_backward(positive, grad_out):
    done = compiled.relu_backward(positive, grad_out)
    if done is not None:
        return done
    return select(positive, grad_out)                          # where(positive, grad_out, 0), exactly


def check_negative_slope(negative_slope, where: str) -> float:
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real) or not math.isfinite(
            negative_slope):
        raise ValueError(f"{where}: negative_slope must be a finite number, got {negative_slope!r}")
    return float(negative_slope)


def leaky_relu_forward(x, negative_slope: float):
    positive = x > 0
    return where(positive, x, x * negative_slope), positive


def leaky_relu_backward(positive, grad_out, negative_slope: float):
    return where(positive, grad_out, grad_out * negative_slope)


def check_approximate(approximate, where: str) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{where}: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate


def gelu_forward(x, approximate: str):
    xp = get_array_module(x)
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)
        return 0.5 * x * (1.0 + xp.tanh(inner)), x
    return 0.5 * x * erfc(-x * _SQRT1_2), x


def gelu_backward(x, grad_out, approximate: str):
    xp = get_array_module(x)
    if approximate == "tanh":
        x_sq = x * x
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x_sq * x))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x_sq)
        return grad_out * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
    cdf = 0.5 * erfc(-x * _SQRT1_2)
    pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return grad_out * (cdf + x * pdf)


def sigmoid_values(x):
    """1 / (1 + exp(-x)) in four in-place passes over one new array (PyTorch's formula). exp(-x) overflows to
    inf for x < -88 (float32) or -709 (float64), and 1 / inf = 0 is then the correctly rounded sigmoid."""
    xp = get_array_module(x)
    t = xp.negative(x, out=xp.empty_like(x))  # an array also for 0-d input (a ufunc would return a scalar)
    with numpy.errstate(over="ignore"):       # the overflow to inf is intended (no effect on CuPy)
        xp.exp(t, out=t)
    t += 1.0
    return xp.reciprocal(t, out=t)


def sigmoid_forward(x):
    y = sigmoid_values(x)
    return y, y


def sigmoid_backward(y, grad_out):
    return grad_out * y * (1.0 - y)


def tanh_forward(x):
    y = get_array_module(x).tanh(x)
    return y, y


def tanh_backward(y, grad_out):
    return grad_out * (1.0 - y * y)


def softmax_dim(dim, ndim: int, where: str) -> int:
    """Resolve dim (PyTorch's legacy rule when None: 0 for 0-, 1- and 3-D inputs, else 1)."""
    if dim is None:
        dim = 0 if ndim in (0, 1, 3) else 1
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{where}: dim={dim} is out of range for an input with {ndim} dimensions")
    return dim % max(ndim, 1)


def _shifted(x, dim: int, of_scalar: float):
    """x - max(x) along dim, or the result itself for a 0-d x (of_scalar) or an empty one (empty)."""
    xp = get_array_module(x)
    if x.ndim == 0:
        return None, xp.full_like(x, of_scalar)
    if x.size == 0:  # nothing to normalise (and no maximum of an empty axis): an empty result
        return None, x.copy()
    return x - x.max(axis=dim, keepdims=True), None


def log_softmax_along(x, dim: int):
    """Numerically stable log-softmax of x along dim: x - max - log(sum(exp(x - max)))."""
    shifted, done = _shifted(x, dim, 0.0)
    if done is not None:
        return done
    xp = get_array_module(x)
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))


def softmax_along(x, dim: int):
    """Numerically stable softmax of x along dim: exp(x - max) / sum(exp(x - max))."""
    shifted, done = _shifted(x, dim, 1.0)
    if done is not None:
        return done
    e = get_array_module(x).exp(shifted)
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(y, grad_out, dim: int):
    if y.ndim == 0:
        return get_array_module(grad_out).zeros_like(grad_out)
    return y * (grad_out - (grad_out * y).sum(axis=dim, keepdims=True))


def log_softmax_backward(y, grad_out, dim: int):
    if y.ndim == 0:
        return get_array_module(grad_out).zeros_like(grad_out)
    return grad_out - get_array_module(y).exp(y) * grad_out.sum(axis=dim, keepdims=True)


# -- torch.nn.functional's forms ---------------------------------------------------------------------------
def relu(input, inplace: bool = False):
    """max(x, 0). x: any shape -> same shape (a new array; ``inplace`` is accepted and ignored)."""
    check_float_array(input, "relu")
    return relu_forward(input)[0]


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x for x > 0, negative_slope * x otherwise. x: any shape -> same shape."""
    slope = check_negative_slope(negative_slope, "leaky_relu")
    check_float_array(input, "leaky_relu")
    return leaky_relu_forward(input, slope)[0]


def gelu(input, approximate: str = "none"):
    """x * Phi(x) ('none') or its tanh approximation ('tanh'). x: any shape -> same shape."""
    check_approximate(approximate, "gelu")
    check_float_array(input, "gelu")
    return gelu_forward(input, approximate)[0]


def sigmoid(input):
    """1 / (1 + exp(-x)). x: any shape -> same shape."""
    check_float_array(input, "sigmoid")
    return sigmoid_forward(input)[0]


def tanh(input):
    """tanh(x). x: any shape -> same shape."""
    check_float_array(input, "tanh")
    return tanh_forward(input)[0]


def _cast(input, dtype):
    """softmax's dtype=: the input is cast first, as in PyTorch."""
    return input if dtype is None else input.astype(dtype)


def softmax(input, dim=None, dtype=None):
    """exp(x - max) / sum(exp(x - max)) along ``dim`` (None: PyTorch's legacy choice). -> input's shape."""
    x = _cast(input, dtype)
    check_float_array(x, "softmax")
    return softmax_along(x, softmax_dim(dim, x.ndim, "softmax"))


def log_softmax(input, dim=None, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably. -> input's shape."""
    x = _cast(input, dtype)
    check_float_array(x, "log_softmax")
    return log_softmax_along(x, softmax_dim(dim, x.ndim, "log_softmax"))
