"""Exact, fast ``where(mask, values, 0)`` for NumPy float arrays.

``np.where(mask, g, 0.0)`` broadcasts a scalar and runs several times slower than one pass over the
data (docs/benchmarks.md, "Elementwise select"). Multiplying
by the mask is fast but not exact (NaN * 0 and Inf * 0 are NaN where the gradient must be 0). A
bitwise AND is both: the mask becomes all-one or all-zero bit patterns of the float's width, so
kept numbers keep every bit (NaN included) and dropped ones become +0.0, as with np.where.
"""
from __future__ import annotations

import numpy as np

_INT_OF = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def select(mask, values):
    """where(mask, values, 0) for a boolean mask and float values of the same shape.

    NumPy float32/float64: one bitwise pass (exact). Anything else: the array module's where.
    """
    if (type(values) is np.ndarray and type(mask) is np.ndarray and values.dtype in _INT_OF
            and mask.dtype == np.bool_ and mask.shape == values.shape):
        bits = np.negative(mask.view(np.int8), dtype=_INT_OF[values.dtype])   # True -> -1 (all ones), False -> 0
        np.bitwise_and(bits, values.view(bits.dtype), out=bits)               # same-width view: any strides
        return bits.view(values.dtype)
    from ..runtime.backend import get_array_module
    return get_array_module(values, mask).where(mask, values, 0.0)
