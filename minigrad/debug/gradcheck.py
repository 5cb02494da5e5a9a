"""Finite-difference gradient check, in float64, for layers and functions users write.

    mg.gradcheck(layer, x)                        # a Layer (or anything with forward/backward)
    mg.gradcheck((f, f_backward), (x, w))         # f(*inputs) -> y; f_backward(dy, *inputs) -> grads

The check contracts the output with a fixed random array R, so the scalar is
loss = sum(f(x) * R); the analytic gradients come from backward(R) and are compared with
central differences (loss(x + eps) - loss(x - eps)) / (2 eps) for every input element and
every parameter element. Dropout-like randomness is replayed identically for each forward.
"""
from __future__ import annotations

import copy

import numpy

from ..runtime import random as mg_random
from ..runtime.backend import get_array_module, is_array
from .tracing import untraced

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def _as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@untraced
def gradcheck(layer_or_function, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
             seed: int = 0, check_inputs: bool = True, check_parameters: bool = True) -> bool:
    """Check input and parameter gradients against central finite differences in float64.

    layer_or_function: a Layer (forward/backward; parameters are checked too and a float64
        copy is used, the original is untouched) or a pair (forward_fn, backward_fn) where
        backward_fn(grad_out, *inputs) returns the gradient of each input.
    inputs: an array or a tuple of arrays (cast to float64 copies; integer arrays, such as
        class labels, are passed through unchanged and not checked).
    Returns True, or raises GradcheckError naming the worst entry.
    """
    inputs = tuple(x.astype("float64") if is_array(x) and x.dtype.kind == "f" else x
                   for x in _as_tuple(inputs))
    if isinstance(layer_or_function, tuple) and len(layer_or_function) == 2:
        forward_fn, backward_fn = layer_or_function
        params = []
        run_forward = forward_fn
        run_backward = lambda dy: _as_tuple(backward_fn(dy, *inputs))  # noqa: E731
        label = getattr(forward_fn, "__name__", "function")
    elif hasattr(layer_or_function, "forward") and hasattr(layer_or_function, "backward"):
        layer = copy.deepcopy(layer_or_function)
        if hasattr(layer, "to"):
            layer.to(dtype="float64")
        if hasattr(layer, "zero_grad"):
            layer.zero_grad()
        params = [(name, param) for name, param in layer.named_parameters() if param.requires_grad] \
            if hasattr(layer, "named_parameters") else []                  # frozen parameters have no gradient
        run_forward = layer.forward
        run_backward = lambda dy: _as_tuple(layer.backward(dy))  # noqa: E731
        label = type(layer).__name__
    else:
        raise TypeError("gradcheck: expected a Layer (with forward and backward) or a pair "
                        f"(forward_fn, backward_fn), got {type(layer_or_function).__name__}")

    random_state = copy.deepcopy(mg_random.get_state())

    def forward(*args):
        mg_random.set_state(copy.deepcopy(random_state))  # replay the same dropout masks
        return run_forward(*args)

    out = forward(*inputs)
    xp = get_array_module(out)
    projection = xp.asarray(numpy.random.default_rng(seed).standard_normal(out.shape))  # R, like out

    def loss(*args):
        return float((forward(*args) * projection).sum())

    analytic_inputs = run_backward(projection)
    checks = []
    if check_inputs:
        float_positions = [i for i, x in enumerate(inputs) if is_array(x) and x.dtype.kind == "f"]
        if len(analytic_inputs) < len(float_positions):
            raise GradcheckError(f"gradcheck({label}): backward returned {len(analytic_inputs)} gradients "
                                 f"for {len(float_positions)} floating inputs")
        for position, grad in zip(float_positions, analytic_inputs):
            checks.append((f"input {position}", inputs[position], grad))
    if check_parameters:
        for name, param in params:
            checks.append((f"parameter '{name}'", param.data, None if param.grad is None else param.grad.copy()))

    for what, array, analytic in checks:
        if analytic is None or tuple(analytic.shape) != tuple(array.shape):
            raise GradcheckError(f"gradcheck({label}): gradient of {what} has shape "
                                 f"{None if analytic is None else tuple(analytic.shape)}, expected "
                                 f"{tuple(array.shape)}")
        numeric = numpy.zeros(array.shape)
        for index in numpy.ndindex(*array.shape):
            original = float(array[index])
            array[index] = original + eps
            plus = loss(*inputs)
            array[index] = original - eps
            minus = loss(*inputs)
            array[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        analytic_host = numpy.asarray(analytic.get() if hasattr(analytic, "get") else analytic,
                                      dtype="float64")
        error = numpy.abs(analytic_host - numeric)
        bound = atol + rtol * numpy.abs(numeric)
        if (error > bound).any() or not numpy.isfinite(analytic_host).all():
            worst = numpy.unravel_index(numpy.argmax(error - bound), error.shape) if error.size else ()
            raise GradcheckError(
                f"gradcheck({label}): gradient of {what} disagrees with finite differences at index "
                f"{tuple(int(i) for i in worst)}: analytic {analytic_host[worst]:.10g}, numeric "
                f"{numeric[worst]:.10g} (max abs error {error.max():.3g}, atol={atol}, rtol={rtol})")
    return True
