"""Convolution as unfold + matrix multiply, with its two gradients.

Shapes (G = groups, Cg = C/G, Og = O/G, K = Cg*kh*kw, L = OH*OW):

    forward        cols = unfold(x)                         (N, G, K, L)
                   y    = W (G, Og, K) @ cols               (N, G, Og, L) -> (N, O, OH, OW)
    weight grad    dW   = sum_n dy[n] @ cols[n]^T           (G, Og, K)    -> (O, Cg, kh, kw)
    input grad     dx   = fold(W^T (G, K, Og) @ dy)         (N, G, K, L)  -> (N, C, H, W)
    bias grad      db   = dy.sum over (N, OH, OW)           (O,)

``fold`` is the adjoint of ``unfold``, which is why the input gradient is a fold. The reference
kernel (kernels/reference_conv.py) is exactly these lines, over chunks of the batch; CPU fast paths
compute the same (kernels/dispatch.py picks one). The public functions match ``torch.nn.functional.unfold/fold/conv2d`` and
``torch.nn.grad.conv2d_input/conv2d_weight`` in signature and result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..runtime.backend import get_array_module
from ..kernels.dispatch import conv_kernel
from ..kernels.im2col import col2im, conv_out_size, im2col
from ..runtime.memory import check_bytes
from ..runtime.checks import check_float_array, check_ndim, check_same_dtype, positive_pair

__all__ = ["unfold", "fold", "conv2d", "conv2d_input", "conv2d_weight", "ConvGeometry"]


@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a convolution except the data: sizes, kernel, stride, pads, groups.

    pads is (top, bottom, left, right); "same" padding may be asymmetric, like PyTorch's.
    """
    batch: int
    in_channels: int
    out_channels: int
    in_size: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    pads: tuple
    groups: int
    out_size: tuple
    where: str = field(default="conv2d", compare=False)     # the layer or function, for error messages

    @property
    def group_in(self) -> int:
        return self.in_channels // self.groups

    @property
    def group_out(self) -> int:
        return self.out_channels // self.groups

    @property
    def weight_shape(self) -> tuple:
        return (self.out_channels, self.group_in) + tuple(self.kernel)

    @property
    def out_shape(self) -> tuple:
        return (self.batch, self.out_channels) + tuple(self.out_size)

    @property
    def in_shape(self) -> tuple:
        return (self.batch, self.in_channels) + tuple(self.in_size)


def resolve_padding(padding, kernel, stride, dilation, where):
    """Padding argument -> (top, bottom, left, right). Accepts int, pair, 'valid', 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{where}: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride}); give the padding as numbers")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        raise ValueError(f"{where}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = positive_pair(padding, "padding", where, allow_zero=True)
    return (ph, ph, pw, pw)


def make_geometry(in_shape, weight_shape, stride, padding, dilation, groups, where="conv2d"):
    """Validate a convolution's arguments and return its ConvGeometry (clear errors, never garbage)."""
    n, c, h, w = in_shape
    if len(weight_shape) != 4:
        raise ValueError(f"{where}: expected a 4-D weight (out_channels, in_channels/groups, kh, kw), "
                         f"got shape {tuple(weight_shape)}")
    o, cg, kh, kw = weight_shape
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r}")
    stride = positive_pair(stride, "stride", where)
    dilation = positive_pair(dilation, "dilation", where)
    if min(kh, kw) < 1:
        raise ValueError(f"{where}: kernel size must be positive, got {(kh, kw)}")
    if o % groups:
        raise ValueError(f"{where}: out_channels={o} is not divisible by groups={groups}")
    if c != cg * groups:
        raise ValueError(
            f"{where}: expected input with {cg * groups} channels (weight of shape {tuple(weight_shape)}, "
            f"groups={groups}), got input of shape {tuple(in_shape)}")
    pads = resolve_padding(padding, (kh, kw), stride, dilation, where)
    eff_h, eff_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    padded = (h + pads[0] + pads[1], w + pads[2] + pads[3])
    if eff_h > padded[0] or eff_w > padded[1]:
        raise ValueError(
            f"{where}: kernel of size {(kh, kw)} with dilation {dilation} spans {(eff_h, eff_w)}, larger "
            f"than the padded input {padded} (input of shape {tuple(in_shape)}, padding {pads[::2]})")
    out = (conv_out_size(h, kh, stride[0], pads[0], pads[1], dilation[0]),
           conv_out_size(w, kw, stride[1], pads[2], pads[3], dilation[1]))
    return ConvGeometry(n, c, o, (h, w), (kh, kw), stride, dilation, pads, groups, out, where)


# ----------------------------------------------------------------------------- unfold / fold

def _window_args(kernel_size, dilation, padding, stride, where):
    kernel = positive_pair(kernel_size, "kernel_size", where)
    dilation = positive_pair(dilation, "dilation", where)
    ph, pw = positive_pair(padding, "padding", where, allow_zero=True)
    stride = positive_pair(stride, "stride", where)
    return kernel, dilation, (ph, ph, pw, pw), stride


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding windows (im2col), like ``torch.nn.functional.unfold``.

    x: (N, C, H, W) or unbatched (C, H, W).
    Returns (N, C*kh*kw, L) (or (C*kh*kw, L)), L = OH*OW; row index = (c*kh + i)*kw + j.
    """
    where = "unfold"
    check_float_array(x, where)
    check_ndim(x, (3, 4), where, "(N, C, H, W) or (C, H, W)")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]  # (C, H, W) -> (1, C, H, W)
    kernel, dilation, pads, stride = _window_args(kernel_size, dilation, padding, stride, where)
    n, c, h, w = x.shape
    out_h = conv_out_size(h, kernel[0], stride[0], pads[0], pads[1], dilation[0])
    out_w = conv_out_size(w, kernel[1], stride[1], pads[2], pads[3], dilation[1])
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{where}: kernel {kernel} with dilation {dilation} does not fit the padded input "
                         f"(input of shape {tuple(x.shape)}, padding {(pads[0], pads[2])})")
    out_shape = (n, c * kernel[0] * kernel[1], out_h * out_w)
    padded = n * c * (h + pads[0] + pads[1]) * (w + pads[2] + pads[3]) if any(pads) else 0
    check_bytes((math.prod(out_shape) + padded) * x.dtype.itemsize, where, out_shape, like=x)
    cols = im2col(x, kernel, stride, pads, dilation)           # (N, C, kh, kw, OH, OW)
    cols = cols.reshape(n, c * kernel[0] * kernel[1], out_h * out_w)  # -> (N, C*kh*kw, L)
    return cols[0] if unbatched else cols


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum sliding windows back into an image (col2im), like ``torch.nn.functional.fold``.

    input: (N, C*kh*kw, L) or unbatched (C*kh*kw, L); output_size: (H, W).
    Returns (N, C, H, W) (or (C, H, W)). fold is the adjoint of unfold.
    """
    where = "fold"
    cols = input
    check_float_array(cols, where)
    check_ndim(cols, (2, 3), where, "(N, C*kh*kw, L) or (C*kh*kw, L)")
    unbatched = cols.ndim == 2
    if unbatched:
        cols = cols[None]  # (C*kh*kw, L) -> (1, C*kh*kw, L)
    kernel, dilation, pads, stride = _window_args(kernel_size, dilation, padding, stride, where)
    h, w = positive_pair(output_size, "output_size", where)
    n, rows, length = cols.shape
    window = kernel[0] * kernel[1]
    if rows % window:
        raise ValueError(f"{where}: expected dimension 1 of the input to be divisible by kh*kw={window} "
                         f"(kernel_size {kernel}), got input of shape {tuple(cols.shape)}")
    out_h = conv_out_size(h, kernel[0], stride[0], pads[0], pads[1], dilation[0])
    out_w = conv_out_size(w, kernel[1], stride[1], pads[2], pads[3], dilation[1])
    if out_h < 1 or out_w < 1 or out_h * out_w != length:
        raise ValueError(
            f"{where}: output_size {(h, w)} with kernel {kernel}, dilation {dilation}, padding "
            f"{(pads[0], pads[2])}, stride {stride} gives {max(out_h, 0)}x{max(out_w, 0)} = "
            f"{max(out_h, 0) * max(out_w, 0)} blocks, but the input has L={length} (shape {tuple(cols.shape)})")
    c = rows // window
    padded = n * c * (h + pads[0] + pads[1]) * (w + pads[2] + pads[3])   # col2im's buffer, then the result
    check_bytes((padded + n * c * h * w) * cols.dtype.itemsize, where, (n, c, h, w), like=cols)
    cols = cols.reshape(n, c, kernel[0], kernel[1], out_h, out_w)  # (N, C*kh*kw, L) -> (N, C, kh, kw, OH, OW)
    image = col2im(cols, (h, w), stride, pads, dilation)
    return image[0] if unbatched else image


# ----------------------------------------------------------------------------- the kernels

def _check_memory(geom, kernel, shape, like, what="output", buffers=1, copies=1):
    """MemoryError naming the layer unless ``copies`` arrays of ``shape``, one zero-padded sample (the least
    any kernel needs besides its result) and the kernel's declared column buffers fit (runtime/memory.py)."""
    itemsize = like.dtype.itemsize
    top, bottom, left, right = geom.pads
    padded = (geom.in_channels * (geom.in_size[0] + top + bottom) * (geom.in_size[1] + left + right)
              if top or bottom or left or right else 0)
    workspace = getattr(kernel, "workspace_bytes", None)
    extra = workspace(geom, like, buffers) if workspace is not None else 0
    check_bytes((copies * math.prod(shape) + padded) * itemsize + extra, geom.where, shape, what, like)


def conv_forward(x, weight, bias, geom: ConvGeometry, saved=None):
    """y = conv(x, W) + b.  x: (N, C, H, W), weight: (O, Cg, kh, kw), bias: (O,) or None -> (N, O, OH, OW).

    Runs the kernel the dispatch table picks (kernels/dispatch.py): a CPU fast path, or the reference
    im2col + matmul (kernels/reference_conv.py), which is the formula above written out. ``saved``: a
    dict in which the kernel may keep what conv_backward can reuse (its columns), handed back to it.
    """
    kernel = conv_kernel(geom, x, weight, bias)
    _check_memory(geom, kernel, geom.out_shape, x)
    return kernel.conv_forward(x, weight, bias, geom, saved)


def conv_backward(x, weight, grad_out, geom: ConvGeometry, need_input=True, need_weight=True,
                  need_bias=True, saved=None):
    """Gradients of conv_forward: returns (dx (N,C,H,W) | None, dW (O,Cg,kh,kw) | None, db (O,) | None).

    x may be None when only the input gradient is needed, weight None when only dW and db are.
    """
    kernel = conv_kernel(geom, x, weight, grad_out)
    # the input gradient is scattered (col2im) into a buffer of its size, then returned: count it twice
    _check_memory(geom, kernel, geom.in_shape if need_input else geom.weight_shape, grad_out, "result", buffers=2,
                  copies=2 if need_input else 1)
    return kernel.conv_backward(x, weight, grad_out, geom, need_input, need_weight, need_bias, saved)


# ----------------------------------------------------------------------------- public functions

def _check_conv_inputs(x, weight, where, x_name="input"):
    get_array_module(x, weight, names=(x_name, "weight"), where=where)
    check_float_array(x, where, x_name)
    check_float_array(weight, where, "weight")
    check_ndim(x, (3, 4), where, "(N, C, H, W) or (C, H, W)", x_name)
    check_same_dtype(x, weight, where, x_name, "weight")


def _check_grad_output(grad_output, geom, reference, reference_name, where):
    get_array_module(grad_output, reference, names=("grad_output", reference_name), where=where)
    check_float_array(grad_output, where, "grad_output")
    if tuple(grad_output.shape) != geom.out_shape:
        raise ValueError(f"{where}: expected grad_output of shape {geom.out_shape}, "
                         f"got {tuple(grad_output.shape)}")
    check_same_dtype(grad_output, reference, where, "grad_output", reference_name)


def _unbatched_grad_output(grad_output, where):
    """An unbatched call's grad_output (O, OH, OW) as (1, O, OH, OW)."""
    check_float_array(grad_output, where, "grad_output")
    if grad_output.ndim != 3:
        raise ValueError(f"{where}: an unbatched input (C, H, W) takes grad_output of shape (O, OH, OW), got "
                         f"{grad_output.ndim}-D grad_output of shape {tuple(grad_output.shape)}")
    return grad_output[None]                             # (O, OH, OW) -> (1, O, OH, OW)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), like ``torch.nn.functional.conv2d``.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (O, C/groups, kh, kw); bias: (O,) or None;
    padding: int, pair, 'valid' or 'same'. Returns (N, O, OH, OW) (or (O, OH, OW)).
    """
    where = "conv2d"
    _check_conv_inputs(input, weight, where)
    if input.ndim == 3:                                  # unbatched, like PyTorch
        return conv2d(input[None], weight, bias, stride, padding, dilation, groups)[0]   # (C, H, W) -> (1, C, H, W)
    geom = make_geometry(input.shape, weight.shape, stride, padding, dilation, groups, where)
    if bias is not None:
        get_array_module(input, bias, names=("input", "bias"), where=where)
        if tuple(bias.shape) != (geom.out_channels,):
            raise ValueError(f"{where}: expected bias of shape ({geom.out_channels},), got {tuple(bias.shape)}")
        check_same_dtype(input, bias, where, "input", "bias")
    return conv_forward(input, weight, bias, geom)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to its input, like ``torch.nn.grad.conv2d_input``.

    input_size: (N, C, H, W) or unbatched (C, H, W); weight: (O, C/groups, kh, kw); grad_output:
    (N, O, OH, OW) (or (O, OH, OW)). Returns (N, C, H, W) (or (C, H, W)): fold(W^T @ grad_output).
    """
    where = "conv2d_input"
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) not in (3, 4):
        raise ValueError(f"{where}: expected input_size (N, C, H, W) or (C, H, W), got {input_size}")
    check_float_array(weight, where, "weight")
    if len(input_size) == 3:                             # unbatched, like torch.nn.grad
        grad_output = _unbatched_grad_output(grad_output, where)
        return conv2d_input((1,) + input_size, weight, grad_output, stride, padding, dilation, groups)[0]
    geom = make_geometry(input_size, weight.shape, stride, padding, dilation, groups, where)
    _check_grad_output(grad_output, geom, weight, "weight", where)
    grad_x, _, _ = conv_backward(None, weight, grad_output, geom, need_input=True, need_weight=False,
                                 need_bias=False)
    return grad_x


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """Gradient of conv2d with respect to its weight, like ``torch.nn.grad.conv2d_weight``.

    input: (N, C, H, W) or unbatched (C, H, W); weight_size: (O, C/groups, kh, kw); grad_output:
    (N, O, OH, OW) (or (O, OH, OW)). Returns (O, C/groups, kh, kw): sum over the batch of
    grad_output @ unfold(input)^T.
    """
    where = "conv2d_weight"
    check_float_array(input, where)
    check_ndim(input, (3, 4), where, "(N, C, H, W) or (C, H, W)")
    if input.ndim == 3:                                  # unbatched, like torch.nn.grad
        grad_output = _unbatched_grad_output(grad_output, where)
        return conv2d_weight(input[None], weight_size, grad_output, stride, padding, dilation, groups)
    weight_size = tuple(int(s) for s in weight_size)
    geom = make_geometry(input.shape, weight_size, stride, padding, dilation, groups, where)
    _check_grad_output(grad_output, geom, input, "input", where)
    _, grad_w, _ = conv_backward(input, None, grad_output, geom, need_input=False, need_weight=True,
                                 need_bias=False)
    return grad_w
