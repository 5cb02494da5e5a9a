"""ConvTranspose2d: the adjoint of Conv2d, built on the same kernels (minigrad.functional.conv).

Let C be the convolution from the output space (N, O, OH, OW) to the input space (N, I, H, W)
with this layer's weight W: (I, O/groups, kh, kw) read as a Conv2d weight (I out-channels,
O/groups in-channels per group), and the same stride, padding, dilation and groups. Then

forward:  y  = C^T(x) + b = conv input-gradient of "dy" = x     x: (N, I, H, W) -> y: (N, O, OH, OW)
backward: dx = C(dy)                   (conv forward of dy)          (N, I, H, W)
          dW += conv weight-gradient with input dy and output-gradient x   (I, O/groups, kh, kw)
          db += dy.sum((0, 2, 3))                                          (O,)

OH = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1 (likewise OW).
When output_padding >= stride (allowed while output_padding < dilation), C's natural output
is larger than H: x is zero-padded at the bottom/right to it and dx cropped back.
Cached for backward: the (padded) input and the geometry.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module
from ..functional.conv import conv_backward, conv_forward, make_geometry
from ..kernels.im2col import pad_constant
from ..runtime.checks import check_float_array, check_ndim, check_same_dtype, positive_pair
from .conv import ConvBase
from .linear import device_dtype

__all__ = ["ConvTranspose2d"]


class ConvTranspose2d(ConvBase):
    """2-D transposed convolution over (N, C, H, W) inputs, PyTorch's signature and default init.

    weight: (in_channels, out_channels/groups, kh, kw); bias: (out_channels,).
    Only padding_mode='zeros' exists, as in PyTorch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        where = "ConvTranspose2d"
        dtype = device_dtype(ConvTranspose2d, device, dtype,
                             f"{in_channels!r}, {out_channels!r}, {kernel_size!r}, ...")
        # torch's fan-in is weight.size(1) * kh * kw = out_channels/groups * kh * kw
        super().__init__(where, in_channels, out_channels, kernel_size, stride, dilation, groups, bias,
                         weight_channels=(in_channels, out_channels), fan_in_channels=out_channels, dtype=dtype)
        if padding_mode != "zeros":
            raise ValueError(f"{where}: only padding_mode='zeros' is supported (as in PyTorch), "
                             f"got {padding_mode!r}")
        self.padding = positive_pair(padding, "padding", where, allow_zero=True)
        self.output_padding = positive_pair(output_padding, "output_padding", where, allow_zero=True)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(f"{where}: output_padding must be smaller than either stride or dilation, "
                                 f"got output_padding={self.output_padding}, stride={self.stride}, "
                                 f"dilation={self.dilation}")
        self.padding_mode = padding_mode
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def _min_size(self, size, axis):
        return ((size - 1) * self.stride[axis] - 2 * self.padding[axis]
                + self.dilation[axis] * (self.kernel_size[axis] - 1) + 1)

    def _output_padding(self, x, output_size):
        """output_padding, or the one that gives ``output_size`` ((OH, OW) or (N, O, OH, OW))."""
        if output_size is None:
            return self.output_padding
        size = tuple(int(s) for s in output_size)[-2:]
        low = tuple(self._min_size(x.shape[2 + axis], axis) for axis in range(2))
        high = tuple(low[axis] + self.stride[axis] - 1 for axis in range(2))
        if len(size) != 2 or not all(low[a] <= size[a] <= high[a] for a in range(2)):
            raise ValueError(f"{self.label}: requested output_size {tuple(output_size)} is not reachable from "
                             f"input of shape {tuple(x.shape)}: (OH, OW) must lie between {low} and {high}")
        result = [size[axis] - low[axis] for axis in range(2)]
        return tuple(result)

    def _geometry(self, x, output_size):
        where = self.label
        get_array_module(x, self.weight.data, names=("input", "weight"), where=self.label)
        check_float_array(x, where)
        check_ndim(x, 4, where, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{where}: expected input with {self.in_channels} channels (weight of shape "
                             f"{self.weight.shape}, groups={self.groups}), got input of shape {tuple(x.shape)}")
        check_same_dtype(x, self.weight.data, where, "input", "weight")
        output_padding = self._output_padding(x, output_size)
        out_h = self._min_size(x.shape[2], 0) + output_padding[0]
        out_w = self._min_size(x.shape[3], 1) + output_padding[1]
        if out_h < 1 or out_w < 1:
            raise ValueError(f"{where}: input of shape {tuple(x.shape)} gives an empty output {(out_h, out_w)} "
                             f"(padding {self.padding} is too large for kernel_size {self.kernel_size})")
        # the convolution C from the output space back to the input space
        return make_geometry((x.shape[0], self.out_channels, out_h, out_w), self.weight.shape, self.stride,
                             self.padding, self.dilation, self.groups, where)

    def forward(self, input, output_size=None):
        """input: (N, I, H, W) -> (N, O, OH, OW), or unbatched (I, H, W) -> (O, OH, OW). Caches the input
        (zero-padded to C's output size)."""
        input, unbatched = self._batched(input)
        geom = self._geometry(input, output_size)
        h, w = input.shape[2:]
        grow_h, grow_w = geom.out_size[0] - h, geom.out_size[1] - w
        if grow_h or grow_w:  # output_padding >= stride: C's natural output is larger than input
            input = pad_constant(input, (0, grow_h, 0, grow_w))      # (N, I, H, W) -> (N, I, H', W')
        y, _, _ = conv_backward(None, self.weight.data, input, geom, need_input=True, need_weight=False,
                                need_bias=False)
        if self.bias is not None:
            y += self.bias.data.reshape(1, -1, 1, 1)         # (O,) -> (1, O, 1, 1)
        self._cache = (input, geom, (h, w), unbatched)
        return y[0] if unbatched else y

    def _backward(self, grad_out, need_input):
        """grad_out: (N, O, OH, OW) -> dx (N, I, H, W) or None; adds into weight.grad and bias.grad."""
        x, geom, (h, w), unbatched = self.take_cache()
        grad_out = self._batched_grad(grad_out, geom.in_shape, x, unbatched)
        if self.weight.requires_grad:                         # a frozen weight: no product computed
            _, grad_w, _ = conv_backward(grad_out, None, x, geom, need_input=False, need_weight=True,
                                         need_bias=False)
            self.weight.accumulate(grad_w, self.label)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate(grad_out.sum(axis=(0, 2, 3)), self.label)
        if not need_input:
            return None
        grad_x = conv_forward(grad_out, self.weight.data, None, geom)   # (N, I, H', W')
        if grad_x.shape[2:] != (h, w):
            grad_x = grad_x[:, :, :h, :w]                    # crop the zero-padded rows/columns
        return grad_x[0] if unbatched else grad_x
