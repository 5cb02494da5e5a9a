"""Linear layers on the CPU: who threads the matrix multiplies.

OpenBLAS's worker threads keep spinning for about 0.1 s after each multi-threaded call, and in a
training step they then fight minigrad's own convolution threads for the cores. Measured on the
project's 2-core machine (2026-12-01, medians of 20 steps):

    step (SGD momentum)       BLAS threads for Linear   one BLAS thread (below 32 MFLOP)
    LeNet-5, batch 256        73.0 ms                   64.4 ms
    MLP 784-256-10, batch 64  2.19 ms                   2.65 ms
    (64, 784) @ (784, 256)    340 us (2 threads)        411 us (1 thread)

Small products gain little from a second BLAS thread and cost the convolutions more, so a product
of fewer than BLAS_THREADS_MIN_FLOPS runs with one BLAS thread; bigger ones (an MLP with batch 256:
103 MFLOP per product) keep BLAS's own threads. Splitting the rows over minigrad's thread pool was
measured too and was slower for every MLP case (2.19 -> 3.36 ms): waking the pool costs ~0.1 ms.

    y  = x @ W^T (+ b)      (M, in) @ (in, out) -> (M, out)
    dW = dy^T @ x           (out, M) @ (M, in) -> (out, in)
    db = dy.sum(0)          (out,)
    dx = dy @ W             (M, out) @ (out, in) -> (M, in)
"""
from __future__ import annotations

import contextlib


from .. import threads
from .cpu_conv import supported

__all__ = ["supported", "forward", "backward", "BLAS_THREADS_MIN_FLOPS"]

BLAS_THREADS_MIN_FLOPS = 32e6     # multiply-adds x 2 of one product; below: one BLAS thread


def _blas_policy(m: int, n_in: int, n_out: int):
    if 2.0 * m * n_in * n_out < BLAS_THREADS_MIN_FLOPS:
        return threads.blas_single_thread()
    return contextlib.nullcontext()


def forward(x2, weight, bias):
    """x2: (M, in), weight: (out, in), bias: (out,) | None -> y (M, out) = x2 @ weight.T + bias."""
    with _blas_policy(x2.shape[0], weight.shape[1], weight.shape[0]):
        y = x2 @ weight.T                                            # (M, in) @ (in, out) -> (M, out)
    if bias is not None:
        y += bias
    return y


def backward(x2, weight, dy2, need_input=True, need_bias=True):
    """(dx (M, in) | None, dW (out, in), db (out,) | None) for x2: (M, in), dy2: (M, out)."""
    with _blas_policy(x2.shape[0], weight.shape[1], weight.shape[0]):
        grad_w = dy2.T @ x2                                          # (out, M) @ (M, in) -> (out, in)
        dx = dy2 @ weight if need_input else None                    # (M, out) @ (out, in) -> (M, in)
    grad_b = dy2.sum(axis=0) if need_bias else None
    return dx, grad_w, grad_b
