"""Max pooling by the compiled loops (``numba_loops``, when ``compiled.active()``): one pass forward, one backward,
over blocks of planes on the thread pool. Same results, argmax encoding (uint8 window offsets i * kw + j) and
table entry shape as ``cpu_pool``, which runs when Numba is not there."""
from __future__ import annotations

import numpy as np

from . import compiled
from .cpu_runtime import run_chunks, supported

__all__ = ["applies", "max_forward", "max_backward"]

BLOCK_BYTES = 1 << 20       # input bytes per block of planes (the whole batch inline below that)


def applies(op, geom, x, argmax=None) -> bool:
    """Max pooling of NumPy float32/float64 with at most 255 offsets per window, when the compiled kernels run."""
    return (op == "max" and supported(x) and geom.kernel[0] * geom.kernel[1] <= 255
            and (argmax is None or (type(argmax) is np.ndarray and argmax.dtype == np.uint8))
            and compiled.active())


def _options(geom):
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
    top, _, left, _ = geom.pads
    return kh, kw, sh, sw, top, left, dh, dw


def max_forward(x, geom):
    """x: (N, C, H, W) -> (y, argmax uint8), both (N, C, OH, OW)."""
    n, c, h, w = x.shape
    planes = n * c
    src = np.ascontiguousarray(x).reshape(planes, h, w)              # (N, C, H, W) -> (N*C, H, W)
    out = np.empty((planes,) + tuple(geom.out_size), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.uint8)
    loop, options = compiled.loops().max_pool_forward, _options(geom)
    run_chunks(compiled.blocks(planes, h * w * x.itemsize, BLOCK_BYTES),
               lambda p0, p1: loop(src[p0:p1], out[p0:p1], argmax[p0:p1], *options))
    shape = (n, c) + tuple(geom.out_size)
    return out.reshape(shape), argmax.reshape(shape)                   # (N*C, OH, OW) -> (N, C, OH, OW)


def max_backward(grad_out, argmax, in_shape, geom):
    """(N, C, H, W) gradient: each dy added to the input position its window took the maximum from."""
    n, c, h, w = in_shape
    planes = n * c
    out_size = tuple(grad_out.shape[2:])
    dy = np.ascontiguousarray(grad_out).reshape((planes,) + out_size)   # (N, C, OH, OW) -> (N*C, OH, OW)
    am = np.ascontiguousarray(argmax).reshape(dy.shape)
    dx = np.empty((planes, h, w), dtype=grad_out.dtype)
    loop, options = compiled.loops().max_pool_backward, _options(geom)
    run_chunks(compiled.blocks(planes, h * w * grad_out.itemsize, BLOCK_BYTES),
               lambda p0, p1: loop(dy[p0:p1], am[p0:p1], dx[p0:p1], *options))
    return dx.reshape(in_shape)                                        # (N*C, H, W) -> (N, C, H, W)
