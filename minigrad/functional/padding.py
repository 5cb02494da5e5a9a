"""Spatial padding of NCHW arrays in four modes, with its adjoint for backward.

Modes follow ``torch.nn.functional.pad``: "zeros" (alias "constant"), "reflect"
(mirror without repeating the edge), "replicate" (repeat the edge) and "circular" (wrap).
Non-constant modes are a gather with a per-axis source index; their backward is the
matching scatter-add, looped over the (few) padded rows/columns.
"""
from __future__ import annotations

import math

from ..runtime.backend import get_array_module
from ..runtime.memory import check_bytes
from ..kernels.im2col import pad_constant

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _source_index(size: int, before: int, after: int, mode: str) -> list[int]:
    """For each position of the padded axis, the input index it copies."""
    index = []
    for p in range(-before, size + after):
        if mode == "reflect":
            period = 2 * (size - 1) if size > 1 else 1
            q = p % period
            index.append(q if q < size else period - q)
        elif mode == "replicate":
            index.append(min(max(p, 0), size - 1))
        else:  # circular
            index.append(p % size)
    return index


def check_padding(size_hw, pads, mode: str, where: str):
    """Raise ValueError when a reflect/circular pad is too large for the input, as PyTorch does."""
    h, w = size_hw
    top, bottom, left, right = pads
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise ValueError(f"{where}: reflect padding {pads} (top, bottom, left, right) must be smaller "
                         f"than the input's spatial size {(h, w)}")
    if mode == "circular" and (max(top, bottom) > h or max(left, right) > w):
        raise ValueError(f"{where}: circular padding {pads} (top, bottom, left, right) must not exceed "
                         f"the input's spatial size {(h, w)}")


def pad2d(x, pads, mode: str = "zeros", value: float = 0.0, *, where: str = "pad2d", extra: int = 0,
          advice: str | None = "use smaller padding"):
    """Pad x: (N, C, H, W) -> (N, C, H+top+bottom, W+left+right); pads = (top, bottom, left, right).
    The padded array (and, in the gather modes, its row-padded step) is checked by the memory guard first,
    with ``extra`` more elements the caller will allocate next (a layer's output), named as ``where``."""
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    padded = (n, c, h + top + bottom, w + left + right)
    step = 0 if mode in ("zeros", "constant") else n * c * padded[2] * w
    check_bytes((math.prod(padded) + step + extra) * x.dtype.itemsize, where, padded, what=f"{mode}-padded input",
                like=x, advice=advice)
    if mode in ("zeros", "constant"):
        return pad_constant(x, pads, value)
    xp = get_array_module(x)
    rows = xp.asarray(_source_index(h, top, bottom, mode))
    cols = xp.asarray(_source_index(w, left, right, mode))
    return xp.take(xp.take(x, rows, axis=2), cols, axis=3)


def _scatter_back(grad, size: int, before: int, after: int, mode: str, axis: int):
    """Adjoint of the gather along one axis: grad (.., size+before+after, ..) -> (.., size, ..)."""
    index = _source_index(size, before, after, mode)
    core = [slice(None)] * grad.ndim
    core[axis] = slice(before, before + size)
    out = grad[tuple(core)].copy()
    for p in list(range(before)) + list(range(before + size, before + size + after)):
        dst = [slice(None)] * grad.ndim
        src = [slice(None)] * grad.ndim
        dst[axis] = index[p]
        src[axis] = p
        out[tuple(dst)] += grad[tuple(src)]
    return out


def pad2d_backward(grad, pads, mode: str = "zeros"):
    """Gradient of pad2d: grad (N, C, Hp, Wp) -> (N, C, H, W)."""
    top, bottom, left, right = pads
    hp, wp = grad.shape[2], grad.shape[3]
    h, w = hp - top - bottom, wp - left - right
    if mode in ("zeros", "constant"):
        return grad[:, :, top:top + h, left:left + w]
    grad = _scatter_back(grad, h, top, bottom, mode, axis=2)
    return _scatter_back(grad, w, left, right, mode, axis=3)
