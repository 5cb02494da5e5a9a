"""Normalisation layers: BatchNorm1d, BatchNorm2d and LayerNorm, with PyTorch's semantics.

BatchNorm normalises each channel c over the batch and spatial axes (n = values per channel):

    xhat = (x - mean) / sqrt(var + eps),   y = weight * xhat + bias     (var biased)
    train:  dx = invstd / n * (n*g - sum(g) - xhat * sum(g * xhat)),  g = dy * weight
    eval:   dx = dy * weight * invstd  (running statistics are constants)
    dweight = sum(dy * xhat),  dbias = sum(dy)

In training, running_mean/running_var move by ``momentum`` towards the batch mean and the
*unbiased* batch variance (momentum=None: cumulative average, factor 1/num_batches_tracked).
With track_running_stats=False the batch statistics are used in train and eval, as in PyTorch.
LayerNorm is the same normalisation over the trailing ``normalized_shape`` axes of each sample.
BatchNorm computes on the (N, C, L) view of its input (functional/batch_stats.py: PyTorch's formulation, the
per-channel sums as dot products, large batches in chunks of samples on the thread pool) and caches that view
of x, the mean, invstd and whether batch statistics were used.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..functional.batch_stats import batch_affine, batch_moments, batch_norm_grads
from ..runtime.backend import active_module, get_array_module
from ..runtime.memory import check_bytes
from ..runtime.checks import check_float_array, check_ndim, check_same_dtype
from .layer import Layer
from .linear import device_dtype
from .parameter import Parameter


def check_eps(eps, where: str) -> None:
    """eps (added to the variance) must be a finite number >= 0; a negative one makes sqrt(var + eps) nan."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0.0 <= eps < math.inf:
        raise ValueError(f"{where}: eps must be a finite number >= 0, got {eps!r}")

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


def _normalize_backward(grad_xhat, xhat, invstd, axes, count):
    """dx of xhat = (x - mean(x)) * invstd with batch statistics over ``axes`` (count values each)."""
    sum_g = grad_xhat.sum(axis=axes, keepdims=True)
    sum_gx = (grad_xhat * xhat).sum(axis=axes, keepdims=True)
    return (invstd / count) * (count * grad_xhat - sum_g - xhat * sum_gx)


class _BatchNorm(Layer):
    """Shared BatchNorm implementation; subclasses fix the accepted input ranks."""

    _ndims: tuple = ()
    _layout: str = ""
    FORWARD_COPIES = 3      # output, a copy of a strided input and a chunk's scratch (nn/module_tree.py: the memory guard)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        where = type(self).__name__
        dtype = device_dtype(type(self), device, dtype, f"{num_features!r}, ...")
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"{where}: num_features must be a positive int, got {num_features!r}")
        check_eps(eps, where)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"{where}: momentum must be a number in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        xp = active_module()
        c = self.num_features
        check_bytes(4 * c * numpy.dtype(dtype).itemsize, f"{where}({c})", (c,), what="weight, bias and running "
                    "statistics", advice="use smaller layer sizes")
        self.weight = Parameter(xp.ones(c, dtype=dtype)) if affine else None
        self.bias = Parameter(xp.zeros(c, dtype=dtype)) if affine and bias else None   # bias=False: scale only
        if track_running_stats:
            self.register_buffer("running_mean", xp.zeros(c, dtype=dtype))
            self.register_buffer("running_var", xp.ones(c, dtype=dtype))
            self.register_buffer("num_batches_tracked", xp.zeros((), dtype="int64"))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def _check(self, x):
        where = self.label
        reference = self.weight.data if self.affine else self.running_mean
        get_array_module(x, reference, names=("input", "weight" if self.affine else "running_mean"), where=self.label)
        check_float_array(x, where)
        check_ndim(x, self._ndims, where, self._layout)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{where}: expected input with {self.num_features} channels (num_features="
                             f"{self.num_features}) in dimension 1, got input of shape {tuple(x.shape)}")
        if reference is not None:
            check_same_dtype(x, reference, where, "input", "weight" if self.affine else "running_mean")

    def forward(self, input):
        """input: (N, C, *) -> (N, C, *). Caches xhat (N, C, L), invstd (C,) and the mode.

        The math runs on the (N, C, L) view (L = the spatial size, 1 for (N, C) input), so every
        per-channel sum is a reduction over the contiguous last axis, then over N.
        """
        self._check(input)
        xp = get_array_module(input)
        n, c = input.shape[0], self.num_features
        x3 = input.reshape(n, c, math.prod(input.shape[2:]))                      # (N, C, *) -> (N, C, L)
        count = x3.shape[0] * x3.shape[2]
        use_batch_stats = self.training or not self.track_running_stats
        if count == 0:  # an empty batch: an empty output; PyTorch counts the batch but moves no statistic
            if self.training and self.track_running_stats:
                self._buffers["num_batches_tracked"] += 1
            self._cache = (x3, None, None, use_batch_stats, tuple(input.shape), count)
            return input.copy()
        if use_batch_stats:
            if count <= 1:
                raise ValueError(f"{self.label}: expected more than 1 value per channel when training, got "
                                 f"input of shape {tuple(input.shape)}")
            mean, var = batch_moments(x3)                                  # (C,) each; var biased
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, count)
        else:
            mean, var = self.running_mean, self.running_var
        invstd = 1.0 / xp.sqrt(var + self.eps)                            # (C,)
        self._cache = (x3, mean, invstd, use_batch_stats, tuple(input.shape), count)
        weight = self.weight.data if self.affine else None
        bias = self.bias.data if self.bias is not None else None
        return batch_affine(x3, mean, invstd, weight, bias).reshape(input.shape)   # (N, C, L) -> (N, C, *)

    def _update_running_stats(self, mean, var, count):
        """running = (1 - f) * running + f * batch (variance unbiased); f = momentum or 1/batches."""
        # in place on the buffers (no attribute assignment, which would reorder the state dict)
        running_mean, running_var, batches = (self._buffers[name] for name in
                                              ("running_mean", "running_var", "num_batches_tracked"))
        batches += 1
        factor = 1.0 / int(batches) if self.momentum is None else float(self.momentum)
        running_mean *= 1.0 - factor
        running_mean += factor * mean
        running_var *= 1.0 - factor
        running_var += (factor * count / (count - 1)) * var

    def backward(self, grad_out):
        """grad_out: (N, C, *) -> dx (N, C, *); adds into weight.grad and bias.grad.

        With g = dy * weight, the per-channel sums in the train-mode formula are weight * sum(dy) and
        weight * sum(dy * xhat), the bias and weight gradients, so
        dx = weight * invstd * (dy - sum(dy)/n - xhat * sum(dy * xhat)/n).
        """
        x3, mean, invstd, use_batch_stats, shape, count = self.take_cache()
        get_array_module(grad_out, x3, names=("grad_out", "input"), where=self.label)
        if tuple(grad_out.shape) != shape:
            raise ValueError(f"{self.label}: expected grad_out of shape {shape} (the output shape), "
                             f"got {tuple(grad_out.shape)}")
        check_same_dtype(grad_out, x3, self.label, "grad_out", "input")
        xp = get_array_module(grad_out)
        dy = grad_out.reshape(x3.shape)                                   # (N, C, *) -> (N, C, L)
        if count == 0:                            # empty batch: its parameter gradients are 0 (as PyTorch's)
            if self.affine:
                self.weight.accumulate(xp.zeros_like(self.weight.data), self.label)
                if self.bias is not None:
                    self.bias.accumulate(xp.zeros_like(self.bias.data), self.label)
            return grad_out.copy()
        weight = self.weight.data if self.affine else None
        dx, sum_dy, sum_dy_xhat = batch_norm_grads(dy, x3, mean, invstd, weight, use_batch_stats)
        if self.affine:
            self.weight.accumulate(sum_dy_xhat, self.label)
            if self.bias is not None:
                self.bias.accumulate(sum_dy, self.label)
        return dx.reshape(shape)                                          # (N, C, L) -> (N, C, *)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}" + ("" if self.bias is not None or not self.affine
                                                                     else ", bias=False"))


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L) for each channel C."""

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H, W for each channel C."""

    _ndims = (4,)
    _layout = "(N, C, H, W)"


class LayerNorm(Layer):
    """Normalise each sample over its trailing ``normalized_shape`` axes; optional affine weight/bias
    of shape normalized_shape. x: (*, *normalized_shape) -> same shape."""
    FORWARD_COPIES = 3      # output, x_hat and the centred input (nn/module_tree.py: the memory guard)

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        dtype = device_dtype(LayerNorm, device, dtype, f"{normalized_shape!r}, ...")
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a non-empty tuple of "
                             f"positive ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(s) for s in shape)
        check_eps(eps, "LayerNorm")
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        check_bytes(2 * math.prod(self.normalized_shape) * numpy.dtype(dtype).itemsize,
                    f"LayerNorm({self.normalized_shape})", self.normalized_shape, what="weight and bias",
                    advice="use smaller layer sizes")
        xp = active_module()
        self.weight = Parameter(xp.ones(self.normalized_shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(xp.zeros(self.normalized_shape, dtype=dtype)) if elementwise_affine and bias else None
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def forward(self, input):
        """input: (*, *normalized_shape) -> same shape. Caches xhat and invstd (*, 1, ..)."""
        where = self.label
        k = len(self.normalized_shape)
        reference = self.weight.data if self.weight is not None else None
        get_array_module(input, reference, names=("input", "weight"), where=self.label)
        check_float_array(input, where)
        if input.ndim < k or tuple(input.shape[input.ndim - k:]) != self.normalized_shape:
            raise ValueError(f"{where}: expected input whose trailing dimensions are normalized_shape="
                             f"{self.normalized_shape}, got input of shape {tuple(input.shape)}")
        if reference is not None:
            check_same_dtype(input, reference, where, "input", "weight")
        xp = get_array_module(input)
        axes = tuple(range(input.ndim - k, input.ndim))
        mean = input.mean(axis=axes, keepdims=True)
        centered = input - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        invstd = 1.0 / xp.sqrt(var + self.eps)
        xhat = centered * invstd
        self._cache = (xhat, invstd, axes)
        y = xhat
        if self.weight is not None:
            y = y * self.weight.data
        if self.bias is not None:
            y = y + self.bias.data
        return y

    def backward(self, grad_out):
        """grad_out: same shape as x -> dx; adds into weight.grad and bias.grad."""
        xhat, invstd, axes = self.take_cache()
        get_array_module(grad_out, xhat, names=("grad_out", "input"), where=self.label)
        if tuple(grad_out.shape) != tuple(xhat.shape):
            raise ValueError(f"{self.label}: expected grad_out of shape {tuple(xhat.shape)} (the output shape), "
                             f"got {tuple(grad_out.shape)}")
        batch_axes = tuple(range(xhat.ndim - len(axes)))
        grad_xhat = grad_out
        if self.weight is not None:
            self.weight.accumulate((grad_out * xhat).sum(axis=batch_axes), self.label)
            grad_xhat = grad_out * self.weight.data
        if self.bias is not None:
            self.bias.accumulate(grad_out.sum(axis=batch_axes), self.label)
        count = math.prod(self.normalized_shape)
        return _normalize_backward(grad_xhat, xhat, invstd, axes, count)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
