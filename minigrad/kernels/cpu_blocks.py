"""Elementwise work on large NumPy arrays in cache-sized blocks shared among minigrad's threads, and the bit
tricks that let a block select between two branches without NumPy's branchy ``where`` loop.

An activation's forward or backward is a handful of NumPy passes (add, clip, exp, a branch select, ...). Over a
whole (64, 32, 28, 28) float32 array each pass streams 6.4 MB through memory; in blocks of BLOCK_ELEMENTS the
passes of one block run while it is in the core's L2 cache, and two threads take alternate blocks. A block is
long enough that each NumPy call releases the interpreter lock for tens of microseconds (shorter calls only
queue for the lock). Blocks are cut by size alone, so a result never depends on the number of threads.

    y = blockwise(fn, x)                      # fn(x_block) -> y_block (a new array), or
    y, = blockwise(fn, x, dy, out=(x.dtype,)) # fn(x_block, dy_block, y_block) writes y_block
"""
from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_ELEMENTS", "blockwise", "sign_bits", "mask_bits", "blend_bits", "INT_OF"]

BLOCK_ELEMENTS = 1 << 17    # 512 KiB of float32 per array: a block's few arrays fit a core's L2 cache
INT_OF = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def _cut(arrays) -> bool:
    """True when blockwise cuts these arrays: NumPy, C-contiguous, one shape, more than one block."""
    first = arrays[0]
    return (first.size > BLOCK_ELEMENTS
            and all(type(a) is np.ndarray and a.flags.c_contiguous and a.shape == first.shape for a in arrays))


def blockwise(fn, *arrays, out=None):
    """fn applied to the arrays elementwise (each output element depends only on the inputs' elements at the same
    index), in blocks when they qualify.

    out=None: fn(*arrays) returns one array or a tuple of arrays of the inputs' shape; blockwise returns the same.
    out=(dtype, ...): blockwise allocates outputs of those dtypes (the first input's shape and backend), calls
    fn(*arrays, *outputs) to write them and returns the tuple of outputs.

    NumPy, C-contiguous inputs of one shape with more than BLOCK_ELEMENTS elements are cut into flat blocks of
    BLOCK_ELEMENTS run on minigrad's thread pool: every element is computed by the same operations as in one call,
    so the result is the same, bit for bit, on any number of threads. Anything else (CuPy, strided or broadcast
    inputs, small arrays): one call of fn.
    """
    if not _cut(arrays):
        if out is None:
            return fn(*arrays)
        from ..runtime.backend import get_array_module
        xp = get_array_module(arrays[0])
        outputs = tuple(xp.empty(arrays[0].shape, dtype=dtype) for dtype in out)
        fn(*arrays, *outputs)
        return outputs
    from .cpu_runtime import run_chunks
    flat = [a.reshape(-1) for a in arrays]                          # (any shape) -> (size,), views
    size = flat[0].size
    bounds = [(start, min(start + BLOCK_ELEMENTS, size)) for start in range(0, size, BLOCK_ELEMENTS)]
    if out is None:                                                 # the first block tells the outputs' dtypes
        first = fn(*[a[:BLOCK_ELEMENTS] for a in flat])
        single = not isinstance(first, tuple)
        first = (first,) if single else first
        outputs = [np.empty(size, dtype=part.dtype) for part in first]   # (size,)
        for target, part in zip(outputs, first):
            target[:BLOCK_ELEMENTS] = part
        bounds = bounds[1:]

        def per_block(start, stop):
            parts = fn(*[a[start:stop] for a in flat])
            for target, part in zip(outputs, (parts,) if single else parts):
                target[start:stop] = part
    else:
        single = False
        outputs = [np.empty(size, dtype=dtype) for dtype in out]   # (size,)

        def per_block(start, stop):
            fn(*[a[start:stop] for a in flat], *[o[start:stop] for o in outputs])

    run_chunks(bounds, per_block)
    shaped = tuple(o.reshape(arrays[0].shape) for o in outputs)    # (size,) -> the inputs' shape
    return shaped[0] if single else shaped


def sign_bits(v):
    """v: a float32/float64 NumPy array, overwritten -> its integer view with all bits set where v's sign bit was
    set (v < 0, -0.0, or a NaN with its sign bit) and 0 elsewhere: one arithmetic shift.

    ``sign_bits(a - b)`` marks a < b exactly for numbers that are not NaN (a - b is +0.0, not -0.0, when a == b,
    and +-inf keep their sign), which is how the kernels test a branch without a boolean array."""
    bits = v.view(INT_OF[v.dtype])
    np.right_shift(bits, 8 * v.itemsize - 1, out=bits)
    return bits


def mask_bits(mask, int_type, out=None):
    """A NumPy boolean array -> integers of int_type with all bits set where it is True, 0 elsewhere (into out)."""
    return np.negative(mask.view(np.int8), dtype=int_type, out=out)


def blend_bits(mask_bits, a, b, out):
    """out = a where mask_bits is all ones, b where it is 0, bit for bit: b ^ ((a ^ b) & mask).

    mask_bits: from sign_bits or mask_bits; a, b: arrays of out's dtype (or of its width) or Python numbers; out: a
    float32/float64/int32/int64 array (it may be a, not b)."""
    int_type = mask_bits.dtype
    a_bits = a.view(int_type) if isinstance(a, np.ndarray) else np.asarray(a, out.dtype).view(int_type)
    b_bits = b.view(int_type) if isinstance(b, np.ndarray) else np.asarray(b, out.dtype).view(int_type)
    out_bits = out.view(int_type)
    np.bitwise_xor(a_bits, b_bits, out=out_bits)
    out_bits &= mask_bits
    out_bits ^= b_bits
    return out
