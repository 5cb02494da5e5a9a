"""Finite-difference gradient check, in float64, for layers and functions users write.

    mg.gradcheck(layer, x)                        # a Layer (or anything with forward/backward)
    mg.gradcheck((f, f_backward), (x, w))         # f(*inputs) -> y; f_backward(dy, *inputs) -> grads

The check contracts the output with a fixed random array R, so the scalar is
loss = sum(f(x) * R); the analytic gradients come from backward(R) and are compared with
central differences (loss(x + eps) - loss(x - eps)) / (2 eps) for every input element and
every parameter element (or, with ``entries=k``, k of each chosen at random); an entry that disagrees is
measured again with a 100 times smaller step, which tells a kink (ReLU, max pooling) crossed within eps
from a wrong gradient (the kink passes, the wrong gradient does not). Dropout-like randomness is
replayed identically for each forward. ``report=True`` prints a table people can read
(debug/gradcheck_report.py) instead of raising at the first disagreement.
"""
from __future__ import annotations

import copy

import numpy

from ..runtime import random as mg_random
from ..runtime.backend import get_array_module, is_array
from .gradcheck_report import GradcheckReport, GradcheckRow
from .tracing import untraced

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport", "KINK_FACTOR"]

KINK_FACTOR = 100    # an entry that disagrees is measured again with eps / KINK_FACTOR (a kink within eps)


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def _as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@untraced
def gradcheck(layer_or_function, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0, check_inputs: bool = True, check_parameters: bool = True, *, entries: int | None = None,
              report: bool = False, file=None):
    """Check input and parameter gradients against central finite differences in float64.

    layer_or_function: a Layer (forward/backward; parameters are checked too and a float64
        copy is used, the original is untouched) or a pair (forward_fn, backward_fn) where
        backward_fn(grad_out, *inputs) returns the gradient of each input.
    inputs: an array or a tuple of arrays (cast to float64 copies; integer arrays, such as
        class labels, are passed through unchanged and not checked).
    entries: check at most this many entries of each array, chosen at random (``seed``), instead of all:
        a spot check of a whole network (two forwards per entry).
    report: print a table (to ``file``, default stdout): per input and parameter the analytic and numerical
        gradient where they differ most, the largest relative error, the expected magnitudes, and plainly
        PASS or FAIL; returns the GradcheckReport (true when every gradient passes) instead of raising.
    Returns True, or raises GradcheckError naming the worst entry.
    """
    inputs = tuple(x.astype("float64") if is_array(x) and x.dtype.kind == "f" else x
                   for x in _as_tuple(inputs))
    label, params, run_forward, run_backward = _prepare(layer_or_function, inputs)
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

    rows = []
    picker = numpy.random.default_rng(seed + 1)
    for what, array, analytic in checks:
        if analytic is None or tuple(analytic.shape) != tuple(array.shape):
            raise GradcheckError(f"gradcheck({label}): gradient of {what} has shape "
                                 f"{None if analytic is None else tuple(analytic.shape)}, expected "
                                 f"{tuple(array.shape)}")
        indices = list(numpy.ndindex(*array.shape))
        if entries is not None and len(indices) > entries:
            indices = [indices[i] for i in sorted(picker.choice(len(indices), entries, replace=False))]
        def central(index, step):
            original = float(array[index])
            array[index] = original + step
            plus = loss(*inputs)
            array[index] = original - step
            minus = loss(*inputs)
            array[index] = original
            return (plus - minus) / (2 * step)

        numeric = numpy.array([central(index, eps) for index in indices], dtype="float64")
        host = numpy.asarray(analytic.get() if hasattr(analytic, "get") else analytic, dtype="float64")
        picked = numpy.array([host[index] for index in indices]) if indices else numpy.zeros(0)
        # An entry whose step crossed a kink (a ReLU or a max-pool switch within eps) gets a second look with a
        # step KINK_FACTOR times smaller: a correct gradient then agrees, a wrong one does not.
        kinks = 0
        for k in numpy.flatnonzero(numpy.abs(picked - numeric) > atol + rtol * numpy.abs(numeric)):
            closer = central(indices[k], eps / KINK_FACTOR)
            if abs(picked[k] - closer) <= atol + rtol * abs(closer):
                numeric[k], kinks = closer, kinks + 1
        if not numpy.isfinite(host).all() and numpy.isfinite(picked).all():   # a NaN/Inf among the unchecked
            bad = tuple(int(i) for i in numpy.argwhere(~numpy.isfinite(host))[0])
            indices, picked, numeric = indices + [bad], numpy.append(picked, host[bad]), numpy.append(numeric, 0.0)
        rows.append(GradcheckRow(what, tuple(array.shape), indices, picked, numeric, atol, rtol, kinks))
    result = GradcheckReport(label, rows, eps, atol, rtol, entries, eps / KINK_FACTOR)
    if report:
        print(result, file=file)
        return result
    for row in rows:
        if not row.passed:
            raise GradcheckError(
                f"gradcheck({label}): gradient of {row.what} disagrees with finite differences at index "
                f"{row.worst_index}: analytic {row.worst_analytic:.10g}, numeric {row.worst_numeric:.10g} "
                f"(max abs error {row.max_abs_error:.3g}, atol={atol}, rtol={rtol})")
    return True


def _prepare(layer_or_function, inputs):
    """(label, [(name, parameter)], forward(*inputs), backward(dy) -> tuple of input gradients)."""
    if isinstance(layer_or_function, tuple) and len(layer_or_function) == 2:
        forward_fn, backward_fn = layer_or_function
        return (getattr(forward_fn, "__name__", "function"), [], forward_fn,
                lambda dy: _as_tuple(backward_fn(dy, *inputs)))
    if hasattr(layer_or_function, "forward") and hasattr(layer_or_function, "backward"):
        layer = copy.deepcopy(layer_or_function)
        if hasattr(layer, "to"):
            layer.to(dtype="float64")
        if hasattr(layer, "zero_grad"):
            layer.zero_grad()
        params = [(name, param) for name, param in layer.named_parameters() if param.requires_grad] \
            if hasattr(layer, "named_parameters") else []                  # frozen parameters have no gradient
        return type(layer).__name__, params, layer.forward, lambda dy: _as_tuple(layer.backward(dy))
    raise TypeError("gradcheck: expected a Layer (with forward and backward) or a pair "
                    f"(forward_fn, backward_fn), got {type(layer_or_function).__name__}")
