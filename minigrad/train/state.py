"""What a training run carries between steps: its state, the callbacks it calls, the metric meter.

    state = TrainState(model, optimizer, scheduler, epochs)   # epoch, step, history records
    class Stop(Callback):                                     # hooks: on_train_begin ... on_train_end
        def on_epoch_end(self, state, logs): ...

``NonFiniteLossError`` is what ``fit`` raises when the loss stops being finite, naming the step and the
last good checkpoint.
"""
from __future__ import annotations

import json
import os

__all__ = ["NonFiniteLossError", "Callback", "FunctionCallback", "TrainState", "Meter", "history_from_records",
           "record_into", "lr_of", "resolve_scheduler_interval", "check_positive", "nonfinite_error",
           "nonfinite_val_error"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and what to try.

    Attributes: ``step`` (the first step with a non-finite loss), ``checkpoint`` and ``checkpoint_step``
    (the last checkpoint written or resumed from by this ``fit``, which predates the divergence; None if none).
    """

    def __init__(self, message, step=None, checkpoint=None, checkpoint_step=None):
        super().__init__(message)
        self.step, self.checkpoint, self.checkpoint_step = step, checkpoint, checkpoint_step


class Callback:
    """Hooks called by ``fit``; override the ones you need. ``state`` is the live TrainState.

    Set ``state.stop_training = True`` in any hook to stop after the current step.
    ``on_step_end`` runs every step and must not read device values (that would sync every step);
    ``on_log`` and ``on_epoch_end`` receive metrics that were already read back.
    """

    def on_train_begin(self, state): ...
    def on_epoch_begin(self, state): ...
    def on_step_end(self, state): ...
    def on_log(self, state, logs: dict): ...
    def on_checkpoint(self, state, path: str): ...
    def on_epoch_end(self, state, logs: dict): ...
    def on_train_end(self, state): ...


class FunctionCallback(Callback):
    """A plain function ``fn(state, logs)`` is called at the end of every epoch."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, state, logs):
        self.fn(state, logs)


class TrainState:
    """What ``fit`` knows while it runs: model, optimizer, scheduler, epoch, step, history records."""

    def __init__(self, model, optimizer, scheduler, epochs):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.epochs = epochs
        self.epoch = 0             # index of the running epoch (== epochs when done)
        self.step = 0              # optimizer steps taken so far, over all epochs
        self.records: list = []    # history records, {"type": "epoch" | "step" | other events, ...}
        self.stop_training = False
        self.checkpoint_step = None  # step of the last checkpoint written or resumed from (None: none yet)
        self.log = None              # the open history file (JSON lines), if fit has one

    def add_record(self, record: dict):
        """Append a history record (a dict with a "type"), also to the history file when there is one."""
        record_into(self, self.log, record)

    @property
    def history(self) -> dict:
        return history_from_records(self.records)


def history_from_records(records) -> dict:
    """Lists per metric: ``{"epoch": [...], "train_loss": [...], ..., "steps": {"step": [...], "loss": [...]}}``."""
    history: dict = {"steps": {}}
    for record in records:
        if record["type"] not in ("epoch", "step"):      # other events (e.g. a resume's changes)
            history.setdefault("events", []).append(dict(record))
            continue
        target = history if record["type"] == "epoch" else history["steps"]
        for key, value in record.items():
            if key != "type":
                target.setdefault(key, []).append(value)
    return history


def lr_of(optimizer):
    groups = getattr(optimizer, "param_groups", None)
    return float(groups[0]["lr"]) if groups else None


def resolve_scheduler_interval(scheduler, interval):
    if scheduler is None:
        return None
    if interval is None:
        interval = "step" if type(scheduler).__name__ == "OneCycleLR" else "epoch"
    if interval not in ("step", "epoch"):
        raise ValueError(f"fit: scheduler_interval must be 'step', 'epoch' or None, got {interval!r}")
    if interval == "step" and getattr(scheduler, "needs_metric", False):
        raise ValueError(f"fit: {type(scheduler).__name__} steps on an epoch's validation loss: use "
                         "scheduler_interval='epoch' (the default)")
    return interval


def check_positive(name, value, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"fit: {name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")


class Meter:
    """Running sums of one epoch on the device: loss * n, correct predictions, first non-finite step."""

    def __init__(self, xp, values=None):
        values = values or {"loss_sum": 0.0, "correct": 0, "count": 0, "bad_step": -1,
                            "logged": {"loss_sum": 0.0, "correct": 0, "count": 0}}
        self.xp = xp
        self.loss_sum = xp.asarray(values["loss_sum"], dtype=xp.float64)
        self.correct = xp.asarray(values["correct"], dtype=xp.int64)
        self.bad_step = xp.asarray(values["bad_step"], dtype=xp.int64)
        self.count = int(values["count"])       # host: batch sizes are known without a sync
        self.logged = dict(values["logged"])    # host copy of the sums at the last log record
        self.has_accuracy = True

    def add(self, value, out, y, step):
        xp, n = self.xp, int(y.shape[0])
        self.loss_sum += value.astype(xp.float64) * n
        finite = xp.isfinite(value)
        self.bad_step = xp.where(finite | (self.bad_step >= 0), self.bad_step, step)
        if self.has_accuracy and out.ndim == 2 and y.ndim == 1 and y.dtype.kind in "iu":
            self.correct += (out.argmax(axis=1) == y).sum()
        else:
            self.has_accuracy = False
        self.count += n

    def read(self) -> dict:
        """One device-to-host read of the sums."""
        loss_sum, correct, bad = (float(self.loss_sum), int(self.correct), int(self.bad_step))
        return {"loss_sum": loss_sum, "correct": correct, "count": self.count, "bad_step": bad,
                "logged": dict(self.logged)}


def nonfinite_error(step, epoch, steps_per_epoch, state, checkpoint):
    where = f"step {step} (epoch {epoch + 1}, batch {(step - 1) % steps_per_epoch + 1} of {steps_per_epoch})"
    return _divergence(f"the training loss became non-finite at {where}", step, state, checkpoint)


def nonfinite_val_error(value, state, checkpoint, what="validation"):
    """For a non-finite validation loss at the end of epoch ``state.epoch`` (the weights diverged after the last
    training loss was computed, e.g. a huge lr over a single step): the same error as for the training loss."""
    return _divergence(f"the {what} loss became non-finite ({value}) at the end of epoch {state.epoch} (step "
                       f"{state.step}): the last steps made the weights diverge", state.step, state, checkpoint)


def _divergence(what, step, state, checkpoint):
    hint = ("Try a lower learning rate, gradient clipping (mg.optim.clip_grad_norm_), or check the inputs "
            "and labels for NaN/Inf (mg.detect_anomaly() names the first layer that produces one)")
    good = state.checkpoint_step if checkpoint and os.path.isfile(checkpoint) else None
    if good is not None:   # written (or resumed from) by this run, so from before the divergence
        hint += f"; the last good checkpoint is {checkpoint} (step {good})"
    else:
        hint += "; no checkpoint was written before the divergence"
    return NonFiniteLossError(f"{what}. {hint}.", step=step, checkpoint=checkpoint if good is not None else None,
                              checkpoint_step=good)


def record_into(state, log, record):
    state.records.append(record)
    if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()
