"""Schedulers made of other schedulers: SequentialLR (one after another, switching at milestones) and
ChainedScheduler (all at every step, their factors multiplying), with ``torch.optim.lr_scheduler``'s names,
signatures, rules and values. Import them from ``minigrad.optim.lr_scheduler``.

Build the inner schedulers on the same optimizer first, then the composite; step only the composite::

    warmup = LinearLR(optimizer, start_factor=0.1, total_iters=5)
    cosine = CosineAnnealingLR(optimizer, T_max=95)
    scheduler = SequentialLR(optimizer, [warmup, cosine], milestones=[5])

As in PyTorch, SequentialLR restarts each scheduler at its milestone from epoch 0 with the scheduler's
closed form where it has one (so a scheduler starts from its own ``initial_lr``-based value, not from the
lr the previous one left), and neither accepts a ReduceLROnPlateau (its ``step`` needs a metric).
``state_dict()`` holds the inner schedulers' state dicts under ``"_schedulers"`` (PyTorch's key).
"""
from __future__ import annotations

import copy
from bisect import bisect_right

from .lr_scheduler_base import LRScheduler
from .lr_scheduler_plateau import ReduceLROnPlateau
from .optimizer import Optimizer

__all__ = ["SequentialLR", "ChainedScheduler"]


def _check_schedulers(where, schedulers, optimizer):
    """The schedulers as a list, each a minigrad scheduler (not ReduceLROnPlateau) of ``optimizer``."""
    if isinstance(schedulers, LRScheduler) or not isinstance(schedulers, (list, tuple)):
        raise TypeError(f"{where}: schedulers must be a list of schedulers, got {type(schedulers).__name__}")
    if not schedulers:
        raise ValueError(f"{where}: expects at least one scheduler, got an empty list")
    for i, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"{where}: schedulers[{i}] is a {type(scheduler).__name__}, not a minigrad "
                            "learning-rate scheduler")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(f"{where}: schedulers[{i}] is a ReduceLROnPlateau, which cannot be composed (its "
                             "step needs a metric); step it on its own with scheduler.step(metric)")
        if scheduler.optimizer is not optimizer:
            raise ValueError(f"{where}: schedulers[{i}] ({type(scheduler).__name__}) belongs to another optimizer "
                             f"({type(scheduler.optimizer).__name__} at {id(scheduler.optimizer):#x}); all schedulers "
                             f"must adjust the same optimizer ({type(optimizer).__name__} at {id(optimizer):#x})")
    return list(schedulers)


def _state_with_schedulers(scheduler):
    state = {k: copy.deepcopy(v) for k, v in scheduler.__dict__.items() if k not in ("optimizer", "_schedulers")}
    state["_schedulers"] = [s.state_dict() for s in scheduler._schedulers]
    return state


def _load_with_schedulers(scheduler, state_dict):
    state = copy.deepcopy(state_dict)
    inner = state.pop("_schedulers", None)
    if not isinstance(inner, list) or len(inner) != len(scheduler._schedulers):
        count = len(inner) if isinstance(inner, list) else "no"
        raise ValueError(f"{type(scheduler).__name__}.load_state_dict: the state holds {count} inner scheduler "
                         f"states, this scheduler has {len(scheduler._schedulers)} schedulers")
    scheduler.__dict__.update(state)
    for s, s_state in zip(scheduler._schedulers, inner):
        s.load_state_dict(s_state)


class _OfSchedulers(LRScheduler):
    """A scheduler made of others: its state dict holds theirs."""

    def state_dict(self):
        """Every attribute except the optimizer; the inner schedulers' state dicts under ``"_schedulers"``."""
        return _state_with_schedulers(self)

    def load_state_dict(self, state_dict):
        _load_with_schedulers(self, state_dict)


class SequentialLR(_OfSchedulers):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` (restarted at its epoch 0) until
    ``milestones[1]``, and so on: ``len(milestones) == len(schedulers) - 1``, in increasing order."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        where = "SequentialLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        schedulers = _check_schedulers(where, schedulers, optimizer)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, (list, tuple)):
            raise TypeError(f"{where}: milestones must be a list of ints, got {type(milestones).__name__}")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{where}: expected {len(schedulers) - 1} milestones (one fewer than the "
                             f"{len(schedulers)} schedulers), got {len(milestones)}")
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, int) or m < 0:
                raise ValueError(f"{where}: every milestone must be an int >= 0, got {m!r}")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"{where}: milestones must be in increasing order, got {list(milestones)}")
        for i, group in enumerate(optimizer.param_groups):
            if "initial_lr" not in group:
                raise KeyError(f"{where}: param_groups[{i}] has no 'initial_lr' (was it added after the "
                               "schedulers were built?)")
        self._schedulers = schedulers
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:       # undo the inner schedulers' construction
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def recursive_undo(self, sched=None):
        """Take back the step 0 that each inner scheduler (recursively) made when it was built."""
        scheds = self if sched is None else sched
        if hasattr(scheds, "_schedulers"):
            for s in scheds._schedulers:
                self.recursive_undo(s)
        elif hasattr(scheds, "last_epoch"):
            scheds.last_epoch -= 1

    def step(self):
        """Advance one epoch: step the scheduler in charge, or restart the next one at its milestone."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()



class ChainedScheduler(_OfSchedulers):
    """Step every scheduler of ``schedulers`` at each ``step()``, in order (their effects compose)."""

    def __init__(self, schedulers, optimizer=None):
        where = "ChainedScheduler"
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"{where}: expected a minigrad Optimizer (or None), got {type(optimizer).__name__}")
        if isinstance(schedulers, (list, tuple)) and schedulers and optimizer is None:
            optimizer = getattr(schedulers[0], "optimizer", None)
        self._schedulers = _check_schedulers(where, schedulers, optimizer)
        self.optimizer = optimizer
        self._last_lr = self._group_lrs()

    def step(self):
        """Step every scheduler once."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = self._group_lrs()


    def __repr__(self):
        inner = ", ".join(type(s).__name__ for s in self._schedulers)
        return f"ChainedScheduler([{inner}], last_lr={self._last_lr})"
