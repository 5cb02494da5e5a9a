"""Loss layers: ``loss(pred, target)`` returns the loss (a 0-d array, or per element with
reduction='none'); ``loss.backward(grad=1.0)`` returns the gradient of pred.

The math of each loss, its gradient formula and PyTorch's semantics for weights, ignore_index,
label_smoothing and the three reductions are in ``minigrad.functional.loss``; a layer checks its options
once, holds its weights as buffers (in the state dict, as PyTorch's), caches what its backward needs, and
for class-index targets on a device can count out-of-range targets there instead of reading them back
per call (``deferred_checks``).
"""
from __future__ import annotations

import contextlib

from ..functional import loss as L
from .layer import Layer

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss"]


class _Loss(Layer):
    """Shared reduction handling."""

    def __init__(self, reduction="mean", size_average=None, reduce=None):
        super().__init__()
        self.reduction = L.check_reduction(reduction, size_average, reduce, type(self).__name__)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class _ClassIndexLoss(_Loss):
    """CrossEntropyLoss and NLLLoss: (N, C) or (N, C, d1, ...) scores, class-index targets."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", *, size_average=None, reduce=None):
        super().__init__(reduction, size_average, reduce)
        where = type(self).__name__
        self.ignore_index = L.check_ignore_index(ignore_index, where)
        self.register_buffer("weight", L.check_weight(weight, where, "weight", one_per_class=True))
        # Range check of device targets: reading its result is a device-to-host sync. Inside
        # deferred_checks() (mg.train.fit and evaluate) the count of bad targets stays on the device
        # until check_deferred(), which the loop calls with its other metric reads.
        self.defer_checks = False
        self._invalid_targets = None      # device count of out-of-range targets, and the class count C
        self._deferred_classes = None

    @contextlib.contextmanager
    def deferred_checks(self):
        """Within the block, out-of-range targets on a device are counted there instead of read back per
        call; check_deferred() raises for them, and so does leaving the block normally. (Leaving it by an
        exception drops the count, so a later call is not blamed for it.) Nested blocks share the count."""
        outermost = not self.defer_checks
        if outermost:
            self._invalid_targets = None
        self.defer_checks = True
        try:
            yield self
        except BaseException:
            if outermost:
                self._invalid_targets = None
            raise
        finally:
            if outermost:
                self.defer_checks = False
        if outermost:
            self.check_deferred()

    def check_deferred(self) -> None:
        """Raise the out-of-range target error deferred since the last call (one device read), if any."""
        invalid, self._invalid_targets = self._invalid_targets, None
        if invalid is not None and int(invalid):
            raise ValueError(f"{self.label}: target values must be class indices in [0, {self._deferred_classes}) "
                             f"or ignore_index={self.ignore_index}; {int(invalid)} target(s) out of range in the "
                             "batches since the last metric read")

    def _count_invalid(self, count, classes):
        self._invalid_targets = count if self._invalid_targets is None else self._invalid_targets + count
        self._deferred_classes = classes

    def _counter(self):
        return self._count_invalid if self.defer_checks else None


class CrossEntropyLoss(_ClassIndexLoss):
    """Softmax cross-entropy of logits (N, C) / (N, C, d1, ...) / (C,) against class indices
    (N,) / (N, d1, ...) / () or class probabilities (same shape as the logits)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, *,
                 size_average=None, reduce=None):
        super().__init__(weight, ignore_index, reduction, size_average=size_average, reduce=reduce)
        self.label_smoothing = L.check_label_smoothing(label_smoothing, "CrossEntropyLoss")

    def forward(self, input, target):
        """input: logits (N, C, *); target: (N, *) ints or (N, C, *) probabilities. Caches softmax etc."""
        out, self._cache = L.cross_entropy_forward(input, target, self.weight, self.ignore_index, self.reduction,
                                                   self.label_smoothing, self.label, self._counter())
        return out

    def backward(self, grad=1.0):
        """grad: scalar (or per-element array for reduction='none') -> gradient of the logits."""
        return L.cross_entropy_backward(self.take_cache(), grad, self.ignore_index, self.reduction,
                                        self.label_smoothing, self.label)

    def extra_repr(self):
        s = f"reduction={self.reduction!r}"
        if self.ignore_index != -100:
            s += f", ignore_index={self.ignore_index}"
        if self.label_smoothing:
            s += f", label_smoothing={self.label_smoothing}"
        return s


class NLLLoss(_ClassIndexLoss):
    """Negative log-likelihood of log-probabilities (N, C, *) / (C,) against class indices."""

    def forward(self, input, target):
        """input: log-probabilities (N, C, *); target: (N, *) integer class indices."""
        out, self._cache = L.nll_loss_forward(input, target, self.weight, self.ignore_index, self.reduction,
                                              self.label, self._counter())
        return out

    def backward(self, grad=1.0):
        return L.nll_loss_backward(self.take_cache(), grad, self.reduction, self.label)


class MSELoss(_Loss):
    """Mean squared error: l = (pred - target)^2, reduced by mean (default), sum or none."""

    def forward(self, input, target):
        """input, target: same shape -> loss. Caches the difference."""
        out, self._cache = L.mse_loss_forward(input, target, self.reduction, self.label)
        return out

    def backward(self, grad=1.0):
        return L.mse_loss_backward(self.take_cache(), grad, self.reduction, self.label)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable step. weight broadcasts over the input;
    pos_weight (one per class, broadcast along the last dimension) weighs the positive term."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None, *, size_average=None, reduce=None):
        super().__init__(reduction, size_average, reduce)
        self.register_buffer("weight", L.check_weight(weight, "BCEWithLogitsLoss", "weight"))
        self.register_buffer("pos_weight", L.check_weight(pos_weight, "BCEWithLogitsLoss", "pos_weight"))

    def forward(self, input, target):
        """input: logits, target: probabilities in [0, 1], same shape. Caches x, target, weights."""
        out, self._cache = L.bce_with_logits_forward(input, target, self.weight, self.pos_weight, self.reduction,
                                                     self.label)
        return out

    def backward(self, grad=1.0):
        return L.bce_with_logits_backward(self.take_cache(), grad, self.reduction, self.label)
