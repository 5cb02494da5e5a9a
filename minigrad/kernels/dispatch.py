"""Which kernel runs: one ordered table per operation, read top to bottom, then the reference.

    conv_kernel(geom, *arrays)       CONV_KERNELS (CPU fast paths), else reference_conv
    pool_kernel(op, geom, *arrays)   POOL_KERNELS (GPU, CPU), else pool_reference
    gpu_kernels(*arrays)             the CUDA kernels module for CuPy arrays (fused losses and
                                     optimizer steps), else None

A kernel module of the conv table has ``conv_forward(x, weight, bias, geom)`` and
``conv_backward(x, weight, grad_out, geom, need_input, need_weight, need_bias)``, the same signatures as
``reference_conv``, and the same results to rounding: every one of them is checked against PyTorch
by the same tests. The CPU fast paths take plain NumPy float32/float64 arrays of one dtype
(``cpu_runtime.supported``); anything else (CuPy, float16, the strict test backend) takes the
reference, which runs over any array module (on CuPy with the CUDA im2col/col2im).

The choice depends only on the geometry, the arrays' type and dtype, and the explicit setting
``mg.set_conv_algorithm`` (environment: ``MINIGRAD_CONV``), never on the thread count, so a
geometry always gets the same kernel and the same rounding:

    "auto"       the table below (default)
    "reference"  the reference im2col + matmul everywhere (what the fast paths are tested against)
    "winograd"   the table, with Winograd F(2x2, 3x3) for the 3x3 stride-1 layers it applies to
"""
from __future__ import annotations

from ..runtime import settings
from ..runtime.backend import is_gpu_array
from . import (cpu_batchlast, cpu_conv, cpu_depthwise, cpu_pointwise, cpu_pool, cpu_runtime, cpu_samplemajor,
               cpu_winograd, gpu_pool, pool_reference, reference_conv)

__all__ = ["CONV_ALGORITHMS", "set_conv_algorithm", "get_conv_algorithm", "CONV_KERNELS", "cpu_kernel", "conv_kernel",
           "POOL_KERNELS", "pool_kernel", "gpu_kernels"]

CONV_ALGORITHMS = settings.CONV_ALGORITHMS      # ("auto", "reference", "winograd")
_algorithm = None        # resolved from MINIGRAD_CONV on first use


def set_conv_algorithm(name: str) -> None:
    """Choose how convolutions run: 'auto' (default), 'reference' or 'winograd' (see the module doc)."""
    global _algorithm
    if name not in CONV_ALGORITHMS:
        raise ValueError(f"set_conv_algorithm: expected one of {CONV_ALGORITHMS}, got {name!r}")
    _algorithm = name


def get_conv_algorithm() -> str:
    """The convolution algorithm setting (default: $MINIGRAD_CONV, else 'auto')."""
    global _algorithm
    if _algorithm is None:
        _algorithm = settings.conv_algorithm() or "auto"   # $MINIGRAD_CONV; a bad value raises SettingError
    return _algorithm


def _winograd_chosen(geom) -> bool:
    return get_conv_algorithm() == "winograd" and cpu_winograd.applies(geom)


# CPU fast paths for NumPy float32/float64, first match wins (docs/architecture.md: when and why).
CONV_KERNELS = (
    (cpu_pointwise, cpu_pointwise.applies),    # 1x1, no padding: a GEMM per sample, no columns
    (cpu_depthwise, cpu_depthwise.applies),    # one filter per channel: tap-by-tap multiply-adds
    (cpu_samplemajor, cpu_samplemajor.applies),   # few input channels, wide outputs: columns per sample
    (cpu_batchlast, cpu_batchlast.applies),    # few input channels: batch-innermost columns
    (cpu_winograd, _winograd_chosen),          # 3x3 stride 1, when chosen: 2.25x fewer multiplies
    (cpu_conv, cpu_conv.applies),              # everything else: channels-last columns + GEMM
)


def cpu_kernel(geom):
    """The CPU fast path for this geometry: the first entry of CONV_KERNELS that applies."""
    for kernel, applies in CONV_KERNELS:
        if applies(geom):
            return kernel
    raise AssertionError("cpu_conv applies to every geometry")   # pragma: no cover


def conv_kernel(geom, *arrays):
    """The kernel module for a convolution of this geometry over these arrays (None entries ignored)."""
    if get_conv_algorithm() != "reference" and cpu_runtime.supported(*arrays):
        return cpu_kernel(geom)
    return reference_conv


# Pooling: op is "max" or "avg"; applies(op, geom, *arrays).
POOL_KERNELS = (
    (gpu_pool, gpu_pool.applies),              # CuPy: one CUDA kernel per pass
    (cpu_pool, cpu_pool.applies),              # NumPy max pooling: in-place passes over blocks of planes
)


def pool_kernel(op: str, geom, *arrays):
    """The pooling kernel module for op ('max' or 'avg') over these arrays; pool_reference by default."""
    for kernel, applies in POOL_KERNELS:
        if applies(op, geom, *arrays):
            return kernel
    return pool_reference


def gpu_kernels(*arrays):
    """The CUDA kernels module (kernels/cuda.py) when every given array is a CuPy array, else None."""
    if arrays and all(is_gpu_array(a) for a in arrays):
        from . import cuda
        return cuda
    return None
