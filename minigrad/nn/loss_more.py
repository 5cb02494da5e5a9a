"""The added loss layers: L1Loss, SmoothL1Loss, HuberLoss, BCELoss, KLDivLoss, MarginRankingLoss,
CosineEmbeddingLoss, MultiMarginLoss and TripletMarginLoss, with PyTorch's names, constructor arguments and
defaults. ``loss(...)`` returns the loss (a 0-d array, or per element / per sample with reduction='none');
``loss.backward(grad=1.0)`` returns the gradient of the input, or for the losses of several inputs a tuple with
one gradient per input (not the target): ``(d input1, d input2)``, ``(d anchor, d positive, d negative)``.

The math and each gradient's formula are in ``minigrad.functional.loss_more`` and ``loss_pairs``; a layer
checks its options once (PyTorch's errors: a negative beta, p other than 1 or 2, a margin <= 0 for the
triplet loss), holds its weights as buffers (in the state dict, as PyTorch's) and caches what its backward needs.
PyTorch's deprecated size_average / reduce raise NotImplementedError naming the reduction to use.
"""
from __future__ import annotations

from ..functional import loss_more as LM
from ..functional import loss_pairs as LP
from ..functional.loss import check_weight
from .loss import ReducedLoss

__all__ = ["L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "KLDivLoss", "MarginRankingLoss",
           "CosineEmbeddingLoss", "MultiMarginLoss", "TripletMarginLoss"]


class L1Loss(ReducedLoss):
    """Mean absolute error: l = |input - target|, reduced by mean (default), sum or none."""

    def forward(self, input, target):
        """input, target: the same shape -> loss. Caches the difference."""
        out, self._cache = LM.l1_loss_forward(input, target, self.reduction, self.label)
        return out

    def backward(self, grad=1.0):
        """grad: scalar (or per-element array for reduction='none') -> gradient of the input."""
        return LM.l1_loss_backward(self.take_cache(), grad, self.reduction, self.label)


class SmoothL1Loss(ReducedLoss):
    """l = (input - target)^2 / (2 beta) where |input - target| < beta, |input - target| - beta / 2 elsewhere;
    beta = 0 is L1Loss (as PyTorch). Caches the difference."""
    FORWARD_COPIES = 3      # the loss and its temporaries (measured peak: 2.6 inputs and targets)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = LM.check_real(beta, "SmoothL1Loss", "beta", 0.0)

    def forward(self, input, target):
        out, self._cache = LM.smooth_l1_loss_forward(input, target, self.reduction, self.beta, self.label)
        return out

    def backward(self, grad=1.0):
        return LM.smooth_l1_loss_backward(self.take_cache(), grad, self.reduction, self.beta, self.label)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, beta={self.beta}"


class HuberLoss(ReducedLoss):
    """l = (input - target)^2 / 2 where |input - target| < delta, delta (|input - target| - delta / 2) elsewhere
    (delta > 0). Caches the difference."""
    FORWARD_COPIES = 3      # the loss and its temporaries (measured peak: 2.6 inputs and targets)

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(None, None, reduction)
        self.delta = LM.check_real(delta, "HuberLoss", "delta", 0.0, strict=True)

    def forward(self, input, target):
        out, self._cache = LM.huber_loss_forward(input, target, self.reduction, self.delta, self.label)
        return out

    def backward(self, grad=1.0):
        return LM.huber_loss_backward(self.take_cache(), grad, self.reduction, self.delta, self.label)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, delta={self.delta}"


class BCELoss(ReducedLoss):
    """Binary cross-entropy of probabilities (input in [0, 1]) against targets of the same shape, with PyTorch's
    clamp of each log at -100; weight (a buffer) broadcasts over the input. For logits use BCEWithLogitsLoss."""
    FORWARD_COPIES = 3      # the loss and its temporaries (measured peak: 2.1 inputs and targets)

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", check_weight(weight, "BCELoss", "weight"))

    def forward(self, input, target):
        """input: probabilities, target: the same shape. Caches input, target and the weight."""
        out, self._cache = LM.bce_forward(input, target, self.weight, self.reduction, self.label)
        return out

    def backward(self, grad=1.0):
        return LM.bce_backward(self.take_cache(), grad, self.reduction, self.label)


class KLDivLoss(ReducedLoss):
    """PyTorch's pointwise KL divergence: l = target (log target - input) of log-probabilities input (target as
    log-probabilities too with log_target=True). reduction='batchmean' divides the sum by the batch size (the KL
    divergence per sample); 'mean' divides by the number of elements (PyTorch's default, which it warns about)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, "mean")
        self.reduction = LM.check_kl_reduction(reduction, size_average, reduce, "KLDivLoss")
        self.log_target = LM.check_flag(log_target, "KLDivLoss", "log_target")

    def forward(self, input, target):
        """input, target: the same shape -> loss. Caches both."""
        out, self._cache = LM.kl_div_forward(input, target, self.reduction, self.log_target, self.label)
        return out

    def backward(self, grad=1.0):
        return LM.kl_div_backward(self.take_cache(), grad, self.reduction, self.log_target, self.label)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, log_target={self.log_target}"


class _MarginLoss(ReducedLoss):
    """A loss with a margin before PyTorch's size_average / reduce / reduction."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = LM.check_real(margin, type(self).__name__, "margin")

    def extra_repr(self):
        return f"margin={self.margin}, reduction={self.reduction!r}"


class MarginRankingLoss(_MarginLoss):
    """l = max(0, -target (input1 - input2) + margin); target 1 ranks input1 higher, -1 input2. All three of one
    shape. backward returns (gradient of input1, gradient of input2)."""

    def forward(self, input1, input2, target):
        out, self._cache = LM.margin_ranking_forward(input1, input2, target, self.margin, self.reduction, self.label)
        return out

    def backward(self, grad=1.0):
        return LM.margin_ranking_backward(self.take_cache(), grad, self.reduction, self.label)


class CosineEmbeddingLoss(_MarginLoss):
    """l = 1 - cos(input1, input2) where target = 1, max(0, cos - margin) where target = -1 (PyTorch's 1e-12 added
    to each squared norm). input1, input2: (N, D) with target (N,), or (D,) with target (). backward returns
    (gradient of input1, gradient of input2)."""

    def forward(self, input1, input2, target):
        out, self._cache = LP.cosine_embedding_forward(input1, input2, target, self.margin, self.reduction,
                                                       self.label)
        return out

    def backward(self, grad=1.0):
        return LP.cosine_embedding_backward(self.take_cache(), grad, self.reduction, self.label)


class MultiMarginLoss(ReducedLoss):
    """Multi-class hinge loss: l_i = sum_{j != t_i} w[t_i] max(0, margin - x[i, t_i] + x[i, j])^p / C, p 1 or 2;
    input (N, C) or (C,), target (N,) class indices. weight (one per class) is a buffer."""
    FORWARD_COPIES = 3      # the loss and its temporaries (measured peak: 2.8 inputs and targets)

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        where = "MultiMarginLoss"
        self.p = LP.check_p(p, where)
        self.margin = LM.check_real(margin, where, "margin")
        weight = check_weight(weight, where, "weight")
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"{where}: weight must be one-dimensional (one per class), got shape "
                             f"{tuple(weight.shape)}")
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        """input: scores (N, C) / (C,); target: (N,) / () integer class indices. Caches the margins."""
        out, self._cache = LP.multi_margin_forward(input, target, self.p, self.margin, self.weight, self.reduction,
                                                   self.label)
        return out

    def backward(self, grad=1.0):
        return LP.multi_margin_backward(self.take_cache(), grad, self.reduction, self.p, self.label)

    def extra_repr(self):
        return f"p={self.p}, margin={self.margin}, reduction={self.reduction!r}"


class TripletMarginLoss(ReducedLoss):
    """l = max(0, margin + d(anchor, positive) - d(anchor, negative)), d(u, v) = ||u - v + eps||_p along the last
    axis (PyTorch's pairwise_distance); swap=True uses min(d(a, n), d(p, n)). Inputs (N, D) or (D,). backward
    returns (gradient of anchor, of positive, of negative)."""

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False, size_average=None,
                 reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        where = "TripletMarginLoss"
        self.margin = LM.check_real(margin, where, "margin", 0.0, strict=True)
        self.p = LP.check_norm_degree(p, where)
        self.eps = LM.check_real(eps, where, "eps")
        self.swap = LM.check_flag(swap, where, "swap")

    def forward(self, anchor, positive, negative):
        out, self._cache = LP.triplet_margin_forward(anchor, positive, negative, self.margin, self.p, self.eps,
                                                     self.swap, self.reduction, self.label)
        return out

    def backward(self, grad=1.0):
        return LP.triplet_margin_backward(self.take_cache(), grad, self.reduction, self.p, self.label)

    def extra_repr(self):
        return f"margin={self.margin}, p={self.p}, eps={self.eps}, swap={self.swap}, reduction={self.reduction!r}"

