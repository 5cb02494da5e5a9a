"""Conv2d: a layer around ``minigrad.functional.conv`` with exact gradients.

forward:  y = conv(pad(x), W) + b                 x: (N, C, H, W) -> y: (N, O, OH, OW)
backward: dW += conv2d_weight(pad(x), dy)          (O, C/groups, kh, kw)
          db += dy.sum((0, 2, 3))                  (O,)
          dx  = pad_backward(conv2d_input(W, dy))  (N, C, H, W)
Cached for backward: the (padded) input, and the kernel's columns when they are small (cpu_runtime). ``ConvBase`` holds what Conv2d and ConvTranspose2d share.
"""
from __future__ import annotations

import math
import numbers

from ..functional.conv import conv_backward, conv_forward, make_geometry, resolve_padding
from ..functional.padding import PADDING_MODES, check_padding, pad2d, pad2d_backward
from ..runtime.checks import check_float_array, check_ndim, check_same_dtype, positive_pair
from .init import fan_in_bias, kaiming_uniform
from .grad_mode import is_grad_enabled
from .layer import Layer
from .linear import device_dtype
from .parameter import Parameter
from ..debug import tracing
from ..runtime.backend import get_array_module


class ConvBase(Layer):
    """What Conv2d and ConvTranspose2d share: argument checks, the weight and bias, and the repr.

    weight: (weight_channels[0], weight_channels[1] / groups, kh, kw); bias: (out_channels,).
    """
    FORWARD_COPIES = 0      # forward checks its exact output and workspace bytes itself (runtime/memory.py)

    def __init__(self, where, in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                 weight_channels, fan_in_channels, dtype):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
        if in_channels % groups:
            raise ValueError(f"{where}: in_channels={in_channels} is not divisible by groups={groups}")
        if out_channels % groups:
            raise ValueError(f"{where}: out_channels={out_channels} is not divisible by groups={groups}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", where)
        self.stride = positive_pair(stride, "stride", where)
        self.dilation = positive_pair(dilation, "dilation", where)
        fan_in = (fan_in_channels // groups) * self.kernel_size[0] * self.kernel_size[1]
        first, second = weight_channels
        label = f"{where}({in_channels}, {out_channels}, kernel_size={self.kernel_size})"   # names it in MemoryError
        self.weight = Parameter(kaiming_uniform((first, second // groups) + self.kernel_size, fan_in, dtype=dtype,
                                                where=label))
        self.bias = Parameter(fan_in_bias((out_channels,), fan_in, dtype=dtype, where=label)) if bias else None

    def _batched(self, x):
        """(x as (N, C, H, W), whether x came unbatched as (C, H, W)), like PyTorch's convolutions."""
        check_float_array(x, self.label)
        check_ndim(x, (3, 4), self.label, "(N, C, H, W) or (C, H, W)")
        return (x[None], True) if x.ndim == 3 else (x, False)   # (C, H, W) -> (1, C, H, W)

    def _batched_grad(self, grad_out, out_shape, like, unbatched):
        """grad_out checked against the output's shape (without N when unbatched), returned batched."""
        self.check_grad_out(grad_out, out_shape[1:] if unbatched else out_shape, like)
        return grad_out[None] if unbatched else grad_out       # (O, OH, OW) -> (1, O, OH, OW)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Conv2d(ConvBase):
    """2-D convolution over (N, C, H, W) inputs, with PyTorch's signature and default init.

    weight: (out_channels, in_channels/groups, kh, kw); bias: (out_channels,).
    padding: int, pair, 'valid' or 'same'; padding_mode: 'zeros', 'reflect', 'replicate', 'circular'.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        where = "Conv2d"
        dtype = device_dtype(Conv2d, device, dtype, f"{in_channels!r}, {out_channels!r}, {kernel_size!r}, ...")
        super().__init__(where, in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                         weight_channels=(out_channels, in_channels), fan_in_channels=in_channels, dtype=dtype)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{where}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding = padding if isinstance(padding, str) else positive_pair(padding, "padding", where, True)
        self._pads = resolve_padding(self.padding, self.kernel_size, self.stride, self.dilation, where)
        self.padding_mode = padding_mode
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def _geometry(self, x):
        where = self.label
        get_array_module(x, self.weight.data, names=("input", "weight"), where=self.label)
        check_float_array(x, where)
        check_ndim(x, 4, where, "(N, C, H, W)")
        check_same_dtype(x, self.weight.data, where, "input", "weight")
        padding = 0 if self.padding_mode != "zeros" else self.padding
        in_shape = tuple(x.shape)
        if self.padding_mode != "zeros":
            check_padding(x.shape[2:], self._pads, self.padding_mode, where)
            top, bottom, left, right = self._pads
            in_shape = in_shape[:2] + (in_shape[2] + top + bottom, in_shape[3] + left + right)
        return make_geometry(in_shape, self.weight.shape, self.stride, padding, self.dilation,
                             self.groups, where)

    def forward(self, input):
        """input: (N, C, H, W) -> (N, O, OH, OW), or unbatched (C, H, W) -> (O, OH, OW). Caches the (padded) input."""
        input, unbatched = self._batched(input)
        geom = self._geometry(input)
        if self.padding_mode != "zeros":   # the padded input and the output are checked before padding
            input = pad2d(input, self._pads, self.padding_mode, where=self.label, extra=math.prod(geom.out_shape),
                          advice=None)                        # (N, C, H, W) -> (N, C, H+pt+pb, W+pl+pr)
        bias = self.bias.data if self.bias is not None else None
        saved = {} if is_grad_enabled() else None           # the kernel may keep its columns here for backward
        self._cache = (input, geom, saved, unbatched)
        y = conv_forward(input, self.weight.data, bias, geom, saved)
        return y[0] if unbatched else y

    def trace_details(self, phase, args, out):
        """The unfold view of this call for mg.trace(): columns, reshaped weight, the GEMMs and their shapes."""
        x = args[0]
        if x.ndim == 3:
            x = x[None]                                            # (C, H, W) -> (1, C, H, W)
        if self.padding_mode != "zeros":
            top, bottom, left, right = self._pads
            x_shape = x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right)
        else:
            x_shape = tuple(x.shape)
        n, g = x_shape[0], self.groups                            # backward: args[0] is grad_out (N, O, OH, OW)
        out_h, out_w = (out.shape[-2:] if phase == "forward" else args[0].shape[-2:])
        k = self.in_channels // g * self.kernel_size[0] * self.kernel_size[1]
        og, length = self.out_channels // g, out_h * out_w
        lines = []
        if phase == "forward":
            lines += [f"unfold   x {tuple(x_shape)} -> columns {(n, g * k, length)}  = (N, C*kh*kw, OH*OW), "
                      f"padding {self.padding}, stride {self.stride}, dilation {self.dilation}",
                      f"weight   {tuple(self.weight.shape)} -> {(g, og, k)}  = (groups, O/groups, C/groups*kh*kw)",
                      f"GEMM     per sample and group: {tracing.gemm_text((og, k), (k, length))}, {n * g} of them",
                      f"output   {(n, self.out_channels, length)} -> reshape {(n, self.out_channels, out_h, out_w)}"
                      + (f" + bias {(self.out_channels,)}" if self.bias is not None else "")]
        else:
            lines.append(f"dW       sum over samples of dy @ columns^T: {tracing.gemm_text((og, length), (length, k))} "
                         f"per group -> {tuple(self.weight.shape)}")
            if self.bias is not None:
                lines.append(f"db       dy summed over (N, OH, OW) -> {(self.out_channels,)}")
            if out is not None:
                dx_shape = (n,) + tuple(out.shape[-3:])                 # (N, C, H, W), unbatched or not
                lines.append(f"dx       W^T @ dy: {tracing.gemm_text((k, og), (og, length))} per sample and group -> "
                             f"dcolumns {(n, g * k, length)} -> fold -> {dx_shape}")
        return lines

    def _backward(self, grad_out, need_input):
        """grad_out: (N, O, OH, OW) -> grad of input (N, C, H, W) or None; adds into weight.grad, bias.grad."""
        x, geom, saved, unbatched = self.take_cache()
        grad_out = self._batched_grad(grad_out, geom.out_shape, x, unbatched)
        need_weight = self.weight.requires_grad                # frozen parameters: nothing computed for them
        need_bias = self.bias is not None and self.bias.requires_grad
        grad_x = grad_w = grad_b = None
        if need_input or need_weight or need_bias:
            grad_x, grad_w, grad_b = conv_backward(x, self.weight.data, grad_out, geom, need_input=need_input,
                                                   need_weight=need_weight, need_bias=need_bias, saved=saved)
        if need_weight:
            self.weight.accumulate(grad_w, self.label)
        if need_bias:
            self.bias.accumulate(grad_b, self.label)
        if self.padding_mode != "zeros" and grad_x is not None:
            grad_x = pad2d_backward(grad_x, self._pads, self.padding_mode)
        return grad_x[0] if unbatched and grad_x is not None else grad_x
