"""Anomaly detection: find the first layer that produces NaN or Inf.

    with mg.detect_anomaly():
        loss = criterion(model(x), y)
        model.backward(criterion.backward())

Inside the block, after every layer's forward and backward the outputs (and, after
backward, the layer's parameter gradients) are checked; the first non-finite value raises
``mg.AnomalyError`` naming the layer (its node name inside a Graph), the phase and the
counts. A non-finite *input* to a forward is reported as such, so the culprit is never
blamed on the layer that merely received bad data. Outside the block the checks cost one
flag test per call.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

from ..runtime.backend import get_array_module, is_array
from .tracing import state as _tracing, traced_call

__all__ = ["detect_anomaly", "AnomalyError", "is_anomaly_enabled"]

_state = threading.local()


class AnomalyError(FloatingPointError):
    """A layer produced (or received) NaN/Inf while anomaly detection was on."""


def is_anomaly_enabled() -> bool:
    return getattr(_state, "enabled", False)


@contextmanager
def detect_anomaly(check_inputs: bool = True):
    """Check every layer's outputs and gradients for NaN/Inf inside this block.

    check_inputs: also check the arrays handed to each forward (catches NaN in the data).
    """
    previous = (is_anomaly_enabled(), getattr(_state, "check_inputs", True))
    _state.enabled, _state.check_inputs = True, check_inputs
    try:
        yield
    finally:
        _state.enabled, _state.check_inputs = previous


def _arrays(value):
    if is_array(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if is_array(v)]
    return []


def _bad_counts(array):
    """(number of NaN, number of Inf) in a floating array; (0, 0) otherwise (one device read)."""
    if array.dtype.kind not in "fc":
        return 0, 0
    xp = get_array_module(array)
    finite = xp.isfinite(array)
    if bool(finite.all()):
        return 0, 0
    return int(xp.isnan(array).sum()), int((~finite).sum() - xp.isnan(array).sum())


def _check(layer, phase, arrays, what):
    for index, array in enumerate(arrays):
        nan, inf = _bad_counts(array)
        if nan or inf:
            which = f"{what} {index}" if len(arrays) > 1 else what
            hint = ("check the data (mg.data transforms, division by a zero std) before the model"
                    if what == "input" else
                    "a too-large learning rate, log/exp/division of extreme values, or an unstable "
                    "custom layer are the usual causes")
            raise AnomalyError(f"{layer.label}.{phase}: {which} of shape {tuple(array.shape)} contains "
                               f"{nan} NaN and {inf} Inf values ({hint})")


def checked(method, phase: str):
    """Wrap a Layer's forward/backward so anomaly mode can check it and mg.trace() print it (used by
    Layer.__init_subclass__)."""
    if getattr(method, "_anomaly_checked", False):
        return method

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not getattr(_state, "enabled", False):
            if not _tracing["on"]:                     # the common case: one dict lookup more
                return method(self, *args, **kwargs)
            return traced_call(self, phase, method, args, kwargs)
        if phase == "forward" and getattr(_state, "check_inputs", True):
            _check(self, phase, _arrays(args), "input")
        out = traced_call(self, phase, method, args, kwargs) if _tracing["on"] else method(self, *args, **kwargs)
        _check(self, phase, _arrays(out), "output" if phase == "forward" else "input gradient")
        if phase != "forward":
            for name, param in self._parameters.items():
                if param is not None and param.grad is not None:
                    _check(self, phase, [param.grad], f"gradient of parameter '{name}'")
        return out

    wrapper._anomaly_checked = True
    return wrapper
