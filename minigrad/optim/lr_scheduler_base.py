"""The base class of the learning-rate schedulers (``LRScheduler``) and their argument check.

Users import every scheduler, this base included, from ``minigrad.optim.lr_scheduler``; the base lives in
its own module so that the scheduler modules (``lr_scheduler``, ``lr_scheduler_decay``,
``lr_scheduler_plateau``, ``lr_scheduler_compose``) can share it without importing one another in a cycle.

The stepping follows ``torch.optim.lr_scheduler.LRScheduler``: construction performs step 0 (stores
``initial_lr`` in each group and sets the first lr); ``step()`` advances ``last_epoch`` and calls the
subclass's ``get_lr()`` (the recursive, "chainable" form). ``_update_lr(epoch)`` jumps to ``epoch`` with the
subclass's closed form ``_get_closed_form_lr()`` when it has one, as torch's does: ``SequentialLR`` restarts
a scheduler at its milestone that way.
"""
from __future__ import annotations

import copy

from .optimizer import Optimizer

__all__ = ["LRScheduler", "check_int"]


def check_int(name, value, where, low=1):
    """Raise ValueError naming ``where`` unless ``value`` is an int (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")


class LRScheduler:
    """Base class: ``last_epoch`` counts steps; subclasses implement ``get_lr()`` (the chainable form)."""

    def __init__(self, optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no 'initial_lr'; resuming with "
                                   "last_epoch >= 0 needs an optimizer restored from a state dict")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Step 0 (construction; SequentialLR also restarts its first scheduler with it)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr")

    def get_last_lr(self) -> list:
        """The learning rates set by the last ``step()``, one per parameter group."""
        return list(self._last_lr)

    def step(self):
        """Advance one epoch (or batch, for OneCycleLR) and set the new learning rates."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch=None):
        """The next epoch's lrs (``epoch`` None), or epoch ``epoch``'s (closed form where there is one)."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _group_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Every attribute except the optimizer (JSON-friendly)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict):
        """Restore attributes saved by ``state_dict()`` (the optimizer's lrs come from its own state dict)."""
        self.__dict__.update(copy.deepcopy(state_dict))

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={self._last_lr})"
