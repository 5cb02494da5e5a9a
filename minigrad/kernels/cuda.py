"""CUDA twins of the im2col / col2im kernels, as CuPy ElementwiseKernels.

Created once on first use (memoized), never per call; importing this module does not import
CuPy. Layout and semantics are those of ``kernels/im2col.py``:
``cols[n, c, i, j, oh, ow] = x[n, c, oh*sh + i*dh - top, ow*sw + j*dw - left]`` (0 outside).
col2im *gathers*: one thread per input pixel sums the column entries that read it, so no
atomics are needed and the result is deterministic.
"""
from __future__ import annotations

import functools

_GEOMETRY = ("int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sh, int32 sw, "
             "int32 top, int32 left, int32 dh, int32 dw")


@functools.lru_cache(maxsize=None)
def _kernels():
    import cupy

    im2col = cupy.ElementwiseKernel(
        "raw T img, " + _GEOMETRY,
        "T col",
        """
        long long plane = i / ((long long)kh * kw * out_h * out_w);   // n * C + c
        int ky = i / ((long long)kw * out_h * out_w) % kh;
        int kx = i / ((long long)out_h * out_w) % kw;
        int oy = i / out_w % out_h;
        int ox = i % out_w;
        int y = oy * sh + ky * dh - top;
        int x = ox * sw + kx * dw - left;
        col = (y >= 0 && y < h && x >= 0 && x < w) ? img[(plane * h + y) * w + x] : (T)0;
        """,
        "minigrad_im2col")

    col2im = cupy.ElementwiseKernel(
        "raw T col, " + _GEOMETRY,
        "T img",
        """
        long long plane = i / ((long long)h * w);                      // n * C + c
        int y = i / w % h + top;
        int x = i % w + left;
        T total = 0;
        for (int ky = 0; ky < kh; ++ky) {
            int sy = y - ky * dh;
            if (sy < 0 || sy % sh != 0) continue;
            int oy = sy / sh;
            if (oy >= out_h) continue;
            for (int kx = 0; kx < kw; ++kx) {
                int sx = x - kx * dw;
                if (sx < 0 || sx % sw != 0) continue;
                int ox = sx / sw;
                if (ox >= out_w) continue;
                total += col[(((plane * kh + ky) * kw + kx) * out_h + oy) * out_w + ox];
            }
        }
        img = total;
        """,
        "minigrad_col2im")
    return im2col, col2im


def im2col_gpu(x, kernel, stride, pads, dilation, out_size):
    """x: (N, C, H, W) CuPy array -> cols (N, C, kh, kw, OH, OW)."""
    import cupy
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), (out_h, out_w) = kernel, stride, dilation, out_size
    cols = cupy.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    _kernels()[0](cupy.ascontiguousarray(x), h, w, out_h, out_w, kh, kw, sh, sw, pads[0], pads[2], dh, dw, cols)
    return cols


def col2im_gpu(cols, input_size, stride, pads, dilation):
    """cols: (N, C, kh, kw, OH, OW) CuPy array -> (N, C, H, W), the adjoint of im2col_gpu."""
    import cupy
    n, c, kh, kw, out_h, out_w = cols.shape
    h, w = input_size
    (sh, sw), (dh, dw) = stride, dilation
    image = cupy.empty((n, c, h, w), dtype=cols.dtype)
    _kernels()[1](cupy.ascontiguousarray(cols), h, w, out_h, out_w, kh, kw, sh, sw, pads[0], pads[2], dh, dw, image)
    return image
