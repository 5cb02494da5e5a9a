"""Pooling on CuPy arrays: one CUDA kernel per pass (kernels/cuda.py), the pooling table's GPU entry.

Forward kernels compute one output element per thread; backward kernels gather, per input pixel, the
windows that read it (no atomics, deterministic sums). Same signatures as ``pool_reference``.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module, is_gpu_array
from . import cuda


def applies(op, geom, *arrays) -> bool:
    """Every pooling op over CuPy arrays."""
    return bool(arrays) and is_gpu_array(arrays[0])


def max_forward(x, geom):
    """x: (N, C, H, W) -> (y, argmax int32), both (N, C, OH, OW)."""
    return cuda.max_pool_forward_gpu(x, geom)


def max_backward(grad_out, argmax, in_shape, geom):
    return cuda.max_pool_backward_gpu(grad_out, argmax, tuple(in_shape), geom)


def avg_forward(x, geom, divisor):
    """Window sums in one kernel, then / divisor (a number or an (OH, OW) array)."""
    return cuda.avg_pool_forward_gpu(x, geom, True, 1.0) / divisor


def avg_backward(grad_out, in_shape, geom, divisor):
    share = grad_out / divisor
    return cuda.avg_pool_backward_gpu(get_array_module(share).ascontiguousarray(share), tuple(in_shape),
                                      geom, True, 1.0)
