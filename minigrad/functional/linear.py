"""The fully connected product: ``linear(input, weight, bias)`` as torch.nn.functional has it, and the
forward that ``nn.Linear`` runs (``linear_forward``, whose errors name the layer).

    y = x @ W^T + b      x: (*, in) -> (*, out);  W: (out, in);  b: (out,) or None
"""
from __future__ import annotations

import math

from ..kernels import cpu_linear
from ..runtime.backend import get_array_module, is_array
from ..runtime.checks import check_float_array, check_same_dtype
from ..runtime.memory import check_bytes

__all__ = ["linear", "linear_forward", "array_of"]


def linear_forward(x, weight, bias, where: str):
    """y = x @ weight.T + bias: Linear.forward and ``mg.functional.linear``; errors name ``where``.

    x: (*, in_features); weight: (out_features, in_features); bias: (out_features,) or None
    -> y: (*, out_features).
    """
    for name, array in (("weight", weight), ("bias", bias)):
        if array is not None and not is_array(array):
            raise TypeError(f"{where}: expected {name} to be a NumPy or CuPy array, got {type(array).__name__}")
    get_array_module(x, weight, names=("input", "weight"), where=where)
    check_float_array(x, where)
    if weight.ndim != 2:
        raise ValueError(f"{where}: expected weight of shape (out_features, in_features), got "
                         f"{tuple(weight.shape)}")
    out_features, in_features = weight.shape
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(f"{where}: expected input with last dimension in_features={in_features}, "
                         f"got input of shape {tuple(x.shape)}")
    check_same_dtype(x, weight, where, "input", "weight")
    if bias is not None:
        get_array_module(x, bias, names=("input", "bias"), where=where)
        if tuple(bias.shape) != (out_features,):
            raise ValueError(f"{where}: expected bias of shape ({out_features},), got {tuple(bias.shape)}")
        check_same_dtype(x, bias, where, "input", "bias")
    out_shape = tuple(x.shape[:-1]) + (out_features,)
    copied = 0 if x.flags.c_contiguous else x.size                 # reshape copies a strided or broadcast input
    check_bytes((math.prod(out_shape) + copied) * x.dtype.itemsize, where, out_shape, like=x,
                what="output (and a contiguous copy of the input)" if copied else "output")
    x2 = x.reshape(-1, in_features)                          # (*, in) -> (M, in)
    y = cpu_linear.matmul(x2, weight.T)                      # (M, in) @ (in, out) -> (M, out)
    if bias is not None:
        y += bias
    return y.reshape(tuple(x.shape[:-1]) + (out_features,))  # (M, out) -> (*, out)


def array_of(value):
    """A parameter's array (anything with an array ``.data``, e.g. ``mg.nn.Parameter``); anything else as it is."""
    data = getattr(value, "data", None)
    return data if not is_array(value) and is_array(data) else value


def linear(input, weight, bias=None):
    """input @ weight.T + bias. input: (*, in_features); weight: (out_features, in_features);
    bias: (out_features,) or None -> (*, out_features). A layer's Parameters may be passed as they are
    (``F.linear(x, layer.weight, layer.bias)``, the PyTorch idiom): their arrays are used."""
    return linear_forward(input, array_of(weight), array_of(bias), "linear")
