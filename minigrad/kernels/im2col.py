"""im2col / col2im over any array module, as a loop over the kh x kw kernel offsets.

Each kernel offset (i, j) is one strided slice of the padded input, so the loop has
kh*kw iterations of whole-array copies: no index arrays and no ``np.add.at`` (which is
4-15x slower for col2im). The layout matches ``torch.nn.functional.unfold``:
``cols[n, c, i, j, oh, ow] = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw]``.
"""
from __future__ import annotations

from ..backend import get_array_module


def _is_cupy(xp) -> bool:
    """True for the CuPy module: those arrays take the CUDA kernels in kernels/cuda.py."""
    return getattr(xp, "__name__", "") == "cupy"


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


def im2col(x, kernel, stride, pads, dilation, pad_value=0.0):
    """Unfold sliding windows.

    x: (N, C, H, W); kernel, stride, dilation: (kh, kw) pairs; pads: (top, bottom, left, right).
    Returns cols: (N, C, kh, kw, OH, OW), same dtype and backend as x.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    out_h = conv_out_size(h, kh, sh, pads[0], pads[1], dh)
    out_w = conv_out_size(w, kw, sw, pads[2], pads[3], dw)
    if _is_cupy(xp) and pad_value == 0.0:
        from .cuda import im2col_gpu
        return im2col_gpu(x, kernel, stride, pads, dilation, (out_h, out_w))
    padded = pad_constant(x, pads, pad_value)
    cols = xp.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        row = i * dh
        row_end = row + sh * (out_h - 1) + 1
        for j in range(kw):
            col = j * dw
            col_end = col + sw * (out_w - 1) + 1
            cols[:, :, i, j] = padded[:, :, row:row_end:sh, col:col_end:sw]
    return cols


def col2im(cols, input_size, stride, pads, dilation):
    """Adjoint of im2col: sum every column entry back onto the pixel it was read from.

    cols: (N, C, kh, kw, OH, OW); input_size: (H, W) of the unpadded input.
    Returns (N, C, H, W) with the padding cropped away.
    """
    xp = get_array_module(cols)
    n, c, kh, kw, out_h, out_w = cols.shape
    h, w = input_size
    sh, sw = stride
    dh, dw = dilation
    top, bottom, left, right = pads
    if _is_cupy(xp):
        from .cuda import col2im_gpu
        return col2im_gpu(cols, input_size, stride, pads, dilation)
    padded_h = max(h + top + bottom, (kh - 1) * dh + sh * (out_h - 1) + 1)
    padded_w = max(w + left + right, (kw - 1) * dw + sw * (out_w - 1) + 1)
    padded = xp.zeros((n, c, padded_h, padded_w), dtype=cols.dtype)
    for i in range(kh):
        row = i * dh
        row_end = row + sh * (out_h - 1) + 1
        for j in range(kw):
            col = j * dw
            col_end = col + sw * (out_w - 1) + 1
            padded[:, :, row:row_end:sh, col:col_end:sw] += cols[:, :, i, j]
    return padded[:, :, top:top + h, left:left + w]
