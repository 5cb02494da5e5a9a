"""Losses: the math of ``nn.CrossEntropyLoss`` ... ``nn.BCEWithLogitsLoss`` and their ``torch.nn.functional``
forms. Each ``*_forward`` returns ``(loss, saved)``; the matching ``*_backward(saved, grad, ...)`` returns
the gradient of the input. Errors name ``where`` (the layer, or the function).

With a = the upstream gradient (divided by the normaliser D for reduction='mean'):

    CrossEntropyLoss  logp = log_softmax(x, dim=1), p = exp(logp), eps = label_smoothing
        class indices t:  l_i = (1-eps) * -w[t_i] logp[i, t_i] + eps/C * -sum_c w_c logp[i, c]
                          (0 where t_i == ignore_index); mean: D = sum_i w[t_i] over kept i
                          dx = a_i * ((1-eps) w[t_i] (p - onehot(t_i)) + eps/C (p sum_c w_c - w))
        probabilities q:  q' = (1-eps) q + eps/C; l_i = -sum_c w_c q'_c logp[i, c]; mean: D = rows
                          dx = a_i * (p sum_c w_c q'_c - w q')
    NLLLoss           l_i = -w[t_i] x[i, t_i];  dx = -a_i w[t_i] onehot(t_i); mean: D = sum_i w[t_i]
    MSELoss           l = (x - y)^2;  dx = 2 a (x - y); mean: D = number of elements
    BCEWithLogitsLoss l = w ((1-y) x + (1 + (pw-1) y) softplus(-x))   (stable softplus)
                      dx = a w ((1-y) - (1 + (pw-1) y) sigmoid(-x)); mean: D = number of elements

Exactly PyTorch's semantics for weights, ignore_index, label_smoothing and the three reductions.
Targets are validated on both backends with array ops; a range check reads back one bool (or, for a
layer inside ``deferred_checks()``, is counted on the device: ``count_invalid``).
"""
from __future__ import annotations

import numbers

import numpy

from ..kernels.dispatch import gpu_kernels
from ..runtime.backend import backend_of, get_array_module, is_array, to_backend
from ..runtime.checks import check_float_array, check_same_dtype
from .activation import log_softmax_along

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
           "check_reduction", "check_ignore_index", "check_weight", "check_label_smoothing",
           "cross_entropy_forward", "cross_entropy_backward", "nll_loss_forward", "nll_loss_backward",
           "mse_loss_forward", "mse_loss_backward", "bce_with_logits_forward", "bce_with_logits_backward"]

_REDUCTIONS = ("mean", "sum", "none")


# -- options ----------------------------------------------------------------------------------------------
def check_reduction(reduction, size_average, reduce, where: str) -> str:
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None:   # PyTorch's deprecated pair: refused, with the replacement named
            raise NotImplementedError(
                f"{where}: {name}= (deprecated in PyTorch) is not supported; use reduction="
                f"'mean' (the default), 'sum' (size_average=False) or 'none' (reduce=False)")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def check_ignore_index(ignore_index, where: str) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{where}: ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


def check_weight(array, where: str, name: str, one_per_class: bool = False):
    """A weight: None or a floating array (1-D, one per class, for the class-index losses)."""
    if array is not None:
        check_float_array(array, where, name)
        if one_per_class and array.ndim != 1:
            raise ValueError(f"{where}: weight must be a 1-D array of one weight per class, got "
                             f"shape {tuple(array.shape)}")
    return array


def check_label_smoothing(label_smoothing, where: str) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or not (
            0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"{where}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    return float(label_smoothing)


def _like(array, pred):
    """A weight on pred's backend, in pred's dtype (None stays None)."""
    if array is None:
        return None
    if backend_of(array) != backend_of(pred):
        array = to_backend(array, backend_of(pred))
    return array.astype(pred.dtype, copy=False)


# -- reduction and the upstream gradient -------------------------------------------------------------------
def _reduce(per_element, normaliser, reduction):
    """per-element losses -> the returned value (0-d array unless reduction='none')."""
    xp = get_array_module(per_element)
    if reduction == "none":
        return per_element
    total = per_element.sum()
    if reduction == "mean":
        with numpy.errstate(invalid="ignore", divide="ignore"):   # nothing counted: nan, like PyTorch
            total = total / normaliser
    return xp.asarray(total, dtype=per_element.dtype)      # numpy returns scalars: make it 0-d


def _upstream(grad, per_shape, normaliser, reference, reduction, where):
    """The gradient reaching each per-element loss: grad (/ D for 'mean'), shape-checked."""
    if is_array(grad):
        get_array_module(grad, reference, names=("grad", "input"), where=where)
        expected = tuple(per_shape) if reduction == "none" else ()
        if tuple(grad.shape) != expected:
            raise ValueError(f"{where}: expected grad of shape {expected} (the loss's shape with "
                             f"reduction={reduction!r}), got {tuple(grad.shape)}")
        grad = grad.astype(reference.dtype, copy=False)
    elif not isinstance(grad, numbers.Real):
        raise TypeError(f"{where}: grad must be a number or an array, got {type(grad).__name__}")
    if reduction != "mean":
        return grad
    # a batch whose targets are all ignored (or all of weight 0): the loss is nan, like PyTorch's, and
    # its gradient 0 (not nan): dividing by inf instead of 0 keeps it on the device, with no sync
    xp = get_array_module(reference)
    divisor = xp.asarray(normaliser)
    divisor = xp.where(divisor == 0, xp.inf, divisor).astype(reference.dtype)
    return grad / divisor


# -- class-index losses -----------------------------------------------------------------------------------
def _batched(x, target, ignore_index, allow_probabilities, where, count_invalid=None):
    """Check shapes/dtypes; return (x as (N, C, *), target, unbatched, is_probability)."""
    check_float_array(x, where)
    get_array_module(x, target, names=("input", "target"), where=where)
    if not is_array(target):
        raise TypeError(f"{where}: expected target to be an array, got {type(target).__name__}")
    if x.ndim == 0:
        raise ValueError(f"{where}: expected input of shape (C,), (N, C) or (N, C, d1, ...), got a 0-d input")
    unbatched = x.ndim == 1
    if unbatched:
        x, target = x[None], target[None]                 # (C,) -> (1, C); () -> (1,)
    classes = x.shape[1]
    if allow_probabilities and target.dtype.kind == "f" and tuple(target.shape) == tuple(x.shape):
        check_same_dtype(x, target, where, "input", "target")
        return x, target, unbatched, True
    if target.dtype.kind not in "iu":
        kinds = "class indices of an integer dtype (e.g. int64)" + (
            " or class probabilities of the input's shape" if allow_probabilities else "")
        raise TypeError(f"{where}: expected target to hold {kinds}, got target of dtype {target.dtype} "
                        f"and shape {tuple(target.shape[1:] if unbatched else target.shape)}")
    expected = (x.shape[0],) + tuple(x.shape[2:])
    if tuple(target.shape) != expected:
        shown = tuple(target.shape[1:]) if unbatched else tuple(target.shape)
        want = () if unbatched else expected
        raise ValueError(f"{where}: expected target of shape {want} for input of shape "
                         f"{tuple(x.shape[1:]) if unbatched else tuple(x.shape)} (batch and extra dimensions "
                         f"of the input, without the class dimension), got target of shape {shown}")
    kept = target != ignore_index
    out_of_range = kept & ((target < 0) | (target >= classes))
    if count_invalid is not None and not isinstance(target, numpy.ndarray):   # device: count now, read later
        count_invalid(out_of_range.sum(), classes)
    elif bool(out_of_range.any()):                        # the only value read back to the host
        example = int(target[out_of_range].reshape(-1)[0])
        raise ValueError(f"{where}: target values must be class indices in [0, {classes}) or ignore_index="
                         f"{ignore_index}; got {example}")
    return x, target, unbatched, False


def _class_weight(weight, x, where):
    weight = _like(weight, x)
    if weight is not None and weight.shape[0] != x.shape[1]:
        raise ValueError(f"{where}: weight has {weight.shape[0]} entries but the input has {x.shape[1]} "
                         f"classes (input of shape {tuple(x.shape)})")
    return weight


def _gather(x, target, ignore_index):
    """(safe target, kept mask, x[i, t_i], onehot(t) as bool (N, C, *))."""
    xp = get_array_module(x)
    kept = target != ignore_index
    safe = xp.where(kept & (target >= 0) & (target < x.shape[1]), target, 0)   # (N, *) valid indices
    picked = xp.take_along_axis(x, safe[:, None], axis=1)[:, 0]   # (N, 1, *) -> (N, *)
    classes = xp.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2))  # (1, C, 1, ...)
    onehot = classes == safe[:, None]                    # (N, C, *)
    return safe, kept, picked, onehot


def _weight_of_target(xp, weight, safe, kept, dtype):
    if weight is None:
        return kept.astype(dtype)
    return xp.take(weight, safe) * kept                   # (N, *)


def cross_entropy_forward(input, target, weight, ignore_index, reduction, label_smoothing, where,
                          count_invalid=None):
    """input: logits (N, C, *) / (C,); target: (N, *) ints or (N, C, *) probabilities -> (loss, saved)."""
    x, target, unbatched, soft = _batched(input, target, ignore_index, True, where, count_invalid)
    xp = get_array_module(x)
    weight = _class_weight(weight, x, where)
    eps, classes = label_smoothing, x.shape[1]
    gpu = gpu_kernels(x)
    if gpu is not None and not soft and x.ndim == 2 and weight is None and not eps and reduction != "none":
        per, lse = gpu.softmax_xent_forward_gpu(x, target, ignore_index)  # fused CUDA kernels: (N,), (N,)
        normaliser = (target != ignore_index).sum().astype(x.dtype)
        return _reduce(per, normaliser, reduction), (x, ("fused", lse, target), per.shape, normaliser, unbatched)
    w_b = None if weight is None else weight.reshape((1, -1) + (1,) * (x.ndim - 2))  # (C,) -> (1, C, 1..)
    logp = log_softmax_along(x, 1)
    if soft:
        q = target * (1.0 - eps) + eps / classes if eps else target
        wq = q if w_b is None else q * w_b
        per = -(logp * wq).sum(axis=1)                    # (N, *)
        normaliser = per.size
        saved = (logp, ("soft", wq), per.shape, normaliser, unbatched)
    else:
        safe, kept, logp_t, onehot = _gather(logp, target, ignore_index)
        w_t = _weight_of_target(xp, weight, safe, kept, x.dtype)
        per = -w_t * logp_t
        if eps:
            smooth = -(logp.sum(axis=1) if w_b is None else (logp * w_b).sum(axis=1))
            per = (1.0 - eps) * per + (eps / classes) * xp.where(kept, smooth, 0.0)
        normaliser = w_t.sum()
        saved = (logp, ("index", w_t, kept, onehot, w_b), per.shape, normaliser, unbatched)
    out = _reduce(per, normaliser, reduction)
    return (out.reshape(()) if unbatched and reduction == "none" else out), saved   # (1,) -> ()


def cross_entropy_backward(saved, grad, ignore_index, reduction, label_smoothing, where):
    """grad: scalar (or per-element array for reduction='none') -> gradient of the logits."""
    logp, extra, per_shape, normaliser, unbatched = saved
    xp = get_array_module(logp)
    if unbatched and is_array(grad) and reduction == "none":
        grad = grad[None]                                 # () -> (1,)
    a = _upstream(grad, per_shape, normaliser, logp, reduction, where)
    if extra[0] == "fused":                               # logp holds the logits here
        grad_x = gpu_kernels(logp).softmax_xent_backward_gpu(logp, extra[1], extra[2], ignore_index, a)
        return grad_x[0] if unbatched else grad_x
    a = a[:, None] if is_array(a) and a.ndim else a       # (N, *) -> (N, 1, *)
    p = xp.exp(logp)
    eps, classes = label_smoothing, logp.shape[1]
    if extra[0] == "soft":
        wq = extra[1]
        grad_x = a * (p * wq.sum(axis=1, keepdims=True) - wq)
    else:
        _, w_t, kept, onehot, w_b = extra
        w_t = w_t[:, None]                                # (N, *) -> (N, 1, *)
        grad_x = (1.0 - eps) * w_t * (p - onehot)
        if eps:
            w_sum = float(classes) if w_b is None else w_b.sum()
            spread = p * w_sum - (1.0 if w_b is None else w_b)
            grad_x = grad_x + (eps / classes) * spread * kept[:, None]
        grad_x = a * grad_x
    grad_x = grad_x.astype(logp.dtype, copy=False)
    return grad_x[0] if unbatched else grad_x


def nll_loss_forward(input, target, weight, ignore_index, reduction, where, count_invalid=None):
    """input: log-probabilities (N, C, *) / (C,); target: (N, *) integer class indices -> (loss, saved)."""
    x, target, unbatched, _ = _batched(input, target, ignore_index, False, where, count_invalid)
    xp = get_array_module(x)
    weight = _class_weight(weight, x, where)
    safe, kept, x_t, onehot = _gather(x, target, ignore_index)
    w_t = _weight_of_target(xp, weight, safe, kept, x.dtype)
    per = -w_t * x_t
    normaliser = w_t.sum()
    out = _reduce(per, normaliser, reduction)
    saved = (w_t, onehot, per.shape, normaliser, unbatched, x)
    return (out.reshape(()) if unbatched and reduction == "none" else out), saved   # (1,) -> ()


def nll_loss_backward(saved, grad, reduction, where):
    w_t, onehot, per_shape, normaliser, unbatched, x = saved
    if unbatched and is_array(grad) and reduction == "none":
        grad = grad[None]
    a = _upstream(grad, per_shape, normaliser, x, reduction, where)
    scale = -(a * w_t)                                    # (N, *)
    grad_x = (scale[:, None] * onehot).astype(x.dtype, copy=False)   # (N, 1, *) * (N, C, *)
    return grad_x[0] if unbatched else grad_x


# -- elementwise losses -----------------------------------------------------------------------------------
def _check_pair(pred, target, where):
    get_array_module(pred, target, names=("input", "target"), where=where)
    check_float_array(pred, where)
    check_float_array(target, where, "target")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{where}: expected target of the input's shape {tuple(pred.shape)}, got target of "
                         f"shape {tuple(target.shape)}")
    check_same_dtype(pred, target, where, "input", "target")


def mse_loss_forward(input, target, reduction, where):
    """input, target: same shape -> (loss, saved: the difference)."""
    _check_pair(input, target, where)
    diff = input - target
    return _reduce(diff * diff, diff.size, reduction), diff


def mse_loss_backward(diff, grad, reduction, where):
    a = _upstream(grad, diff.shape, diff.size, diff, reduction, where)
    return (2.0 * a * diff).astype(diff.dtype, copy=False)


def _broadcasts_to(small, big) -> bool:
    """True when an array of shape ``small`` broadcasts to ``big`` without growing it."""
    if len(small) > len(big):
        return False
    return all(s in (1, b) for s, b in zip(reversed(small), reversed(big)))


def _factor(value, x, name, where):
    value = _like(value, x)
    if value is not None and not _broadcasts_to(tuple(value.shape), tuple(x.shape)):
        raise ValueError(f"{where}: {name} of shape {tuple(value.shape)} does not broadcast to the input "
                         f"of shape {tuple(x.shape)}")
    return value


def bce_with_logits_forward(input, target, weight, pos_weight, reduction, where):
    """input: logits, target: probabilities in [0, 1], same shape -> (loss, saved)."""
    _check_pair(input, target, where)
    xp = get_array_module(input)
    x, y = input, target
    weight, pos_weight = _factor(weight, x, "weight", where), _factor(pos_weight, x, "pos_weight", where)
    softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0.0)   # log(1 + exp(-x)), stable
    log_weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * y
    per = (1.0 - y) * x + log_weight * softplus_neg
    if weight is not None:
        per = per * weight
    return _reduce(per, per.size, reduction), (x, y, weight, log_weight)


def bce_with_logits_backward(saved, grad, reduction, where):
    x, y, weight, log_weight = saved
    xp = get_array_module(x)
    a = _upstream(grad, x.shape, x.size, x, reduction, where)
    z = xp.exp(-xp.abs(x))
    sigmoid_neg = xp.where(x >= 0, z / (1.0 + z), 1.0 / (1.0 + z))       # sigmoid(-x)
    grad_x = (1.0 - y) - log_weight * sigmoid_neg
    if weight is not None:
        grad_x = grad_x * weight
    return (a * grad_x).astype(x.dtype, copy=False)


# the added losses (functional/loss_more.py, loss_pairs.py) reduce, take the upstream gradient and check
# their (input, target) pair and weights exactly as these do
reduce_losses, upstream_gradient, check_pair, broadcast_factor = _reduce, _upstream, _check_pair, _factor


# -- torch.nn.functional's forms (forward only) -------------------------------------------------------------
def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Softmax cross-entropy of logits (N, C, *) against class indices (N, *) or probabilities (N, C, *).
    (size_average/reduce, deprecated in PyTorch, raise NotImplementedError naming reduction=.)"""
    where = "cross_entropy"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return cross_entropy_forward(input, target, check_weight(weight, where, "weight", one_per_class=True),
                                 check_ignore_index(ignore_index, where), reduction,
                                 check_label_smoothing(label_smoothing, where), where)[0]


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities (N, C, *) against class indices (N, *)."""
    where = "nll_loss"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return nll_loss_forward(input, target, check_weight(weight, where, "weight", one_per_class=True),
                            check_ignore_index(ignore_index, where), reduction, where)[0]


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """(input - target)^2, reduced. input, target: the same shape."""
    return mse_loss_forward(input, target, check_reduction(reduction, size_average, reduce, "mse_loss"),
                            "mse_loss")[0]


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable step. input, target: the same shape."""
    where = "binary_cross_entropy_with_logits"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return bce_with_logits_forward(input, target, check_weight(weight, where, "weight"),
                                   check_weight(pos_weight, where, "pos_weight"), reduction, where)[0]
