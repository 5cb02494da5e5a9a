"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (PyTorch signatures and semantics).

All take (N, C, H, W) or unbatched (C, H, W) floating inputs; the operations they run (and the kernels, as
loops over the kernel offsets) are in ``minigrad.functional.pool``.

    MaxPool2d          y = max over each window (pads with -inf)   dx: dy routed to the first argmax
    AvgPool2d          y = window sum / divisor                    dx: dy / divisor spread over the window
    AdaptiveAvgPool2d  y = mean over PyTorch's adaptive bins       dx: dy / bin size spread over the bin
"""
from __future__ import annotations

from ..functional import pool as P
from ..functional.activation import relu_forward
from .layer import Layer

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class _Pool2d(Layer):
    """Shared argument handling of MaxPool2d and AvgPool2d."""
    FORWARD_COPIES = 0      # forward checks its exact output and workspace bytes itself (runtime/memory.py)

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode):
        self.kernel_size, self.stride, self.padding, self.dilation = P.pool_options(
            kernel_size, stride, padding, dilation, type(self).__name__)
        self.ceil_mode = bool(ceil_mode)

    def _options(self):
        return self.kernel_size, self.stride, self.padding, self.dilation

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + f", ceil_mode={self.ceil_mode}"


class ReluAfterPool:
    """A MaxPool2d's cache when it ran before the ReLU of its pair: the pool's own cache and the ReLU's mask."""

    __slots__ = ("pool", "mask")

    def __init__(self, pool, mask):
        self.pool, self.mask = pool, mask


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

    def forward(self, input):
        out, self._cache = P.max_pool(input, self._options(), self.ceil_mode, self.return_indices, self.label)
        return out

    def _forward_relu(self, input):
        """relu(max_pool(input)), for the ReLU before this pool that a container runs after it (nn/fusion.py):
        the cache keeps the ReLU's mask of the pooled output, which backward applies before routing dy."""
        out, saved = P.max_pool(input, self._options(), self.ceil_mode, False, self.label)
        y, mask = relu_forward(out)
        self._cache = ReluAfterPool(saved, mask)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W): each dy added to the input it came from."""
        saved = self.take_cache()
        if isinstance(saved, ReluAfterPool):
            return P.max_pool_backward(saved.pool, grad_out, self.label, relu_mask=saved.mask)
        return P.max_pool_backward(saved, grad_out, self.label)


class AvgPool2d(_Pool2d):
    """Average over kh x kw windows (zero padding; count_include_pad and divisor_override as PyTorch).

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the input shape, geometry and divisor.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self._setup(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = P.check_divisor_override(divisor_override, "AvgPool2d")

    def forward(self, input):
        y, self._cache = P.avg_pool(input, self._options(), self.ceil_mode, self.count_include_pad,
                                    self.divisor_override, self.label)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W)."""
        return P.avg_pool_backward(self.take_cache(), grad_out, self.label)

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
        self.output_size = P.adaptive_output_size(output_size, "AdaptiveAvgPool2d")

    def forward(self, input):
        y, self._cache = P.adaptive_avg_pool(input, self.output_size, self.label)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W)."""
        return P.adaptive_avg_pool_backward(self.take_cache(), grad_out, self.label)

    def extra_repr(self):
        return f"output_size={self.output_size}"
