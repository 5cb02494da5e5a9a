"""Dispatch point for backend-specific fast convolution paths.

``minigrad.functional.conv`` asks here first; a path returns its result, or None to fall
back to the reference im2col + matmul code. Keeping the choice in one place means every
fast path is exercised by the same PyTorch comparison tests as the reference.

CPU (plain ``numpy.ndarray``, float32/float64): ``cpu_pointwise`` for 1x1 kernels (GEMM per
sample, no im2col), ``cpu_depthwise`` for groups == channels (tap-by-tap multiply-add), ``cpu_batchlast`` for few input
channels (batch-innermost columns: long copy runs where channels-last ones would be short),
``cpu_winograd`` for 3x3 stride-1 (Winograd F(2x2, 3x3): 2.25x fewer multiplies), and
``cpu_conv`` for everything else (chunked channels-last im2col + GEMM on a thread pool).
CuPy: ``chunked_conv`` (CUDA im2col/col2im + cuBLAS GEMM over bounded batch chunks).
Anything else (the strict test backend, other dtypes) -> None.
"""
from __future__ import annotations

from ..backend import get_array_module
from . import chunked_conv, cpu_batchlast, cpu_conv, cpu_depthwise, cpu_pointwise, cpu_winograd
from .im2col import _is_cupy

enabled = True   # set False to force the reference path (benchmarks and tests compare both)


def cpu_kernel(geom):
    """The CPU kernel module for this geometry: cpu_pointwise, cpu_depthwise, cpu_batchlast, cpu_winograd
    or cpu_conv."""
    if cpu_pointwise.applies(geom):
        return cpu_pointwise
    if cpu_depthwise.applies(geom):
        return cpu_depthwise
    if cpu_batchlast.applies(geom):
        return cpu_batchlast
    if cpu_winograd.applies(geom):
        return cpu_winograd
    return cpu_conv


def forward(x, weight, bias, geom):
    """Fast conv forward for this backend/geometry, or None for the reference path."""
    if enabled and _is_cupy(get_array_module(x)):
        return chunked_conv.conv_forward(x, weight, bias, geom)
    if not enabled or not cpu_conv.supported(x, weight, bias):
        return None
    return cpu_kernel(geom).conv_forward(x, weight, bias, geom)


def backward(x, weight, grad_out, geom, need_input, need_weight, need_bias):
    """Fast conv backward (dx, dW, db), or None for the reference path."""
    if enabled and _is_cupy(get_array_module(grad_out)) and not (need_weight and x is None) and not (
            need_input and weight is None):
        return chunked_conv.conv_backward(x, weight, grad_out, geom, need_input, need_weight, need_bias)
    if not enabled or not cpu_conv.supported(x, weight, grad_out):
        return None
    if (need_weight and x is None) or (need_input and weight is None):
        return None
    return cpu_kernel(geom).conv_backward(x, weight, grad_out, geom, need_input, need_weight, need_bias)
