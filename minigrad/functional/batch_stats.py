"""BatchNorm's math on the (N, C, L) view of its input, in PyTorch's formulation, in chunks of samples.

    statistics   mean and biased var per channel over N and L (n values each): one pass reads the sums of x and
                 x * x and keeps var = E[x^2] - mean^2 where mean^2 <= var for every channel (the subtraction then
                 loses at most one bit to the rounding of the sum of squares); otherwise the two-pass form, the
                 squares of x - mean (always for float16, whose sums of squares overflow)
    forward      y = x a + b per channel, a = invstd * weight, b = bias - mean * a
    backward     sum_dy and sum_dy_xhat = invstd (sum(dy x) - mean sum_dy) per channel (the bias and weight
                 gradients); with batch statistics dx = a dy + B x + C, B = -a invstd sum_dy_xhat / n,
                 C = a (invstd sum_dy_xhat mean - sum_dy) / n; with running statistics dx = a dy

A large NumPy batch runs in chunks of samples on minigrad's thread pool: each chunk's per-channel sums are added
in chunk order and the cut depends on sizes only, so the results are the same bits on any number of threads.
The layer keeps x itself (a view) for backward, not a normalised copy.
"""
from __future__ import annotations

import functools

import numpy

from ..kernels.cpu_runtime import batch_chunks, run_chunks, work_buffer
from ..runtime.backend import get_array_module

__all__ = ["batch_moments", "batch_affine", "batch_norm_grads", "sample_chunks", "row_sum", "row_dot", "one_pass_ok"]

CHUNK_BYTES = 4 << 20          # bytes of input per chunk of samples: few, long NumPy calls (measured faster than
                               # chunks sized for the L2 cache)
PARALLEL_MIN_BYTES = 1 << 20   # smaller inputs in one chunk: the pool's wake-up would cost more than it saves


def sample_chunks(x3):
    """Chunks of samples [(n0, n1), ...] of a NumPy (N, ...) array big enough to share among threads, cut by size
    only (never by the thread count); one chunk otherwise. Shared with GroupNorm/InstanceNorm (norm_more.py)."""
    n = x3.shape[0]
    if type(x3) is not numpy.ndarray or n < 2 or x3.nbytes < PARALLEL_MIN_BYTES:
        return [(0, n)]
    return batch_chunks(n, x3.nbytes // n, budget=CHUNK_BYTES)


def row_sum(xp, a):
    """a: (A, B, M) -> (A, B): the sums over M (NumPy: dot products with ones, one vectorised dot per row, faster
    than a.sum(axis=2) over short rows; never threaded, so the same bits on any number of threads)."""
    if xp is not numpy:
        return a.sum(axis=2)
    return numpy.vecdot(a, _ones(a.shape[2], a.dtype))


@functools.lru_cache(maxsize=8)
def _ones(length: int, dtype):
    ones = numpy.ones(length, dtype=dtype)
    ones.flags.writeable = False
    return ones


def row_dot(xp, a, b):
    """a, b: (A, B, M) -> (A, B): sum over M of a * b, without an (A, B, M) temporary where possible."""
    vecdot = getattr(xp, "vecdot", None)
    return vecdot(a, b) if vecdot is not None else (a * b).sum(axis=2)


def one_pass_ok(xp, mean, var) -> bool:
    """True when var = E[x^2] - mean^2 may stand: finite, and mean^2 <= var everywhere (the subtraction then loses
    at most one bit to the rounding of the sum of squares)."""
    return bool(((mean * mean <= var) & xp.isfinite(var)).all())


def _per_chunk(x3, part):
    """The chunks' part(n0, n1) -> tuple of (C,) partial sums, added in chunk order."""
    if type(x3) is not numpy.ndarray:
        return part(0, x3.shape[0])
    return run_chunks(sample_chunks(x3), part)


def batch_moments(x3):
    """x3: (N, C, L) -> (mean (C,), biased var (C,)) over N and L."""
    xp = get_array_module(x3)
    count = x3.shape[0] * x3.shape[2]
    if x3.dtype.itemsize >= 4:                      # (float16 sums of squares overflow: two passes)
        sums, squares = _per_chunk(x3, lambda n0, n1: (row_sum(xp, x3[n0:n1]).sum(axis=0),
                                                       row_dot(xp, x3[n0:n1], x3[n0:n1]).sum(axis=0)))
        mean = sums / count
        var = squares / count - mean * mean
        if one_pass_ok(xp, mean, var):
            return mean, var
    else:
        mean = _per_chunk(x3, lambda n0, n1: (row_sum(xp, x3[n0:n1]).sum(axis=0),))[0] / count

    def centred_squares(n0, n1):
        block = x3[n0:n1]
        scratch = work_buffer("batch_norm_scratch", block.shape, block.dtype) if xp is numpy else None
        centred = xp.subtract(block, mean[:, None], out=scratch)
        return (row_dot(xp, centred, centred).sum(axis=0),)

    return mean, _per_chunk(x3, centred_squares)[0] / count


def _scale_shift(mean, invstd, weight, bias):
    a = invstd if weight is None else invstd * weight                                 # (C,)
    return a, (-mean * a if bias is None else bias - mean * a)


def batch_affine(x3, mean, invstd, weight, bias):
    """y = (x - mean) invstd weight + bias as x a + b: x3 (N, C, L) -> a new (N, C, L)."""
    xp = get_array_module(x3)
    a, b = _scale_shift(mean, invstd, weight, bias)
    y = xp.empty_like(x3)

    def part(n0, n1):
        out = xp.multiply(x3[n0:n1], a[:, None], out=y[n0:n1])
        out += b[:, None]
        return None

    _per_chunk(x3, part)
    return y


def batch_norm_grads(dy3, x3, mean, invstd, weight, batch_stats: bool):
    """dy3, x3: (N, C, L) -> (dx (N, C, L), sum_dy (C,), sum_dy_xhat (C,)): the input gradient and the sums that
    are the bias and weight gradients."""
    xp = get_array_module(dy3)
    count = x3.shape[0] * x3.shape[2]
    sum_dy, sum_dy_x = _per_chunk(x3, lambda n0, n1: (row_sum(xp, dy3[n0:n1]).sum(axis=0),
                                                      row_dot(xp, dy3[n0:n1], x3[n0:n1]).sum(axis=0)))
    sum_dy_xhat = invstd * (sum_dy_x - mean * sum_dy)                                   # (C,)
    a = invstd if weight is None else invstd * weight
    dx = xp.empty_like(dy3)
    if batch_stats:
        b = -a * invstd * sum_dy_xhat / count
        c = a * (invstd * sum_dy_xhat * mean - sum_dy) / count

    def part(n0, n1):
        out = xp.multiply(dy3[n0:n1], a[:, None], out=dx[n0:n1])
        if batch_stats:
            scratch = work_buffer("batch_norm_scratch", out.shape, out.dtype) if xp is numpy else None
            scaled = xp.multiply(x3[n0:n1], b[:, None], out=scratch)
            scaled += c[:, None]
            out += scaled
        return None

    _per_chunk(x3, part)
    return dx, sum_dy, sum_dy_xhat
