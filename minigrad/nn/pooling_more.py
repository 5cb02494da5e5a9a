"""AdaptiveMaxPool2d and LPPool2d (PyTorch signatures and semantics); the math is in minigrad.functional.pool_more.

    AdaptiveMaxPool2d  y = max over PyTorch's adaptive bins        dx: dy to the bin's first maximum (a NaN wins)
    LPPool2d           y = (kh*kw * avg_pool2d(x^p))^(1/p)          dx: the chain rule of those steps

Both take (N, C, H, W) or unbatched (C, H, W) floating inputs.
"""
from __future__ import annotations

from ..functional import pool as P
from ..functional import pool_more as M
from .layer import Layer

__all__ = ["AdaptiveMaxPool2d", "LPPool2d"]


class AdaptiveMaxPool2d(Layer):
    """Max pooling to a fixed output size with PyTorch's bins [floor(iH/OH), ceil((i+1)H/OH)) (they overlap
    when the sizes do not divide; an output larger than the input repeats elements). output_size: int or pair;
    None keeps that input size. return_indices=True makes forward return (y, indices) with PyTorch's int64
    flat indices h*W + w into each input plane.

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the indices and the input shape.
    """
    FORWARD_COPIES = 0      # forward checks its exact output and workspace bytes itself (runtime/memory.py)

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = P.adaptive_output_size(output_size, "AdaptiveMaxPool2d")
        self.return_indices = bool(return_indices)

    def forward(self, input):
        out, self._cache = M.adaptive_max_pool(input, self.output_size, self.return_indices, self.label)
        return out

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W): each dy added to the input it came from."""
        return M.adaptive_max_pool_backward(self.take_cache(), grad_out, self.label)

    def extra_repr(self):
        return f"output_size={self.output_size}" + (", return_indices=True" if self.return_indices else "")


class LPPool2d(Layer):
    """Power-average pooling: y = (sum over each kh x kw window of x^p)^(1/p), computed as PyTorch does:
    avg_pool2d(x^p) (no padding; ceil_mode's clipped windows divided by their clipped size) times kh*kw, its
    sign kept, to the power 1/p. norm_type=inf is max_pool2d(|x|), -inf is -max_pool2d(-|x|).
    x^p of a negative x is NaN for a non-integer p, as in PyTorch.

    x: (N, C, H, W) -> (N, C, OH, OW). Caches the input, the window averages and their scaled copy.
    """
    FORWARD_COPIES = 3      # x^p, the window averages and their scaled copy, the output

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        where = "LPPool2d"
        self.norm_type = M.check_norm_type(norm_type, where)
        self.kernel_size, self.stride, _, _ = P.pool_options(kernel_size, stride, 0, 1, where)
        self.ceil_mode = bool(ceil_mode)

    def _options(self):
        return self.kernel_size, self.stride, (0, 0), (1, 1)

    def forward(self, input):
        y, self._cache = M.lp_pool(input, self.norm_type, self._options(), self.ceil_mode, self.label)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, OH, OW) -> (N, C, H, W)."""
        return M.lp_pool_backward(self.take_cache(), grad_out, self.label)

    def extra_repr(self):
        return (f"norm_type={self.norm_type:g}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")
