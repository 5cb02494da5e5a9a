"""torch.nn.functional's forms of the added activations: ``silu``, ``mish``, ``hardswish``, ``hardsigmoid``,
``elu``, ``selu``, ``celu``, ``softplus``, ``relu6``, ``hardtanh``, ``prelu``, ``softsign``, ``tanhshrink``,
``threshold``. Each checks its input and options and returns the forward of functional/activation_more.py (no
tape: to train through an activation, use its layer).
"""
from __future__ import annotations

from ..runtime.backend import is_array
from ..runtime.checks import check_float_array
from .activation_more import (celu_forward, check_bounds, check_number, elu_forward, hardsigmoid_forward,
                              hardswish_forward, hardtanh_forward, mish_forward, prelu_check_input, prelu_forward,
                              selu_forward, silu_forward, softplus_forward, softsign_forward, tanhshrink_forward,
                              threshold_forward)

__all__ = ["silu", "mish", "hardswish", "hardsigmoid", "elu", "selu", "celu", "softplus", "relu6", "hardtanh",
           "prelu", "softsign", "tanhshrink", "threshold"]


def _run(forward, input, where, *options):
    check_float_array(input, where)
    return forward(input, *options)[0]


def silu(input, inplace: bool = False):
    """x * sigmoid(x). x: any shape -> same shape (a new array; ``inplace`` is accepted and ignored)."""
    return _run(silu_forward, input, "silu")


def mish(input, inplace: bool = False):
    """x * tanh(softplus(x)). x: any shape -> same shape."""
    return _run(mish_forward, input, "mish")


def hardswish(input, inplace: bool = False):
    """x * relu6(x + 3) / 6. x: any shape -> same shape."""
    return _run(hardswish_forward, input, "hardswish")


def hardsigmoid(input, inplace: bool = False):
    """relu6(x + 3) / 6. x: any shape -> same shape."""
    return _run(hardsigmoid_forward, input, "hardsigmoid")


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x for x > 0, alpha * (exp(x) - 1) otherwise. x: any shape -> same shape."""
    return _run(elu_forward, input, "elu", check_number(alpha, "alpha", "elu"))


def selu(input, inplace: bool = False):
    """scale * elu(x, alpha) with PyTorch's SELU constants. x: any shape -> same shape."""
    return _run(selu_forward, input, "selu")


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """x for x > 0, alpha * (exp(x / alpha) - 1) otherwise. x: any shape -> same shape."""
    return _run(celu_forward, input, "celu", check_number(alpha, "alpha", "celu", nonzero=True))


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta x)) / beta, x itself where beta x > threshold. x: any shape -> same shape."""
    return _run(softplus_forward, input, "softplus", check_number(beta, "beta", "softplus", nonzero=True),
                check_number(threshold, "threshold", "softplus", finite=False))


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6). x: any shape -> same shape."""
    return _run(hardtanh_forward, input, "relu6", 0.0, 6.0)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """min(max(x, min_val), max_val). x: any shape -> same shape."""
    return _run(hardtanh_forward, input, "hardtanh", *check_bounds(min_val, max_val, "hardtanh", strict=False))


def prelu(input, weight):
    """x for x > 0, weight * x otherwise; weight (1,) or (C,) along dimension 1 of x (N, C, *) (a Parameter
    or an array). x: any shape -> same shape."""
    weight = weight.data if hasattr(weight, "accumulate") else weight
    if not is_array(weight):
        raise TypeError(f"prelu: expected weight to be a NumPy or CuPy array, got {type(weight).__name__}")
    if weight.ndim > 1:
        raise ValueError(f"prelu: expected weight to be a scalar or 1-D array, got shape {tuple(weight.shape)}")
    prelu_check_input(input, weight, "prelu")
    return prelu_forward(input, weight)[0]


def softsign(input):
    """x / (1 + |x|). x: any shape -> same shape."""
    return _run(softsign_forward, input, "softsign")


def tanhshrink(input):
    """x - tanh(x). x: any shape -> same shape."""
    return _run(tanhshrink_forward, input, "tanhshrink")


def threshold(input, threshold: float, value: float, inplace: bool = False):
    """value where x <= threshold, else x. x: any shape -> same shape."""
    return _run(threshold_forward, input, "threshold", check_number(threshold, "threshold", "threshold", finite=False),
                check_number(value, "value", "threshold", finite=False))
