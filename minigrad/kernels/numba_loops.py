"""The compiled loops (Numba) of ReLU and max pooling (the convolutions' are in numba_conv): each is one pass over its arrays, without the interpreter lock, written as the
plain loop PyTorch's CPU kernel runs (same comparisons, same order of additions), so its results are
PyTorch's to the bit where NumPy's passes are only equal to rounding.

Imported only by ``kernels.compiled`` when Numba is installed and the compiled kernels are switched on; every
function is compiled on first use for the dtypes it meets (float32, float64) and cached on disk
(``cache=True``), so later processes load it instead of compiling again.

Arrays are C-contiguous; the callers (``compiled``, ``compiled_pool``) cut them into blocks and run the blocks
on minigrad's thread pool.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["relu_forward", "relu_backward", "max_pool_forward", "max_pool_backward", "jit"]

jit = _jit = numba.njit(nogil=True, cache=True, boundscheck=False)   # every loop's options (numba_conv too)


@_jit
def relu_forward(x, y, positive):
    """x, y: (n,) float; positive: (n,) bool. y = max(x, 0) with NaN kept; positive = not x <= 0 (true at NaN: the
    gradient passes there, as in PyTorch's threshold_backward)."""
    for i in range(x.size):
        v = x[i]
        if v <= 0:
            y[i] = 0
            positive[i] = False
        else:
            y[i] = v                # x > 0, or NaN (which compares false both ways)
            positive[i] = True


@_jit
def relu_backward(positive, grad_out, grad_in):
    """positive: (n,) bool; grad_out, grad_in: (n,) float. grad_in = grad_out where positive, else 0."""
    for i in range(grad_out.size):
        if positive[i]:
            grad_in[i] = grad_out[i]
        else:
            grad_in[i] = 0


@_jit
def _window_ranges(out_size, size, k, stride, pad, dilation):
    """For each output position along one axis: its first input coordinate (may be < 0) and the range [lo, hi) of
    kernel offsets that fall inside the input."""
    first = np.empty(out_size, np.int64)
    lo = np.empty(out_size, np.int64)
    hi = np.empty(out_size, np.int64)
    for o in range(out_size):
        start = o * stride - pad
        a = 0
        while a < k and start + a * dilation < 0:
            a += 1
        b = a
        while b < k and start + b * dilation < size:
            b += 1
        first[o], lo[o], hi[o] = start, a, b
    return first, lo, hi


@_jit
def max_pool_forward(x, y, argmax, kh, kw, sh, sw, top, left, dh, dw):
    """x: (P, H, W) planes -> y (P, OH, OW), argmax (P, OH, OW) uint8 = the window offset i * kw + j.

    As PyTorch: positions outside the input (padding) are skipped; the running maximum starts at -inf with the
    window's first position inside the input; a value replaces it when it is larger or NaN (so the last NaN of a
    window wins, and no later number replaces a NaN)."""
    planes, h, w = x.shape
    out_h, out_w = y.shape[1], y.shape[2]
    if kh == 2 and kw == 2 and sh == 2 and sw == 2 and top == 0 and left == 0 and dh == 1 and dw == 1 \
            and 2 * out_h <= h and 2 * out_w <= w:
        _max_pool_2x2(x, y, argmax)
        return
    row0, i_lo, i_hi = _window_ranges(out_h, h, kh, sh, top, dh)
    col0, j_lo, j_hi = _window_ranges(out_w, w, kw, sw, left, dw)
    for p in range(planes):
        for r in range(out_h):
            for c in range(out_w):
                best = -np.inf
                best_k = i_lo[r] * kw + j_lo[c]
                for i in range(i_lo[r], i_hi[r]):
                    row = row0[r] + i * dh
                    for j in range(j_lo[c], j_hi[c]):
                        v = x[p, row, col0[c] + j * dw]
                        if v > best or v != v:
                            best = v
                            best_k = i * kw + j
                y[p, r, c] = best
                argmax[p, r, c] = best_k


@_jit
def _max_pool_2x2(x, y, argmax):
    """MaxPool2d(2) without padding: every window lies inside the input; the same rule as max_pool_forward."""
    planes, out_h, out_w = y.shape
    for p in range(planes):
        for r in range(out_h):
            for c in range(out_w):
                best = x[p, 2 * r, 2 * c]          # > -inf, or NaN, or -inf (then it stays, as the rule keeps it)
                best_k = 0
                v = x[p, 2 * r, 2 * c + 1]
                if v > best or v != v:
                    best, best_k = v, 1
                v = x[p, 2 * r + 1, 2 * c]
                if v > best or v != v:
                    best, best_k = v, 2
                v = x[p, 2 * r + 1, 2 * c + 1]
                if v > best or v != v:
                    best, best_k = v, 3
                y[p, r, c] = best
                argmax[p, r, c] = best_k


@_jit
def max_pool_backward(grad_out, argmax, grad_in, kh, kw, sh, sw, top, left, dh, dw):
    """grad_out, argmax: (P, OH, OW) -> grad_in (P, H, W): each dy added to the position its window took the maximum
    from, in output order (PyTorch's). A position outside the input (an offset no forward of this geometry gives)
    is dropped, never written. Windows that tile the input (kernel = stride, no padding or dilation, sizes
    divisible) write each position once, without a zero fill."""
    planes, h, w = grad_in.shape
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    tiles = kh == sh and kw == sw and top == 0 and left == 0 and dh == 1 and dw == 1 and out_h * kh == h \
        and out_w * kw == w
    if tiles and kh == 2 and kw == 2:
        _max_pool_2x2_backward(grad_out, argmax, grad_in)
        return
    if tiles:
        for p in range(planes):
            for r in range(out_h):
                for c in range(out_w):
                    k = argmax[p, r, c]
                    g = grad_out[p, r, c] + 0      # -0.0 -> +0.0, as PyTorch's 0 + dy
                    for i in range(kh):
                        for j in range(kw):
                            if i * kw + j == k:
                                grad_in[p, r * kh + i, c * kw + j] = g
                            else:
                                grad_in[p, r * kh + i, c * kw + j] = 0
        return
    for p in range(planes):
        grad_in[p] = 0
        for r in range(out_h):
            for c in range(out_w):
                k = argmax[p, r, c]
                row = r * sh - top + (k // kw) * dh
                col = c * sw - left + (k % kw) * dw
                if 0 <= row < h and 0 <= col < w:
                    grad_in[p, row, col] += grad_out[p, r, c]


@_jit
def _max_pool_2x2_backward(grad_out, argmax, grad_in):
    """MaxPool2d(2) on even sizes: each window's four positions written once (dy at its maximum, 0 elsewhere)."""
    planes, out_h, out_w = grad_out.shape
    for p in range(planes):
        for r in range(out_h):
            for c in range(out_w):
                k = argmax[p, r, c]
                g = grad_out[p, r, c] + 0          # -0.0 -> +0.0, as PyTorch's 0 + dy
                grad_in[p, 2 * r, 2 * c] = g if k == 0 else 0
                grad_in[p, 2 * r, 2 * c + 1] = g if k == 1 else 0
                grad_in[p, 2 * r + 1, 2 * c] = g if k == 2 else 0
                grad_in[p, 2 * r + 1, 2 * c + 1] = g if k == 3 else 0

