"""Exact, fast ``where(mask, values, 0)`` for NumPy float arrays.

``np.where(mask, g, 0.0)`` broadcasts a scalar and runs several times slower than one pass over the
data (docs/benchmarks.md, "Elementwise select"). Multiplying
by the mask is fast but not exact (NaN * 0 and Inf * 0 are NaN where the gradient must be 0). A
bitwise AND is both: the mask becomes all-one or all-zero bit patterns of the float's width, so
kept numbers keep every bit (NaN included) and dropped ones become +0.0, as with np.where.
"""
from __future__ import annotations

import numpy as np

from .cpu_blocks import INT_OF as _INT_OF
from .cpu_blocks import blend_bits, mask_bits

_BITS_OF = {**_INT_OF, np.dtype(np.int32): np.int32, np.dtype(np.int64): np.int64}   # where's bitwise blend


def select(mask, values, out=None):
    """where(mask, values, 0) for a boolean mask and float values of the same shape (into ``out`` if given; out
    must not overlap values).

    NumPy float32/float64: one bitwise pass (exact). Anything else: the array module's where.
    """
    if (type(values) is np.ndarray and type(mask) is np.ndarray and values.dtype in _INT_OF
            and mask.dtype == np.bool_ and mask.shape == values.shape and mask.ndim):
        int_type = _INT_OF[values.dtype]
        bits = None if out is None else out.view(int_type)
        bits = mask_bits(mask, int_type, out=bits)                            # True -> -1 (all ones), False -> 0
        np.bitwise_and(bits, values.view(bits.dtype), out=bits)               # same-width view: any strides
        return bits.view(values.dtype)
    from ..runtime.backend import get_array_module
    result = get_array_module(values, mask).where(mask, values, 0.0)
    if out is None:
        return result
    out[...] = result
    return out


def _same_kind(value, ref):
    """``value`` as an array of ref's dtype and shape for a bitwise blend, or None (then np.where decides)."""
    if type(value) is np.ndarray:
        if value.dtype != ref.dtype:
            return None
        try:
            return np.broadcast_to(value, ref.shape)                            # a view (the shape itself: as is)
        except ValueError:
            return None
    kinds = (float, int, np.floating) if ref.dtype.kind == "f" else (int,)       # a float scalar would promote ints
    if isinstance(value, kinds) and not isinstance(value, bool):
        return np.broadcast_to(np.asarray(value, dtype=ref.dtype), ref.shape)   # as np.where casts a Python scalar
    return None


def where(mask, a, b):
    """np.where(mask, a, b), bit for bit, in a mask pass and three bitwise passes (kernels/cpu_blocks.blend_bits)
    instead of NumPy's branchy loop (faster on a random mask: docs/benchmarks.md, "Elementwise select") when mask
    is a NumPy boolean array and a, b are
    float32/float64/int32/int64 arrays of one dtype, one of mask's shape and the other of it or broadcasting to it
    (or a Python scalar); anything else (CuPy, mixed dtypes, ...): the array module's where."""
    ref = a if type(a) is np.ndarray and (type(b) is not np.ndarray or a.shape == mask.shape) else b
    if (type(mask) is np.ndarray and mask.dtype == np.bool_ and type(ref) is np.ndarray and ref.dtype in _BITS_OF
            and ref.shape == mask.shape and mask.ndim):
        a_same, b_same = _same_kind(a, ref), _same_kind(b, ref)
        if a_same is not None and b_same is not None:
            return blend_bits(mask_bits(mask, _BITS_OF[ref.dtype]), a_same, b_same, out=np.empty_like(ref))
    from ..runtime.backend import get_array_module, is_array
    return get_array_module(*[v for v in (mask, a, b) if is_array(v)]).where(mask, a, b)
