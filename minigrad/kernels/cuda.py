"""CUDA kernels for the CuPy backend, as CuPy ElementwiseKernels and ReductionKernels built once from tables.

``KERNELS`` maps a name to (input params, output params, body) in CuPy's ElementwiseKernel
syntax, ``REDUCTIONS`` a name to a ReductionKernel's parts; ``kernel(name)`` and ``reduction(name)``
build them once (memoized, never per call; CuPy compiles per dtype at the first call, which
``warm_up`` does ahead of time) and importing this module does not import CuPy. The same tables are
compiled as host C++ by the test suite (every body checked against the NumPy code on machines
without a GPU) and, from CuPy's own generated source, with NVRTC for sm_80 and sm_90.

Conventions: ``i`` is the index of the output element a thread computes; ``raw`` arrays are
indexed by hand (C-contiguous NCHW); gradients that several outputs feed are *gathered* per
input element (col2im, pooling backward), so no atomics and deterministic sums.
"""
from __future__ import annotations

import functools

_WINDOW = ("int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sh, int32 sw, "
           "int32 top, int32 left, int32 dh, int32 dw")

# Loop over the windows (oy, ox) and kernel offsets (ky, kx) that read input pixel (y, x) of
# the padded frame; used by every gather-style backward.
_FOR_EACH_WINDOW = """
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
                BODY
            }
        }
"""


def _for_each_window(body: str) -> str:
    return _FOR_EACH_WINDOW.replace("BODY", body)

KERNELS = {
    # cols[n, c, ky, kx, oy, ox] = x[n, c, oy*sh + ky*dh - top, ox*sw + kx*dw - left] (0 outside)
    "im2col": ("raw T img, " + _WINDOW, "T col", """
        long long plane = i / ((long long)kh * kw * out_h * out_w);
        int ky = i / ((long long)kw * out_h * out_w) % kh;
        int kx = i / ((long long)out_h * out_w) % kw;
        int oy = i / out_w % out_h;
        int ox = i % out_w;
        int y = oy * sh + ky * dh - top;
        int x = ox * sw + kx * dw - left;
        col = (y >= 0 && y < h && x >= 0 && x < w) ? img[(plane * h + y) * w + x] : (T)0;
        """),
    # adjoint of im2col: one thread per input pixel sums the column entries that read it
    "col2im": ("raw T col, " + _WINDOW, "T img", """
        long long plane = i / ((long long)h * w);
        int y = i / w % h + top;
        int x = i % w + left;
        T total = 0;
        """ + _for_each_window("total += col[(((plane * kh + ky) * kw + kx) * out_h + oy) * out_w + ox];") + """
        img = total;
        """),
    # max pooling: y = max over the window (NaN wins, first maximum on ties), argmax = ky*kw + kx
    "max_pool_forward": ("raw T x, " + _WINDOW, "T y, int32 argmax", """
        long long plane = i / ((long long)out_h * out_w);
        int oy = i / out_w % out_h;
        int ox = i % out_w;
        T best = 0;
        int best_k = -1;
        for (int ky = 0; ky < kh; ++ky) {
            int yy = oy * sh + ky * dh - top;
            if (yy < 0 || yy >= h) continue;
            for (int kx = 0; kx < kw; ++kx) {
                int xx = ox * sw + kx * dw - left;
                if (xx < 0 || xx >= w) continue;
                T v = x[(plane * h + yy) * w + xx];
                if (best_k < 0 || v > best || v != v) {
                    best = v;
                    best_k = ky * kw + kx;
                    if (v != v) { ky = kh; break; }
                }
            }
        }
        y = best;
        argmax = best_k;
        """),
    "max_pool_backward": ("raw T dy, raw int32 argmax, " + _WINDOW, "T dx", """
        long long plane = i / ((long long)h * w);
        int y = i / w % h + top;
        int x = i % w + left;
        T total = 0;
        """ + _for_each_window("""long long o = (plane * out_h + oy) * out_w + ox;
                if (argmax[o] == ky * kw + kx) total += dy[o];""") + """
        dx = total;
        """),
    # average pooling (no dilation, as PyTorch): divisor per window as torch.nn.AvgPool2d
    "avg_pool_forward": ("raw T x, int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, "
                         "int32 sh, int32 sw, int32 ph, int32 pw, bool include_pad, T divisor_override",
                         "T y", """
        long long plane = i / ((long long)out_h * out_w);
        int oy = i / out_w % out_h;
        int ox = i % out_w;
        int y0 = oy * sh - ph, x0 = ox * sw - pw;
        int y1 = min(y0 + kh, h + ph), x1 = min(x0 + kw, w + pw);
        T divisor = (T)((y1 - y0) * (x1 - x0));
        y0 = max(y0, 0); x0 = max(x0, 0); y1 = min(y1, h); x1 = min(x1, w);
        if (!include_pad) divisor = (T)((y1 - y0) * (x1 - x0));
        if (divisor_override > 0) divisor = divisor_override;
        T total = 0;
        for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) total += x[(plane * h + yy) * w + xx];
        y = total / divisor;
        """),
    "avg_pool_backward": ("raw T dy, int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, "
                          "int32 sh, int32 sw, int32 ph, int32 pw, bool include_pad, T divisor_override",
                          "T dx", """
        long long plane = i / ((long long)h * w);
        int y = i / w % h, x = i % w;
        // windows oy with oy*sh - ph <= y < oy*sh - ph + kh, i.e. (y+ph-kh)/sh < oy <= (y+ph)/sh
        int oy_first = y + ph - kh < 0 ? 0 : (y + ph - kh) / sh + 1, oy_last = min((y + ph) / sh, out_h - 1);
        int ox_first = x + pw - kw < 0 ? 0 : (x + pw - kw) / sw + 1, ox_last = min((x + pw) / sw, out_w - 1);
        T total = 0;
        for (int oy = oy_first; oy <= oy_last; ++oy) {
            int y0 = oy * sh - ph;
            for (int ox = ox_first; ox <= ox_last; ++ox) {
                int x0 = ox * sw - pw;
                int y1 = min(y0 + kh, h + ph), x1 = min(x0 + kw, w + pw);
                T divisor = (T)((y1 - y0) * (x1 - x0));
                if (!include_pad) divisor = (T)((min(y1, h) - max(y0, 0)) * (min(x1, w) - max(x0, 0)));
                if (divisor_override > 0) divisor = divisor_override;
                total += dy[(plane * out_h + oy) * out_w + ox] / divisor;
            }
        }
        dx = total;
        """),
    # softmax cross-entropy per row of (rows, C) logits, given its log-sum-exp (the reduction
    # softmax_xent_lse below): one thread per row reads its target's logit
    "softmax_xent_forward": ("raw T logits, T lse, raw int64 target, int32 classes, int64 ignore_index", "T loss", """
        long long t = target[i];
        // ignored rows give 0; so do out-of-range targets (never read out of bounds), which the
        // loss reports itself (at once, or deferred to the training loop's next metric read)
        loss = (t == ignore_index || t < 0 || t >= classes) ? (T)0 : lse - logits[i * (long long)classes + t];
        """),
    # d loss / d logits = scale * (softmax - onehot), 0 for ignored rows
    "softmax_xent_backward": ("raw T logits, raw T lse, raw int64 target, int32 classes, "
                              "int64 ignore_index, T scale", "T grad", """
        long long r = i / classes;
        int c = i % classes;
        long long t = target[r];
        grad = (t == ignore_index || t < 0 || t >= classes) ? (T)0
             : scale * (exp(logits[i] - lse[r]) - (c == t ? (T)1 : (T)0));
        """),
    # torch.optim.SGD with momentum, fused: one pass over param, grad and momentum buffer
    "sgd_momentum": ("T grad, T lr, T momentum, T dampening, T weight_decay, bool nesterov, bool maximize, "
                     "bool first", "T param, T buf", """
        T g = maximize ? -grad : grad;
        if (weight_decay != 0) g = g + weight_decay * param;
        buf = first ? g : momentum * buf + (1 - dampening) * g;
        g = nesterov ? g + momentum * buf : buf;
        param = param - lr * g;
        """),
    # torch.optim.Adam / AdamW (decoupled weight decay), fused, without amsgrad
    "adam": ("T grad, T lr, T beta1, T beta2, T eps, T weight_decay, T bias_correction1, "
             "T bias_correction2_sqrt, bool decoupled, bool maximize", "T param, T exp_avg, T exp_avg_sq", """
        T g = maximize ? -grad : grad;
        if (weight_decay != 0) {
            if (decoupled) param = param * (1 - lr * weight_decay);
            else g = g + weight_decay * param;
        }
        T w1 = 1 - beta1;
        exp_avg = (w1 < (T)0.5) ? exp_avg + w1 * (g - exp_avg) : g - (g - exp_avg) * (1 - w1);
        exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * (g * g);
        T denom = sqrt(exp_avg_sq) / bias_correction2_sqrt + eps;
        param = param - (lr / bias_correction1) * (exp_avg / denom);
        """),
}

# A running log-sum-exp: the largest number m seen and the sum s of exp(x - m); s == 0 is the empty
# state. Two partial states combine exactly (rescaled to the larger m), so the numbers of a row can be
# split among threads in any way; a NaN turns the sum NaN and it stays NaN.
_LSE_PREAMBLE = """
template <typename U> struct minigrad_lse {
    U m, s;
    __device__ minigrad_lse() {}
    __device__ minigrad_lse(U m_, U s_) : m(m_), s(s_) {}
};
template <typename U>
__device__ minigrad_lse<U> minigrad_lse_add(const minigrad_lse<U>& a, const minigrad_lse<U>& b) {
    if (a.s == (U)0) return b;
    if (b.s == (U)0) return a;
    U m = a.m > b.m ? a.m : b.m;
    // the state holding the max keeps its sum as is: two states of -inf (masked classes) must not
    // rescale by exp(-inf - -inf) = exp(NaN)
    U sa = a.m == m ? a.s : a.s * exp(a.m - m);
    U sb = b.m == m ? b.s : b.s * exp(b.m - m);
    return minigrad_lse<U>(m, sa + sb);
}
"""

# CuPy ReductionKernels: name -> (input params, output params, map, reduce, post-map, identity,
# reduce type, preamble). CuPy gives each output (row) a group of threads -- the whole block for
# rows of 512 numbers or more -- that read the row coalesced, each thread folding its share, then
# combine their partial states with a shared-memory tree: parallel over classes, no atomics, the
# same order every run.
#
# A reduction with one input and one output may instead go to CUB's block reduction (where CuPy finds
# nvcc), whose source CuPy writes only on a GPU machine; the row max as a second output keeps this one
# on CuPy's own reduction kernel, the source the NVRTC test compiles (CuPy returns the first output).
REDUCTIONS = {
    # log-sum-exp (and max) of each row of (rows, C) logits in one pass over the classes (axis=1)
    "softmax_xent_lse": ("T x", "T lse, T row_max", "minigrad_lse<T>(x, (T)1)", "minigrad_lse_add(a, b)",
                         "lse = a.m + log(a.s), row_max = a.m", "minigrad_lse<T>((T)0, (T)0)", "minigrad_lse<T>",
                         _LSE_PREAMBLE),
}


@functools.lru_cache(maxsize=None)
def reduction(name: str):
    """The CuPy ReductionKernel for REDUCTIONS[name] (built once, compiled per dtype on first use)."""
    import cupy
    in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, reduce_type, preamble = REDUCTIONS[name]
    return cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity,
                                f"minigrad_{name}", reduce_type=reduce_type, preamble=preamble)


@functools.lru_cache(maxsize=None)
def kernel(name: str):
    """The compiled CuPy ElementwiseKernel for KERNELS[name] (built once)."""
    import cupy
    in_params, out_params, body = KERNELS[name]
    return cupy.ElementwiseKernel(in_params, out_params, body, f"minigrad_{name}")


def _contiguous(a):
    import cupy
    return cupy.ascontiguousarray(a)


# ----------------------------------------------------------------------------- wrappers

def im2col_gpu(x, kernel_size, stride, pads, dilation, out_size):
    """x: (N, C, H, W) CuPy array -> cols (N, C, kh, kw, OH, OW)."""
    import cupy
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), (out_h, out_w) = kernel_size, stride, dilation, out_size
    cols = cupy.empty((n, c, kh, kw, out_h, out_w), dtype=x.dtype)
    kernel("im2col")(_contiguous(x), h, w, out_h, out_w, kh, kw, sh, sw, pads[0], pads[2], dh, dw, cols)
    return cols


def col2im_gpu(cols, input_size, stride, pads, dilation):
    """cols: (N, C, kh, kw, OH, OW) CuPy array -> (N, C, H, W), the adjoint of im2col_gpu."""
    import cupy
    n, c, kh, kw, out_h, out_w = cols.shape
    h, w = input_size
    (sh, sw), (dh, dw) = stride, dilation
    image = cupy.empty((n, c, h, w), dtype=cols.dtype)
    kernel("col2im")(_contiguous(cols), h, w, out_h, out_w, kh, kw, sh, sw, pads[0], pads[2], dh, dw, image)
    return image


def _pool_window(geom):
    (h, w), (out_h, out_w) = geom.in_size, geom.out_size
    return (h, w, out_h, out_w, geom.kernel[0], geom.kernel[1], geom.stride[0], geom.stride[1],
            geom.pads[0], geom.pads[2], geom.dilation[0], geom.dilation[1])


def max_pool_forward_gpu(x, geom):
    """x: (N, C, H, W) -> (y (N, C, OH, OW), argmax kernel offset int32 (N, C, OH, OW))."""
    import cupy
    shape = x.shape[:2] + tuple(geom.out_size)
    y = cupy.empty(shape, dtype=x.dtype)
    argmax = cupy.empty(shape, dtype=cupy.int32)
    kernel("max_pool_forward")(_contiguous(x), *_pool_window(geom), y, argmax)
    return y, argmax


def max_pool_backward_gpu(grad_out, argmax, in_shape, geom):
    """Gather dy onto each input pixel that was its window's maximum. Returns (N, C, H, W)."""
    import cupy
    dx = cupy.empty(in_shape, dtype=grad_out.dtype)
    kernel("max_pool_backward")(_contiguous(grad_out), _contiguous(argmax.astype(cupy.int32, copy=False)),
                                *_pool_window(geom), dx)
    return dx


def _avg_args(geom, count_include_pad, divisor_override):
    (h, w), (out_h, out_w) = geom.in_size, geom.out_size
    return (h, w, out_h, out_w, geom.kernel[0], geom.kernel[1], geom.stride[0], geom.stride[1],
            geom.padding[0], geom.padding[1], bool(count_include_pad), float(divisor_override or 0))


def avg_pool_forward_gpu(x, geom, count_include_pad, divisor_override):
    import cupy
    y = cupy.empty(x.shape[:2] + tuple(geom.out_size), dtype=x.dtype)
    kernel("avg_pool_forward")(_contiguous(x), *_avg_args(geom, count_include_pad, divisor_override), y)
    return y


def avg_pool_backward_gpu(grad_out, in_shape, geom, count_include_pad, divisor_override):
    import cupy
    dx = cupy.empty(in_shape, dtype=grad_out.dtype)
    kernel("avg_pool_backward")(_contiguous(grad_out), *_avg_args(geom, count_include_pad, divisor_override), dx)
    return dx


def softmax_xent_forward_gpu(logits, target, ignore_index):
    """logits: (rows, C), target: (rows,) int64 -> (per-row loss (rows,), log-sum-exp (rows,)).

    Two launches: the row log-sum-exp, parallel over the classes of each row (REDUCTIONS), then one
    thread per row for its loss.
    """
    import cupy
    logits = _contiguous(logits)
    rows, classes = logits.shape
    lse = reduction("softmax_xent_lse")(logits, axis=1)
    loss = cupy.empty(rows, dtype=logits.dtype)
    kernel("softmax_xent_forward")(logits, lse, _contiguous(target.astype(cupy.int64, copy=False)), classes,
                                   ignore_index, loss)
    return loss, lse


def softmax_xent_backward_gpu(logits, lse, target, ignore_index, scale):
    """scale * (softmax(logits) - onehot(target)), zero rows where target == ignore_index."""
    import cupy
    grad = cupy.empty_like(logits)
    kernel("softmax_xent_backward")(_contiguous(logits), lse, _contiguous(target.astype(cupy.int64, copy=False)),
                                    logits.shape[1], ignore_index, scale, grad)
    return grad


def warm_up(dtype) -> None:
    """Compile every kernel of this module for ``dtype`` now (tiny arrays; CuPy caches the binaries).

    A kernel is otherwise compiled at its first call, inside whatever is being timed; the training
    loop and ``minigrad bench`` call this first and report its time separately.
    """
    import cupy
    from types import SimpleNamespace
    x = cupy.ones((1, 1, 4, 4), dtype=dtype)
    cols = im2col_gpu(x, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (2, 2))
    col2im_gpu(cols, (4, 4), (2, 2), (0, 0, 0, 0), (1, 1))
    geom = SimpleNamespace(in_size=(4, 4), out_size=(2, 2), kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0),
                           dilation=(1, 1), padding=(0, 0))
    y, argmax = max_pool_forward_gpu(x, geom)
    max_pool_backward_gpu(y, argmax, x.shape, geom)
    avg_pool_backward_gpu(avg_pool_forward_gpu(x, geom, True, None), x.shape, geom, True, None)
    logits, target = cupy.ones((2, 3), dtype=dtype), cupy.zeros(2, dtype=cupy.int64)
    _, lse = softmax_xent_forward_gpu(logits, target, -100)
    for scale in (0.5, cupy.asarray(0.5, dtype=dtype)):     # a number, or a 0-d array broadcast
        softmax_xent_backward_gpu(logits, lse, target, -100, scale)
    param, grad, buf = cupy.ones(3, dtype=dtype), cupy.ones(3, dtype=dtype), cupy.zeros(3, dtype=dtype)
    kernel("sgd_momentum")(grad, 0.1, 0.9, 0.0, 0.0, False, False, True, param, buf)
    kernel("adam")(grad, 0.1, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.1, False, False, param, buf, cupy.ones(3, dtype=dtype))
    cupy.cuda.get_current_stream().synchronize()
