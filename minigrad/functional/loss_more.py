"""Elementwise losses of an (input, target) pair and the ranking loss: the math of ``nn.L1Loss``,
``nn.SmoothL1Loss``, ``nn.HuberLoss``, ``nn.BCELoss``, ``nn.KLDivLoss`` and ``nn.MarginRankingLoss``, and their
``torch.nn.functional`` forms. Each ``*_forward`` returns ``(loss, saved)``; the matching ``*_backward(saved, grad,
...)`` returns the gradient of the input (MarginRankingLoss: of both inputs). Errors name ``where``.

With d = x - y and a = the upstream gradient (divided by the normaliser D for reduction='mean'; D = the number
of elements, or the batch size for KLDivLoss's 'batchmean'):

    L1Loss         l = |d|                                       dx = a sign(d)
    SmoothL1Loss   l = d^2 / (2 beta) if |d| < beta              dx = a clip(d / beta, -1, 1)
                       |d| - beta / 2 otherwise                  (beta = 0: L1Loss, as PyTorch)
    HuberLoss      l = d^2 / 2 if |d| < delta                    dx = a clip(d, -delta, delta)
                       delta (|d| - delta / 2) otherwise
    BCELoss        l = -w (y max(log x, -100) + (1 - y) max(log(1 - x), -100))
                   dx = a w (x - y) / max(x (1 - x), 1e-12)      (PyTorch's clamps: finite at x = 0 and 1)
    KLDivLoss      l = xlogy(y, y) - y x   (log_target: exp(y) (y - x))
                   dx = -a y               (log_target: -a exp(y))
    MarginRankingLoss  l = max(0, -y (x1 - x2) + margin)         dx1 = -dx2 = -a y [l > 0]

Exactly PyTorch's formulas and edge conventions (xlogy(0, 0) = 0, its float 1e-12 and -100 clamps, a
gradient of 0 at a clamp's kink).
"""
from __future__ import annotations

import numbers

import numpy

from ..runtime.backend import get_array_module, is_array
from ..runtime.checks import check_float_array, check_same_dtype
from .loss import (broadcast_factor, check_pair, check_reduction, check_weight, reduce_losses,
                   upstream_gradient)

__all__ = ["l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy", "kl_div", "margin_ranking_loss",
           "check_real", "check_flag", "check_kl_reduction", "l1_loss_forward", "l1_loss_backward",
           "smooth_l1_loss_forward", "smooth_l1_loss_backward", "huber_loss_forward", "huber_loss_backward",
           "bce_forward", "bce_backward", "kl_div_forward", "kl_div_backward", "margin_ranking_forward",
           "margin_ranking_backward", "check_ranking_target", "reduce_array"]

BCE_EPSILON = float(numpy.float32(1e-12))   # PyTorch's `constexpr float EPSILON = 1e-12`, as a double
LOG_CLAMP = -100.0


# -- options ------------------------------------------------------------------------------------------------
def check_real(value, where: str, name: str, low=None, strict: bool = False) -> float:
    """A real number (not a bool), > low (strict) or >= low; ValueError naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{where}: {name} must be {'greater than' if strict else 'at least'} {low}, got {value!r}")
    return float(value)


def check_flag(value, where: str, name: str) -> bool:
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)


def check_kl_reduction(reduction, size_average, reduce, where: str) -> str:
    """KLDivLoss's reductions: PyTorch's three and 'batchmean' (the sum divided by the batch size)."""
    if reduction == "batchmean":
        check_reduction("mean", size_average, reduce, where)
        return reduction
    try:
        return check_reduction(reduction, size_average, reduce, where)
    except ValueError:
        raise ValueError(f"{where}: reduction must be 'mean', 'batchmean', 'sum' or 'none', "
                         f"got {reduction!r}") from None


def reduce_array(per, normaliser, reduction, like):
    """reduce_losses of ``per`` made an array of like's backend (NumPy arithmetic on 0-d arrays gives scalars)."""
    return reduce_losses(get_array_module(like).asarray(per), normaliser, reduction)


def _cast(a, x):
    """a as an array of x's dtype (a 0-d input's gradient too, not a NumPy scalar)."""
    return get_array_module(x).asarray(a).astype(x.dtype, copy=False)


# -- L1, smooth L1, Huber ---------------------------------------------------------------------------------------
def l1_loss_forward(input, target, reduction, where):
    """input, target: the same shape -> (loss, saved: the difference)."""
    check_pair(input, target, where)
    diff = input - target
    return reduce_array(get_array_module(diff).abs(diff), diff.size, reduction, diff), diff


def l1_loss_backward(diff, grad, reduction, where):
    a = upstream_gradient(grad, diff.shape, diff.size, diff, reduction, where)
    return _cast(a * get_array_module(diff).sign(diff), diff)


def smooth_l1_loss_forward(input, target, reduction, beta, where):
    """input, target: the same shape -> (loss, saved: the difference). beta = 0 is L1Loss (PyTorch's rule)."""
    if beta == 0:
        return l1_loss_forward(input, target, reduction, where)
    check_pair(input, target, where)
    xp = get_array_module(input)
    diff = input - target
    z = xp.abs(diff)
    per = xp.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)
    return reduce_array(per, diff.size, reduction, diff), diff


def smooth_l1_loss_backward(diff, grad, reduction, beta, where):
    if beta == 0:
        return l1_loss_backward(diff, grad, reduction, where)
    xp = get_array_module(diff)
    a = upstream_gradient(grad, diff.shape, diff.size, diff, reduction, where)
    return _cast(a * xp.clip(diff / beta, -1.0, 1.0), diff)


def huber_loss_forward(input, target, reduction, delta, where):
    """input, target: the same shape -> (loss, saved: the difference)."""
    check_pair(input, target, where)
    xp = get_array_module(input)
    diff = input - target
    z = xp.abs(diff)
    per = xp.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    return reduce_array(per, diff.size, reduction, diff), diff


def huber_loss_backward(diff, grad, reduction, delta, where):
    xp = get_array_module(diff)
    a = upstream_gradient(grad, diff.shape, diff.size, diff, reduction, where)
    return _cast(a * xp.clip(diff, -delta, delta), diff)


# -- binary cross-entropy on probabilities ---------------------------------------------------------------------
def bce_forward(input, target, weight, reduction, where):
    """input: probabilities in [0, 1], target: the same shape; weight broadcasts to the input -> (loss, saved)."""
    check_pair(input, target, where)
    xp = get_array_module(input)
    x, y = input, target
    weight = broadcast_factor(weight, x, "weight", where)
    outside = ~((x >= 0) & (x <= 1))                   # nan counts as outside, as in PyTorch's check
    if bool(outside.any()):                            # one value read back (a device sync), as PyTorch's check
        example = float(x[outside].reshape(-1)[0])
        raise ValueError(f"{where}: all elements of input should be between 0 and 1 (probabilities), got {example}; "
                         "for logits use BCEWithLogitsLoss")
    with numpy.errstate(divide="ignore"):              # log(0) = -inf, clamped to -100 as PyTorch does
        log_x = xp.maximum(xp.log(x), LOG_CLAMP)
        log_1mx = xp.maximum(xp.log1p(-x), LOG_CLAMP)
    per = (y - 1.0) * log_1mx - y * log_x
    if weight is not None:
        per = per * weight
    return reduce_array(per, per.size, reduction, x), (x, y, weight)


def bce_backward(saved, grad, reduction, where):
    x, y, weight = saved
    xp = get_array_module(x)
    a = upstream_gradient(grad, x.shape, x.size, x, reduction, where)
    grad_x = (a * (x - y)) / xp.maximum((1.0 - x) * x, BCE_EPSILON)
    if weight is not None:
        grad_x = grad_x * weight
    return _cast(grad_x, x)


# -- Kullback-Leibler divergence ---------------------------------------------------------------------------------
def _kl_normaliser(x, reduction):
    if reduction == "batchmean":                       # PyTorch: the sum / input.size(0) (a 0-d input: the sum)
        return x.shape[0] if x.ndim else 1, "mean"
    return x.size, reduction


def kl_div_forward(input, target, reduction, log_target, where):
    """input: log-probabilities, target: probabilities (log-probabilities with log_target), the same shape."""
    check_pair(input, target, where)
    xp = get_array_module(input)
    x, y = input, target
    if log_target:
        per = xp.exp(y) * (y - x)
    else:
        with numpy.errstate(divide="ignore", invalid="ignore"):   # xlogy(y, y): 0 where y == 0, nan where y < 0
            per = xp.where(y == 0, 0.0, y * xp.log(y)) - y * x
    normaliser, mode = _kl_normaliser(x, reduction)
    return reduce_array(per, normaliser, mode, x), (x, y)


def kl_div_backward(saved, grad, reduction, log_target, where):
    x, y = saved
    xp = get_array_module(x)
    normaliser, mode = _kl_normaliser(x, reduction)
    a = upstream_gradient(grad, x.shape, normaliser, x, mode, where)
    return _cast(-(xp.exp(y) if log_target else y) * a, x)


# -- margin ranking ---------------------------------------------------------------------------------------------
def check_ranking_target(target, like, where, shape=None):
    """A target of +-1 (or any numbers): an integer array, or a float array of the inputs' dtype."""
    if not is_array(target):
        raise TypeError(f"{where}: expected target to be a NumPy or CuPy array, got {type(target).__name__}")
    get_array_module(like, target, names=("input1", "target"), where=where)
    if target.dtype.kind not in "iuf":
        raise TypeError(f"{where}: expected target to hold numbers (1 or -1), got dtype {target.dtype}")
    if target.dtype.kind == "f":
        check_same_dtype(like, target, where, "input1", "target")
    if shape is not None and tuple(target.shape) != tuple(shape):
        raise ValueError(f"{where}: expected target of shape {tuple(shape)}, got {tuple(target.shape)}")


def _check_inputs(first, second, where, names=("input1", "input2")):
    check_float_array(first, where, names[0])
    get_array_module(first, second, names=names, where=where)
    check_float_array(second, where, names[1])
    check_same_dtype(first, second, where, *names)


def margin_ranking_forward(input1, input2, target, margin, reduction, where):
    """input1, input2, target (1: input1 should rank higher, -1: lower): one shape -> (loss, saved)."""
    _check_inputs(input1, input2, where)
    if tuple(input1.shape) != tuple(input2.shape):
        raise ValueError(f"{where}: input1 and input2 must have the same shape, got {tuple(input1.shape)} and "
                         f"{tuple(input2.shape)}")
    check_ranking_target(target, input1, where, input1.shape)
    xp = get_array_module(input1)
    y = _cast(target, input1)
    z = -y * (input1 - input2) + margin
    return reduce_array(xp.maximum(z, 0.0), z.size, reduction, input1), (y, z > 0, input1)


def margin_ranking_backward(saved, grad, reduction, where):
    """-> (gradient of input1, gradient of input2)."""
    y, active, x1 = saved
    xp = get_array_module(x1)
    a = upstream_gradient(grad, x1.shape, x1.size, x1, reduction, where)
    grad1 = _cast(xp.where(active, -y * a, 0.0), x1)
    return grad1, -grad1


# -- torch.nn.functional's forms (forward only) ---------------------------------------------------------------
def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """|input - target|, reduced. input, target: the same shape."""
    return l1_loss_forward(input, target, check_reduction(reduction, size_average, reduce, "l1_loss"), "l1_loss")[0]


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """Quadratic below beta, linear above (beta = 0: l1_loss). input, target: the same shape."""
    where = "smooth_l1_loss"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return smooth_l1_loss_forward(input, target, reduction, check_real(beta, where, "beta", 0.0), where)[0]


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0):
    """Quadratic below delta, delta-scaled linear above. input, target: the same shape."""
    where = "huber_loss"
    reduction = check_reduction(reduction, None, None, where)
    return huber_loss_forward(input, target, reduction, check_real(delta, where, "delta", 0.0, strict=True), where)[0]


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """Binary cross-entropy of probabilities input (in [0, 1]) against target, the same shape."""
    where = "binary_cross_entropy"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return bce_forward(input, target, check_weight(weight, where, "weight"), reduction, where)[0]


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """KL divergence of target from the log-probabilities input (PyTorch's pointwise form), reduced."""
    where = "kl_div"
    reduction = check_kl_reduction(reduction, size_average, reduce, where)
    return kl_div_forward(input, target, reduction, check_flag(log_target, where, "log_target"), where)[0]


def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """max(0, -target (input1 - input2) + margin), reduced. All three: the same shape."""
    where = "margin_ranking_loss"
    reduction = check_reduction(reduction, size_average, reduce, where)
    return margin_ranking_forward(input1, input2, target, check_real(margin, where, "margin"), reduction, where)[0]
