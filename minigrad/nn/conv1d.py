"""Conv1d: Conv2d's unfold kernel with H = 1 (no second implementation).

forward:  (N, C, L) -> view (N, C, 1, L) -> [pad2d (0, 0, left, right) ->] conv_forward with the weight viewed
          (O, C/G, k) -> (O, C/G, 1, k), kernel (1, k), stride (1, s), dilation (1, d) -> (N, O, 1, OL) -> (N, O, OL)
backward: dy viewed (N, O, 1, OL) -> conv_backward -> dW (O, C/G, 1, k) viewed (O, C/G, k), db (O,),
          dx (N, C, 1, L) [-> pad2d_backward] viewed (N, C, L)
The weight is stored as PyTorch's (out_channels, in_channels/groups, k), so state dicts load both ways.
"""
from __future__ import annotations

import math

from ..functional.conv import conv_backward, conv_forward, make_geometry
from ..functional.padding import PADDING_MODES, check_padding, pad2d, pad2d_backward
from ..functional.signal1d import LAYOUT, check_conv1d, conv1d_padding, single
from ..runtime.backend import get_array_module
from ..runtime.checks import check_float_array, check_ndim, check_same_dtype
from .conv import ConvBase
from .grad_mode import is_grad_enabled
from .linear import device_dtype
from .parameter import Parameter

__all__ = ["Conv1d"]


class Conv1d(ConvBase):
    """1-D convolution over (N, C, L) (or unbatched (C, L)) inputs, with PyTorch's signature and default init.

    weight: (out_channels, in_channels/groups, k); bias: (out_channels,).
    padding: int, 1-tuple, 'valid' or 'same'; padding_mode: 'zeros', 'reflect', 'replicate', 'circular'.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        where = "Conv1d"
        dtype = device_dtype(Conv1d, device, dtype, f"{in_channels!r}, {out_channels!r}, {kernel_size!r}, ...")
        k, s = single(kernel_size, "kernel_size", where), single(stride, "stride", where)
        d = single(dilation, "dilation", where)
        super().__init__(where, in_channels, out_channels, (1, k), (1, s), (1, d), groups, bias,
                         weight_channels=(out_channels, in_channels), fan_in_channels=in_channels, dtype=dtype)
        weight = self.weight.data.reshape(out_channels, in_channels // groups, k)   # (O, C/G, 1, k) -> (O, C/G, k)
        self.weight = Parameter(weight)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{where}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self._padding2d, (left, right) = conv1d_padding(padding, k, s, d, where)
        self.kernel_size, self.stride, self.dilation = (k,), (s,), (d,)
        self.padding = padding if isinstance(padding, str) else (left,)
        self._pads = (0, 0, left, right)
        self.padding_mode = padding_mode
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def _batched(self, x):
        """(x as (N, C, L), whether x came unbatched as (C, L)), like PyTorch's convolutions."""
        check_float_array(x, self.label)
        check_ndim(x, (2, 3), self.label, LAYOUT)
        return (x[None], True) if x.ndim == 2 else (x, False)      # (C, L) -> (1, C, L)

    def _weight4(self):
        return self.weight.data[:, :, None, :]                       # (O, C/G, k) -> (O, C/G, 1, k)

    def _geometry(self, x):
        """x: (N, C, L) -> the 2-D ConvGeometry of x viewed (N, C, 1, L) (padded first in the other modes)."""
        where = self.label
        get_array_module(x, self.weight.data, names=("input", "weight"), where=where)
        check_same_dtype(x, self.weight.data, where, "input", "weight")
        left, right = self._pads[2:]
        check_conv1d(x.shape, self.weight.shape, self.kernel_size[0], (left, right), self.dilation[0], self.groups,
                     where)
        if self.padding_mode == "zeros":
            return make_geometry(x.shape[:2] + (1, x.shape[2]), self._weight4().shape, (1, self.stride[0]),
                                 self._padding2d, (1, self.dilation[0]), self.groups, where)
        check_padding((1, x.shape[2]), self._pads, self.padding_mode, where)
        return make_geometry(x.shape[:2] + (1, x.shape[2] + left + right), self._weight4().shape,
                             (1, self.stride[0]), 0, (1, self.dilation[0]), self.groups, where)

    def forward(self, input):
        """input: (N, C, L) -> (N, O, OL), or unbatched (C, L) -> (O, OL). Caches the (padded) input."""
        x, unbatched = self._batched(input)
        geom = self._geometry(x)
        x = x[:, :, None, :]                                         # (N, C, L) -> (N, C, 1, L)
        if self.padding_mode != "zeros":   # the padded input and the output are checked before padding
            x = pad2d(x, self._pads, self.padding_mode, where=self.label, extra=math.prod(geom.out_shape),
                      advice=None)                                   # (N, C, 1, L) -> (N, C, 1, L+left+right)
        bias = self.bias.data if self.bias is not None else None
        saved = {} if is_grad_enabled() else None                    # the kernel may keep its columns here
        self._cache = (x, geom, saved, unbatched)
        y = conv_forward(x, self._weight4(), bias, geom, saved)[:, :, 0, :]   # (N, O, 1, OL) -> (N, O, OL)
        return y[0] if unbatched else y

    def _backward(self, grad_out, need_input):
        """grad_out: (N, O, OL) -> grad of input (N, C, L) or None; adds into weight.grad, bias.grad."""
        x, geom, saved, unbatched = self.take_cache()
        n, o, _, out_length = geom.out_shape
        grad_out = self._batched_grad(grad_out, (n, o, out_length), x, unbatched)[:, :, None, :]   # -> (N, O, 1, OL)
        need_weight = self.weight.requires_grad
        need_bias = self.bias is not None and self.bias.requires_grad
        grad_x = grad_w = grad_b = None
        if need_input or need_weight or need_bias:
            grad_x, grad_w, grad_b = conv_backward(x, self._weight4(), grad_out, geom, need_input=need_input,
                                                   need_weight=need_weight, need_bias=need_bias, saved=saved)
        if need_weight:
            self.weight.accumulate(grad_w.reshape(self.weight.shape), self.label)   # (O, C/G, 1, k) -> (O, C/G, k)
        if need_bias:
            self.bias.accumulate(grad_b, self.label)
        if grad_x is None:
            return None
        if self.padding_mode != "zeros":
            grad_x = pad2d_backward(grad_x, self._pads, self.padding_mode)
        grad_x = grad_x[:, :, 0, :]                                  # (N, C, 1, L) -> (N, C, L)
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0,), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s
