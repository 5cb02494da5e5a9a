"""1-d pooling layers over (N, C, L) or unbatched (C, L): the 2-D pools with H = 1 (functional/signal1d.py).

    MaxPool1d, AvgPool1d              MaxPool2d / AvgPool2d with kernel (1, k), stride (1, s), padding (0, p)
    AdaptiveAvgPool1d, AdaptiveMaxPool1d   AdaptiveAvgPool2d / AdaptiveMaxPool2d to (1, output_size)
    LPPool1d                          LPPool2d with kernel (1, k): (k * avg_pool1d(x^p))^(1/p)

Indices (return_indices=True) are PyTorch's int64 positions into L. PyTorch's signatures and defaults.
"""
from __future__ import annotations

from ..functional import pool as P
from ..functional import pool_more as M
from ..functional import signal1d as S
from .layer import Layer

__all__ = ["MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "LPPool1d"]


class _Lifted(Layer):
    """A 1-d pool: forward runs ``self._run(x)`` -> (out, saved); backward the 2-D backward ``_BACKWARD``."""
    FORWARD_COPIES = 0      # the 2-D operations check their exact output and workspace bytes themselves
    _BACKWARD = None

    def forward(self, input):
        out, self._cache = self._run(input)
        return out

    def backward(self, grad_out):
        """grad_out: (N, C, OL) -> (N, C, L)."""
        return S.lift_backward(type(self)._BACKWARD, self.take_cache(), grad_out, self.label)


class MaxPool1d(_Lifted):
    """Max over windows of k (padding is -inf; ties go to the first maximum, a NaN wins, like PyTorch).
    x: (N, C, L) -> (N, C, OL). Caches the argmax offsets and the input shape."""
    _BACKWARD = staticmethod(P.max_pool_backward)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self._options = S.pool1d_options(kernel_size, stride, padding, dilation, "MaxPool1d")
        self.kernel_size, self.stride, self.padding, self.dilation = self._options[0]
        self.return_indices, self.ceil_mode = bool(return_indices), bool(ceil_mode)

    def _run(self, x):
        return S.max_pool(x, self._options, self.ceil_mode, self.return_indices, self.label)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool1d(_Lifted):
    """Average over windows of k (zero padding; count_include_pad as PyTorch). x: (N, C, L) -> (N, C, OL).
    Caches the input shape, geometry and divisor."""
    _BACKWARD = staticmethod(P.avg_pool_backward)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self._options = S.pool1d_options(kernel_size, stride, padding, 1, "AvgPool1d")
        k, s, p, _ = self._options[0]
        self.kernel_size, self.stride, self.padding = (k,), (s,), (p,)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)

    def _run(self, x):
        return S.avg_pool(x, self._options, self.ceil_mode, self.count_include_pad, self.label)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class LPPool1d(_Lifted):
    """Power-average pooling over windows of k: (k * avg_pool1d(x^p))^(1/p), as PyTorch computes it
    (norm_type=inf: max_pool1d(|x|)). x: (N, C, L) -> (N, C, OL). Caches the input and the window averages."""
    FORWARD_COPIES = 3      # x^p, the window averages and their scaled copy, the output
    _BACKWARD = staticmethod(M.lp_pool_backward)

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type = M.check_norm_type(norm_type, "LPPool1d")
        self._options = S.pool1d_options(kernel_size, stride, 0, 1, "LPPool1d")
        self.kernel_size, self.stride = self._options[0][:2]
        self.ceil_mode = bool(ceil_mode)
        self._given = (norm_type, stride)   # PyTorch's repr shows them as given (stride None: the kernel size)

    def _run(self, x):
        return S.lp_pool(x, self.norm_type, self._options, self.ceil_mode, self.label)

    def extra_repr(self):
        norm_type, stride = self._given
        return (f"norm_type={norm_type}, kernel_size={self.kernel_size}, stride={None if stride is None else self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class AdaptiveAvgPool1d(_Lifted):
    """Mean over PyTorch's adaptive bins [floor(iL/OL), ceil((i+1)L/OL)). x: (N, C, L) -> (N, C, output_size).
    Caches the input shape."""
    _BACKWARD = staticmethod(P.adaptive_avg_pool_backward)

    def __init__(self, output_size):
        super().__init__()
        self.output_size = S.single(output_size, "output_size", "AdaptiveAvgPool1d")

    def _run(self, x):
        return S.adaptive_avg_pool(x, self.output_size, self.label)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_Lifted):
    """Max over PyTorch's adaptive bins (the first maximum; a NaN wins). x: (N, C, L) -> (N, C, output_size),
    and int64 indices into L with return_indices=True. Caches the indices and the input shape."""
    _BACKWARD = staticmethod(M.adaptive_max_pool_backward)

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = S.single(output_size, "output_size", "AdaptiveMaxPool1d")
        self.return_indices = bool(return_indices)

    def _run(self, x):
        return S.adaptive_max_pool(x, self.output_size, self.return_indices, self.label)

    def extra_repr(self):
        return f"output_size={self.output_size}"
