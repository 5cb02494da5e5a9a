"""Elementwise activation layers and (log-)softmax, with PyTorch's names and defaults.

Every layer takes a floating array of any shape and returns one of the same shape, dtype and backend;
the math of each forward and backward (and its gradient formula) is in ``minigrad.functional.activation``.
A layer checks its input, caches what the backward needs, and checks the gradient it is given.
"""
from __future__ import annotations

from ..functional import activation as A
from ..runtime.backend import backend_of, get_array_module, is_array
from ..runtime.checks import check_float_array, check_grad_like, check_same_dtype
from .layer import Layer

__all__ = ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


def _check_grad(layer, grad_out, reference, dtype=None):
    """grad_out must be an array of the output's shape, dtype and backend (``dtype``: the input's, for a layer that
    cached a boolean mask)."""
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
        if dtype is not None and grad_out.dtype != dtype:
            raise TypeError(f"{layer.label}: grad_out has dtype {grad_out.dtype} but input has dtype {dtype}; use one "
                            "dtype (e.g. layer.to(dtype=...) or x.astype(...))")


class _Elementwise(Layer):
    """An activation whose forward is ``_forward(x, *options) -> (y, saved)`` and whose backward is
    ``_backward(saved, grad_out, *options)`` (functional.activation); ``_options()`` gives the options."""

    def _options(self):
        return ()

    def forward(self, input):
        """input: any shape -> same shape. Caches what the backward needs (see functional.activation)."""
        check_float_array(input, self.label)
        y, saved = self._forward(input, *self._options())
        self._cache = (saved, input.dtype)
        return y

    def backward(self, grad_out):
        saved, dtype = self.take_cache()
        if isinstance(saved, MaskApplied):        # a ReLU whose MaxPool2d ran first and masked dy (nn/fusion.py)
            return saved.pass_on(grad_out, self.label)
        _check_grad(self, grad_out, saved, dtype)
        return self._backward(saved, grad_out, *self._options())


class MaskApplied:
    """A ReLU's cache when the next MaxPool2d ran first and applies its mask (nn/fusion.py): what the gradient
    its backward passes on must be."""

    __slots__ = ("shape", "dtype", "backend")

    def __init__(self, x):
        self.shape, self.dtype, self.backend = tuple(x.shape), x.dtype, backend_of(x)

    def pass_on(self, grad_out, where: str):
        """grad_out: the input's shape, dtype and backend -> the same array (already masked by the pool)."""
        check_grad_like(grad_out, where, self.shape, self.backend, self.dtype)
        return grad_out


class ReLU(_Elementwise):
    """y = max(x, 0). ``inplace`` is accepted for PyTorch compatibility; a new array is returned.
    Caches the mask "not x <= 0" (the gradient passes at NaN, as in PyTorch). Followed by a MaxPool2d in a
    Sequential or Graph, it runs after the pool (nn/fusion.py): the same bits, a quarter of the work."""

    _forward, _backward = staticmethod(A.relu_forward), staticmethod(A.relu_backward)

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace


class LeakyReLU(_Elementwise):
    """y = x for x > 0, negative_slope * x otherwise. Caches the mask x > 0."""

    FORWARD_COPIES = 4      # the output, x * slope, the blend's bits and the mask (measured peak: 3.25 inputs)

    _forward, _backward = staticmethod(A.leaky_relu_forward), staticmethod(A.leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = A.check_negative_slope(negative_slope, "LeakyReLU"), inplace

    def _options(self):
        return (self.negative_slope,)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class GELU(_Elementwise):
    """Gaussian error linear unit: exact x * Phi(x) (approximate='none') or the tanh form. Caches x."""

    FORWARD_COPIES = 14     # erfc's rational approximation's temporaries (measured peak: 14 inputs; tanh form: 4)

    _forward, _backward = staticmethod(A.gelu_forward), staticmethod(A.gelu_backward)

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = A.check_approximate(approximate, "GELU")

    def _options(self):
        return (self.approximate,)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)), computed without overflow for large |x|. Caches y."""

    FORWARD_COPIES = 6      # exp(-|x|), the two branches, the blend's bits and the output (measured peak: 5.25 inputs)

    _forward, _backward = staticmethod(A.sigmoid_forward), staticmethod(A.sigmoid_backward)


class Tanh(_Elementwise):
    """y = tanh(x). Caches y."""

    _forward, _backward = staticmethod(A.tanh_forward), staticmethod(A.tanh_backward)


class _SoftmaxAlongDim(Layer):
    """Softmax and LogSoftmax: ``dim`` (None: PyTorch's legacy choice, 0 for 0/1/3-D inputs else 1),
    forward caches the output y, backward needs only y."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        """input: any shape -> same shape. Caches y."""
        check_float_array(input, self.label)
        dim = A.softmax_dim(self.dim, input.ndim, self.label)
        y = self._function(input, dim)
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


# The elementwise base and the grad_out check, shared with the added activations (nn/activation_more.py).
Elementwise, check_activation_grad = _Elementwise, _check_grad
