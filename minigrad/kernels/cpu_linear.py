"""Linear layers on the CPU: who threads the matrix multiplies.

OpenBLAS's worker threads keep spinning for a while after each multi-threaded call, and in a
training step they then fight minigrad's own convolution threads for the cores. Small products gain
little from a second BLAS thread and cost the convolutions more, so a product of fewer than
BLAS_THREADS_MIN_FLOPS runs with one BLAS thread; bigger ones (an MLP with batch 256: 103 MFLOP per
product) keep BLAS's own threads. Splitting the rows over minigrad's thread pool instead loses: waking
the pool costs more than such a product. The measurements behind the threshold are in
docs/benchmarks.md ("Linear layers and BLAS threads"). ``Linear`` wraps its products in
``blas_policy``; the formulas stay in the layer.
"""
from __future__ import annotations

import contextlib

from ..runtime import threads
from .cpu_runtime import supported

__all__ = ["supported", "blas_policy", "BLAS_THREADS_MIN_FLOPS"]

BLAS_THREADS_MIN_FLOPS = 32e6     # multiply-adds x 2 of one product; below: one BLAS thread


def blas_policy(x2, weight):
    """Context for the products of x2 (M, in) with weight (out, in): one BLAS thread for a small NumPy
    product, BLAS's own threads otherwise (and for every other backend)."""
    m, n_in = x2.shape
    if supported(x2, weight) and 2.0 * m * n_in * weight.shape[0] < BLAS_THREADS_MIN_FLOPS:
        return threads.blas_single_thread()
    return contextlib.nullcontext()
