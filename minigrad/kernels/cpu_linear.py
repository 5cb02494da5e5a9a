"""Linear layers on the CPU: their matrix products, with results that do not depend on any thread count.

A product run on BLAS's own threads is split by OpenBLAS as it sees fit, and how it splits depends on
its version and the instruction set's kernels: with some (OpenBLAS 0.3.31's Haswell kernels) the same
product gives different last bits on 1 and 2 threads. So minigrad never lets BLAS thread a product. A
product is cut into pieces by its sizes alone (``PIECE_FLOPS`` of work per piece at least, a power of two of
pieces up to ``MAX_PIECES``),
along the rows of the left operand or the columns of the right one, never along the summed dimension;
each piece is one single-threaded BLAS call, and the pieces are shared out over minigrad's thread pool
(``runtime/threads.py``). The same calls are made whatever the thread count, so each output number is
computed the same way: ``MINIGRAD_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` change the speed, not the
bits. A product under 2 x ``PIECE_FLOPS`` (LeNet's, an MLP's at small batches) is one call on the
calling thread, which also spares waking the pool (docs/benchmarks.md measures what that costs).

    y  = matmul(x2, weight.T)     (M, in) @ (in, out) -> (M, out)
    dW = matmul(dy.T, x2)         (out, M) @ (M, in) -> (out, in)    the sum over M is never cut
    dx = matmul(dy, weight)       (M, out) @ (out, in) -> (M, in)

Arrays other than NumPy float32/float64 (CuPy, integer) go to ``@`` as they are.
"""
from __future__ import annotations

import numpy as np

from ..runtime import threads
from .cpu_runtime import split_range, supported

__all__ = ["supported", "matmul", "pieces", "PIECE_FLOPS", "MAX_PIECES"]

PIECE_FLOPS = 32e6     # multiply-adds x 2 per piece of a cut product, at least
MAX_PIECES = 8         # pieces of one product at most (enough for 8 threads; fixed, not the thread count)


def pieces(p: int, q: int, r: int):
    """How a (P, Q) @ (Q, R) product is cut: (axis, [(start, stop), ...]); axis 0 cuts the rows of the
    result (the left operand's rows), axis 1 its columns. A function of the sizes only: a power of two
    of pieces (even shares for 2, 4 or 8 threads), each of PIECE_FLOPS at least, at most MAX_PIECES."""
    count = 1
    while count * 2 <= MAX_PIECES and 2.0 * p * q * r >= count * 2 * PIECE_FLOPS:
        count *= 2
    axis = 0 if p >= r else 1
    return axis, split_range(p if axis == 0 else r, count)


def matmul(a, b):
    """a (P, Q) @ b (Q, R) -> a new (P, R) array, the same bits with any thread count (see the module text)."""
    if not supported(a, b) or a.ndim != 2 or b.ndim != 2:
        return a @ b
    p, q = a.shape
    r = b.shape[1]
    axis, ranges = pieces(p, q, r)
    out = np.empty((p, r), dtype=np.result_type(a, b))
    if len(ranges) <= 1:
        with threads.blas_single_thread():
            np.matmul(a, b, out=out)
        return out

    def piece(k):
        start, stop = ranges[k]
        if axis == 0:
            np.matmul(a[start:stop], b, out=out[start:stop])                 # rows: contiguous in out
        else:
            out[:, start:stop] = np.matmul(a, b[:, start:stop])              # columns: (P, stop - start)

    count = min(threads.get_num_threads(), len(ranges))

    def share(t):
        for k in range(t, len(ranges), count):
            piece(k)

    threads.parallel_map(share, range(count))
    return out
