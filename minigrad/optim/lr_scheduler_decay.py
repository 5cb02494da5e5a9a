"""Schedulers that map each epoch to an lr by a rule: ExponentialLR, ConstantLR, PolynomialLR, LambdaLR,
MultiplicativeLR and CosineAnnealingWarmRestarts (``torch.optim.lr_scheduler``'s names, signatures, formulas and values).

Import them from ``minigrad.optim.lr_scheduler`` (which re-exports them). Step once per epoch;
CosineAnnealingWarmRestarts may also be stepped per batch with a fractional epoch, ``step(epoch + i / iters)``.

LambdaLR and MultiplicativeLR take a function of the epoch, or a list of one per parameter group. As in
PyTorch, their ``state_dict()`` does not save the functions: an entry of ``state_dict()["lr_lambdas"]`` is
None for a plain function or lambda and the ``__dict__`` of a callable object, which ``load_state_dict``
writes back into the callable object of the new scheduler. A resumed run must therefore build the scheduler
with the same functions; the state dict is JSON-friendly when the callable objects' attributes are.
"""
from __future__ import annotations

import copy
import math
import types
from numbers import Real

from .lr_scheduler_base import LRScheduler, check_int
from .optimizer import Optimizer

__all__ = ["ExponentialLR", "ConstantLR", "PolynomialLR", "LambdaLR", "MultiplicativeLR", "CosineAnnealingWarmRestarts"]


def _check_number(name, value, where):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__} {value!r}")


class ExponentialLR(LRScheduler):
    """lr = initial_lr * gamma ** epoch (computed recursively: each step multiplies the lr by gamma)."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        _check_number("gamma", gamma, "ExponentialLR")
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """lr = initial_lr * factor for the first ``total_iters`` epochs, then initial_lr."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        _check_number("factor", factor, "ConstantLR")
        if not 0 <= factor <= 1.0:
            raise ValueError(f"ConstantLR: factor must be between 0 and 1, got {factor!r}")
        check_int("total_iters", total_iters, "ConstantLR", low=0)
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._group_lrs()]
        if self.last_epoch != self.total_iters:
            return self._group_lrs()
        return [lr * (1.0 / self.factor) for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr = initial_lr * (1 - epoch / total_iters) ** power until ``total_iters``, then unchanged."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        check_int("total_iters", total_iters, "PolynomialLR")
        _check_number("power", power, "PolynomialLR")
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, n = self.last_epoch, self.total_iters
        if self._is_initial or e > n:
            return self._group_lrs()
        decay = ((1.0 - e / n) / (1.0 - (e - 1) / n)) ** self.power
        return [lr * decay for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [base * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for base in self.base_lrs]


class _LambdaScheduler(LRScheduler):
    """The lr_lambda handling and state dict shared by LambdaLR and MultiplicativeLR."""

    def __init__(self, optimizer, lr_lambda, last_epoch):
        where = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        groups = optimizer.param_groups
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(groups):
                raise ValueError(f"{where}: expected {len(groups)} lr_lambdas (one per parameter group), "
                                 f"got {len(lr_lambda)}")
            lambdas = list(lr_lambda)
        else:
            lambdas = [lr_lambda] * len(groups)
        for i, fn in enumerate(lambdas):
            if not callable(fn):
                raise TypeError(f"{where}: lr_lambda must be a function of the epoch (or a list of them), got "
                                f"{type(fn).__name__}" + (f" at index {i}" if isinstance(lr_lambda, (list, tuple))
                                                          else ""))
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        """Every attribute except the optimizer; of the lr_lambdas only callable objects' ``__dict__``
        (plain functions and lambdas are saved as None, as in PyTorch)."""
        state = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__")
                               else copy.deepcopy(vars(fn)) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        """Restore the attributes, and the saved ``__dict__`` of callable-object lr_lambdas."""
        state = copy.deepcopy(state_dict)
        saved = state.pop("lr_lambdas", None) or []
        if len(saved) not in (0, len(self.lr_lambdas)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state holds {len(saved)} lr_lambdas, "
                             f"this scheduler has {len(self.lr_lambdas)}")
        super().load_state_dict(state)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                fn.__dict__.update(attributes)


class LambdaLR(_LambdaScheduler):
    """lr = initial_lr * lr_lambda(epoch), with one function for all groups or one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        super().__init__(optimizer, lr_lambda, last_epoch)

    def get_lr(self):
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaScheduler):
    """Each step multiplies the lr by lr_lambda(epoch) (one function for all groups or one per group)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        super().__init__(optimizer, lr_lambda, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._group_lrs()
        return [lr * fn(self.last_epoch) for fn, lr in zip(self.lr_lambdas, self._group_lrs())]


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2, where T_cur counts the
    epochs since the last restart and T_i (first T_0) is multiplied by T_mult at each restart.

    ``step()`` advances one epoch; ``step(epoch)`` jumps to ``epoch``, which may be fractional
    (``epoch + i / iters`` to anneal within an epoch), as PyTorch allows.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        check_int("T_0", T_0, "CosineAnnealingWarmRestarts")
        check_int("T_mult", T_mult, "CosineAnnealingWarmRestarts")
        _check_number("eta_min", eta_min, "CosineAnnealingWarmRestarts")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base in self.base_lrs]

    def step(self, epoch=None):
        """Advance one epoch, or (``epoch`` given, an int or a float >= 0) go to that point of the schedule."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            _check_number("epoch", epoch, "CosineAnnealingWarmRestarts.step")
            if not epoch >= 0:
                raise ValueError(f"CosineAnnealingWarmRestarts.step: epoch must be >= 0, got {epoch!r}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._group_lrs()
