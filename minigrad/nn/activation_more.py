"""More activation layers, with PyTorch's names, signatures and defaults: SiLU, Mish, Hardswish, Hardsigmoid,
ELU, SELU, CELU, Softplus, ReLU6, Hardtanh, PReLU (a parameter), Softsign, Tanhshrink, Threshold.

Every layer takes a floating array of any shape and returns one of the same shape, dtype and backend; the
math of each forward and backward (and its gradient at the kinks, PyTorch's) is in
``minigrad.functional.activation_more``. ``inplace`` is accepted where PyTorch has it; a new array is returned.
"""
from __future__ import annotations

import numbers
import warnings

from ..functional import activation_more as A
from ..runtime.backend import active_module
from .activation import Elementwise, check_activation_grad
from .layer import Layer
from .linear import device_dtype
from .parameter import Parameter

__all__ = ["SiLU", "Mish", "Hardswish", "Hardsigmoid", "ELU", "SELU", "CELU", "Softplus", "ReLU6", "Hardtanh",
           "PReLU", "Softsign", "Tanhshrink", "Threshold"]


class _Inplace(Elementwise):
    """An activation whose only PyTorch option is ``inplace`` (accepted; a new array is returned)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class _NoArguments(Elementwise):
    """PyTorch's Softsign and Tanhshrink have no __init__ of their own: Module.__init__(*args, **kwargs), which
    refuses every argument. The same signature here, refusing them the same way."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}() takes no arguments, got {len(args)} positional and "
                            f"keyword argument(s) {sorted(kwargs)}")
        super().__init__()


class SiLU(_Inplace):
    """y = x * sigmoid(x) (also called swish), without overflow for large |x|. Caches x."""

    FORWARD_COPIES = 6      # sigmoid's temporaries, the blend's bits and the output (measured peak: 5.25 inputs)
    _forward, _backward = staticmethod(A.silu_forward), staticmethod(A.silu_backward)


class Mish(_Inplace):
    """y = x * tanh(softplus(x)), softplus computed without overflow. Caches x."""

    FORWARD_COPIES = 4
    _forward, _backward = staticmethod(A.mish_forward), staticmethod(A.mish_backward)


class Hardswish(_Inplace):
    """y = x * relu6(x + 3) / 6; gradient 0 for x <= -3, x/3 + 1/2 for -3 < x < 3, 1 for x >= 3. Caches x."""

    extra_repr = Elementwise.extra_repr         # PyTorch's repr shows no inplace here
    _forward, _backward = staticmethod(A.hardswish_forward), staticmethod(A.hardswish_backward)


class Hardsigmoid(_Inplace):
    """y = relu6(x + 3) / 6; gradient 1/6 (PyTorch's float32 1/6) on -3 < x < 3, else 0. Caches that mask."""

    extra_repr = Elementwise.extra_repr
    _forward, _backward = staticmethod(A.hardsigmoid_forward), staticmethod(A.hardsigmoid_backward)


class ELU(Elementwise):
    """y = x for x > 0, alpha * (exp(x) - 1) for x <= 0 (expm1, exact near 0). Caches x."""

    FORWARD_COPIES = 4      # expm1's branch, the blend's bits and the output (measured peak: 3.25 inputs)
    _forward, _backward = staticmethod(A.elu_forward), staticmethod(A.elu_backward)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = A.check_number(alpha, "alpha", "ELU"), inplace

    def _options(self):
        return (self.alpha,)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SELU(_Inplace):
    """y = scale * (x for x > 0, alpha * (exp(x) - 1) for x <= 0), PyTorch's alpha ~ 1.6733 and
    scale ~ 1.0507. Caches x."""

    FORWARD_COPIES = 5      # expm1's branch, the scaled input, the blend's bits, the output (measured peak: 4.25 inputs)
    _forward, _backward = staticmethod(A.selu_forward), staticmethod(A.selu_backward)


class CELU(Elementwise):
    """y = x for x > 0, alpha * (exp(x / alpha) - 1) for x <= 0; alpha must not be 0. Caches x."""

    FORWARD_COPIES = 4      # expm1's branch, the blend's bits and the output (measured peak: 3.25 inputs)
    _forward, _backward = staticmethod(A.celu_forward), staticmethod(A.celu_backward)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = A.check_number(alpha, "alpha", "CELU", nonzero=True), inplace

    def _options(self):
        return (self.alpha,)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Elementwise):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (PyTorch's linear branch, gradient
    1 there); beta must not be 0. Caches x."""

    FORWARD_COPIES = 5      # the output and its temporaries (measured peak: 4.25 inputs)
    _forward, _backward = staticmethod(A.softplus_forward), staticmethod(A.softplus_backward)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = A.check_number(beta, "beta", "Softplus", nonzero=True)
        self.threshold = A.check_number(threshold, "threshold", "Softplus", finite=False)

    def _options(self):
        return (self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Elementwise):
    """y = min(max(x, min_val), max_val); gradient 1 strictly inside, 0 at and beyond the bounds (PyTorch's).
    ``min_value`` / ``max_value`` are PyTorch's deprecated names (a FutureWarning, then used). Caches the mask."""

    FORWARD_COPIES = 3      # the clamped output, its temporary and the boolean masks (measured peak: 2.25 inputs)
    _forward, _backward = staticmethod(A.hardtanh_forward), staticmethod(A.hardtanh_backward)

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False,
                 min_value: float | None = None, max_value: float | None = None):
        super().__init__()
        where = type(self).__name__
        if min_value is not None:
            warnings.warn(f"{where}: keyword argument `min_value` is deprecated and renamed to `min_val`",
                          FutureWarning, stacklevel=2)
            min_val = min_value
        if max_value is not None:
            warnings.warn(f"{where}: keyword argument `max_value` is deprecated and renamed to `max_val`",
                          FutureWarning, stacklevel=2)
            max_val = max_value
        self.min_val, self.max_val = A.check_bounds(min_val, max_val, where)
        self.inplace = inplace

    def _options(self):
        return (self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """y = min(max(x, 0), 6): Hardtanh(0, 6), as in PyTorch (gradient 0 at x = 0 and at x = 6). Caches the mask."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Softsign(_NoArguments):
    """y = x / (1 + |x|). Caches x."""

    _forward, _backward = staticmethod(A.softsign_forward), staticmethod(A.softsign_backward)


class Tanhshrink(_NoArguments):
    """y = x - tanh(x). Caches tanh(x)."""

    _forward, _backward = staticmethod(A.tanhshrink_forward), staticmethod(A.tanhshrink_backward)


class Threshold(Elementwise):
    """y = x where x > threshold, else value; gradient 0 where x <= threshold (at it too). Caches x > threshold."""

    FORWARD_COPIES = 3      # the masks, the blend's bits and the output (measured peak: 2.25 inputs)
    _forward, _backward = staticmethod(A.threshold_forward), staticmethod(A.threshold_backward)

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__()
        self.threshold = A.check_number(threshold, "threshold", "Threshold", finite=False)
        self.value = A.check_number(value, "value", "Threshold", finite=False)
        self.inplace = inplace

    def _options(self):
        return (self.threshold, self.value)

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class PReLU(Layer):
    """y = x for x > 0, weight * x otherwise, with a learned ``weight`` of ``num_parameters`` values (all ``init``):
    one for every element, or one per channel along dimension 1 of an (N, C, *) input (PyTorch's rule: a 0-d or
    1-d input has one channel). backward adds sum(x * dy over x <= 0) into weight.grad. Caches x."""

    FORWARD_COPIES = 4      # the weighted input, the blend's bits, the mask and the output (measured peak: 3.25 inputs)

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        dtype = device_dtype(PReLU, device, dtype, f"{num_parameters!r}, {init!r}")
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, numbers.Integral) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = A.check_number(init, "init", "PReLU")
        self.weight = Parameter(active_module().full((self.num_parameters,), self.init, dtype=dtype))
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def reset_parameters(self):
        """Every weight back to ``init``, as PyTorch's reset_parameters."""
        self.weight.data[...] = self.init

    def forward(self, input):
        """input: (N, C, *) with C = num_parameters (any shape when num_parameters is 1) -> same shape."""
        A.prelu_check_input(input, self.weight.data, self.label)
        y, self._cache = A.prelu_forward(input, self.weight.data)
        return y

    def _backward(self, grad_out, need_input):
        """grad_out: the input's shape -> the input gradient (None unless need_input); adds the weight gradient
        (num_parameters,) into weight.grad."""
        x = self.take_cache()
        check_activation_grad(self, grad_out, x)
        dx, dw = A.prelu_backward(x, grad_out, self.weight.data, need_weight=self.weight.requires_grad,
                                  need_input=need_input)
        if dw is not None:
            self.weight.accumulate(dw, self.label)
        return dx

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
