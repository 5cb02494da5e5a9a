"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (PyTorch signatures and semantics).

All take (N, C, H, W) or unbatched (C, H, W) floating inputs; the kernels, as loops over
the kernel offsets, are in ``minigrad.functional.pool``.

    MaxPool2d          y = max over each window (pads with -inf)   dx: dy routed to the first argmax
    AvgPool2d          y = window sum / divisor                    dx: dy / divisor spread over the window
    AdaptiveAvgPool2d  y = mean over PyTorch's adaptive bins       dx: dy / bin size spread over the bin
"""
from __future__ import annotations

import numbers

from ..runtime.backend import backend_of, get_array_module
from ..functional import pool as P
from ..runtime.checks import check_float_array, check_grad_like, check_ndim, positive_pair
from .layer import Layer

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


def _as_batched(layer, x):
    """Check x and return it as (N, C, H, W) plus whether it was unbatched (C, H, W)."""
    check_float_array(x, layer.label)
    check_ndim(x, (3, 4), layer.label, "(N, C, H, W) or (C, H, W)")
    if x.ndim == 3:
        return x[None], True                              # (C, H, W) -> (1, C, H, W)
    return x, False


def _check_grad(layer, grad_out, expected_shape, unbatched, like):
    """grad_out must have the output's shape and the input's backend and dtype; like = (backend, dtype)."""
    if unbatched:
        expected_shape = expected_shape[1:]
    check_grad_like(grad_out, layer.label, expected_shape, *like)
    return grad_out[None] if unbatched else grad_out      # (C, OH, OW) -> (1, C, OH, OW)


class _Pool2d(Layer):
    """Shared argument handling of MaxPool2d and AvgPool2d."""

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode):
        where = type(self).__name__
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = self.kernel_size if stride is None or stride == [] else positive_pair(stride, "stride", where)
        self.padding = positive_pair(padding, "padding", where, allow_zero=True)
        self.dilation = positive_pair(dilation, "dilation", where)
        self.ceil_mode = bool(ceil_mode)
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(f"{where}: padding should be at most half of the kernel size, got padding "
                             f"{self.padding} with kernel_size {self.kernel_size}")

    def _geometry(self, x):
        return P.make_pool_geometry(x.shape, self.kernel_size, self.stride, self.padding, self.dilation,
                                    self.ceil_mode, self.label)

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + f", ceil_mode={self.ceil_mode}"


class MaxPool2d(_Pool2d):
    """Max over kh x kw windows. Padding is -inf; ties go to the first maximum, like PyTorch.

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the argmax offsets (uint8) and the input shape.
    return_indices=True makes forward return (y, indices) with PyTorch's flat indices into H*W.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self._setup(kernel_size, stride, padding, dilation, ceil_mode)
        self.return_indices = bool(return_indices)

    def forward(self, x):
        x4, unbatched = _as_batched(self, x)
        geom = self._geometry(x4)
        y, argmax = P.max_pool2d_forward(x4, geom)
        self._cache = (argmax, tuple(x4.shape), geom, unbatched, (backend_of(x4), x4.dtype))
        if unbatched:
            y = y[0]                                       # (1, C, OH, OW) -> (C, OH, OW)
        if self.return_indices:
            indices = self._flat_indices(argmax, geom)
            return y, (indices[0] if unbatched else indices)
        return y

    @staticmethod
    def _flat_indices(argmax, geom):
        """argmax offsets -> PyTorch's indices h*W + w into each (H, W) input plane (int64)."""
        xp = get_array_module(argmax)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geom.kernel, geom.stride, geom.padding, geom.dilation
        oh, ow = geom.out_size
        k = argmax.astype("int64")
        rows = xp.arange(oh, dtype="int64").reshape(-1, 1) * sh - ph + (k // kw) * dh   # (N, C, OH, OW)
        cols = xp.arange(ow, dtype="int64").reshape(1, -1) * sw - pw + (k % kw) * dw
        return rows * geom.in_size[1] + cols

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W): each dy added to the input it came from."""
        argmax, in_shape, geom, unbatched, like = self.take_cache()
        dy = _check_grad(self, grad_out, argmax.shape, unbatched, like)
        grad = P.max_pool2d_backward(dy, argmax, in_shape, geom)
        return grad[0] if unbatched else grad


class AvgPool2d(_Pool2d):
    """Average over kh x kw windows (zero padding; count_include_pad and divisor_override as PyTorch).

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the input shape, geometry and divisor.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self._setup(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(
                divisor_override, numbers.Integral) or divisor_override == 0):
            raise ValueError(f"AvgPool2d: divisor_override must be a non-zero int or None, got {divisor_override!r}")
        self.divisor_override = divisor_override

    def forward(self, x):
        x4, unbatched = _as_batched(self, x)
        geom = self._geometry(x4)
        xp = get_array_module(x4)
        divisor = P.avg_divisor(xp, geom, self.count_include_pad, self.divisor_override, x4.dtype)
        y = P.avg_pool2d_forward(x4, geom, divisor)
        self._cache = (tuple(x4.shape), geom, divisor, unbatched, (backend_of(x4), x4.dtype))
        return y[0] if unbatched else y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W)."""
        in_shape, geom, divisor, unbatched, like = self.take_cache()
        out_shape = in_shape[:2] + geom.out_size
        dy = _check_grad(self, grad_out, out_shape, unbatched, like)
        grad = P.avg_pool2d_backward(dy, in_shape, geom, divisor)
        return grad[0] if unbatched else grad

    def extra_repr(self):
        s = super().extra_repr() + f", count_include_pad={self.count_include_pad}"
        if self.divisor_override:
            s += f", divisor_override={self.divisor_override}"
        return s


class AdaptiveAvgPool2d(Layer):
    """Average pooling to a fixed output size with PyTorch's bins; AdaptiveAvgPool2d(1) is the
    global average pool (a plain mean). output_size: int or pair; None keeps that input size.

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the input shape.
    """

    def __init__(self, output_size):
        super().__init__()
        if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and None in output_size:
            sizes = tuple(None if v is None else positive_pair(v, "output_size", "AdaptiveAvgPool2d")[0]
                          for v in output_size)
        else:
            sizes = positive_pair(output_size, "output_size", "AdaptiveAvgPool2d")
        self.output_size = sizes

    def forward(self, x):
        x4, unbatched = _as_batched(self, x)
        h, w = x4.shape[2:]
        if h < 1 or w < 1:
            raise ValueError(f"{self.label}: expected non-empty spatial dimensions, got input of shape "
                             f"{tuple(x.shape)}")
        out = (self.output_size[0] or h, self.output_size[1] or w)
        y = P.adaptive_avg_pool2d_forward(x4, out)
        self._cache = (tuple(x4.shape), unbatched, (backend_of(x4), x4.dtype))
        return y[0] if unbatched else y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W)."""
        in_shape, unbatched, like = self.take_cache()
        h, w = in_shape[2:]
        out = (self.output_size[0] or h, self.output_size[1] or w)
        dy = _check_grad(self, grad_out, in_shape[:2] + out, unbatched, like)
        grad = P.adaptive_avg_pool2d_backward(dy, in_shape)
        return grad[0] if unbatched else grad

    def extra_repr(self):
        return f"output_size={self.output_size}"
