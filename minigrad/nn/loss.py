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
import inspect
import numbers

from ..functional import loss as L
from .layer import Layer

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss"]


def _check_legacy_slots(cls, size_average, reduce):
    """PyTorch's deprecated size_average / reduce come before reduction (and ignore_index, pos_weight) in its
    order; they take None or a bool (a bool: NotImplementedError, in check_reduction). Anything else is an
    argument of minigrad's old order (reduction, ignore_index, label_smoothing or pos_weight before them) given
    positionally: a TypeError naming PyTorch's order and the keyword form."""
    where = cls.__name__
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is None or isinstance(value, bool) or type(value).__name__ == "bool_":   # NumPy's bool too
            continue
        if isinstance(value, str):
            hint = f"reduction={value!r}"
        elif isinstance(value, numbers.Integral) and "ignore_index" in inspect.signature(cls.__init__).parameters:
            hint = f"ignore_index={value!r}"
        elif isinstance(value, numbers.Real) and "label_smoothing" in inspect.signature(cls.__init__).parameters:
            hint = f"label_smoothing={value!r}"
        elif hasattr(value, "shape") and "pos_weight" in inspect.signature(cls.__init__).parameters:
            hint = "pos_weight=..."
        else:
            hint = "the option's name"
        order = ", ".join(str(p) for p in list(inspect.signature(cls.__init__).parameters.values())[1:])
        raise TypeError(f"{where}: {name} (PyTorch's deprecated flag) takes None or a bool, got {value!r}. PyTorch's "
                        f"order is {where}({order}): pass the other options by keyword, e.g. {where}({hint})")


class _Loss(Layer):
    """Shared reduction handling. size_average and reduce: PyTorch's deprecated pair, refused unless None."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        _check_legacy_slots(type(self), size_average, reduce)
        self.reduction = L.check_reduction(reduction, size_average, reduce, type(self).__name__)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class _ClassIndexLoss(_Loss):
    """CrossEntropyLoss and NLLLoss: (N, C) or (N, C, d1, ...) scores, class-index targets."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
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

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
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

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", L.check_weight(weight, "BCEWithLogitsLoss", "weight"))
        self.register_buffer("pos_weight", L.check_weight(pos_weight, "BCEWithLogitsLoss", "pos_weight"))

    def forward(self, input, target):
        """input: logits, target: probabilities in [0, 1], same shape. Caches x, target, weights."""
        out, self._cache = L.bce_with_logits_forward(input, target, self.weight, self.pos_weight, self.reduction,
                                                     self.label)
        return out

    def backward(self, grad=1.0):
        return L.bce_with_logits_backward(self.take_cache(), grad, self.reduction, self.label)


# The base of the added losses (nn/loss_more.py), as PyTorch's _Loss is of all of its losses: the reduction, and
# the deprecated size_average / reduce slots checked as above.
ReducedLoss = _Loss
