"""The reference convolution: im2col + matrix multiply over any array module, in chunks of the batch.

This is the convolution of docs/conv_backward.md as code. It is what runs on CuPy (``im2col`` and
``col2im`` are CUDA kernels there, ``@`` is a cuBLAS batched GEMM), and on NumPy when the CPU fast
paths are switched off (``mg.set_conv_algorithm("reference")``) or do not take the arrays (float16,
mixed dtypes, other array types). Shapes (G groups, Cg = C/G, Og = O/G, K = Cg*kh*kw, L = OH*OW,
m samples per chunk):

    forward      cols = unfold(x[chunk])                       (m, G, K, L)
                 y    = W (G, Og, K) @ cols                    (m, G, Og, L) -> (m, O, OH, OW)
    weight grad  dW  += dy (G, Og, m*L) @ cols^T (G, m*L, K)   (G, Og, K)    -> (O, Cg, kh, kw)
    input grad   dx   = fold(W^T (G, K, Og) @ dy)              (m, G, K, L)  -> (m, C, H, W)
    bias grad    db   = dy summed over (N, OH, OW)             (O,)

The batch goes in chunks of m samples so that a chunk's column-sized buffers (the columns, and in
backward their transposed copy or the column gradient) stay within the column budget whatever the
batch size: ``MAX_COLUMN_BYTES`` on the GPU (large batched GEMMs for cuBLAS), ``HOST_COLUMN_BYTES`` on
the host, where memory is shared with everything else. The weight gradient is accumulated chunk by
chunk into one (G, Og, K) array, and the columns are recomputed in backward instead of stored, so a
backward's extra memory is about the budget plus the weight size.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module, is_gpu_array
from .im2col import col2im, im2col

MAX_COLUMN_BYTES = 256 * 2**20   # column-sized buffers per chunk on the GPU (bytes)
HOST_COLUMN_BYTES = 16 * 2**20   # ... on the host (NumPy and other array modules)


def column_budget(array) -> int:
    """Bytes of column-sized buffers a chunk may hold for arrays like ``array``."""
    return MAX_COLUMN_BYTES if is_gpu_array(array) else HOST_COLUMN_BYTES


def chunk_size(geom, itemsize: int, budget: int | None = None, buffers: int = 1) -> int:
    """Samples per chunk so that `buffers` column buffers of one chunk fit the budget (default: the
    GPU's, the larger one; at least 1)."""
    per_sample = geom.in_channels * geom.kernel[0] * geom.kernel[1] * geom.out_size[0] * geom.out_size[1]
    return max(1, int((budget or MAX_COLUMN_BYTES) // max(1, buffers * per_sample * itemsize)))


def workspace_bytes(geom, like, buffers: int = 1) -> int:
    """Bytes of the column buffers of one chunk for arrays like ``like`` (for the memory guard, minigrad/runtime/memory.py)."""
    itemsize = like.dtype.itemsize
    per_sample = geom.in_channels * geom.kernel[0] * geom.kernel[1] * geom.out_size[0] * geom.out_size[1]
    step = chunk_size(geom, itemsize, column_budget(like), buffers)
    return min(geom.batch, step) * buffers * per_sample * itemsize


def _columns(x_chunk, geom):
    """x_chunk: (m, C, H, W) -> cols (m, G, K, L)."""
    m = x_chunk.shape[0]
    cols = im2col(x_chunk, geom.kernel, geom.stride, geom.pads, geom.dilation)  # (m, C, kh, kw, OH, OW)
    k = geom.group_in * geom.kernel[0] * geom.kernel[1]
    return cols.reshape(m, geom.groups, k, geom.out_size[0] * geom.out_size[1])  # -> (m, G, K, L)


def conv_forward(x, weight, bias, geom, saved=None, budget=None):
    """x: (N, C, H, W), weight: (O, Cg, kh, kw), bias: (O,) | None -> (N, O, OH, OW)."""
    xp = get_array_module(x, weight)
    G, og = geom.groups, geom.group_out
    w = weight.reshape(G, og, -1)                                     # (O, Cg, kh, kw) -> (G, Og, K)
    y = xp.empty(geom.out_shape, dtype=x.dtype)
    step = chunk_size(geom, x.dtype.itemsize, budget or column_budget(x))
    for start in range(0, geom.batch, step):
        x_chunk = x[start:start + step]
        out = w @ _columns(x_chunk, geom)                             # (m, G, Og, L)
        y[start:start + step] = out.reshape((x_chunk.shape[0],) + geom.out_shape[1:])  # -> (m, O, OH, OW)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)                                # (O,) -> (1, O, 1, 1)
    return y


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, saved=None,
                  budget=None):
    """Returns (dx (N, C, H, W) | None, dW (O, Cg, kh, kw) | None, db (O,) | None).

    x may be None when only dx is needed, weight None when only dW and db are.
    """
    xp = get_array_module(grad_out)
    G, og = geom.groups, geom.group_out
    k = geom.group_in * geom.kernel[0] * geom.kernel[1]
    length = geom.out_size[0] * geom.out_size[1]
    grad_x = xp.empty(geom.in_shape, dtype=grad_out.dtype) if need_input else None
    grad_w = xp.zeros((G, og, k), dtype=grad_out.dtype) if need_weight else None
    w_t = weight.reshape(G, og, k).swapaxes(-2, -1) if need_input else None   # (G, Og, K) -> (G, K, Og)
    step = chunk_size(geom, grad_out.dtype.itemsize, budget or column_budget(grad_out), buffers=2)
    for start in range(0, geom.batch, step):
        dy = grad_out[start:start + step]
        m = dy.shape[0]
        dy = dy.reshape(m, G, og, length)                             # (m, O, OH, OW) -> (m, G, Og, L)
        if need_weight:
            cols = _columns(x[start:start + step], geom)              # (m, G, K, L), recomputed
            cols_t = cols.transpose(1, 0, 3, 2).reshape(G, m * length, k)    # -> (G, m*L, K)
            dy_g = dy.transpose(1, 2, 0, 3).reshape(G, og, m * length)       # -> (G, Og, m*L)
            grad_w += dy_g @ cols_t                                   # (G, Og, K)
            del cols, cols_t                                          # free before the column gradient
        if need_input:
            dcols = (w_t @ dy).reshape(m, geom.in_channels, geom.kernel[0], geom.kernel[1],
                                       geom.out_size[0], geom.out_size[1])   # (m, G, K, L) -> (m, C, kh, kw, OH, OW)
            grad_x[start:start + step] = col2im(dcols, geom.in_size, geom.stride, geom.pads, geom.dilation)
    grad_b = grad_out.sum(axis=(0, 2, 3)) if need_bias else None      # (O,)
    if grad_w is not None:
        grad_w = grad_w.reshape(geom.weight_shape)                    # (G, Og, K) -> (O, Cg, kh, kw)
    return grad_x, grad_w, grad_b
