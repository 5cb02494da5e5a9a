"""im2col / col2im over any array module, as a loop over the kh x kw kernel offsets.

Each kernel offset (i, j) is one strided slice of the padded input, so the loop has
kh*kw iterations of whole-array copies: no index arrays and no ``np.add.at`` (several times slower
for col2im: docs/conv_backward.md). The layout matches ``torch.nn.functional.unfold``:
``cols[n, c, i, j, oh, ow] = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw]``.
On CuPy arrays both are one CUDA kernel each (kernels/cuda.py) with the same layout.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module, is_gpu_array


def conv_out_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                  dilation: int) -> int:
    """Output length of a sliding window: floor((size + pads - dilation*(kernel-1) - 1)/stride) + 1."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def pad_constant(x, pads, value=0.0):
    """Pad the last two axes of x: (N, C, H, W) -> (N, C, H+pt+pb, W+pl+pr), filled with value.

    pads = (top, bottom, left, right). Returns x itself when every pad is 0.
    """
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    xp = get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    padded[:, :, top:top + h, left:left + w] = x
    return padded


def kernel_offsets(kernel, stride, dilation, out_size):
    """(i, j, rows, cols) for every kernel offset: the slices of the padded input that offset reads."""
    (kh, kw), (sh, sw), (dh, dw), (out_h, out_w) = kernel, stride, dilation, out_size
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
        for j in range(kw):
            yield i, j, rows, slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)


def im2col(x, kernel, stride, pads, dilation, out=None):
    """Unfold sliding windows.

    x: (N, C, H, W); kernel, stride, dilation: (kh, kw) pairs; pads: (top, bottom, left, right).
    Returns cols: (N, C, kh, kw, OH, OW), same dtype and backend as x (written into ``out`` when given).
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel
    out_h = conv_out_size(h, kh, stride[0], pads[0], pads[1], dilation[0])
    out_w = conv_out_size(w, kw, stride[1], pads[2], pads[3], dilation[1])
    if is_gpu_array(x):
        from .cuda import im2col_gpu
        cols = im2col_gpu(x, kernel, stride, pads, dilation, (out_h, out_w))
        if out is None:
            return cols
        out[...] = cols
        return out
    padded = pad_constant(x, pads)
    cols = xp.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype) if out is None else out
    for i, j, rows, columns in kernel_offsets(kernel, stride, dilation, (out_h, out_w)):
        cols[:, :, i, j] = padded[:, :, rows, columns]
    return cols


def fold_size(input_size, kernel, stride, pads, dilation, out_size):
    """(Hp, Wp): the padded plane a fold adds into, the padded input or, when the windows reach past it, their
    extent."""
    (h, w), (kh, kw), (top, bottom, left, right), (out_h, out_w) = input_size, kernel, pads, out_size
    return (max(h + top + bottom, (kh - 1) * dilation[0] + stride[0] * (out_h - 1) + 1),
            max(w + left + right, (kw - 1) * dilation[1] + stride[1] * (out_w - 1) + 1))


def col2im(cols, input_size, stride, pads, dilation):
    """Adjoint of im2col: sum every column entry back onto the pixel it was read from.

    cols: (N, C, kh, kw, OH, OW); input_size: (H, W) of the unpadded input.
    Returns (N, C, H, W) with the padding cropped away.
    """
    if is_gpu_array(cols):
        from .cuda import col2im_gpu
        return col2im_gpu(cols, input_size, stride, pads, dilation)
    xp = get_array_module(cols)
    n, c, kh, kw, out_h, out_w = cols.shape
    h, w = input_size
    top, bottom, left, right = pads
    padded_h, padded_w = fold_size(input_size, (kh, kw), stride, pads, dilation, (out_h, out_w))
    padded = xp.zeros((n, c, padded_h, padded_w), dtype=cols.dtype)
    for i, j, rows, columns in kernel_offsets((kh, kw), stride, dilation, (out_h, out_w)):
        padded[:, :, rows, columns] += cols[:, :, i, j]
    return padded[:, :, top:top + h, left:left + w]
