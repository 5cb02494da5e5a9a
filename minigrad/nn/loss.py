"""Losses: ``loss(pred, target)`` returns the loss (a 0-d array, or per element with
reduction='none'); ``loss.backward(grad=1.0)`` returns the gradient of pred.

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
Targets are validated on both backends with array ops; a range check reads back one bool.
"""
from __future__ import annotations

import contextlib
import numbers

import numpy

from ..runtime.backend import backend_of, get_array_module, is_array, to_backend
from ..kernels.dispatch import gpu_kernels
from ..runtime.checks import check_float_array, check_same_dtype
from .activation import log_softmax
from .layer import Layer

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_buffer(array, where, name):
    """A constructor weight: None or a floating array."""
    if array is not None:
        check_float_array(array, where, name)
    return array


class _Loss(Layer):
    """Shared reduction handling. Subclasses cache (per-element shape, normaliser, ...)."""

    def __init__(self, reduction="mean", size_average=None, reduce=None):
        super().__init__()
        for name, value in (("size_average", size_average), ("reduce", reduce)):
            if value is not None:   # PyTorch's deprecated pair: refused, with the replacement named
                raise NotImplementedError(
                    f"{type(self).__name__}: {name}= (deprecated in PyTorch) is not supported; use reduction="
                    f"'mean' (the default), 'sum' (size_average=False) or 'none' (reduce=False)")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def _buffer_for(self, name, pred):
        """A weight buffer on pred's backend, in pred's dtype (None stays None)."""
        array = self._buffers.get(name)
        if array is None:
            return None
        if backend_of(array) != backend_of(pred):
            array = to_backend(array, backend_of(pred))
        return array.astype(pred.dtype, copy=False)

    def _reduce(self, per_element, normaliser):
        """per-element losses -> the returned value (0-d array unless reduction='none')."""
        xp = get_array_module(per_element)
        if self.reduction == "none":
            return per_element
        total = per_element.sum()
        if self.reduction == "mean":
            with numpy.errstate(invalid="ignore", divide="ignore"):   # nothing counted: nan, like PyTorch
                total = total / normaliser
        return xp.asarray(total, dtype=per_element.dtype)      # numpy returns scalars: make it 0-d

    def _upstream(self, grad, per_shape, normaliser, reference):
        """The gradient reaching each per-element loss: grad (/ D for 'mean'), shape-checked."""
        if is_array(grad):
            get_array_module(grad, reference, names=("grad", "input"), where=self.label)
            expected = tuple(per_shape) if self.reduction == "none" else ()
            if tuple(grad.shape) != expected:
                raise ValueError(f"{self.label}: expected grad of shape {expected} (the loss's shape with "
                                 f"reduction={self.reduction!r}), got {tuple(grad.shape)}")
            grad = grad.astype(reference.dtype, copy=False)
        elif not isinstance(grad, numbers.Real):
            raise TypeError(f"{self.label}: grad must be a number or an array, got {type(grad).__name__}")
        if self.reduction != "mean":
            return grad
        # a batch whose targets are all ignored (or all of weight 0): the loss is nan, like PyTorch's, and
        # its gradient 0 (not nan): dividing by inf instead of 0 keeps it on the device, with no sync
        xp = get_array_module(reference)
        divisor = xp.asarray(normaliser)
        divisor = xp.where(divisor == 0, xp.inf, divisor).astype(reference.dtype)
        return grad / divisor

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class _ClassIndexLoss(_Loss):
    """CrossEntropyLoss and NLLLoss: (N, C) or (N, C, d1, ...) scores, class-index targets."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", *, size_average=None, reduce=None):
        super().__init__(reduction, size_average, reduce)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
            raise TypeError(f"{type(self).__name__}: ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        weight = _check_buffer(weight, type(self).__name__, "weight")
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"{type(self).__name__}: weight must be a 1-D array of one weight per class, got "
                             f"shape {tuple(weight.shape)}")
        self.register_buffer("weight", weight)
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

    def _batched(self, x, target, allow_probabilities):
        """Check shapes/dtypes; return (x as (N, C, *), target, unbatched, is_probability)."""
        where = self.label
        check_float_array(x, where)
        get_array_module(x, target, names=("input", "target"), where=self.label)
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
        kept = target != self.ignore_index
        out_of_range = kept & ((target < 0) | (target >= classes))
        if self.defer_checks and not isinstance(target, numpy.ndarray):   # device: count now, read later
            count = out_of_range.sum()
            self._invalid_targets = count if self._invalid_targets is None else self._invalid_targets + count
            self._deferred_classes = classes
        elif bool(out_of_range.any()):                        # the only value read back to the host
            example = int(target[out_of_range].reshape(-1)[0])
            raise ValueError(f"{where}: target values must be class indices in [0, {classes}) or ignore_index="
                             f"{self.ignore_index}; got {example}")
        return x, target, unbatched, False

    def _class_weight(self, x):
        weight = self._buffer_for("weight", x)
        if weight is not None and weight.shape[0] != x.shape[1]:
            raise ValueError(f"{self.label}: weight has {weight.shape[0]} entries but the input has {x.shape[1]} "
                             f"classes (input of shape {tuple(x.shape)})")
        return weight

    def _gather(self, x, target):
        """(safe target, kept mask, w[t] (0 where ignored), x[i, t_i], onehot(t) as bool (N, C, *))."""
        xp = get_array_module(x)
        kept = target != self.ignore_index
        safe = xp.where(kept & (target >= 0) & (target < x.shape[1]), target, 0)   # (N, *) valid indices
        picked = xp.take_along_axis(x, safe[:, None], axis=1)[:, 0]   # (N, 1, *) -> (N, *)
        classes = xp.arange(x.shape[1]).reshape((1, -1) + (1,) * (x.ndim - 2))  # (1, C, 1, ...)
        onehot = classes == safe[:, None]                    # (N, C, *)
        return safe, kept, picked, onehot

    @staticmethod
    def _weight_of_target(xp, weight, safe, kept, dtype):
        if weight is None:
            return kept.astype(dtype)
        return xp.take(weight, safe) * kept                   # (N, *)


class CrossEntropyLoss(_ClassIndexLoss):
    """Softmax cross-entropy of logits (N, C) / (N, C, d1, ...) / (C,) against class indices
    (N,) / (N, d1, ...) / () or class probabilities (same shape as the logits)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, *,
                 size_average=None, reduce=None):
        super().__init__(weight, ignore_index, reduction, size_average=size_average, reduce=reduce)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or not (
                0.0 <= label_smoothing <= 1.0):
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        """input: logits (N, C, *); target: (N, *) ints or (N, C, *) probabilities. Caches softmax etc."""
        x, target, unbatched, soft = self._batched(input, target, allow_probabilities=True)
        xp = get_array_module(x)
        weight = self._class_weight(x)
        eps, classes = self.label_smoothing, x.shape[1]
        gpu = gpu_kernels(x)
        if (gpu is not None and not soft and x.ndim == 2 and weight is None and not eps
                and self.reduction != "none"):           # fused CUDA kernels (kernels/cuda.py)
            per, lse = gpu.softmax_xent_forward_gpu(x, target, self.ignore_index)  # (N,), (N,)
            normaliser = (target != self.ignore_index).sum().astype(x.dtype)
            self._cache = (x, ("fused", lse, target), per.shape, normaliser, unbatched)
            return self._reduce(per, normaliser)
        w_b = None if weight is None else weight.reshape((1, -1) + (1,) * (x.ndim - 2))  # (C,) -> (1, C, 1..)
        logp = log_softmax(x, 1)
        if soft:
            q = target * (1.0 - eps) + eps / classes if eps else target
            wq = q if w_b is None else q * w_b
            per = -(logp * wq).sum(axis=1)                    # (N, *)
            normaliser = per.size
            self._cache = (logp, ("soft", wq), per.shape, normaliser, unbatched)
        else:
            safe, kept, logp_t, onehot = self._gather(logp, target)
            w_t = self._weight_of_target(xp, weight, safe, kept, x.dtype)
            per = -w_t * logp_t
            if eps:
                smooth = -(logp.sum(axis=1) if w_b is None else (logp * w_b).sum(axis=1))
                per = (1.0 - eps) * per + (eps / classes) * xp.where(kept, smooth, 0.0)
            normaliser = w_t.sum()
            self._cache = (logp, ("index", w_t, kept, onehot, w_b), per.shape, normaliser, unbatched)
        out = self._reduce(per, normaliser)
        return out.reshape(()) if unbatched and self.reduction == "none" else out  # (1,) -> ()

    def backward(self, grad=1.0):
        """grad: scalar (or per-element array for reduction='none') -> gradient of the logits."""
        logp, extra, per_shape, normaliser, unbatched = self.take_cache()
        xp = get_array_module(logp)
        if unbatched and is_array(grad) and self.reduction == "none":
            grad = grad[None]                                 # () -> (1,)
        a = self._upstream(grad, per_shape, normaliser, logp)
        if extra[0] == "fused":                               # logp holds the logits here
            grad_x = gpu_kernels(logp).softmax_xent_backward_gpu(logp, extra[1], extra[2], self.ignore_index, a)
            return grad_x[0] if unbatched else grad_x
        a = a[:, None] if is_array(a) and a.ndim else a       # (N, *) -> (N, 1, *)
        p = xp.exp(logp)
        eps, classes = self.label_smoothing, logp.shape[1]
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
        x, target, unbatched, _ = self._batched(input, target, allow_probabilities=False)
        xp = get_array_module(x)
        weight = self._class_weight(x)
        safe, kept, x_t, onehot = self._gather(x, target)
        w_t = self._weight_of_target(xp, weight, safe, kept, x.dtype)
        per = -w_t * x_t
        normaliser = w_t.sum()
        self._cache = (w_t, onehot, per.shape, normaliser, unbatched, x)
        out = self._reduce(per, normaliser)
        return out.reshape(()) if unbatched and self.reduction == "none" else out  # (1,) -> ()

    def backward(self, grad=1.0):
        w_t, onehot, per_shape, normaliser, unbatched, x = self.take_cache()
        if unbatched and is_array(grad) and self.reduction == "none":
            grad = grad[None]
        a = self._upstream(grad, per_shape, normaliser, x)
        scale = -(a * w_t)                                    # (N, *)
        grad_x = (scale[:, None] * onehot).astype(x.dtype, copy=False)   # (N, 1, *) * (N, C, *)
        return grad_x[0] if unbatched else grad_x


class _ElementwiseLoss(_Loss):
    """MSELoss and BCEWithLogitsLoss: pred and target of one shape and dtype."""

    def _check_pair(self, pred, target):
        where = self.label
        get_array_module(pred, target, names=("input", "target"), where=self.label)
        check_float_array(pred, where)
        check_float_array(target, where, "target")
        if tuple(pred.shape) != tuple(target.shape):
            raise ValueError(f"{where}: expected target of the input's shape {tuple(pred.shape)}, got target of "
                             f"shape {tuple(target.shape)}")
        check_same_dtype(pred, target, where, "input", "target")


class MSELoss(_ElementwiseLoss):
    """Mean squared error: l = (pred - target)^2, reduced by mean (default), sum or none."""

    def forward(self, input, target):
        """input, target: same shape -> loss. Caches the difference."""
        self._check_pair(input, target)
        diff = input - target
        self._cache = diff
        return self._reduce(diff * diff, diff.size)

    def backward(self, grad=1.0):
        diff = self.take_cache()
        a = self._upstream(grad, diff.shape, diff.size, diff)
        return (2.0 * a * diff).astype(diff.dtype, copy=False)


def _broadcasts_to(small, big) -> bool:
    """True when an array of shape ``small`` broadcasts to ``big`` without growing it."""
    if len(small) > len(big):
        return False
    return all(s in (1, b) for s, b in zip(reversed(small), reversed(big)))


class BCEWithLogitsLoss(_ElementwiseLoss):
    """Sigmoid + binary cross-entropy in one stable step. weight broadcasts over the input;
    pos_weight (one per class, broadcast along the last dimension) weighs the positive term."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None, *, size_average=None, reduce=None):
        super().__init__(reduction, size_average, reduce)
        self.register_buffer("weight", _check_buffer(weight, "BCEWithLogitsLoss", "weight"))
        self.register_buffer("pos_weight", _check_buffer(pos_weight, "BCEWithLogitsLoss", "pos_weight"))

    def _factor(self, name, x):
        value = self._buffer_for(name, x)
        if value is not None and not _broadcasts_to(tuple(value.shape), tuple(x.shape)):
            raise ValueError(f"{self.label}: {name} of shape {tuple(value.shape)} does not broadcast to the input "
                             f"of shape {tuple(x.shape)}")
        return value

    def forward(self, input, target):
        """input: logits, target: probabilities in [0, 1], same shape. Caches x, target, weights."""
        self._check_pair(input, target)
        xp = get_array_module(input)
        x, y = input, target
        weight, pos_weight = self._factor("weight", x), self._factor("pos_weight", x)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0.0)   # log(1 + exp(-x)), stable
        log_weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * y
        per = (1.0 - y) * x + log_weight * softplus_neg
        if weight is not None:
            per = per * weight
        self._cache = (x, y, weight, log_weight)
        return self._reduce(per, per.size)

    def backward(self, grad=1.0):
        x, y, weight, log_weight = self.take_cache()
        xp = get_array_module(x)
        a = self._upstream(grad, x.shape, x.size, x)
        z = xp.exp(-xp.abs(x))
        sigmoid_neg = xp.where(x >= 0, z / (1.0 + z), 1.0 / (1.0 + z))       # sigmoid(-x)
        grad_x = (1.0 - y) - log_weight * sigmoid_neg
        if weight is not None:
            grad_x = grad_x * weight
        return (a * grad_x).astype(x.dtype, copy=False)
