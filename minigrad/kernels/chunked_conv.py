"""Convolution as im2col + batched GEMM over chunks of the batch (the CuPy/GPU path).

Written over the array module: on CuPy, ``im2col``/``col2im`` are the CUDA kernels of
kernels/cuda.py and ``@`` is a cuBLAS batched GEMM. The batch is processed in chunks of
``m`` samples so the column buffer (m, C*kh*kw, L) stays under ``MAX_COLUMN_BYTES``
whatever the batch size; columns are recomputed in backward instead of stored.

    forward   per chunk: cols (m, G, K, L);  y[chunk] = W (G, Og, K) @ cols      (m, G, Og, L)
    backward  per chunk: dW += sum_m dy @ cols^T                                 (G, Og, K)
                         dx[chunk] = col2im(W^T (G, K, Og) @ dy)                  (m, C, H, W)
"""
from __future__ import annotations

from ..backend import get_array_module
from .im2col import col2im, im2col

MAX_COLUMN_BYTES = 256 * 2**20   # column buffer budget per chunk (bytes)


def chunk_size(geom, itemsize: int, budget: int | None = None) -> int:
    """Samples per chunk so that one chunk's columns fit the budget (at least 1)."""
    per_sample = geom.in_channels * geom.kernel[0] * geom.kernel[1] * geom.out_size[0] * geom.out_size[1]
    return max(1, int((budget or MAX_COLUMN_BYTES) // max(1, per_sample * itemsize)))


def _columns(x_chunk, geom):
    """x_chunk: (m, C, H, W) -> cols (m, G, K, L)."""
    m = x_chunk.shape[0]
    cols = im2col(x_chunk, geom.kernel, geom.stride, geom.pads, geom.dilation)  # (m, C, kh, kw, OH, OW)
    k = geom.group_in * geom.kernel[0] * geom.kernel[1]
    return cols.reshape(m, geom.groups, k, geom.out_size[0] * geom.out_size[1])  # -> (m, G, K, L)


def conv_forward(x, weight, bias, geom, budget=None):
    """x: (N, C, H, W), weight: (O, Cg, kh, kw), bias: (O,) | None -> (N, O, OH, OW)."""
    xp = get_array_module(x, weight)
    g, og = geom.groups, geom.group_out
    w = weight.reshape(g, og, -1)                                     # (O, Cg, kh, kw) -> (G, Og, K)
    y = xp.empty(geom.out_shape, dtype=x.dtype)
    step = chunk_size(geom, x.dtype.itemsize, budget)
    for start in range(0, geom.batch, step):
        x_chunk = x[start:start + step]
        out = w @ _columns(x_chunk, geom)                             # (m, G, Og, L)
        y[start:start + step] = out.reshape((x_chunk.shape[0],) + geom.out_shape[1:])  # -> (m, O, OH, OW)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)                                # (O,) -> (1, O, 1, 1)
    return y


def conv_backward(x, weight, grad_out, geom, need_input=True, need_weight=True, need_bias=True, budget=None):
    """Returns (dx (N, C, H, W) | None, dW (O, Cg, kh, kw) | None, db (O,) | None)."""
    xp = get_array_module(grad_out)
    g, og = geom.groups, geom.group_out
    k = geom.group_in * geom.kernel[0] * geom.kernel[1]
    length = geom.out_size[0] * geom.out_size[1]
    grad_x = xp.empty(geom.in_shape, dtype=grad_out.dtype) if need_input else None
    grad_w = xp.zeros((g, og, k), dtype=grad_out.dtype) if need_weight else None
    w_t = weight.reshape(g, og, k).swapaxes(-2, -1) if need_input else None   # (G, Og, K) -> (G, K, Og)
    step = chunk_size(geom, grad_out.dtype.itemsize, budget)
    for start in range(0, geom.batch, step):
        dy = grad_out[start:start + step]
        m = dy.shape[0]
        dy = dy.reshape(m, g, og, length)                             # (m, O, OH, OW) -> (m, G, Og, L)
        if need_weight:
            cols = _columns(x[start:start + step], geom)              # (m, G, K, L), recomputed
            grad_w += (dy @ cols.swapaxes(-2, -1)).sum(axis=0)        # (m, G, Og, K) -> (G, Og, K)
        if need_input:
            dcols = (w_t @ dy).reshape(m, geom.in_channels, geom.kernel[0], geom.kernel[1],
                                       geom.out_size[0], geom.out_size[1])   # (m, G, K, L) -> (m, C, kh, kw, OH, OW)
            grad_x[start:start + step] = col2im(dcols, geom.in_size, geom.stride, geom.pads, geom.dilation)
    grad_b = grad_out.sum(axis=(0, 2, 3)) if need_bias else None      # (O,)
    if grad_w is not None:
        grad_w = grad_w.reshape(geom.weight_shape)                    # (G, Og, K) -> (O, Cg, kh, kw)
    return grad_x, grad_w, grad_b
