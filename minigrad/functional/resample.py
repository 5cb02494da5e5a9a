"""Resampling: ``interpolate`` (nearest, nearest-exact, linear, bilinear) and pixel (un)shuffle, forward and
backward, with PyTorch's index arithmetic. The layers of nn/resample.py (Upsample, PixelShuffle, ...) run them.

Each spatial axis of size ``in`` is resized to ``out`` on its own (the resize is separable: rows, then columns).
``scale`` is 1/scale_factor when a scale factor is given (and recompute_scale_factor is not True), else in/out:

    nearest        src = min(floor(dst * scale), in - 1)            (float32 arithmetic, as PyTorch's nearest_idx)
    nearest-exact  src = min(floor((dst + 0.5) * scale), in - 1)
    (bi)linear     s = max((dst + 0.5) * scale - 0.5, 0)   (align_corners=False)
                   s = dst * (in - 1) / (out - 1)          (align_corners=True; 0 when out == 1)
                   i0 = min(floor(s), in - 1), i1 = min(i0 + 1, in - 1), l1 = clamp(s - i0, 0, 1), l0 = 1 - l1
                   y[dst] = l0 x[i0] + l1 x[i1]            (out == in: a copy)

As a matrix, each axis is y = A x with A (out, in) holding the weights (one 1 per row for nearest), so the
whole resize is y = A_h x A_w^T and its gradient dx = A_h^T dy A_w. Forward runs it as gathers (cost
proportional to the output; a non-finite input stays local); backward runs the transposes as matrix products
(as gathers of each input's outputs where the matrix would outgrow the gradient: a long axis), or as a
reshape-sum where nearest repeats each input exactly k times.

Pixel shuffle: (*, C r^2, H, W) -> (*, C, H r, W r), channel c r^2 + i r + j -> pixel (h r + i, w r + j);
pixel unshuffle is its inverse, and each one's gradient is the other.
"""
from __future__ import annotations

import functools
import math
import numbers

import numpy

from ..runtime.backend import backend_of, get_array_module
from ..runtime.checks import check_float_array, check_grad_like
from ..runtime.memory import check_bytes

__all__ = ["interpolate_options", "interpolate_forward", "interpolate_backward", "interpolate",
           "pixel_shuffle_forward", "pixel_unshuffle_forward", "space_to_depth", "depth_to_space_dcr", "check_factor", "pixel_shuffle", "pixel_unshuffle",
           "MODES"]

MODES = ("nearest", "nearest-exact", "linear", "bilinear")
_NOT_BUILT = ("bicubic", "trilinear", "area")
_NEEDS = {"linear": 3, "bilinear": 4}


# -- options and geometry --------------------------------------------------------------------------------------
def _positive_ints(value, where):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"{where}: size must be an int or a tuple of ints, got {value!r}")


def _scales(value, where):
    ok = lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    if ok(value):
        return float(value)
    if isinstance(value, (tuple, list)) and value and all(ok(v) for v in value):
        return tuple(float(v) for v in value)
    raise TypeError(f"{where}: scale_factor must be a finite number or a tuple of them, got {value!r}")


def interpolate_options(size, scale_factor, mode, align_corners, recompute_scale_factor, where):
    """Check the options as PyTorch's interpolate does -> (size, scale_factor, mode, align_corners, recompute)."""
    if mode in _NOT_BUILT:
        hint = " (AdaptiveAvgPool2d computes mode='area')" if mode == "area" else ""
        raise NotImplementedError(f"{where}: mode={mode!r} is not implemented; minigrad has "
                                  f"{', '.join(map(repr, MODES))}{hint}")
    if mode not in MODES:
        raise ValueError(f"{where}: mode must be one of {', '.join(map(repr, MODES + _NOT_BUILT))}, got {mode!r}")
    if mode.startswith("nearest"):
        if align_corners is not None:
            raise ValueError(f"{where}: align_corners option can only be set with the interpolating modes: "
                             f"linear | bilinear | bicubic | trilinear (got mode={mode!r})")
    elif align_corners is None:
        align_corners = False
    if size is not None and scale_factor is not None:
        raise ValueError(f"{where}: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError(f"{where}: either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError(f"{where}: recompute_scale_factor is not meaningful with an explicit size")
    size = None if size is None else _positive_ints(size, where)
    scale_factor = None if scale_factor is None else _scales(scale_factor, where)
    return size, scale_factor, mode, bool(align_corners), bool(recompute_scale_factor)


def _geometry(shape, options, where):
    """-> ((H, W) in, (OH, OW) out, (scale_h, scale_w) given or None) for an input (N, C, [H,] W)."""
    size, factor, mode, _, recompute = options
    dims = len(shape) - 2
    in_size = tuple(shape[2:])
    if mode in _NEEDS and len(shape) != _NEEDS[mode]:
        raise NotImplementedError(f"{where}: got {len(shape)}-D input of shape {tuple(shape)}, but mode={mode!r} "
                                  f"needs {_NEEDS[mode]}-D input ({'(N, C, W)' if mode == 'linear' else '(N, C, H, W)'})")
    given = size if size is not None else factor
    if isinstance(given, tuple) and len(given) != dims:
        what = "size" if size is not None else "scale_factor"
        raise ValueError(f"{where}: input with spatial dimensions {list(in_size)} and {what} {given} must have "
                         "the same number of spatial dimensions")
    given = given if isinstance(given, tuple) else (given,) * dims
    if size is not None:
        out, scales = given, (None,) * dims
    else:
        out = tuple(int(n * s) for n, s in zip(in_size, given))   # floor of the double product, as PyTorch
        scales = (None,) * dims if recompute else given
    if min(in_size) < 1 or min(out) < 1:
        raise ValueError(f"{where}: input and output sizes should be greater than 0, but got input "
                         f"{tuple(in_size)} and output {tuple(out)} (spatial sizes)")
    if dims == 1:                                  # (N, C, W): a height of 1 that stays 1
        return (1,) + in_size, (1,) + out, (None,) + scales
    return in_size, out, scales


class _Axis:
    """The resize of one axis: a gather (nearest: ``index``; linear: ``i0, i1`` weighted by ``l0, l1``)."""

    def __init__(self, n_in, n_out, scale, mode, align_corners, dtype):
        self.n_in, self.n_out, self.mode = n_in, n_out, mode
        self.block = 0                                         # k when nearest repeats each input k times
        self._arrays = {}                                      # host arrays moved to a backend
        if mode.startswith("nearest"):
            self.index = _nearest_index(n_in, n_out, scale, mode == "nearest-exact")
            k = n_out // n_in
            if n_out == k * n_in and numpy.array_equal(self.index, numpy.arange(n_out) // k):
                self.block = k
            self.identity = self.block == 1
        else:
            self.identity = n_in == n_out                      # PyTorch copies when the sizes agree
            if not self.identity:
                self.i0, self.i1, self.l0, self.l1 = _linear_weights(n_in, n_out, scale, align_corners, dtype)

    def _on(self, like, what, dtype=None):
        """This axis's host array ``what`` (index, i0, i1, l0, l1 or the matrix) on like's backend and device, as
        ``dtype``: moved (or built) once per geometry, backend, device and dtype."""
        xp = get_array_module(like)
        key = (what, xp.__name__, getattr(getattr(like, "device", None), "id", None),
               None if dtype is None else numpy.dtype(dtype).str)
        if key not in self._arrays:
            array = self._matrix(dtype) if what == "matrix" else getattr(self, what)
            self._arrays[key] = xp.asarray(array if dtype is None else array.astype(dtype))
        return self._arrays[key]

    def _matrix(self, dtype):
        """The (out, in) interpolation matrix A of this axis (y = A x), built on the host."""
        a = numpy.zeros((self.n_out, self.n_in), dtype=dtype)
        rows = numpy.arange(self.n_out)
        if self.mode.startswith("nearest"):
            a[rows, self.index] = 1.0
        else:
            numpy.add.at(a, (rows, self.i0), self.l0)           # host-side, on the small (out, in) matrix
            numpy.add.at(a, (rows, self.i1), self.l1)
        return a

    def apply(self, x, axis):
        """x (.., in, ..) -> (.., out, ..) along ``axis``."""
        if self.identity:
            return x
        xp = get_array_module(x)
        if self.block:
            return xp.repeat(x, self.block, axis=axis)           # (.., in, ..) -> (.., in*k, ..)
        if self.mode.startswith("nearest"):
            return xp.take(x, self._on(x, "index"), axis=axis)
        shape = (-1,) + (1,) * (x.ndim - 1 - axis)                       # weights broadcast along ``axis``
        y = xp.take(x, self._on(x, "i0"), axis=axis)
        y *= self._on(x, "l0", x.dtype).reshape(shape)
        term = xp.take(x, self._on(x, "i1"), axis=axis)
        term *= self._on(x, "l1", x.dtype).reshape(shape)
        y += term                                                        # l0 x[i0] + l1 x[i1]: two arrays of y's size
        return y

    def dense(self, size) -> bool:
        """Whether adjoint multiplies by the (out, in) matrix A: when A is no larger than the gradient of ``size``
        entries; else (a long axis: A would be quadratic in it) it gathers each input's few outputs (``_sources``)."""
        return self.n_out * self.n_in <= size

    def _sources(self):
        """source_index, source_weight, (in, K) each: input i receives sum_k weight[i, k] * g[index[i, k]], its K (most)
        outputs, unused slots with weight 0. Built once on the host from the (source, output, weight) of ``apply``."""
        if "source_index" not in self.__dict__:
            outputs = numpy.arange(self.n_out)
            if self.mode.startswith("nearest"):
                src, dst, w = self.index, outputs, numpy.ones(self.n_out)
            else:
                src, dst = numpy.concatenate([self.i0, self.i1]), numpy.concatenate([outputs, outputs])
                w = numpy.concatenate([self.l0, self.l1])
            order = numpy.argsort(src, kind="stable")
            src, dst, w = src[order], dst[order], w[order]
            counts = numpy.bincount(src, minlength=self.n_in)
            slot = numpy.arange(src.size) - (numpy.cumsum(counts) - counts)[src]     # place within its input
            index = numpy.zeros((self.n_in, int(counts.max())), numpy.int64)
            weight = numpy.zeros(index.shape, w.dtype)
            index[src, slot], weight[src, slot] = dst, w
            self.source_index, self.source_weight = index, weight

    def adjoint(self, g, axis):
        """g (.., out, ..) -> (.., in, ..): the transpose of ``apply``."""
        if self.identity:
            return g
        if self.block:                                            # each input repeated k times: sum the k
            shape = g.shape[:axis] + (self.n_in, self.block) + g.shape[axis + 1:]
            blocks = g.reshape(shape)                             # (.., in*k, ..) -> (.., in, k, ..)
            part = lambda j: blocks[(slice(None),) * (axis + 1) + (j,)]   # noqa: E731  (.., in, ..), strided
            out = part(0) + part(1) if self.block > 1 else part(0).copy()
            for j in range(2, self.block):                        # k strided adds: far faster than a sum over a
                out += part(j)                                    # short axis, the same left-to-right order
            return out
        xp = get_array_module(g)
        if not self.dense(g.size):
            self._sources()
            index, weight = self._on(g, "source_index"), self._on(g, "source_weight", g.dtype)   # (in, K) each
            shape = (-1,) + (1,) * (g.ndim - 1 - axis)                   # weights broadcast along ``axis``
            out = xp.take(g, index[:, 0], axis=axis) * weight[:, 0].reshape(shape)
            for k in range(1, index.shape[1]):
                out += xp.take(g, index[:, k], axis=axis) * weight[:, k].reshape(shape)
            return out
        a = self._on(g, "matrix", g.dtype)                        # (out, in)
        if axis == g.ndim - 1:
            return g @ a                                          # (.., out) @ (out, in) -> (.., in)
        return xp.matmul(a.T, g)                                  # (in, out) @ (.., out, W) -> (.., in, W)

    def adjoint_bytes(self, size, itemsize) -> int:
        """A bound on the bytes ``adjoint`` allocates besides its result, for a gradient of ``size`` entries: the
        matrix, or the gathered term, the product and the tables (their width K is at most out/in + 2 per source)."""
        if self.identity or self.block:
            return 0
        if self.dense(size):
            return self.n_out * self.n_in * itemsize
        return 2 * (size // self.n_out) * self.n_in * itemsize + _TABLE_BYTES * (2 * self.n_out + 3 * self.n_in)


def _opmath(dtype):
    return numpy.float64 if numpy.dtype(dtype) == numpy.float64 else numpy.float32


def _nearest_index(n_in, n_out, scale, exact):
    """PyTorch's nearest_idx / nearest_exact_idx: the scale in float32, then floorf."""
    f32 = numpy.float32
    if not exact and n_out in (n_in, 2 * n_in):           # nearest_idx's two exact cases: a copy, a doubling
        return numpy.arange(n_out) // (n_out // n_in)
    s = f32(1.0 / scale) if scale is not None and scale > 0 else f32(n_in) / f32(n_out)
    if exact:                                       # (dst + 0.5) in double, times the float scale, then floorf
        src = ((numpy.arange(n_out) + 0.5) * numpy.float64(s)).astype(f32)
    else:
        src = numpy.arange(n_out).astype(f32) * s
    return numpy.minimum(numpy.floor(src).astype(numpy.int64), n_in - 1)


def _linear_weights(n_in, n_out, scale, align_corners, dtype):
    """PyTorch's compute_source_index_and_lambda, in its opmath type (float64 for float64, else float32)."""
    t = _opmath(dtype)
    dst = numpy.arange(n_out).astype(t)
    if align_corners:
        ratio = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = ratio * dst
    else:
        ratio = t(1.0 / scale) if scale is not None and scale > 0 else t(n_in) / t(n_out)
        src = numpy.maximum(ratio * (dst + t(0.5)) - t(0.5), t(0))
    i0 = numpy.minimum(numpy.floor(src.astype(numpy.float32)).astype(numpy.int64), n_in - 1)
    l1 = numpy.minimum(numpy.maximum(src - i0.astype(t), t(0)), t(1))
    i1 = numpy.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, (t(1) - l1).astype(dtype), l1.astype(dtype)


# Host bytes per output position of an axis that building its tables takes at most (_nearest_index and
# _linear_weights: a few int64 and float64 arrays of n_out entries and their temporaries).
_TABLE_BYTES = 96


@functools.lru_cache(maxsize=64)
def _axis(n_in, n_out, scale, mode, align_corners, dtype):
    """One axis's resize, built once per geometry (its indices, weights and matrices are reused)."""
    return _Axis(n_in, n_out, scale, mode, align_corners, dtype)


def _plan(in_size, out_size, scales, mode, align_corners, dtype):
    dtype = numpy.dtype(dtype).str
    return tuple(_axis(n, o, s, mode, align_corners, dtype) for n, o, s in zip(in_size, out_size, scales))


# -- forward and backward ------------------------------------------------------------------------------------------
def interpolate_forward(x, options, where):
    """x: (N, C, H, W) or (N, C, W) -> (y, saved); options from interpolate_options."""
    check_float_array(x, where)
    if x.ndim not in (3, 4):
        raise ValueError(f"{where}: expected 3-D (N, C, W) or 4-D (N, C, H, W) input, got {x.ndim}-D input of shape "
                         f"{tuple(x.shape)} (minigrad resamples 1-D and 2-D signals)")
    in_size, out_size, scales = _geometry(x.shape, options, where)
    n, c = x.shape[:2]
    x4 = x.reshape((n, c) + in_size)                        # (N, C, W) -> (N, C, 1, W); 4-D unchanged
    rows_first = out_size[0] * in_size[1] <= in_size[0] * out_size[1]       # the smaller intermediate
    middle = (out_size[0], in_size[1]) if rows_first else (in_size[0], out_size[1])
    # the output and the intermediate (linear: each with its second term), and each axis's index and weight tables
    # (built on the host), before any of them
    copies = 1 if options[2].startswith("nearest") else 2
    check_bytes(copies * n * c * (math.prod(out_size) + math.prod(middle)) * x.dtype.itemsize
                + _TABLE_BYTES * sum(out_size), where, (n, c) + out_size, like=x)
    rows, cols = _plan(in_size, out_size, scales, options[2], options[3], x.dtype)
    y = cols.apply(rows.apply(x4, 2), 3) if rows_first else rows.apply(cols.apply(x4, 3), 2)
    saved = (rows, cols, tuple(x.shape), backend_of(x), x.dtype)
    return y.reshape((n, c) + out_size[2 - len(x.shape[2:]):]), saved    # (N, C, 1, OW) -> (N, C, OW)


def interpolate_backward(saved, grad_out, where):
    """grad_out: the output's shape -> the input's: dx = A_h^T dy A_w."""
    rows, cols, in_shape, backend, dtype = saved
    n, c = in_shape[:2]
    out_shape = (n, c) + (rows.n_out, cols.n_out)[4 - len(in_shape):]
    check_grad_like(grad_out, where, out_shape, backend, dtype)
    g = grad_out.reshape((n, c, rows.n_out, cols.n_out))                 # (N, C, OW) -> (N, C, 1, OW)
    cols_first = rows.n_out * cols.n_in <= rows.n_in * cols.n_out        # shrink the larger axis first
    middle = (rows.n_out, cols.n_in) if cols_first else (rows.n_in, cols.n_out)
    first, second = (cols, rows) if cols_first else (rows, cols)
    size, itemsize = n * c * rows.n_out * cols.n_out, grad_out.dtype.itemsize
    work = first.adjoint_bytes(size, itemsize) + second.adjoint_bytes(n * c * math.prod(middle), itemsize)
    check_bytes(n * c * (rows.n_in * cols.n_in + math.prod(middle)) * itemsize + work, where, in_shape, like=grad_out)
    dx = rows.adjoint(cols.adjoint(g, 3), 2) if cols_first else cols.adjoint(rows.adjoint(g, 2), 3)
    return dx.reshape(in_shape)                                          # (N, C, 1, W) -> (N, C, W)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, H, W) ('nearest', 'nearest-exact', 'bilinear') or (N, C, W) ('nearest', 'nearest-exact',
    'linear') to ``size`` or by ``scale_factor``, with PyTorch's index arithmetic. x -> (N, C, OH, OW)."""
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not implemented (only antialias=False)")
    options = interpolate_options(size, scale_factor, mode, align_corners, recompute_scale_factor, "interpolate")
    return interpolate_forward(input, options, "interpolate")[0]


# -- pixel shuffle ------------------------------------------------------------------------------------------------
def check_factor(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def _lead(x, where):
    check_float_array(x, where)
    if x.ndim < 3:
        raise ValueError(f"{where}: expected an input of at least 3 dimensions (*, C, H, W), got {x.ndim}-D input "
                         f"of shape {tuple(x.shape)}")
    return tuple(x.shape[:-3]), math.prod(x.shape[:-3])


def pixel_shuffle_forward(x, r, where):
    """x: (*, C r^2, H, W) -> (*, C, H r, W r)."""
    lead, b = _lead(x, where)
    cr, h, w = x.shape[-3:]
    if cr % (r * r):
        raise ValueError(f"{where}: the input's channel dimension {cr} (shape {tuple(x.shape)}) must be divisible "
                         f"by the square of upscale_factor {r} ({r * r})")
    c = cr // (r * r)
    y = x.reshape((b, c, r, r, h, w))                    # (*, C r r, H, W) -> (B, C, r, r, H, W)
    y = y.transpose(0, 1, 4, 2, 5, 3)                    # -> (B, C, H, r, W, r)
    return y.reshape(lead + (c, h * r, w * r))          # -> (*, C, H r, W r)


def pixel_unshuffle_forward(x, r, where):
    """x: (*, C, H r, W r) -> (*, C r^2, H, W)."""
    lead, b = _lead(x, where)
    c, hr, wr = x.shape[-3:]
    if hr % r or wr % r:
        raise ValueError(f"{where}: the input's height and width {(hr, wr)} (shape {tuple(x.shape)}) must be "
                         f"divisible by downscale_factor {r}")
    h, w = hr // r, wr // r
    y = x.reshape((b, c, h, r, w, r))                    # (*, C, H r, W r) -> (B, C, H, r, W, r)
    y = y.transpose(0, 1, 3, 5, 2, 4)                    # -> (B, C, r, r, H, W)
    return y.reshape(lead + (c * r * r, h, w))          # -> (*, C r r, H, W)


def space_to_depth(x, b, where):
    """ONNX's SpaceToDepth: x (*, C, H b, W b) -> (*, b^2 C, H, W), output channel (i b + j) C + c."""
    lead, n = _lead(x, where)
    c, hb, wb = x.shape[-3:]
    if hb % b or wb % b:
        raise ValueError(f"{where}: the input's height and width {(hb, wb)} (shape {tuple(x.shape)}) must be "
                         f"divisible by blocksize {b}")
    h, w = hb // b, wb // b
    y = x.reshape((n, c, h, b, w, b)).transpose(0, 3, 5, 1, 2, 4)   # (*, C, H b, W b) -> (B, b, b, C, H, W)
    return y.reshape(lead + (b * b * c, h, w))                       # -> (*, b b C, H, W)


def depth_to_space_dcr(x, b, where):
    """ONNX's DepthToSpace, mode DCR (the inverse of space_to_depth): (*, b^2 C, H, W) -> (*, C, H b, W b)."""
    lead, n = _lead(x, where)
    bc, h, w = x.shape[-3:]
    if bc % (b * b):
        raise ValueError(f"{where}: the input's channel dimension {bc} must be divisible by blocksize^2 {b * b}")
    c = bc // (b * b)
    y = x.reshape((n, b, b, c, h, w)).transpose(0, 3, 4, 1, 5, 2)   # (*, b b C, H, W) -> (B, C, H, b, W, b)
    return y.reshape(lead + (c, h * b, w * b))                       # -> (*, C, H b, W b)


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r), as torch.nn.functional.pixel_shuffle."""
    where = "pixel_shuffle"
    return pixel_shuffle_forward(input, check_factor(upscale_factor, "upscale_factor", where), where)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W), as torch.nn.functional.pixel_unshuffle."""
    where = "pixel_unshuffle"
    return pixel_unshuffle_forward(input, check_factor(downscale_factor, "downscale_factor", where), where)
