"""Dropout2d (whole channels) and AlphaDropout (SELU-preserving), with PyTorch's names, defaults and formulas.

Dropout2d (training): keep ~ Bernoulli(1 - p) per (sample, channel), m = keep / (1 - p) broadcast over the
    spatial dimensions; y = x * m, dx = dy * m.
AlphaDropout (training), PyTorch's alpha_dropout with alpha = 1.7580993408473766 (= -SELU's alpha' = -scale *
    alpha): keep ~ Bernoulli(1 - p) per element, a = 1 / sqrt((alpha^2 p + 1)(1 - p)), b = alpha a (keep - 1 + p);
    y = x * (a keep) + b: a kept unit becomes a x + alpha a p, a dropped one the constant -alpha a (1 - p), which
    keeps a standard-normal input's mean 0 and variance 1. dx = dy * (a keep).
Both: the identity in eval mode, for p = 0 and for an empty input; p = 1 gives x * 0 (PyTorch's choice; its
gradient is 0). Cached for backward: the multiplier (a keep, or keep / (1 - p)), or nothing for the identity.
Masks come from minigrad's generator (``mg.manual_seed``) on the input's backend, like nn.Dropout's.
"""
from __future__ import annotations

import math
import numbers
import warnings

from ..runtime.backend import backend_of, get_array_module
from ..runtime.checks import check_float_array, check_grad_like
from .layer import Layer
from .misc import uniform_like

__all__ = ["Dropout2d", "AlphaDropout"]

ALPHA = 1.7580993408473766          # -alpha' of SELU: scale * alpha = 1.0507009873554805 * 1.6732632423543772


def _keep(x, shape, p):
    """Bernoulli(1 - p) as x's dtype, of ``shape``, on x's backend (minigrad's generator)."""
    like = get_array_module(x).empty(shape, dtype=x.dtype)
    return (uniform_like(like) >= p).astype(x.dtype)


class _DropoutBase(Layer):
    """Dropout's options (p checked, inplace accepted: a new array is returned) and the cached multiplier."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout probability has to be between 0 and 1, but got {p!r}")
        self.p, self.inplace = float(p), inplace

    def _identity(self, input):
        return not self.training or self.p == 0.0 or input.size == 0

    def _draw(self, input):
        """-> (multiplier broadcastable to input, additive term or None); p < 1."""
        raise NotImplementedError

    def forward(self, input):
        """input: any shape -> same shape. Caches the multiplier (None for the identity)."""
        check_float_array(input, self.label)
        self._check_input(input)
        like = (tuple(input.shape), backend_of(input), input.dtype)
        if self._identity(input):
            self._cache = (None, like)
            return input
        if self.p == 1.0:                          # PyTorch: input * 0 (NaN stays NaN), gradient 0
            multiplier, shift = get_array_module(input).zeros((), dtype=input.dtype), None
        else:
            multiplier, shift = self._draw(input)
        self._cache = (multiplier, like)
        y = input * multiplier
        return y if shift is None else y + shift

    def backward(self, grad_out):
        """grad_out: the input's shape -> dy * multiplier (dy itself for the identity)."""
        multiplier, like = self.take_cache()
        check_grad_like(grad_out, self.label, *like)
        return grad_out if multiplier is None else grad_out * multiplier

    def _check_input(self, input):
        pass

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(_DropoutBase):
    """Zero whole channels: input[n, c] is zeroed with probability p (per sample and channel) during training
    and the rest scaled by 1/(1-p). (N, C, H, W) -> same shape. As in PyTorch, a 3-D input is read as (N, C, L)
    (channel-wise 1-D dropout, with PyTorch's warning) and other ranks of >= 2 dimensions warn and drop
    input[n, c] slices."""

    def _check_input(self, input):
        if input.ndim < 2:
            raise ValueError(f"{self.label}: feature dropout requires at least 2 dimensions in the input (N, C, ...), "
                             f"got {input.ndim}-D input of shape {tuple(input.shape)}")
        if input.ndim not in (3, 4):
            warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will "
                          "result in an error in a future release. To retain the behavior and silence this "
                          "warning, please use dropout instead. Note that dropout2d exists to provide channel-wise "
                          "dropout on inputs with 2 spatial dimensions, a channel dimension, and an optional batch "
                          "dimension (i.e. 3D or 4D inputs).", stacklevel=4)
        if input.ndim == 3:
            warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                          "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
                          "dim. This behavior will change in a future release to interpret the input as one without "
                          "a batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout "
                          "behavior, please switch to using dropout1d instead.", stacklevel=4)

    def _draw(self, input):
        shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)          # one draw per (n, c)
        return _keep(input, shape, self.p) / (1.0 - self.p), None       # (N, C, 1, 1) broadcasts


class AlphaDropout(_DropoutBase):
    """Alpha dropout for SELU networks: dropped units are set to SELU's negative saturation and the result is
    affinely rescaled so a standard-normal input keeps mean 0 and variance 1. Any shape -> same shape."""
    FORWARD_COPIES = 4      # the mask, the multiplier, the shift and the output

    def _draw(self, input):
        p = self.p
        a = 1.0 / math.sqrt((ALPHA * ALPHA * p + 1.0) * (1.0 - p))
        keep = _keep(input, tuple(input.shape), p)
        shift = (keep - 1.0) * (ALPHA * a) + ALPHA * a * p               # alpha a (keep - 1 + p)
        return keep * a, shift
