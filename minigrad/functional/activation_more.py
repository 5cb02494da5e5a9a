"""More elementwise activations: the math of ``nn.SiLU`` ... ``nn.Threshold`` and their ``torch.nn.functional``
forms (``silu``, ``mish``, ``hardswish``, ``hardsigmoid``, ``elu``, ``selu``, ``celu``, ``softplus``, ``relu6``,
``hardtanh``, ``prelu``, ``softsign``, ``tanhshrink``, ``threshold``).

Every function takes a floating array of any shape and returns one of the same shape, dtype and backend.
Each ``*_forward(x, ...)`` returns ``(y, saved)``; ``*_backward(saved, dy, ...)`` gives the input gradient
(dy = grad_out, s = sigmoid, sp(z) = log(1 + e^z) computed as max(z, 0) + log1p(e^-|z|), never overflowing):

    SiLU        y = x s(x)                       dx = dy s (1 + x (1 - s))                     saves x
    Mish        y = x tanh(sp(x)), t = tanh(sp)  dx = dy (t + x s (1 - t^2))                   saves x
    Hardswish   y = x min(max(x + 3, 0), 6) / 6  dx = 0 (x <= -3), dy (x/3 + 1/2) (x < 3), dy  saves x
    Hardsigmoid y = min(max(x + 3, 0), 6) / 6    dx = dy / 6 on -3 < x < 3, else 0             saves the mask
    ELU family  y = x * scale (x > 0), alpha scale expm1(x * input_scale) (x <= 0)
                dx = dy scale (x > 0), dy input_scale alpha scale exp(x * input_scale) (x <= 0)   saves x
                ELU(alpha): scale = input_scale = 1; SELU: PyTorch's alpha and scale; CELU(alpha): 1/alpha
    Softplus    y = x if beta x > threshold else sp(beta x) / beta
                dx = dy if beta x > threshold else dy s(beta x)                               saves x
    Hardtanh    y = min(max(x, min_val), max_val)  dx = dy on min_val < x < max_val, else 0    saves the mask
    ReLU6       Hardtanh(0, 6), as in PyTorch (the gradient is 0 at x = 0 and x = 6)
    PReLU       y = x (x > 0), w x;  dx = dy (x > 0), w dy;  dw = sum of x dy where x <= 0  saves x
    Softsign    y = x / (1 + |x|)                dx = dy / (1 + |x|)^2 (0 at +-inf; PyTorch: NaN)  saves x
    Tanhshrink  y = x - tanh(x)                  dx = dy tanh(x)^2                              saves tanh(x)
    Threshold   y = value if x <= threshold else x   dx = 0 if x <= threshold else dy         saves the mask

At a kink the gradient is PyTorch's (the side each formula names above; NaN inputs take the "else" side, as
in PyTorch). Two PyTorch details are copied on purpose, so that float64 matches it to 1e-16: Hardsigmoid's
gradient is dy times 1/6 *rounded to float32* (its kernels use the constant 1.0f / 6.0f in every dtype), and
CELU's gradient uses input_scale = 1 / float32(alpha) (its derivative formula reads alpha.toFloat(); the forward
uses 1 / alpha). Where PyTorch's Softplus overflows (beta x > 709 below a larger threshold: inf, NaN gradient)
the stable form here stays finite.
The functional forms (``silu`` ...: functional/activation_forms.py) compute the forward only (no tape): to train
through an activation, use its layer.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..kernels import cpu_activation
from ..kernels.cpu_blocks import INT_OF, blend_bits, blockwise, mask_bits
from ..kernels.cpu_elementwise import select, where
from ..runtime.backend import get_array_module
from ..runtime.checks import check_float_array, check_same_dtype
from .activation import sigmoid_forward, sigmoid_values

__all__ = ["check_number", "check_bounds", "SELU_ALPHA", "SELU_SCALE", "HARDSIGMOID_SLOPE", "prelu_channels",
           "prelu_check_input"]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
HARDSIGMOID_SLOPE = float(numpy.float32(1.0 / 6.0))     # PyTorch's one_sixth(1.0f / 6.0f), in every dtype


def check_number(value, name: str, where: str, *, finite: bool = True, nonzero: bool = False) -> float:
    """A real number option (not a bool): finite unless ``finite=False`` (then only NaN is refused)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        value = float(value)
        ok = math.isfinite(value) if finite else not math.isnan(value)
    if ok and nonzero and value == 0.0:
        raise ValueError(f"{where}: {name} must not be 0, got {value!r}")
    if not ok:
        raise ValueError(f"{where}: {name} must be a {'finite ' if finite else ''}number, got {value!r}")
    return value


def check_bounds(min_val, max_val, where: str, strict: bool = True):
    """Hardtanh's (min_val, max_val): numbers with max_val > min_val (>= for the functional form, as torch)."""
    lo = check_number(min_val, "min_val", where, finite=False)
    hi = check_number(max_val, "max_val", where, finite=False)
    if hi < lo or (strict and hi == lo):
        raise ValueError(f"{where}: max_val must be {'greater than' if strict else 'at least'} min_val, got "
                         f"min_val={min_val!r}, max_val={max_val!r}")
    return lo, hi


def _softplus(xp, z):
    """log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|)), in place on one new array."""
    t = xp.abs(z, out=xp.empty_like(z))           # an array also for 0-d input
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    xp.log1p(t, out=t)
    t += xp.maximum(z, 0.0)
    return t


def _sigmoid(x):
    return sigmoid_forward(x)[0]


# -- the math, forward and backward ---------------------------------------------------------------------
# Each formula is an elementwise block function; blockwise runs it over a large NumPy array in cache-sized blocks
# on the thread pool (the same bits on any number of threads), and once over anything else (CuPy, strided input).
def _silu(x):
    y = sigmoid_values(x)
    y *= x                                        # x * sigmoid(x), in place
    return y


def _silu_grad(x, grad_out):
    s = sigmoid_values(x)
    xp = get_array_module(x)
    dx = xp.subtract(1.0, s, out=xp.empty_like(s))   # dy * s * (1 + x (1 - s)), in place on one array
    dx *= x
    dx += 1.0
    dx *= s
    dx *= grad_out
    return dx


def silu_forward(x):
    return blockwise(_silu, x), x


def silu_backward(x, grad_out):
    return blockwise(_silu_grad, x, grad_out)


def _mish(x):
    xp = get_array_module(x)
    return x * xp.tanh(_softplus(xp, x))


def _mish_grad(x, grad_out):
    xp = get_array_module(x)
    t = xp.tanh(_softplus(xp, x))
    return grad_out * (t + x * _sigmoid(x) * (1.0 - t * t))


def mish_forward(x):
    return blockwise(_mish, x), x


def mish_backward(x, grad_out):
    return blockwise(_mish_grad, x, grad_out)


def _hardswish(x, y):
    xp = get_array_module(x)
    xp.add(x, 3.0, out=y)                         # x * min(max(x + 3, 0), 6) / 6, in place on the output
    xp.clip(y, 0.0, 6.0, out=y)
    y *= x
    y /= 6.0


def _hardswish_grad(x, grad_out, dx):
    if type(x) is numpy.ndarray and cpu_activation.hardswish_grad(x, grad_out, dx):
        return
    xp = get_array_module(x)
    inner = xp.divide(x, 3.0, out=dx)             # dy (x/3 + 1/2) on -3 < x < 3, dy for x >= 3, 0 for x <= -3
    inner += 0.5
    inner *= grad_out
    dx[...] = where(x <= -3.0, 0.0, where(x < 3.0, inner, grad_out))


def hardswish_forward(x):
    return blockwise(_hardswish, x, out=(x.dtype,))[0], x


def hardswish_backward(x, grad_out):
    return blockwise(_hardswish_grad, x, grad_out, out=(x.dtype,))[0]


def _hardsigmoid(x, y, inside):
    xp = get_array_module(x)
    xp.add(x, 3.0, out=y)                         # min(max(x + 3, 0), 6) / 6, in place on the output
    xp.clip(y, 0.0, 6.0, out=y)
    y /= 6.0
    xp.greater(x, -3.0, out=inside)
    inside &= x < 3.0


def hardsigmoid_forward(x):
    return blockwise(_hardsigmoid, x, out=(x.dtype, numpy.bool_))


def _hardsigmoid_grad(inside, grad_out, dx):
    select(inside, grad_out, out=dx)              # then * 1/6: the kept values times the slope, +0 elsewhere
    dx *= HARDSIGMOID_SLOPE


def hardsigmoid_backward(inside, grad_out):
    return blockwise(_hardsigmoid_grad, inside, grad_out, out=(grad_out.dtype,))[0]


def _elu(x, y, alpha, scale, input_scale):
    if type(x) is numpy.ndarray and cpu_activation.elu(x, y, alpha, scale, input_scale):
        return
    xp = get_array_module(x)
    negative = xp.minimum(x, 0.0, out=y)          # min: no overflow for x > 0; in place from here
    if input_scale != 1.0:
        negative *= input_scale
    xp.expm1(negative, out=negative)
    negative *= alpha * scale
    y[...] = where(x <= 0, negative, x * scale if scale != 1.0 else x)


def _elu_grad(x, grad_out, dx, alpha, scale, input_scale):
    if type(x) is numpy.ndarray and cpu_activation.elu_grad(x, grad_out, dx, alpha, scale, input_scale):
        return
    xp = get_array_module(x)
    negative = xp.minimum(x, 0.0, out=dx)         # dy (input_scale alpha scale exp(min(x, 0) input_scale)), in place
    if input_scale != 1.0:
        negative *= input_scale
    xp.exp(negative, out=negative)
    negative *= input_scale * alpha * scale
    negative *= grad_out
    dx[...] = where(x <= 0, negative, grad_out * scale if scale != 1.0 else grad_out)


def elu_forward(x, alpha: float, scale: float = 1.0, input_scale: float = 1.0):
    """PyTorch's elu(x, alpha, scale, input_scale): ELU, SELU and CELU are this with their constants."""
    return blockwise(lambda xb, yb: _elu(xb, yb, alpha, scale, input_scale), x, out=(x.dtype,))[0], x


def elu_backward(x, grad_out, alpha: float, scale: float = 1.0, input_scale: float = 1.0):
    return blockwise(lambda xb, dyb, dxb: _elu_grad(xb, dyb, dxb, alpha, scale, input_scale), x, grad_out,
                     out=(x.dtype,))[0]


def selu_forward(x):
    return elu_forward(x, SELU_ALPHA, SELU_SCALE)


def selu_backward(x, grad_out):
    return elu_backward(x, grad_out, SELU_ALPHA, SELU_SCALE)


def celu_forward(x, alpha: float):
    return elu_forward(x, alpha, 1.0, 1.0 / alpha)


def celu_backward(x, grad_out, alpha: float):
    # PyTorch's derivative of celu is elu_backward(..., input_scale = 1.0 / alpha.toFloat()): 1/alpha with alpha
    # rounded to float32 first (its forward uses 1/alpha in double); the same here, to match it to 1e-16
    rounded = float(numpy.float32(alpha)) if 1e-37 < abs(alpha) < 3e38 else alpha   # (no float32 under/overflow)
    return elu_backward(x, grad_out, alpha, 1.0, 1.0 / rounded)


def _softplus_values(x, y, beta, threshold):
    xp = get_array_module(x)
    z = x * beta if beta != 1.0 else x
    xp.abs(z, out=y)                              # max(z, 0) + log1p(exp(-|z|)), in place on the output
    xp.negative(y, out=y)
    xp.exp(y, out=y)
    xp.log1p(y, out=y)
    y += xp.maximum(z, 0.0)
    if beta != 1.0:
        y /= beta
    if type(x) is numpy.ndarray and cpu_activation.softplus_select(x, y, threshold, beta):
        return
    y[...] = where(z > threshold, x, y)


def _softplus_grad(x, grad_out, dx, beta, threshold):
    z = x * beta if beta != 1.0 else x
    xp = get_array_module(x)
    xp.negative(z, out=dx)                        # sigmoid(z) (as sigmoid_values), in place on the output
    with numpy.errstate(over="ignore"):
        xp.exp(dx, out=dx)
    dx += 1.0
    xp.reciprocal(dx, out=dx)
    if type(x) is numpy.ndarray and cpu_activation.softplus_grad_select(x, dx, threshold, beta):
        dx *= grad_out                            # grad_out * 1 = grad_out where z > threshold
        return
    dx *= grad_out
    dx[...] = where(z > threshold, grad_out, dx)


def softplus_forward(x, beta: float, threshold: float):
    return blockwise(lambda xb, yb: _softplus_values(xb, yb, beta, threshold), x, out=(x.dtype,))[0], x


def softplus_backward(x, grad_out, beta: float, threshold: float):
    return blockwise(lambda xb, dyb, dxb: _softplus_grad(xb, dyb, dxb, beta, threshold), x, grad_out,
                     out=(x.dtype,))[0]


def _hardtanh(x, y, inside, min_val, max_val):
    xp = get_array_module(x)
    xp.less_equal(x, min_val, out=inside)                # PyTorch's test: NaN keeps its gradient
    inside |= x >= max_val
    xp.logical_not(inside, out=inside)
    xp.maximum(x, min_val, out=y)
    xp.minimum(y, max_val, out=y)


def hardtanh_forward(x, min_val: float, max_val: float):
    return blockwise(lambda xb, yb, ib: _hardtanh(xb, yb, ib, min_val, max_val), x, out=(x.dtype, numpy.bool_))


def hardtanh_backward(inside, grad_out, min_val: float = -1.0, max_val: float = 1.0):
    return blockwise(select, inside, grad_out, out=(grad_out.dtype,))[0]


def prelu_channels(x) -> int:
    """PyTorch's channel count of a PReLU input: its dimension 1, or 1 for a 0-d or 1-d input."""
    return x.shape[1] if x.ndim >= 2 else 1


def _prelu_weight(weight, x):
    """weight (C,) shaped to broadcast over x: () for one value, (C, 1, ..., 1) along dimension 1."""
    if weight.size == 1:
        return weight.reshape(())                          # (1,) -> ()
    return weight.reshape((-1,) + (1,) * (x.ndim - 2))     # (C,) -> (C, 1, ..., 1) for x (N, C, *)


def prelu_forward(x, weight):
    """x: (N, C, *) or any shape for one weight; weight: (C,) or (1,) -> x's shape. Saves x."""
    positive = x > 0
    return where(positive, x, _prelu_weight(weight, x) * x), x


def prelu_backward(x, grad_out, weight, need_weight: bool = True, need_input: bool = True):
    """-> (dx of x's shape or None, dweight (C,) or None): dweight sums x * dy over x <= 0 beside the channel axis."""
    positive = x > 0
    dx = where(positive, grad_out, _prelu_weight(weight, x) * grad_out) if need_input else None
    if not need_weight:
        return dx, None
    masked = where(positive, 0.0, x * grad_out)
    if weight.size == 1:
        return dx, masked.reshape(1, -1).sum(axis=1)       # any shape -> (1, size) -> (1,)
    axes = (0,) + tuple(range(2, x.ndim))
    return dx, masked.sum(axis=axes)                       # (N, C, *) -> (C,)


def prelu_check_input(x, weight, where: str, weight_name: str = "weight"):
    """x must be a float array of weight's dtype and backend, with weight.size channels (PyTorch's rule)."""
    check_float_array(x, where)
    get_array_module(x, weight, names=("input", weight_name), where=where)
    check_same_dtype(x, weight, where, "input", weight_name)
    if weight.size != 1 and prelu_channels(x) != weight.size:
        raise ValueError(f"{where}: expected input with {weight.size} channels (num_parameters={weight.size}) in "
                         f"dimension 1, got input of shape {tuple(x.shape)} ({prelu_channels(x)} channel"
                         f"{'s' if prelu_channels(x) != 1 else ''}: a 0-d or 1-d input has one)")


def _softsign(x):
    xp = get_array_module(x)
    d = xp.abs(x, out=xp.empty_like(x))                   # (an array also for a 0-d input)
    d += 1.0
    return xp.divide(x, d, out=d)


def _softsign_grad(x, grad_out):
    d = get_array_module(x).abs(x)
    d += 1.0
    return grad_out / d / d            # (not / d^2: no overflow for |x| > 1e154); 0 at x = +-inf


def softsign_forward(x):
    return blockwise(_softsign, x), x


def softsign_backward(x, grad_out):
    return blockwise(_softsign_grad, x, grad_out)


def _tanhshrink(x, y, t):
    xp = get_array_module(x)
    xp.tanh(x, out=t)
    xp.subtract(x, t, out=y)


def tanhshrink_forward(x):
    return blockwise(_tanhshrink, x, out=(x.dtype, x.dtype))


def _tanhshrink_grad(t, grad_out):
    return grad_out * (t * t)


def tanhshrink_backward(t, grad_out):
    return blockwise(_tanhshrink_grad, t, grad_out)


def _threshold(x, y, above, threshold, value):
    xp = get_array_module(x)
    xp.less_equal(x, threshold, out=above)               # below for now: value there, x elsewhere (NaN: x)
    if type(x) is numpy.ndarray and x.dtype in INT_OF and x.ndim:   # value's or x's own bits, into y
        blend_bits(mask_bits(above, INT_OF[x.dtype]), value, x, out=y)
    else:
        y[...] = where(above, value, x)
    xp.logical_not(above, out=above)


def threshold_forward(x, threshold: float, value: float):
    return blockwise(lambda xb, yb, ab: _threshold(xb, yb, ab, threshold, value), x, out=(x.dtype, numpy.bool_))


def threshold_backward(above, grad_out, threshold: float = 0.0, value: float = 0.0):
    return blockwise(select, above, grad_out, out=(grad_out.dtype,))[0]
