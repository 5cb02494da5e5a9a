"""Losses on pairs and triplets of vectors and the multi-class hinge: the math of ``nn.CosineEmbeddingLoss``,
``nn.MultiMarginLoss`` and ``nn.TripletMarginLoss``, and their ``torch.nn.functional`` forms. ``*_forward``
returns ``(loss, saved)``; ``*_backward(saved, grad, ...)`` returns the gradients of the inputs (a tuple for
the two- and three-input losses). With a = the upstream gradient (divided by the batch size for 'mean'):

    CosineEmbeddingLoss  x1, x2: (N, D) or (D,); y: (N,) or (); m_k = |x_k|^2 + 1e-12 (PyTorch's EPSILON)
        c = (x1 . x2) / sqrt(m_1 m_2);  l = 1 - c if y = 1, max(0, c - margin) if y = -1, 0 otherwise
        dc/dx1 = x2 / sqrt(m_1 m_2) - c x1 / m_1 (and symmetrically); dx_k = a (dl/dc) dc/dx_k
    MultiMarginLoss      x: (N, C) or (C,); t: class indices; z_j = margin - x_t + x_j
        l = sum_{j != t} w_t max(0, z_j)^p / C  (p = 1 or 2)
        dx_j = a w_t p max(0, z_j)^(p-1) / C (j != t);  dx_t = -sum_{j != t} dx_j
    TripletMarginLoss    anchor, positive, negative: (N, D) or (D,) (any rank, the last axis is the vector)
        d(u, v) = ||u - v + eps||_p (PyTorch's pairwise_distance); d_n = min(d(a, n), d(p, n)) with swap
        l = max(0, margin + d(a, p) - d_n); through the p-norm: d||v||_p / dv = sign(v) |v|^(p-1) / ||v||^(p-1)
        (p = 2: v / ||v||; p = inf: split among the largest entries), 0 where the norm is 0; a tie
        d(a, n) = d(p, n) splits the gradient in halves, as PyTorch's min does.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..runtime.backend import backend_of, get_array_module, is_array, to_backend
from ..runtime.checks import check_float_array, check_same_dtype
from .loss import check_reduction, check_weight, upstream_gradient
from .loss_more import check_flag, check_ranking_target, check_real, reduce_array

__all__ = ["cosine_embedding_loss", "multi_margin_loss", "triplet_margin_loss", "check_p", "check_norm_degree",
           "cosine_embedding_forward", "cosine_embedding_backward", "multi_margin_forward", "multi_margin_backward",
           "triplet_margin_forward", "triplet_margin_backward"]

COSINE_EPSILON = float(numpy.float32(1e-12))    # PyTorch's float EPSILON added to the squared norms


def _check_same(arrays, names, where):
    first = arrays[0]
    for array, name in zip(arrays, names):
        check_float_array(array, where, name)
        get_array_module(first, array, names=(names[0], name), where=where)
        check_same_dtype(first, array, where, names[0], name)


# -- cosine embedding ---------------------------------------------------------------------------------------
def cosine_embedding_forward(input1, input2, target, margin, reduction, where):
    """input1, input2: (N, D) with target (N,), or (D,) with target () -> (loss, saved)."""
    _check_same((input1, input2), ("input1", "input2"), where)
    check_ranking_target(target, input1, where)
    if target.ndim not in (0, 1):
        raise ValueError(f"{where}: expected a 0-D or 1-D target (multi-target not supported), got target of "
                         f"shape {tuple(target.shape)}")
    want = 2 if target.ndim == 1 else 1
    if input1.ndim != want or tuple(input1.shape) != tuple(input2.shape) or (
            want == 2 and target.shape[0] != input1.shape[0]):
        raise ValueError(f"{where}: a {target.ndim}-D target of shape {tuple(target.shape)} expects two "
                         f"{want}-D inputs of one shape{' (N, D) with N = len(target)' if want == 2 else ' (D,)'}, "
                         f"got {tuple(input1.shape)} and {tuple(input2.shape)}")
    xp = get_array_module(input1)
    axis = target.ndim                                   # the vector axis
    prod = (input1 * input2).sum(axis=axis)             # (N,) or ()
    m1 = (input1 * input1).sum(axis=axis) + COSINE_EPSILON
    m2 = (input2 * input2).sum(axis=axis) + COSINE_EPSILON
    denom = xp.sqrt(m1 * m2)
    cos = prod / denom
    positive, negative = target == 1, target == -1
    per = xp.where(positive, 1.0 - cos, 0.0) + xp.where(negative, xp.maximum(cos - margin, 0.0), 0.0)
    slope = (negative & (cos - margin > 0)).astype(cos.dtype) - positive.astype(cos.dtype)   # dl/dc
    return reduce_array(per, per.size, reduction, input1), (input1, input2, cos, denom, m1, m2, slope)


def cosine_embedding_backward(saved, grad, reduction, where):
    """-> (gradient of input1, gradient of input2)."""
    x1, x2, cos, denom, m1, m2, slope = saved
    a = upstream_gradient(grad, cos.shape, cos.size, x1, reduction, where)
    g = (a * slope)[..., None]                           # (N,) -> (N, 1); () -> (1,)
    grad1 = g * (x2 / denom[..., None] - (cos / m1)[..., None] * x1)
    grad2 = g * (x1 / denom[..., None] - (cos / m2)[..., None] * x2)
    return grad1.astype(x1.dtype, copy=False), grad2.astype(x1.dtype, copy=False)


# -- multi-class margin (hinge) -----------------------------------------------------------------------------
def check_p(p, where: str) -> int:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or p not in (1, 2):
        raise ValueError(f"{where}: only p == 1 and p == 2 are supported, got p={p!r}")
    return int(p)


def multi_margin_forward(input, target, p, margin, weight, reduction, where):
    """input: (N, C), (C,) or (); target: (N,) class indices ((), or (1,), for one sample) -> (loss, saved)."""
    check_float_array(input, where)
    if not is_array(target):
        raise TypeError(f"{where}: expected target to be an array, got {type(target).__name__}")
    get_array_module(input, target, names=("input", "target"), where=where)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected target to hold class indices of an integer dtype (e.g. int64), got "
                        f"dtype {target.dtype}")
    x = input
    if not (x.ndim == 0 or (x.ndim in (1, 2) and x.shape[-1] != 0)):
        raise ValueError(f"{where}: expected a non-empty vector (C,) or matrix (N, C) with optional 0-dim batch "
                         f"size, got input of shape {tuple(x.shape)}")
    frames, classes = (x.shape[0], x.shape[1]) if x.ndim == 2 else (1, x.shape[0] if x.ndim else 1)
    if target.ndim > 1 or target.size != frames:
        raise ValueError(f"{where}: inconsistent target size: expected {frames} class index(es) for input of "
                         f"shape {tuple(x.shape)}, got target of shape {tuple(target.shape)}")
    if weight is not None:
        if weight.ndim > 1 or weight.size != classes:
            raise ValueError(f"{where}: weight must be one-dimensional with one entry per class ({classes}), got "
                             f"shape {tuple(weight.shape)}")
        if backend_of(weight) != backend_of(x):
            weight = to_backend(weight, backend_of(x))
        weight = weight.reshape(-1).astype(x.dtype, copy=False)     # () or (C,) -> (C,)
    xp = get_array_module(x)
    rows = x.reshape(frames, classes)                    # (N, C) or (C,) / () -> (1, C)
    t = target.reshape(frames)                           # (N,) or () / (1,) -> (N,)
    bad = (t < 0) | (t >= classes)
    if bool(bad.any()):                                  # one value read back (a device sync)
        raise ValueError(f"{where}: target out of range: class indices must be in [0, {classes}), got "
                         f"{int(t[bad].reshape(-1)[0])}")
    picked = xp.take_along_axis(rows, t[:, None], axis=1)            # (N, 1): x_t
    z = (margin - picked) + rows                                      # (N, C)
    active = (z > 0) & (xp.arange(classes)[None, :] != t[:, None])   # (N, C)
    h = z if p == 1 else z * z
    w_t = None if weight is None else xp.take(weight, t)[:, None]    # (N, 1)
    if w_t is not None:
        h = h * w_t
    per = xp.where(active, h, 0.0).sum(axis=1) / classes             # (N,)
    if target.ndim == 0:
        per = per.reshape(())                                        # (1,) -> ()
    saved = (z, active, w_t, t, per.shape, frames, x)
    return reduce_array(per, frames, reduction, x), saved


def multi_margin_backward(saved, grad, reduction, p, where):
    z, active, w_t, t, per_shape, frames, x = saved
    xp = get_array_module(x)
    a = upstream_gradient(grad, per_shape, frames, x, reduction, where)
    if is_array(a):
        a = a.reshape(-1, 1) if a.ndim else a            # (N,) / () -> (N, 1)
    classes = z.shape[1]
    slope = active.astype(x.dtype) if p == 1 else xp.where(active, 2.0 * z, 0.0)   # (N, C): d max(0, z)^p / dz
    if w_t is not None:
        slope = slope * w_t
    grad_rows = slope * (a / classes)
    onehot = xp.arange(classes)[None, :] == t[:, None]              # (N, C)
    grad_rows = grad_rows - onehot * grad_rows.sum(axis=1, keepdims=True)
    return grad_rows.astype(x.dtype, copy=False).reshape(x.shape)   # (N, C) -> the input's shape


# -- triplet margin -----------------------------------------------------------------------------------------
def check_norm_degree(p, where: str) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > 0:
        raise ValueError(f"{where}: p (the norm degree) must be a positive number or inf, got {p!r}")
    return float(p)


def _norm(v, p):
    """||v||_p along the last axis: (..., D) -> (...)."""
    xp = get_array_module(v)
    if p == 2:
        return xp.sqrt((v * v).sum(axis=-1))
    if p == 1:
        return xp.abs(v).sum(axis=-1)
    if math.isinf(p):
        return xp.abs(v).max(axis=-1) if v.shape[-1] else xp.zeros(v.shape[:-1], v.dtype)
    return (xp.abs(v) ** p).sum(axis=-1) ** (1.0 / p)


def _norm_grad(v, norm, g, p):
    """g (...) times d||v||_p / dv -> (..., D); 0 where the norm is 0, as PyTorch's norm backward."""
    xp = get_array_module(v)
    if p == 1:
        return xp.sign(v) * g[..., None]
    if math.isinf(p):
        top = xp.abs(v) == norm[..., None]                           # the largest entries share the gradient
        return xp.sign(v) * top * (g / xp.maximum(top.sum(axis=-1), 1).astype(v.dtype))[..., None]
    scale = xp.where(norm == 0, 0.0, g / xp.where(norm == 0, 1.0, norm if p == 2 else norm ** (p - 1)))
    if p == 2:
        return v * scale[..., None]
    with numpy.errstate(divide="ignore", invalid="ignore"):
        powered = xp.where(v == 0, 0.0, xp.abs(v) ** (p - 1))
    return xp.sign(v) * powered * scale[..., None]


def _sum_to(grad, shape):
    """Sum a broadcast gradient back to an input's shape (same rank)."""
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, shape)) if s == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def triplet_margin_forward(anchor, positive, negative, margin, p, eps, swap, reduction, where):
    """anchor, positive, negative: (N, D) or (D,) (one rank; broadcastable) -> (loss, saved)."""
    names = ("anchor", "positive", "negative")
    arrays = (anchor, positive, negative)
    _check_same(arrays, names, where)
    if len({a.ndim for a in arrays}) != 1 or anchor.ndim == 0:
        raise ValueError(f"{where}: anchor, positive and negative must have the same number of dimensions "
                         f"(at least 1), got shapes {', '.join(str(tuple(a.shape)) for a in arrays)}")
    try:
        numpy.broadcast_shapes(*(tuple(a.shape) for a in arrays))
    except ValueError:
        raise ValueError(f"{where}: the shapes of anchor, positive and negative "
                         f"{', '.join(str(tuple(a.shape)) for a in arrays)} do not broadcast together") from None
    xp = get_array_module(anchor)
    v_pos = anchor - positive + eps                      # PyTorch's pairwise_distance adds eps to the difference
    v_neg = anchor - negative + eps
    d_pos, d_neg = _norm(v_pos, p), _norm(v_neg, p)
    v_swap = d_swap = None
    if swap:
        v_swap = positive - negative + eps
        d_swap = _norm(v_swap, p)
        d_neg_used = xp.minimum(d_neg, d_swap)
    else:
        d_neg_used = d_neg
    z = (margin + d_pos) - d_neg_used
    per = xp.maximum(z, 0.0)
    saved = (v_pos, v_neg, v_swap, d_pos, d_neg, d_swap, z > 0, tuple(tuple(a.shape) for a in arrays), anchor)
    return reduce_array(per, per.size, reduction, anchor), saved


def triplet_margin_backward(saved, grad, reduction, p, where):
    """-> (gradient of anchor, of positive, of negative)."""
    v_pos, v_neg, v_swap, d_pos, d_neg, d_swap, active, shapes, like = saved
    xp = get_array_module(like)
    a = upstream_gradient(grad, d_pos.shape, d_pos.size, like, reduction, where)
    g = xp.where(active, a, 0.0).astype(like.dtype, copy=False)   # dl/dz, shape of the loss per triplet
    from_pos = _norm_grad(v_pos, d_pos, g, p)                       # d/d(anchor - positive)
    g_neg = -g
    if v_swap is not None:                                          # min(d_neg, d_swap): a tie splits it in halves
        half = xp.where(d_neg == d_swap, 0.5, 1.0).astype(like.dtype)
        g_swap = g_neg * half * (d_swap <= d_neg)
        g_neg = g_neg * half * (d_neg <= d_swap)
        from_swap = _norm_grad(v_swap, d_swap, g_swap, p)
    from_neg = _norm_grad(v_neg, d_neg, g_neg, p)
    grad_anchor = from_pos + from_neg
    grad_positive = -from_pos
    grad_negative = -from_neg
    if v_swap is not None:
        grad_positive = grad_positive + from_swap
        grad_negative = grad_negative - from_swap
    return tuple(_sum_to(gr, shape).astype(like.dtype, copy=False).reshape(shape)
                 for gr, shape in zip((grad_anchor, grad_positive, grad_negative), shapes))


# -- torch.nn.functional's forms (forward only) ---------------------------------------------------------------
def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                          reduction: str = "mean"):
    """1 - cos(input1, input2) where target = 1, max(0, cos - margin) where target = -1; rows (N, D) or (D,)."""
    where = "cosine_embedding_loss"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return cosine_embedding_forward(input1, input2, target, check_real(margin, where, "margin"), reduction, where)[0]


def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                      reduction: str = "mean"):
    """The multi-class hinge loss of scores input (N, C) against class indices target (N,)."""
    where = "multi_margin_loss"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return multi_margin_forward(input, target, check_p(p, where), check_real(margin, where, "margin"),
                                check_weight(weight, where, "weight"), reduction, where)[0]


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean"):
    """max(0, margin + d(anchor, positive) - d(anchor, negative)) with PyTorch's pairwise_distance, reduced."""
    where = "triplet_margin_loss"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return triplet_margin_forward(anchor, positive, negative, check_real(margin, where, "margin", 0.0, strict=True),
                                  check_norm_degree(p, where), check_real(eps, where, "eps"),
                                  check_flag(swap, where, "swap"), reduction, where)[0]
