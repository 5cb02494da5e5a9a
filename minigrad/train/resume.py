"""Continuing a ``minigrad train`` run: which flags may change, and the schedule when the run grows.

``minigrad train --out DIR --resume`` takes its settings from the checkpoint. Flags given with it:

- ``--epochs N`` extends (or shortens, down to the epochs already done) the run; the lr schedule is
  re-planned (below).
- ``--lr`` and ``--weight-decay`` that differ from the run's are refused, listing each conflict, unless
  ``--override`` is given: then they apply from the next step and the change is recorded in
  ``history.jsonl`` (a ``{"type": "resume", ...}`` record).
- ``--model``, ``--optimizer``, ``--scheduler``, ``--batch-size``, ``--seed``, ``--limit-train`` and
  ``--limit-test`` define the run itself (its weights, optimizer state, batches): they cannot change in
  it, even with ``--override``; start a new run for them.

The schedule when the number of epochs changes, per ``--scheduler``:

- ``onecycle``: a warm-up still running keeps its course and the annealing phase is stretched to end at
  the new last step; past the warm-up, the lr anneals (cosine) from its current value to the cycle's
  min_lr at the new last step. A finished cycle (lr at min_lr, about max_lr / 250,000) is not extended:
  more epochs would train at that lr. ``--override --lr LR`` anneals from LR instead.
- ``cosine``: the lr anneals from its current value to 0 at the new last epoch (the same cosine
  curve, started where the run is). A finished schedule (lr 0) is not extended; ``--override --lr LR``
  anneals from LR instead.
- ``step``: the lr keeps dropping 10x every ``step_size`` epochs (the run's), for as long as it runs.
- ``none``: the lr stays constant.

With ``--override --lr LR``: ``onecycle`` takes LR as its new peak (max_lr and min_lr scale with it;
during the warm-up the lr rises to LR, after it anneals from LR), ``cosine`` anneals from LR, ``step``
and ``none`` continue from LR.
"""
from __future__ import annotations

import shlex

from ..io.checkpoint import CheckpointError
from .checkpoint import FORMAT
from .loop import Callback
from .resume_checks import check_train_state, loader_problems, short_repr

__all__ = ["ResumeError", "OVERRIDABLE", "FIXED", "plan_resume", "ApplyResume", "nonfinite_advice",
           "check_loaders_fit", "checked_train_state"]

OVERRIDABLE = ("lr", "weight_decay")
FIXED = ("model", "optimizer", "scheduler", "batch_size", "seed", "limit_train", "limit_test")


class ResumeError(ValueError):
    """A resume that cannot go as asked; the message names the flags and what to do."""


def _flag(key):
    return "--" + key.replace("_", "-")


def _value(value):
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def plan_resume(saved: dict, given: dict, override: bool, scheduler_type: str | None, scheduler_state: dict | None,
                epochs_done: int, steps_per_epoch: int, out: str) -> tuple[dict, dict]:
    """(the run's new config, the changes to apply at the start: {key: [old, new]}), or ResumeError.

    ``saved``: the checkpoint's run config; ``given``: the flags given on the command line (not None);
    ``scheduler_type``/``scheduler_state`` from the checkpoint; ``epochs_done``: complete epochs so far.
    """
    config, changes = dict(saved), {}
    fixed = [k for k in FIXED if k in given and given[k] != saved.get(k)]
    differing = [k for k in OVERRIDABLE if k in given and given[k] != saved.get(k)]
    listing = ", ".join(f"{_flag(k)} {_value(given[k])} (the run has {_value(saved.get(k))})"
                        for k in fixed + differing)
    verb = "differs" if len(fixed + differing) == 1 else "differ"
    if fixed:
        raise ResumeError(f"--resume: {listing} {verb} from the run in {out}; "
                          f"{', '.join(_flag(k) for k in fixed)} cannot change within a run: drop them to "
                          "continue it, or start a new run with another --out (or --overwrite)")
    if differing and not override:
        raise ResumeError(f"--resume: {listing} {verb} from the run in {out}; drop them to continue the run as "
                          "it was, or add --override to apply them from the next step")
    for key in differing:
        changes[key] = [saved.get(key), given[key]]
        config[key] = given[key]
    epochs = given.get("epochs", saved.get("epochs"))
    if epochs < epochs_done:
        raise ResumeError(f"--epochs {epochs}: the run in {out} has already done {epochs_done} epochs; give "
                          f"--epochs {epochs_done} or more")
    if epochs != saved.get("epochs"):
        changes["epochs"] = [saved.get("epochs"), epochs]
        config["epochs"] = epochs
    _check_schedule(config, changes, scheduler_type, scheduler_state, epochs_done, steps_per_epoch, out)
    return config, changes


def _check_schedule(config, changes, scheduler_type, state, epochs_done, steps_per_epoch, out):
    """Refuse a longer run whose lr schedule has already ended (it would train at its final lr, ~0)."""
    if "epochs" not in changes or "lr" in changes or state is None:
        return
    old, new = changes["epochs"]
    if new <= (old or 0):
        return
    if scheduler_type == "OneCycleLR":
        ended = state["last_epoch"] >= state["total_steps"] - 1
    elif scheduler_type == "CosineAnnealingLR":
        ended = state["last_epoch"] >= state["T_max"]
    else:
        return
    if ended:
        example = _command("--out", out, "--resume", "--epochs", new, "--override", "--lr", _value(config["lr"] / 10))
        raise ResumeError(f"--epochs {new}: the {config['scheduler']} schedule of the run in {out} has ended (its lr "
                          f"annealed to its minimum), so more epochs would barely train; to anneal from a new "
                          f"lr over the new epochs add --override --lr LR, e.g. {example}, or start a new run")


def checked_train_state(path, metadata, scheduler_state=None) -> dict:
    """The ``train_state`` in a checkpoint's ``metadata``, or one CheckpointError naming the file and what is wrong:
    missing or not a mapping, another format, a position that makes no sense (check_train_state), or malformed
    loader positions."""
    train_state = metadata.get("train_state") if isinstance(metadata, dict) else None
    if not isinstance(train_state, dict):
        what = ("no training state" if train_state is None else
                f"a training state of type {type(train_state).__name__} ({short_repr(train_state)})")
        raise CheckpointError(f"{path}: {what} in its metadata, expected the mapping "
                              "(epoch, step, loader positions, ...) mg.train.fit writes; the file was not written by "
                              "`minigrad train`, or was edited")
    if train_state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: training-state format {short_repr(train_state.get('format'))} is not supported "
                              f"(expected {FORMAT}); the file was written by another minigrad version, or edited")
    problems = loader_problems("train_loader", train_state.get("train_loader"))
    problems += loader_problems("val_loader", train_state.get("val_loader"))
    if problems:
        raise CheckpointError(f"{path}: the loader positions in this checkpoint are invalid: {'; '.join(problems)}; "
                              "the file was edited or crafted")
    check_train_state(path, train_state, scheduler_state)
    return train_state


def check_loaders_fit(path, train_state: dict, config: dict, train_loader, test_loader) -> None:
    """ResumeError when a loader position in the checkpoint is for another number of images or batches than the
    loader rebuilt from the run's settings (limit_train/limit_test, batch_size) and the data found now."""
    for name, loader, limit in (("train_loader", train_loader, "limit_train"), ("val_loader", test_loader,
                                                                                 "limit_test")):
        state = train_state.get(name)
        if not isinstance(state, dict) or not hasattr(loader, "state_dict"):
            continue
        size, batches = state.get("dataset_size", len(loader.dataset)), state.get("num_batches", len(loader))
        if (size, batches) != (len(loader.dataset), len(loader)):
            split = "training" if name == "train_loader" else "test"
            raise ResumeError(f"--resume: {path} was saved over {size} {split} images in {batches} batches, but the "
                              f"run's settings ({limit} {_value(config.get(limit))}, batch size {loader.batch_size}) "
                              f"give {len(loader.dataset)} images in {len(loader)} batches with this data; resume "
                              "with the --data-root the run was trained on, or start a new run with another --out "
                              "(or --overwrite)")


class ApplyResume(Callback):
    """At the start of a resumed ``fit``: apply ``changes`` (from plan_resume) and record them in the history."""

    def __init__(self, changes: dict, config: dict, steps_per_epoch: int, weight_decay_of=None):
        self.changes, self.config, self.steps_per_epoch = changes, config, steps_per_epoch
        self.weight_decay_of = weight_decay_of or (lambda value: value)

    def on_train_begin(self, state):
        if not self.changes:
            return
        optimizer, scheduler = state.optimizer, state.scheduler
        lr = self.changes.get("lr", [None, None])[1]
        if "weight_decay" in self.changes:
            for group in optimizer.param_groups:
                group["weight_decay"] = self.weight_decay_of(self.changes["weight_decay"][1])
        epochs = self.config["epochs"]
        name = type(scheduler).__name__ if scheduler is not None else None
        if name == "OneCycleLR":
            if epochs * self.steps_per_epoch > scheduler.last_epoch:
                scheduler.replan(epochs * self.steps_per_epoch, max_lr=lr)
        elif name == "CosineAnnealingLR":
            if epochs > scheduler.last_epoch:
                scheduler.replan(epochs, lr=lr)
        elif lr is not None:            # step, none: the lr is set and the schedule goes on from it
            for group in optimizer.param_groups:
                group["lr"] = lr
        record = {"type": "resume", "step": state.step, "epoch": state.epoch, "changes": self.changes,
                  "lr": optimizer.param_groups[0]["lr"]}
        state.add_record(record)


def _command(*parts) -> str:
    return "minigrad train " + " ".join(shlex.quote(str(part)) for part in parts)


def nonfinite_advice(exc, config: dict, out: str, data_root=None) -> str:
    """After a NonFiniteLossError: a command that continues from the last good checkpoint (one that exists and
    predates the divergence) with a 10x lower lr, or that starts the run again with it when there is none."""
    lower = f"{config['lr'] / 10:g}"
    data = ["--data-root", data_root] if data_root else []
    if exc.checkpoint is not None:
        return ("To continue from that checkpoint with a lower learning rate: "
                + _command("--out", out, "--resume", "--override", "--lr", lower, "--epochs", config["epochs"], *data))
    flags = [part for key in ("model", "epochs", "batch_size", "optimizer", "scheduler", "weight_decay", "seed",
                              "limit_train", "limit_test") if config.get(key) is not None
             for part in (_flag(key), config[key])]
    return "To start again with a lower learning rate: " + _command(*flags, "--lr", lower, "--out", out,
                                                                      "--overwrite", *data)
