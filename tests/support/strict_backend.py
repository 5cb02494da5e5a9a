"""A strict stand-in array backend: proves layers use the array module of their inputs.

``StrictArray`` is a NumPy-backed array of a distinct type, and ``strict`` is a module-like
facade over NumPy that unwraps StrictArrays, calls NumPy and wraps the results again.
``mg.backend.get_array_module`` is taught to return ``strict`` for StrictArrays.

A layer that calls ``numpy.<function>`` directly on its data, or mixes a plain NumPy array
(e.g. from ``np.zeros(...)``) into arithmetic with a StrictArray, raises StrictBackendError,
exactly as it would fail (or silently copy to the host) with CuPy. Array methods and
operators (``x.reshape``, ``x @ w``, ``x.sum()``) are backend-neutral and allowed.
"""
from __future__ import annotations

import types

import numpy

import minigrad as mg


class StrictBackendError(TypeError):
    """A layer bypassed the array module of its inputs."""


def _unwrap(obj):
    if isinstance(obj, StrictArray):
        return obj.view(numpy.ndarray)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, numpy.ndarray) and not isinstance(obj, StrictArray):
        return obj.view(StrictArray)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


class StrictArray(numpy.ndarray):
    """NumPy-backed array that refuses plain NumPy arrays and direct numpy function calls."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        for obj in inputs + tuple(kwargs.get("out", ()) or ()):
            if isinstance(obj, numpy.ndarray) and not isinstance(obj, StrictArray) and obj.ndim > 0:
                raise StrictBackendError(
                    f"ufunc {ufunc.__name__} mixes a strict-backend array with a plain numpy array of "
                    f"shape {obj.shape}: some code created an array with numpy instead of the array module")
        args = _unwrap(inputs)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        result = getattr(ufunc, method)(*args, **kwargs)
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        raise StrictBackendError(
            f"numpy.{func.__name__} was called directly on a strict-backend array; "
            f"use xp = mg.backend.get_array_module(x) and xp.{func.__name__}")

    def __reduce__(self):  # deepcopy/pickle as a StrictArray
        return (_rebuild, (self.view(numpy.ndarray).copy(),))

    def __deepcopy__(self, memo):
        return self.view(numpy.ndarray).copy().view(StrictArray)


def _rebuild(array):
    return array.view(StrictArray)


def _wrap_callable(fn):
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))
    call.__name__ = getattr(fn, "__name__", "function")
    return call


class _StrictModule(types.ModuleType):
    """numpy's namespace, but every function takes and returns StrictArrays."""

    def __init__(self, target, name):
        super().__init__(name)
        self._target = target

    def __getattr__(self, key):
        value = getattr(self._target, key)
        if isinstance(value, types.ModuleType):
            wrapped = _StrictModule(value, f"{self.__name__}.{key}")
        elif isinstance(value, type) or not callable(value):
            return value  # dtypes (float32), classes (ndarray), constants (pi, inf, newaxis)
        else:
            wrapped = _wrap_callable(value)
        setattr(self, key, wrapped)
        return wrapped


strict = _StrictModule(numpy, "strict")
mg.backend.register_array_module(StrictArray, "strict", strict)


def to_strict(array):
    """A copy of a numpy array as a StrictArray."""
    return numpy.array(array).view(StrictArray)


def strict_layer(layer):
    """Move a layer's parameters, gradients and buffers onto the strict backend (in place)."""
    for param in layer.parameters():
        param.data = to_strict(param.data)
        param.grad = None if param.grad is None else to_strict(param.grad)
    for sub in layer.modules():
        for name, buf in list(sub._buffers.items()):
            if buf is not None:
                sub._buffers[name] = to_strict(buf)
    return layer


def assert_strict(array, what: str):
    if not isinstance(array, StrictArray):
        raise StrictBackendError(f"{what} is a {type(array).__name__}, not a strict-backend array: the layer "
                                 "produced it with numpy instead of the array module of its inputs")
