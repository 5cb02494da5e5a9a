"""Learning-rate schedulers with PyTorch's names, signatures and values (``torch.optim.lr_scheduler``).

A scheduler sets ``group["lr"]`` of its optimizer's parameter groups. Call ``scheduler.step()``
after ``optimizer.step()``, once per epoch (StepLR, MultiStepLR, CosineAnnealingLR, LinearLR, ExponentialLR,
LambdaLR, MultiplicativeLR, CosineAnnealingWarmRestarts, SequentialLR, ChainedScheduler) or once per batch
(OneCycleLR; CosineAnnealingWarmRestarts also takes ``step(epoch + i / iters)``); ``ReduceLROnPlateau`` is
stepped with the metric it watches, ``scheduler.step(val_loss)``. The values are computed with PyTorch's own
recursive ("chainable") formulas, so they agree with PyTorch to the last bit, not only approximately.

This module holds StepLR, MultiStepLR, CosineAnnealingLR, LinearLR and OneCycleLR. It re-exports the base
class ``LRScheduler`` (from ``lr_scheduler_base``) and the other schedulers, from ``lr_scheduler_decay``
(ExponentialLR, LambdaLR, MultiplicativeLR, CosineAnnealingWarmRestarts), ``lr_scheduler_plateau``
(ReduceLROnPlateau) and ``lr_scheduler_compose`` (SequentialLR, ChainedScheduler), so that every scheduler is
``mg.optim.lr_scheduler.<Name>``, as in PyTorch.

Construction performs step 0: it stores ``initial_lr`` in each group and sets the first lr.
``state_dict()`` is JSON-friendly (numbers, lists, dicts) so checkpoints can store it without pickle.

Growing a run (minigrad's addition; PyTorch has no equivalent): ``CosineAnnealingLR.replan`` and
``OneCycleLR.replan`` move the end of the schedule to a new total and anneal the rest of it from the
current step and learning rate (or a new one), as ``minigrad train --resume --epochs N`` needs.
"""
from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections import Counter

from .lr_scheduler_base import LRScheduler, check_int
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR"]


class StepLR(LRScheduler):
    """lr = initial_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        check_int("step_size", step_size, "StepLR")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr = initial_lr * gamma ** (number of milestones <= epoch)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for m in milestones:
            check_int("every milestone", m, "MultiStepLR", low=0)
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base * self.gamma ** passed for base in self.base_lrs]

    def state_dict(self):
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())  # a list: JSON has no int-keyed dicts
        return state

    def load_state_dict(self, state_dict):
        state = copy.deepcopy(state_dict)
        milestones = state.pop("milestones", None)
        super().load_state_dict(state)
        if milestones is not None:
            self.milestones = Counter(milestones if isinstance(milestones, list)
                                      else {int(k): v for k, v in milestones.items()})


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (continues past T_max).

    After ``replan(T_max, lr)`` at epoch e0: the same curve from (e0, lr) to (T_max, eta_min).
    """

    start_epoch = 0   # where the curve starts (0 unless replanned)

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        check_int("T_max", T_max, "CosineAnnealingLR")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def finished(self) -> bool:
        """True once the lr has reached eta_min (epoch >= T_max): annealing on would stay there."""
        return self.last_epoch >= self.T_max

    def replan(self, T_max: int, lr=None):
        """Anneal from the current epoch and lr (or ``lr``, a number or one per group) to eta_min at epoch
        ``T_max`` (counted from the start of the run), which must lie ahead of the current epoch."""
        check_int("T_max", T_max, "CosineAnnealingLR.replan")
        if T_max <= self.last_epoch:
            raise ValueError(f"CosineAnnealingLR.replan: T_max={T_max} must be beyond the current epoch "
                             f"{self.last_epoch}")
        groups = self.optimizer.param_groups
        if lr is not None:
            for group, value in zip(groups, lr if isinstance(lr, (list, tuple)) else [lr] * len(groups)):
                group["lr"] = value
        self.T_max, self.start_epoch = T_max, self.last_epoch
        self.base_lrs = self._last_lr = self._group_lrs()

    def get_lr(self):
        e, t_max, eta_min = self.last_epoch - self.start_epoch, self.T_max - self.start_epoch, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and e > 0:
            return [eta_min + (base - eta_min) * (1 + math.cos(e * math.pi / t_max)) / 2 for base in self.base_lrs]
        if (e - 1 - t_max) % (2 * t_max) == 0:
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                    for base, lr in zip(self.base_lrs, self._group_lrs())]
        return [(1 + math.cos(math.pi * e / t_max)) / (1 + math.cos(math.pi * (e - 1) / t_max)) * (lr - eta_min)
                + eta_min for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        e, t_max, eta_min = self.last_epoch - self.start_epoch, self.T_max - self.start_epoch, self.eta_min
        return [eta_min + (base - eta_min) * (1 + math.cos(math.pi * e / t_max)) / 2 for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warmup: the factor goes from start_factor to end_factor over total_iters steps."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if not 0 < start_factor <= 1.0:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if not 0 <= end_factor <= 1.0:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        check_int("total_iters", total_iters, "LinearLR")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, s, f = self.last_epoch, self.start_factor, self.end_factor
        if e == 0:
            return [lr * s for lr in self._group_lrs()]
        if self._is_initial or e > self.total_iters:
            return self._group_lrs()
        return [lr * (1.0 + (f - s) / (self.total_iters * s + (e - 1) * (f - s))) for lr in self._group_lrs()]

    def _get_closed_form_lr(self):
        e, s, f = self.last_epoch, self.start_factor, self.end_factor
        return [base * (s + (f - s) * min(self.total_iters, e) / self.total_iters) for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (step once per batch): warm up to max_lr, then anneal to max_lr/div/final_div.

    Also cycles ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam, AdamW) between max_momentum and
    base_momentum when cycle_momentum=True.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: expected a minigrad Optimizer, got {type(optimizer).__name__}")
        if total_steps is not None:
            check_int("total_steps", total_steps, "OneCycleLR")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            check_int("epochs", epochs, "OneCycleLR")
            check_int("steps_per_epoch", steps_per_epoch, "OneCycleLR")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR: give either total_steps or both epochs and steps_per_epoch")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        total = self.total_steps
        if three_phase:
            self._schedule_phases = [
                dict(end_step=float(pct_start * total) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=float(2 * pct_start * total) - 2, start_lr="max_lr", end_lr="initial_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=total - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum")]
        else:
            self._schedule_phases = [
                dict(end_step=float(pct_start * total) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=total - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum")]
        max_lrs = self._per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, lr in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = lr / div_factor
                group["max_lr"] = lr
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"OneCycleLR: cycle_momentum=True needs an optimizer with momentum or betas, "
                                 f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)")
            self.use_beta1 = "betas" in optimizer.defaults
            max_ms = self._per_group("max_momentum", optimizer, max_momentum)
            base_ms = self._per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for m_max, m_base, group in zip(max_ms, base_ms, optimizer.param_groups):
                    if self.use_beta1:
                        group["betas"] = (m_max, *group["betas"][1:])
                    else:
                        group["momentum"] = m_max
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _per_group(name, optimizer, value):
        if isinstance(value, (list, tuple)):
            if len(value) != len(optimizer.param_groups):
                raise ValueError(f"OneCycleLR: expected {len(optimizer.param_groups)} values for {name} (one per "
                                 f"parameter group), got {len(value)}")
            return list(value)
        return [value] * len(optimizer.param_groups)

    def finished(self) -> bool:
        """True once the cycle has reached its last step (lr at min_lr): training on would stay there."""
        return self.last_epoch >= self.total_steps - 1

    def replan(self, total_steps: int, max_lr=None):
        """Move the end of the cycle to ``total_steps`` (counted from the start of the run).

        Without ``max_lr``, a warm-up still running keeps its course and only the annealing phase is
        stretched (or shrunk); past the warm-up, the lr anneals from its current value to min_lr at the new
        last step. With ``max_lr`` (a number or one per group) max_lr and min_lr scale to it, and the lr goes
        from its current value up to max_lr at the end of the warm-up (if still warming up), or anneals from
        max_lr (past it). Momentum follows the same course.
        """
        check_int("total_steps", total_steps, "OneCycleLR.replan")
        step = self.last_epoch
        if total_steps <= step:
            raise ValueError(f"OneCycleLR.replan: total_steps={total_steps} must be beyond the current step {step}")
        groups = self.optimizer.param_groups
        if max_lr is not None:
            for group, value in zip(groups, self._per_group("max_lr", self.optimizer, max_lr)):
                scale = value / group["max_lr"]
                group["max_lr"], group["min_lr"] = value, group["min_lr"] * scale
        end = max(float(total_steps - 1), step + 1.0)       # at least one step of annealing left
        warmup_end = self._schedule_phases[0]["end_step"]
        warming_up = len(self._schedule_phases) > 1 and step < warmup_end
        for group in groups:
            group["replan_lr"] = group["lr"] if (warming_up or max_lr is None) else group["max_lr"]
            if self.cycle_momentum:
                group["replan_momentum"] = group["betas"][0] if self.use_beta1 else group["momentum"]
        last = dict(end_step=end, start_lr="max_lr", end_lr="min_lr", start_momentum="base_momentum",
                    end_momentum="max_momentum")
        if warming_up and max_lr is None:                  # the warm-up as planned, a longer (shorter) anneal
            phases = [dict(p) for p in self._schedule_phases[:-1]] + [dict(self._schedule_phases[-1], end_step=end)]
        elif warming_up:
            phases = [dict(start_step=float(step), end_step=warmup_end, start_lr="replan_lr", end_lr="max_lr",
                           start_momentum="replan_momentum", end_momentum="base_momentum"), last]
        else:
            phases = [dict(last, start_step=float(step), start_lr="replan_lr", start_momentum="replan_momentum")]
        self._schedule_phases, self.total_steps = phases, total_steps
        if max_lr is not None and not warming_up:        # the new lr applies from the next step
            for group in groups:
                group["lr"] = group["max_lr"]
            self._last_lr = self._group_lrs()

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times, but total_steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                start_step = phase.get("start_step", start_step)   # given by replan()
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                    break
                start_step = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


# The schedulers kept in their own modules (each imports only lr_scheduler_base, so there is no cycle).
from .lr_scheduler_compose import ChainedScheduler, SequentialLR  # noqa: E402
from .lr_scheduler_decay import (ConstantLR, CosineAnnealingWarmRestarts, ExponentialLR, LambdaLR,  # noqa: E402
                                 MultiplicativeLR, PolynomialLR)
from .lr_scheduler_plateau import ReduceLROnPlateau  # noqa: E402

__all__ += ["ExponentialLR", "ConstantLR", "PolynomialLR", "LambdaLR", "MultiplicativeLR", "CosineAnnealingWarmRestarts", "ReduceLROnPlateau",
            "SequentialLR", "ChainedScheduler"]
