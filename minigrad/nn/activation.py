"""Elementwise activation layers and (log-)softmax, with PyTorch's names and defaults.

Every layer takes a floating array of any shape and returns one of the same shape, dtype and backend;
the math of each forward and backward (and its gradient formula) is in ``minigrad.functional.activation``.
A layer checks its input, caches what the backward needs, and checks the gradient it is given.
"""
from __future__ import annotations

from ..functional import activation as A
from ..runtime.backend import get_array_module, is_array
from ..runtime.checks import check_float_array, check_same_dtype
from .layer import Layer

__all__ = ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


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
        y, self._cache = A.relu_forward(x)
        return y

    def backward(self, grad_out):
        positive = self.take_cache()
        _check_grad(self, grad_out, positive)
        return A.relu_backward(positive, grad_out)


class LeakyReLU(Layer):
    """y = x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = A.check_negative_slope(negative_slope, "LeakyReLU"), inplace

    def forward(self, x):
        """x: any shape -> same shape. Caches the mask x > 0."""
        check_float_array(x, self.label)
        y, self._cache = A.leaky_relu_forward(x, self.negative_slope)
        return y

    def backward(self, grad_out):
        positive = self.take_cache()
        _check_grad(self, grad_out, positive)
        return A.leaky_relu_backward(positive, grad_out, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class GELU(Layer):
    """Gaussian error linear unit: exact x * Phi(x) (approximate='none') or the tanh form."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = A.check_approximate(approximate, "GELU")

    def forward(self, x):
        """x: any shape -> same shape. Caches x."""
        check_float_array(x, self.label)
        y, self._cache = A.gelu_forward(x, self.approximate)
        return y

    def backward(self, grad_out):
        x = self.take_cache()
        _check_grad(self, grad_out, x)
        return A.gelu_backward(x, grad_out, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)), computed without overflow for large |x|."""

    def forward(self, x):
        """x: any shape -> same shape. Caches y."""
        check_float_array(x, self.label)
        y, self._cache = A.sigmoid_forward(x)
        return y

    def backward(self, grad_out):
        y = self.take_cache()
        _check_grad(self, grad_out, y)
        return A.sigmoid_backward(y, grad_out)


class Tanh(Layer):
    """y = tanh(x)."""

    def forward(self, x):
        """x: any shape -> same shape. Caches y."""
        check_float_array(x, self.label)
        y, self._cache = A.tanh_forward(x)
        return y

    def backward(self, grad_out):
        y = self.take_cache()
        _check_grad(self, grad_out, y)
        return A.tanh_backward(y, grad_out)


class _SoftmaxAlongDim(Layer):
    """Softmax and LogSoftmax: ``dim`` (None: PyTorch's legacy choice, 0 for 0/1/3-D inputs else 1),
    forward caches the output y, backward needs only y."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        """x: any shape -> same shape. Caches y."""
        check_float_array(x, self.label)
        dim = A.softmax_dim(self.dim, x.ndim, self.label)
        y = self._function(x, dim)
        self._cache = (y, dim)
        return y

    def backward(self, grad_out):
        y, dim = self.take_cache()
        _check_grad(self, grad_out, y)
        return self._gradient(y, grad_out, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxAlongDim):
    """Softmax along ``dim``: exp(x - max) / sum(exp(x - max)); rows along dim sum to 1."""

    _function = staticmethod(A.softmax_along)
    _gradient = staticmethod(A.softmax_backward)


class LogSoftmax(_SoftmaxAlongDim):
    """log(softmax(x)) along ``dim``, computed stably (never log of an underflowed 0)."""

    _function = staticmethod(A.log_softmax_along)
    _gradient = staticmethod(A.log_softmax_backward)
