"""ReduceLROnPlateau: lower the lr when a watched metric stops improving (``torch.optim.lr_scheduler``'s
name, signature, rules and values; import it from ``minigrad.optim.lr_scheduler``).

Unlike the other schedulers it is stepped with the metric, once per epoch after validation::

    scheduler = mg.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", patience=5)
    for epoch in range(epochs):
        train(...)
        scheduler.step(val_loss)        # a number, or a 0-d array

Construction leaves the lrs as they are. As in PyTorch it is an ``LRScheduler`` subclass with its own
``__init__`` (no ``base_lrs``; ``last_epoch`` counts the ``step(metrics)`` calls from 0), and
``state_dict()`` holds every attribute except the optimizer (``best`` and ``mode_worse`` may be +-inf:
JSON-friendly with Python's json, which writes ``Infinity``).
"""
from __future__ import annotations

import copy
import math
from numbers import Real

from .lr_scheduler_base import LRScheduler, check_int
from .optimizer import Optimizer

__all__ = ["ReduceLROnPlateau"]

_WHERE = "ReduceLROnPlateau"


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{_WHERE}: {name} must be a number, got {type(value).__name__} {value!r}")


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` once the metric has not improved for more than ``patience`` steps.

    Args:
        mode: 'min' (the metric should fall, e.g. a loss) or 'max' (it should rise, e.g. an accuracy).
        factor: new_lr = lr * factor, in [0, 1).
        patience: steps without improvement tolerated; the lr falls on the next one.
        threshold, threshold_mode: an improvement beats ``best * (1 - threshold)`` ('rel', mode 'min'),
            ``best * (1 + threshold)`` ('rel', 'max'), ``best - threshold`` ('abs', 'min') or
            ``best + threshold`` ('abs', 'max').
        cooldown: steps after a reduction during which bad steps are not counted.
        min_lr: a lower bound on the lr, one number or one per parameter group.
        eps: a reduction smaller than eps is skipped.

    ``mg.train.fit`` steps it once per epoch with the validation loss (``needs_metric``).
    """

    needs_metric = True                  # step(metrics): fit passes the epoch's validation (or training) loss

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{_WHERE}: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        _check_number("factor", factor)
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"{_WHERE}: factor must be in [0, 1) (new_lr = lr * factor), got {factor!r}")
        check_int("patience", patience, _WHERE, low=0)
        check_int("cooldown", cooldown, _WHERE, low=0)
        _check_number("threshold", threshold)
        _check_number("eps", eps)
        groups = optimizer.param_groups
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(f"{_WHERE}: expected {len(groups)} values for min_lr (one per parameter group), "
                                 f"got {len(min_lr)}")
            for value in min_lr:
                _check_number("every min_lr", value)
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            _check_number("min_lr", min_lr)
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(groups)
        self.factor = factor
        self.optimizer = optimizer
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = self._group_lrs()
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics=None):
        """Record one value of the watched metric (a number or a 0-d array) and lower the lr if it has
        stopped improving."""
        if metrics is None:
            raise TypeError(f"{_WHERE}.step needs the value of the metric it watches: call "
                            "scheduler.step(val_loss) (or another metric) once per epoch")
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"{_WHERE}.step: metrics must be a number or a 0-d array, got "
                            f"{type(metrics).__name__}") from None
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0          # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._group_lrs()

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"{_WHERE}: the optimizer has {len(groups)} parameter groups but min_lr was given "
                                   f"for {len(self.min_lrs)} (a group was added after the scheduler was built); set "
                                   "scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

    @property
    def in_cooldown(self) -> bool:
        """True while the steps after a reduction are not counted."""
        return self.cooldown_counter > 0

    def is_better(self, a, best) -> bool:
        """Whether ``a`` improves on ``best`` by more than the threshold (PyTorch: ``_is_better``)."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    _is_better = is_better                   # PyTorch's name

    def _init_is_better(self, mode, threshold, threshold_mode):
        if mode not in ("min", "max"):
            raise ValueError(f"{_WHERE}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{_WHERE}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict):
        """Restore the attributes saved by ``state_dict()`` (the lrs come from the optimizer's state dict)."""
        self.__dict__.update(copy.deepcopy(state_dict))
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)
