"""GroupNorm, InstanceNorm2d and LocalResponseNorm, with PyTorch's names, signatures, defaults and state-dict keys.

The math of each forward and backward is in ``minigrad.functional.norm_more`` (GroupNorm and InstanceNorm2d
share its row normalisation and per-channel affine); a layer checks its input as PyTorch does (its refusals,
with the layer's name), caches what the backward needs and checks the gradient it is given.

    GroupNorm          x: (N, C, *) -> same shape; statistics per sample over each group of C/G channels
    InstanceNorm2d     x: (N, C, H, W) or (C, H, W) -> same shape; statistics per sample and channel
    LocalResponseNorm  x: (N, C, *) (3-D or more) -> same shape; across a window of channels
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy

from ..functional import norm_more as F
from ..runtime.backend import active_module, backend_of, get_array_module
from ..runtime.checks import check_float_array, check_grad_like, check_same_dtype
from ..runtime.memory import check_bytes
from .layer import Layer
from .linear import device_dtype
from .norm import check_eps
from .parameter import Parameter

__all__ = ["GroupNorm", "InstanceNorm2d", "LocalResponseNorm"]


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def _affine_parameters(layer, channels: int, dtype, affine: bool, bias: bool, what: str):
    """weight (ones) and bias (zeros) of shape (channels,), or None, as PyTorch initialises them."""
    check_bytes(4 * channels * numpy.dtype(dtype).itemsize, f"{type(layer).__name__}({channels})", (channels,),
                what=what, advice="use smaller layer sizes")
    xp = active_module()
    layer.weight = Parameter(xp.ones(channels, dtype=dtype)) if affine else None
    layer.bias = Parameter(xp.zeros(channels, dtype=dtype)) if affine and bias else None


class _ChannelNorm(Layer):
    """What GroupNorm and InstanceNorm2d share: input checks against the weight, the cached gradient checks and
    the accumulation of the parameter gradients."""

    FORWARD_COPIES = 3      # output, x_hat and the centred input (nn/module_tree.py: the memory guard)

    def _check_input(self, x, reference, reference_name: str):
        if reference is not None:
            get_array_module(x, reference, names=("input", reference_name), where=self.label)
        check_float_array(x, self.label)

    def _check_dtype(self, x, reference, reference_name: str):
        if reference is not None:
            check_same_dtype(x, reference, self.label, "input", reference_name)

    def _take(self, grad_out):
        saved, shape, backend, dtype = self.take_cache()
        check_grad_like(grad_out, self.label, shape, backend, dtype)
        return saved

    def _accumulate(self, dweight, dbias):
        if dweight is not None:
            self.weight.accumulate(dweight, self.label)
        if dbias is not None:
            self.bias.accumulate(dbias, self.label)


class GroupNorm(_ChannelNorm):
    """Group normalisation: each sample's C channels in ``num_groups`` groups of C/G, each group normalised over
    its channels and spatial axes (biased variance), then weight and bias per channel. x: (N, C, *) -> same
    shape. Caches xhat (N, G, C/G * L) and 1/sqrt(var + eps) (N, G, 1)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        dtype = device_dtype(GroupNorm, device, dtype, f"{num_groups!r}, {num_channels!r}, ...")
        groups = _positive_int(num_groups, "num_groups", "GroupNorm")
        channels = _positive_int(num_channels, "num_channels", "GroupNorm")
        if channels % groups:
            raise ValueError(f"GroupNorm: num_channels ({channels}) must be divisible by num_groups ({groups})")
        check_eps(eps, "GroupNorm")
        self.num_groups, self.num_channels, self.eps, self.affine = groups, channels, float(eps), bool(affine)
        _affine_parameters(self, channels, dtype, affine, bias, "weight and bias")
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def forward(self, input):
        """input: (N, C, *) -> same shape. Without affine parameters any C divisible by num_groups is taken
        (as PyTorch, which then never reads num_channels)."""
        weight = self.weight.data if self.weight is not None else None
        self._check_input(input, weight, "weight")
        F.check_group_input(input, self.num_groups, self.label)
        if self.affine and input.shape[1] != self.num_channels:
            raise ValueError(f"{self.label}: expected input with {self.num_channels} channels (num_channels="
                             f"{self.num_channels}) in dimension 1, got input of shape {tuple(input.shape)}")
        self._check_dtype(input, weight, "weight")
        bias = self.bias.data if self.bias is not None else None
        y, saved = F.group_norm_forward(input, self.num_groups, weight, bias, self.eps)
        self._cache = (saved, tuple(input.shape), backend_of(input), input.dtype)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, *) -> dx; adds into weight.grad and bias.grad."""
        saved = self._take(grad_out)
        weight = self.weight.data if self.weight is not None else None
        dx, dweight, dbias = F.group_norm_backward(saved, grad_out, weight, self.bias is not None)
        self._accumulate(dweight, dbias)
        return dx

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class InstanceNorm2d(_ChannelNorm):
    """Instance normalisation: each sample's channel over its H * W values (biased variance), then the optional
    weight and bias (affine=True). x: (N, C, H, W) or unbatched (C, H, W) -> same shape.

    With track_running_stats=True, training moves running_mean / running_var (buffers, as BatchNorm's, with
    num_batches_tracked, which PyTorch's InstanceNorm never counts) towards the batch average of each sample's
    mean and *unbiased* variance, by ``momentum`` (None: PyTorch passes 0, the statistics stay), and eval mode
    normalises with them; with track_running_stats=False (the default) each sample's own statistics are used in
    train and eval. Caches xhat (N, C, H*W) and 1/sqrt(var + eps).
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        where = "InstanceNorm2d"
        dtype = device_dtype(InstanceNorm2d, device, dtype, f"{num_features!r}, ...")
        c = _positive_int(num_features, "num_features", where)
        check_eps(eps, where)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0.0 <= momentum <= 1.0):
            raise ValueError(f"{where}: momentum must be a number in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = c, float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        _affine_parameters(self, c, dtype, affine, bias, "weight, bias and running statistics")
        xp = active_module()
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
        names = ("weight", self.weight) if self.weight is not None else ("running_mean", self.running_mean)
        reference = names[1].data if isinstance(names[1], Parameter) else names[1]
        self._check_input(x, reference, names[0])
        if x.ndim not in (3, 4):
            raise ValueError(f"{where}: expected 3-D or 4-D input (C, H, W) or (N, C, H, W), got {x.ndim}-D input "
                             f"of shape {tuple(x.shape)}")
        channels = x.shape[x.ndim - 3]
        if channels != self.num_features:
            if self.affine or self.track_running_stats:
                raise ValueError(f"{where}: expected input with {self.num_features} channels (num_features="
                                 f"{self.num_features}) in dimension {x.ndim - 3}, got input of shape "
                                 f"{tuple(x.shape)}")
            warnings.warn(f"{where}: input's size at dim={x.ndim - 3} ({channels}) does not match num_features "
                          f"({self.num_features}); it is not used because affine=False (as PyTorch, which warns "
                          "too)", UserWarning, stacklevel=3)
        use_input_stats = self.training or not self.track_running_stats
        if use_input_stats and math.prod(x.shape[x.ndim - 2:]) == 1:
            raise ValueError(f"{where}: expected more than 1 spatial element when training, got input of shape "
                             f"{tuple(x.shape)}")
        if x.ndim == 4 and x.shape[0] == 0 and math.prod(x.shape[1:]):
            if self.affine:
                raise ValueError(f"{where}: expected a non-empty batch with affine=True, got input of shape "
                                 f"{tuple(x.shape)} (PyTorch refuses it too)")
            if self.training and self.track_running_stats:
                raise ValueError(f"{where}: expected a non-empty batch in training with track_running_stats=True, "
                                 f"got input of shape {tuple(x.shape)} (the batch average of no samples would make "
                                 "the running statistics NaN, as PyTorch's become)")
        self._check_dtype(x, reference, names[0])
        return use_input_stats

    def forward(self, input):
        """input: (N, C, H, W) or (C, H, W) -> same shape."""
        use_input_stats = self._check(input)
        batched = input if input.ndim == 4 else input[None]                     # (C, H, W) -> (1, C, H, W)
        x3 = F.channels_view(batched)                                          # (N, C, H, W) -> (N, C, L)
        weight, bias = (p.data if p is not None else None for p in (self.weight, self.bias))
        tracking = self.track_running_stats
        running = (self._buffers["running_mean"], self._buffers["running_var"]) if tracking else (None, None)
        y, saved = F.instance_norm_forward(x3, *running, weight, bias, use_input_stats,
                                           0.0 if self.momentum is None else float(self.momentum), self.eps)
        self._cache = (saved, tuple(input.shape), backend_of(input), input.dtype)
        return y.reshape(input.shape)                                          # (N, C, L) -> input's shape

    def backward(self, grad_out):
        """grad_out: the input's shape -> dx; adds into weight.grad and bias.grad."""
        saved = self._take(grad_out)
        dy = grad_out if grad_out.ndim == 4 else grad_out[None]                # (C, H, W) -> (1, C, H, W)
        weight = self.weight.data if self.weight is not None else None
        dx, dweight, dbias = F.instance_norm_backward(saved, F.channels_view(dy), weight, self.bias is not None)
        self._accumulate(dweight, dbias)
        return dx.reshape(grad_out.shape)                                      # (N, C, L) -> grad_out's shape

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class LocalResponseNorm(Layer):
    """Local response normalisation across channels: y = x / (k + alpha/size * sum of x^2 over a window of
    ``size`` channels)^beta, the window reaching size//2 channels before and (size-1)//2 after (zero beyond the
    edges), as PyTorch. x: (N, C, *) (3-D or more) -> same shape. Caches x, the denominator base and its power."""

    FORWARD_COPIES = 4      # x^2 and its window sum, the power, the output

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = F.check_lrn_options(size, alpha, beta, k, "LocalResponseNorm")

    def forward(self, input):
        """input: (N, C, *) -> same shape."""
        check_float_array(input, self.label)
        if input.ndim < 3:
            raise ValueError(f"{self.label}: expected 3-D or higher input (N, C, *), got {input.ndim}-D input of "
                             f"shape {tuple(input.shape)}")
        y, saved = F.lrn_forward(input, self.size, self.alpha, self.beta, self.k)
        self._cache = (saved, tuple(input.shape), backend_of(input), input.dtype)
        return y

    def backward(self, grad_out):
        """grad_out: (N, C, *) -> dx."""
        saved, shape, backend, dtype = self.take_cache()
        check_grad_like(grad_out, self.label, shape, backend, dtype)
        return F.lrn_backward(saved, grad_out, self.size, self.alpha, self.beta)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
