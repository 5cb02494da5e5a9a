"""Max pooling on the CPU (NumPy float32/float64): in-place passes over the kh*kw window views.

The reference (``minigrad.functional.pool``) keeps a running maximum with ``where`` and allocates
new arrays at every kernel offset. Here, with K = kh*kw offsets and views v_k (N, C, OH, OW):

    forward   y = v_0, then y = maximum(y, v_k) in place (NaN wins, as in PyTorch)
              argmax = min over k of (k where v_k == y else 255)    the first maximum, uint8 passes
    backward  dxpad[view k] += select(argmax == k, dy)                exact where(), no allocation of dy*0

When y holds a NaN (its argmax is the last NaN of the window, which v_k == y cannot find) or the
window has more than 255 offsets, the forward returns None and the reference runs instead.
"""
from __future__ import annotations

import numpy as np

from .cpu_elementwise import select

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def supported(*arrays) -> bool:
    return all(type(a) is np.ndarray and a.dtype in _FLOATS for a in arrays)


def max_forward(padded, views):
    """padded: (N, C, Hp, Wp); views: [(k, rows, cols)] of every offset -> (y, argmax uint8) or None."""
    if len(views) > 255:
        return None
    windows = [padded[:, :, rows, cols] for _, rows, cols in views]     # K views (N, C, OH, OW)
    out = windows[0].copy()
    for window in windows[1:]:
        np.maximum(out, window, out=out)
    if np.isnan(out).any():
        return None
    argmax = np.full(out.shape, 255, dtype=np.uint8)
    equal = np.empty(out.shape, dtype=bool)
    index = np.empty(out.shape, dtype=np.uint8)
    for k, window in enumerate(windows):
        np.equal(window, out, out=equal)
        np.subtract(np.uint8(255), np.multiply(equal, np.uint8(255 - k), out=index), out=index)  # k or 255
        np.minimum(argmax, index, out=argmax)
    return out, argmax


def max_backward(grad_out, argmax, grad_padded, views):
    """Adds each dy into the input position its window took the maximum from; grad_padded is zeroed."""
    mask = np.empty(argmax.shape, dtype=bool)
    for k, rows, cols in views:
        np.equal(argmax, k, out=mask)
        target = grad_padded[:, :, rows, cols]
        np.add(target, select(mask, grad_out), out=target)
    return grad_padded
