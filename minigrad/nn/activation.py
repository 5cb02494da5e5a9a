"""Elementwise activations and (log-)softmax, with PyTorch's names and defaults.

Every layer takes a floating array of any shape and returns one of the same shape, dtype
and backend. Gradients (dy = grad_out, y = output):

    ReLU        y = max(x, 0)                    dx = dy * (x > 0)                   caches x > 0
    LeakyReLU   y = x if x > 0 else a*x          dx = dy * (1 if x > 0 else a)       caches x > 0
    GELU        y = x * Phi(x)                   dx = dy * (Phi(x) + x * phi(x))     caches x
    GELU tanh   y = x/2 (1 + tanh(u)), u = c (x + 0.044715 x^3), c = sqrt(2/pi)
                dx = dy * (1/2 (1 + t) + x/2 (1 - t^2) c (1 + 3*0.044715 x^2))  caches x
    Sigmoid     y = 1 / (1 + exp(-x))            dx = dy * y (1 - y)                 caches y
    Tanh        y = tanh(x)                      dx = dy * (1 - y^2)                 caches y
    Softmax     y = exp(x - max) / sum           dx = y * (dy - sum(dy * y))         caches y
    LogSoftmax  y = x - max - log(sum exp(x - max))  dx = dy - exp(y) * sum(dy)      caches y

Phi is the standard normal CDF 0.5 * erfc(-x / sqrt 2), phi its density.
"""
from __future__ import annotations

import math
import numbers

from ..runtime.backend import get_array_module, is_array
from ..functional.special import erfc
from ..kernels.cpu_elementwise import select
from ..runtime.checks import check_float_array, check_same_dtype
from .layer import Layer

__all__ = ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
           "softmax", "log_softmax"]

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _check_grad(layer, grad_out, reference):
    """grad_out must be an array of the output's shape, dtype and backend."""
    if not is_array(grad_out):
        raise TypeError(f"{layer.label}: expected grad_out to be a NumPy or CuPy array, got "
                        f"{type(grad_out).__name__}")
    get_array_module(grad_out, reference, names=("grad_out", "cached forward array"), where=layer.label)
    if tuple(grad_out.shape) != tuple(reference.shape):
        raise ValueError(f"{layer.label}: expected grad_out of shape {tuple(reference.shape)} (the output "
                         f"shape), got {tuple(grad_out.shape)}")
    if reference.dtype.kind == "f":
        check_same_dtype(grad_out, reference, layer.label, "grad_out", "input")
    else:                                         # ReLU/LeakyReLU cache a boolean mask
        check_float_array(grad_out, layer.label, "grad_out")


class ReLU(Layer):
    """y = max(x, 0). ``inplace`` is accepted for PyTorch compatibility; a new array is returned."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        """x: any shape -> same shape. Caches the mask x > 0."""
        check_float_array(x, self.label)
        xp = get_array_module(x)
        positive = x > 0
        self._cache = positive
        return xp.maximum(x, 0.0)                 # NaN stays NaN, like torch.relu

    def backward(self, grad_out):
        positive = self.take_cache()
        _check_grad(self, grad_out, positive)
        return select(positive, grad_out)          # where(positive, grad_out, 0), exactly


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real) or not math.isfinite(
                negative_slope):
            raise ValueError(f"LeakyReLU: negative_slope must be a finite number, got {negative_slope!r}")
        self.negative_slope, self.inplace = float(negative_slope), inplace

    def forward(self, x):
        """x: any shape -> same shape. Caches the mask x > 0."""
        check_float_array(x, self.label)
        xp = get_array_module(x)
        positive = x > 0
        self._cache = positive
        return xp.where(positive, x, x * self.negative_slope)

    def backward(self, grad_out):
        positive = self.take_cache()
        _check_grad(self, grad_out, positive)
        xp = get_array_module(grad_out)
        return xp.where(positive, grad_out, grad_out * self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class GELU(Layer):
    """Gaussian error linear unit: exact x * Phi(x) (approximate='none') or the tanh form."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        """x: any shape -> same shape. Caches x."""
        check_float_array(x, self.label)
        xp = get_array_module(x)
        self._cache = x
        if self.approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)
            return 0.5 * x * (1.0 + xp.tanh(inner))
        return 0.5 * x * erfc(-x * _SQRT1_2)

    def backward(self, grad_out):
        x = self.take_cache()
        _check_grad(self, grad_out, x)
        xp = get_array_module(x)
        if self.approximate == "tanh":
            x_sq = x * x
            t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x_sq * x))
            du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x_sq)
            return grad_out * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
        cdf = 0.5 * erfc(-x * _SQRT1_2)
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return grad_out * (cdf + x * pdf)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def forward(self, x):
        """x: any shape -> same shape. Caches y."""
        check_float_array(x, self.label)
        xp = get_array_module(x)
        z = xp.exp(-xp.abs(x))                    # in (0, 1]: never overflows
        y = xp.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
        self._cache = y
        return y

    def backward(self, grad_out):
        y = self.take_cache()
        _check_grad(self, grad_out, y)
        return grad_out * y * (1.0 - y)


class Tanh(Layer):
    """y = tanh(x)."""

    def forward(self, x):
        """x: any shape -> same shape. Caches y."""
        check_float_array(x, self.label)
        y = get_array_module(x).tanh(x)
        self._cache = y
        return y

    def backward(self, grad_out):
        y = self.take_cache()
        _check_grad(self, grad_out, y)
        return grad_out * (1.0 - y * y)


def _softmax_dim(dim, ndim: int, where: str) -> int:
    """Resolve dim (PyTorch's legacy rule when None: 0 for 0-, 1- and 3-D inputs, else 1)."""
    if dim is None:
        dim = 0 if ndim in (0, 1, 3) else 1
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{where}: dim={dim} is out of range for an input with {ndim} dimensions")
    return dim % max(ndim, 1)


def log_softmax(x, dim: int):
    """Numerically stable log-softmax of x along dim: x - max - log(sum(exp(x - max)))."""
    xp = get_array_module(x)
    if x.size == 0:  # nothing to normalise (and no maximum of an empty axis): an empty result
        return x.copy()
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))


def softmax(x, dim: int):
    """Numerically stable softmax of x along dim: exp(x - max) / sum(exp(x - max))."""
    xp = get_array_module(x)
    if x.size == 0:  # nothing to normalise (and no maximum of an empty axis): an empty result
        return x.copy()
    e = xp.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


class _SoftmaxAlongDim(Layer):
    """Softmax and LogSoftmax: ``dim`` (None: PyTorch's legacy choice, 0 for 0/1/3-D inputs else 1),
    forward caches the output y, backward needs only y."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        """x: any shape -> same shape. Caches y."""
        check_float_array(x, self.label)
        dim = _softmax_dim(self.dim, x.ndim, self.label)
        y = self._function(x, dim) if x.ndim else self._of_scalar(get_array_module(x), x)
        self._cache = (y, dim)
        return y

    def backward(self, grad_out):
        y, dim = self.take_cache()
        _check_grad(self, grad_out, y)
        if y.ndim == 0:
            return get_array_module(grad_out).zeros_like(grad_out)
        return self._gradient(y, grad_out, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxAlongDim):
    """Softmax along ``dim``: exp(x - max) / sum(exp(x - max)); rows along dim sum to 1."""

    @staticmethod
    def _function(x, dim):
        return softmax(x, dim)

    @staticmethod
    def _of_scalar(xp, x):
        return xp.ones_like(x)

    @staticmethod
    def _gradient(y, grad_out, dim):
        return y * (grad_out - (grad_out * y).sum(axis=dim, keepdims=True))


class LogSoftmax(_SoftmaxAlongDim):
    """log(softmax(x)) along ``dim``, computed stably (never log of an underflowed 0)."""

    @staticmethod
    def _function(x, dim):
        return log_softmax(x, dim)

    @staticmethod
    def _of_scalar(xp, x):
        return xp.zeros_like(x)

    @staticmethod
    def _gradient(y, grad_out, dim):
        return grad_out - get_array_module(y).exp(y) * grad_out.sum(axis=dim, keepdims=True)
