"""Dropout and Identity.

Dropout (training): y = x * mask, mask = keep / (1 - p), keep ~ Bernoulli(1 - p);  dx = dy * mask.
In eval mode (or p = 0) it is the identity. Cached for backward: the scaled mask (or nothing).

Masks are reproducible under ``mg.manual_seed``: on NumPy (and the strict test backend) the
uniforms come from minigrad's host generator and are moved to the input's backend; on CuPy
a device generator (cuRAND Philox) is seeded from one integer drawn from that host generator,
so no mask crosses the PCIe bus. Either way each forward advances the host generator.
"""
from __future__ import annotations

import numbers

from ..runtime import random as mg_random
from ..runtime.backend import backend_of, get_array_module, is_array, is_gpu_array, to_backend
from ..runtime.checks import check_float_array, check_grad_like
from .layer import Layer

__all__ = ["Dropout", "Identity"]


def _uniform_like(x):
    """Uniform [0, 1) samples of x's shape, on x's backend, driven by minigrad's global generator."""
    generator = mg_random.generator()
    backend = backend_of(x)
    if is_gpu_array(x):
        xp = get_array_module(x)
        seed = int(generator.integers(0, 2**63 - 1))
        method = getattr(getattr(xp.cuda, "curand", None), "CURAND_RNG_PSEUDO_PHILOX4_32_10", None)
        state = xp.random.RandomState(seed, method=method) if method is not None else xp.random.RandomState(seed)
        return state.random_sample(x.shape, dtype=x.dtype)
    return to_backend(generator.random(x.shape).astype(x.dtype), backend)


uniform_like = _uniform_like     # the same draws for nn/dropout_more.py (Dropout2d, AlphaDropout)


class Dropout(Layer):
    """Zero each element with probability p during training and scale the rest by 1/(1-p).

    x: any shape -> same shape. Identity in eval mode. ``inplace`` is accepted for PyTorch
    compatibility; a new array is returned.
    """

    FORWARD_COPIES = 3      # the uniform draws, the scaled mask and the output (measured peak: 3 inputs)

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p!r}")
        self.p, self.inplace = float(p), inplace

    def forward(self, input):
        """input: any shape -> same shape. Caches the scaled mask (None when it is the identity)."""
        check_float_array(input, self.label)
        if not self.training or self.p == 0.0:
            self._cache = (None, tuple(input.shape))
            return input
        if self.p == 1.0:
            mask = get_array_module(input).zeros_like(input)
        else:
            keep = _uniform_like(input) >= self.p                 # P(keep) = 1 - p
            mask = keep.astype(input.dtype) / (1.0 - self.p)
        self._cache = (mask, tuple(input.shape))
        return input * mask

    def backward(self, grad_out):
        """grad_out: same shape as x -> dy * mask (or dy itself in eval mode)."""
        mask, shape = self.take_cache()
        if tuple(grad_out.shape) != shape:
            raise ValueError(f"{self.label}: expected grad_out of shape {shape} (the output shape), "
                             f"got {tuple(grad_out.shape)}")
        if mask is None:
            return grad_out
        get_array_module(grad_out, mask, names=("grad_out", "dropout mask"), where=self.label)
        return grad_out * mask

    def extra_repr(self):
        return f"p={self.p}"


class Identity(Layer):
    """y = x; dx = dy. Accepts and ignores any constructor arguments, like torch.nn.Identity."""
    FORWARD_COPIES = 0      # returns its input: allocates nothing

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        self._cache = (tuple(input.shape), backend_of(input), input.dtype) if is_array(input) else ()
        return input

    def backward(self, grad_out):
        like = self.take_cache()
        if like:
            check_grad_like(grad_out, self.label, *like)
        return grad_out
