"""Spatial padding of NCHW arrays in four modes, with its adjoint for backward, and ``torch.nn.functional.pad``.

Modes follow ``torch.nn.functional.pad``: "zeros" (alias "constant", any fill value), "reflect" (mirror without
repeating the edge), "replicate" (repeat the edge) and "circular" (wrap). Conv2d's ``padding_mode`` and the pad
layers (nn/padding.py: ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d, CircularPad2d) run this code.

A negative pad crops, as in PyTorch: constant padding crops and then pads; reflect and replicate read the
padded positions from the whole input (so ``(-1, 2)`` mirrors about the input's last element), circular wraps
around what is left after cropping (at most once: PyTorch's own result is undefined beyond that). Every mode is a gather with a per-axis source index (constant: a crop and
a fill); the backward is the matching scatter-add: the unpadded core copied, the (few) padded rows/columns added.
"""
from __future__ import annotations

import math
import numbers

from ..kernels.im2col import pad_constant
from ..runtime.backend import get_array_module
from ..runtime.checks import check_float_array
from ..runtime.memory import check_bytes

__all__ = ["PADDING_MODES", "check_padding", "pad2d", "pad2d_backward", "pad", "as_planes"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_CONSTANT = ("zeros", "constant")


def _source_index(size: int, before: int, after: int, mode: str) -> list[int]:
    """For each position of the padded (or cropped) axis, the input index it copies."""
    if mode == "circular":                       # wrap around what the negative pads leave
        start = max(-before, 0)
        kept = size - start - max(-after, 0)
        return [start + p % kept for p in range(-max(before, 0), kept + max(after, 0))]
    index = []
    for p in range(-before, size + after):
        if mode == "reflect":
            period = 2 * (size - 1) if size > 1 else 1
            q = p % period
            index.append(q if q < size else period - q)
        else:  # replicate
            index.append(min(max(p, 0), size - 1))
    return index


def check_padding(size_hw, pads, mode: str, where: str):
    """Raise ValueError when the pads do not fit the input of spatial size (H, W), as PyTorch does: reflect pads
    below the size, circular pads at most the size left after cropping, an output that is not negative
    (replicate: not empty)."""
    h, w = size_hw
    top, bottom, left, right = pads
    out_h, out_w = h + top + bottom, w + left + right
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise ValueError(f"{where}: reflect padding {pads} (top, bottom, left, right) must be smaller "
                         f"than the input's spatial size {(h, w)}")
    if mode == "circular":
        kept = (h - max(-top, 0) - max(-bottom, 0), w - max(-left, 0) - max(-right, 0))
        if min(kept) >= 0 and (max(top, bottom) > kept[0] or max(left, right) > kept[1]):
            raise ValueError(f"{where}: circular padding {pads} (top, bottom, left, right) must not exceed the "
                             f"input's spatial size {kept} (after cropping the negative pads): it would wrap "
                             "around more than once")
    low = 1 if mode == "replicate" else 0
    if out_h < low or out_w < low:
        raise ValueError(f"{where}: padding {pads} (top, bottom, left, right) of an input of spatial size "
                         f"{(h, w)} gives an output of size {(out_h, out_w)}; it must be "
                         f"{'non-negative' if low == 0 else 'at least 1'} in every dimension")


def pad2d(x, pads, mode: str = "zeros", value: float = 0.0, *, where: str = "pad2d", extra: int = 0,
          advice: str | None = "use smaller padding"):
    """Pad x: (N, C, H, W) -> (N, C, H+top+bottom, W+left+right); pads = (top, bottom, left, right), a negative
    pad crops. The padded array (and, in the gather modes, its row-padded step) is checked by the memory guard
    first, with ``extra`` more elements the caller will allocate next (a layer's output), named as ``where``."""
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    padded = (n, c, h + top + bottom, w + left + right)
    step = 0 if mode in _CONSTANT else n * c * padded[2] * w
    check_bytes((math.prod(padded) + step + extra) * x.dtype.itemsize, where, padded, what=f"{mode}-padded input",
                like=x, advice=advice)
    if mode in _CONSTANT:
        if min(pads) < 0:                                  # crop the negative sides, then pad the others
            x = x[:, :, max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
            pads = tuple(max(p, 0) for p in pads)
        return pad_constant(x, pads, value)
    xp = get_array_module(x)
    rows = xp.asarray(_source_index(h, top, bottom, mode), dtype="int64")    # (may be empty: a crop to 0)
    cols = xp.asarray(_source_index(w, left, right, mode), dtype="int64")
    return xp.take(xp.take(x, rows, axis=2), cols, axis=3)


def _scatter_back(grad, size: int, before: int, after: int, mode: str, axis: int):
    """Adjoint of the gather along one axis: grad (.., size+before+after, ..) -> (.., size, ..)."""
    index = _source_index(size, before, after, mode)
    start, lo = max(-before, 0), max(before, 0)          # input position of the core, its place in grad
    core = max(size - start - max(-after, 0), 0)          # the input entries kept in place
    src = [slice(None)] * grad.ndim
    src[axis] = slice(lo, lo + core)
    if core == size:
        out = grad[tuple(src)].copy()
    else:
        shape = list(grad.shape)
        shape[axis] = size
        out = get_array_module(grad).zeros(tuple(shape), dtype=grad.dtype)
        dst = [slice(None)] * grad.ndim
        dst[axis] = slice(start, start + core)
        out[tuple(dst)] = grad[tuple(src)]
    for p in list(range(lo)) + list(range(lo + core, len(index))):
        dst = [slice(None)] * grad.ndim
        src = [slice(None)] * grad.ndim
        dst[axis] = index[p]
        src[axis] = p
        out[tuple(dst)] += grad[tuple(src)]
    return out


def as_planes(x, where: str):
    """x (*, H, W) -> 4-D (B, C, H, W) with the same entries in the same order, for pad2d: x itself when 4-D, a view
    with leading unit axes when 2-D or 3-D, else (B, 1, H, W), whose reshape copies a non-contiguous x (a broadcast
    view of a few bytes reading as gigabytes): that copy is checked by the memory guard first."""
    if x.ndim <= 4:
        return x.reshape((1,) * (4 - x.ndim) + tuple(x.shape))           # adding unit axes never copies
    if not x.flags.c_contiguous:
        check_bytes(x.size * x.dtype.itemsize, where, x.shape, what="contiguous copy of the input", like=x)
    return x.reshape((math.prod(x.shape[:-2]), 1) + tuple(x.shape[-2:]))  # (*, H, W) -> (B, 1, H, W)


def pad2d_backward(grad, pads, mode: str = "zeros"):
    """Gradient of pad2d: grad (N, C, Hp, Wp) -> (N, C, H, W)."""
    top, bottom, left, right = pads
    hp, wp = grad.shape[2], grad.shape[3]
    h, w = hp - top - bottom, wp - left - right
    if mode in _CONSTANT:
        if min(pads) >= 0:
            return grad[:, :, top:top + h, left:left + w]
        out = get_array_module(grad).zeros(grad.shape[:2] + (h, w), dtype=grad.dtype)
        rows, cols = slice(max(-top, 0), h - max(-bottom, 0)), slice(max(-left, 0), w - max(-right, 0))
        out[:, :, rows, cols] = grad[:, :, max(top, 0):hp - max(bottom, 0), max(left, 0):wp - max(right, 0)]
        return out
    grad = _scatter_back(grad, h, top, bottom, mode, axis=2)
    return _scatter_back(grad, w, left, right, mode, axis=3)


# -- torch.nn.functional.pad (forward only) ------------------------------------------------------------------
_TORCH_MODES = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def pad(input, pad, mode="constant", value=None):
    """Pad the last one or two dimensions, ``pad`` = (left, right) or (left, right, top, bottom) as PyTorch
    (negative entries crop). constant: any input of >= len(pad)/2 dimensions, filled with ``value`` (default 0);
    reflect / replicate / circular: (N, C, W) or (C, W) with 2 pads, (N, C, H, W) or (C, H, W) with 4.

    x: (*, H, W) -> (*, H + top + bottom, W + left + right).
    """
    where = "pad"
    check_float_array(input, where)
    if mode not in _TORCH_MODES:
        raise ValueError(f"{where}: mode must be one of {', '.join(map(repr, _TORCH_MODES))}, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"{where}: pad must be a tuple of ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"{where}: padding length must be divisible by 2, got {len(pad)} entries {tuple(pad)}")
    if len(pad) not in (2, 4):
        raise NotImplementedError(f"{where}: {len(pad)} pad entries are not implemented (2 pads the last "
                                  "dimension, 4 the last two)")
    dims = len(pad) // 2
    if mode != "constant":
        if value is not None and value != 0:
            raise ValueError(f"{where}: padding mode {mode!r} doesn't take a value argument, got value={value!r}")
        if input.ndim not in (dims + 1, dims + 2):
            raise ValueError(f"{where}: {mode} padding with {len(pad)} entries takes a {dims + 1}-D or "
                             f"{dims + 2}-D input, got {input.ndim}-D input of shape {tuple(input.shape)}")
    elif input.ndim < dims:
        raise ValueError(f"{where}: {len(pad)} pad entries need an input of at least {dims} dimensions, "
                         f"got {input.ndim}-D input of shape {tuple(input.shape)}")
    left, right = int(pad[0]), int(pad[1])
    top, bottom = (int(pad[2]), int(pad[3])) if dims == 2 else (0, 0)
    lead = tuple(input.shape[:input.ndim - dims])
    h, w = (input.shape[-2], input.shape[-1]) if dims == 2 else (1, input.shape[-1])
    pads = (top, bottom, left, right)
    check_padding((h, w), pads, _TORCH_MODES[mode], where)
    x4 = as_planes(input if dims == 2 else input[..., None, :], where)   # (*, [H,] W) -> (B, C, H, W)
    y = pad2d(x4, pads, _TORCH_MODES[mode], 0.0 if value is None else float(value), where=where)
    return y.reshape(lead + tuple(y.shape[4 - dims:]))        # (B, 1, H', W') -> (*, [H',] W')
