"""Low-level kernels, below ``minigrad.functional`` and the layers.

``dispatch.py`` picks the kernel for each call from one ordered table per operation:
``reference_conv`` (im2col + matmul over any array module, ``im2col.py``) and ``pool_reference``
are the references; ``cpu_*`` are the NumPy fast paths, sharing ``cpu_runtime`` (work buffers,
chunks, thread pool, ordered partial sums); ``cuda.py`` holds the CuPy ElementwiseKernels
(``gpu_pool`` adapts the pooling ones). docs/architecture.md draws the whole path.
"""
from .im2col import col2im, im2col, conv_out_size

__all__ = ["im2col", "col2im", "conv_out_size"]
