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

    "auto"       the table below (default), with the compiled kernels (kernels/compiled.py: ReLU and max
                 pooling as Numba loops) when Numba is installed
    "reference"  the reference im2col + matmul everywhere (what the fast paths are tested against), and
                 NumPy's passes for ReLU and pooling
    "winograd"   "auto", with Winograd F(2x2, 3x3) for the 3x3 stride-1 layers it applies to
    "numpy"      "auto" without the compiled kernels, even when Numba is installed
    "compiled"   "auto", requiring the compiled kernels (ImportError naming the extra without Numba)
"""
from __future__ import annotations

from ..runtime.backend import is_gpu_array
from . import (algorithm, compiled, compiled_depthwise, compiled_pool, cpu_batchlast, cpu_conv, cpu_depthwise,
               cpu_pointwise, cpu_pool, cpu_runtime, cpu_samplemajor, cpu_winograd, gpu_pool, pool_reference,
               reference_conv)
from .algorithm import CONV_ALGORITHMS, get_conv_algorithm

__all__ = ["CONV_ALGORITHMS", "set_conv_algorithm", "get_conv_algorithm", "CONV_KERNELS", "cpu_kernel", "conv_kernel",
           "POOL_KERNELS", "pool_kernel", "gpu_kernels"]


def set_conv_algorithm(name: str) -> None:
    """Choose which kernels run: 'auto' (default), 'reference', 'winograd', 'numpy' or 'compiled' (see the module
    doc). 'compiled' raises ImportError, naming the extra to install, when Numba is not there."""
    if name not in CONV_ALGORITHMS:
        raise ValueError(f"set_conv_algorithm: expected one of {CONV_ALGORITHMS}, got {name!r}")
    if name == "compiled":
        compiled.require()
    algorithm.store(name)


def _winograd_chosen(geom) -> bool:
    return get_conv_algorithm() == "winograd" and cpu_winograd.applies(geom)


# CPU fast paths for NumPy float32/float64, first match wins (docs/architecture.md: when and why).
CONV_KERNELS = (
    (cpu_pointwise, cpu_pointwise.applies),    # 1x1, no padding: a GEMM per sample, no columns
    (compiled_depthwise, compiled_depthwise.applies),   # one filter per channel, compiled loops (Numba installed)
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
    (compiled_pool, compiled_pool.applies),    # NumPy max pooling, compiled loops (Numba, when installed)
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
