"""Linear layers on the CPU inside minigrad's thread pool, one BLAS thread per pool thread.

Why not let BLAS thread the matrix multiply itself: OpenBLAS's worker threads keep spinning for
about 0.1 s after each multi-threaded call, and in a training step they then fight minigrad's own
convolution threads for the cores (measured on the project's 2-core machine: a LeNet-5 step took
34 ms with both thread pools, 25 ms with OpenBLAS held to one thread). Splitting the rows over
minigrad's pool keeps a single owner of the cores. With M rows (M = N * ... for (N, *, in) inputs):

    y[rows]  = x[rows] @ W^T (+ b)                         (m, in) @ (in, out) -> (m, out)
    dW       = sum over the pieces of dy[rows]^T @ x[rows]  (out, m) @ (m, in) -> (out, in)
    db       = sum over the pieces of dy[rows].sum(0)       (out,)
    dx[rows] = dy[rows] @ W                                 (m, out) @ (out, in) -> (m, in)

The pieces are contiguous row ranges of at least MIN_ROWS rows, one per thread; the sums over
pieces are added in a fixed order, so the result depends only on the thread count (by rounding).
"""
from __future__ import annotations

import numpy as np

from .. import threads
from .cpu_conv import split_range, supported

__all__ = ["supported", "forward", "backward"]

MIN_ROWS = 16      # fewer rows per thread are not worth a thread


def _run(fn, m: int) -> list:
    """[fn(r0, r1) for each row range], spread over the pool; BLAS single-threaded throughout."""
    ranges = split_range(m, max(1, min(threads.get_num_threads(), m // MIN_ROWS)))
    if len(ranges) == 1:
        with threads.blas_single_thread():
            return [fn(*ranges[0])]
    return threads.parallel_map(lambda r: fn(*r), ranges)


def forward(x2, weight, bias):
    """x2: (M, in), weight: (out, in), bias: (out,) | None -> y (M, out) = x2 @ weight.T + bias."""
    out = np.empty((x2.shape[0], weight.shape[0]), dtype=x2.dtype)
    wt = weight.T                                                       # (out, in) -> (in, out), a view

    def piece(r0, r1):
        np.matmul(x2[r0:r1], wt, out=out[r0:r1])
        if bias is not None:
            out[r0:r1] += bias

    _run(piece, x2.shape[0])
    return out


def backward(x2, weight, dy2, need_input=True, need_bias=True):
    """(dx (M, in) | None, dW (out, in), db (out,) | None) for x2: (M, in), dy2: (M, out)."""
    dx = np.empty(x2.shape, dtype=dy2.dtype) if need_input else None

    def piece(r0, r1):
        dy = dy2[r0:r1]
        if need_input:
            np.matmul(dy, weight, out=dx[r0:r1])
        return dy.T @ x2[r0:r1], (dy.sum(axis=0) if need_bias else None)

    parts = _run(piece, x2.shape[0])
    grad_w, grad_b = parts[0]
    for part_w, part_b in parts[1:]:
        grad_w += part_w
        if need_bias:
            grad_b += part_b
    return dx, grad_w, grad_b
