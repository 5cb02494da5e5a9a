"""The training loop (``mg.train``): ``fit`` and ``evaluate``, with progress, history and checkpoints.

One training step, on whichever backend the model and the batches live::

    optimizer.zero_grad(); out = model(x); value = loss(out, y)
    model.backward(loss.backward()); optimizer.step()

Metrics stay on the device: the loss and the number of correct predictions are summed into
0-d device arrays and read back (one device-to-host sync) only every ``log_every`` steps and
at the end of an epoch. A non-finite loss is caught at that read, with the exact step that
produced it (tracked on the device too), and stops training with a ``NonFiniteLossError``.

Checkpoints (``checkpoint_dir/checkpoint.npz``, written atomically with ``mg.save``) are taken
at the end of every epoch and every ``checkpoint_every`` steps. They hold the model, the
optimizer, and in their metadata the scheduler, minigrad's RNG state, the loaders' positions,
the metric sums of the running epoch and the history, so ``fit(..., resume=True)`` continues
a killed run and ends with the same weights, bit for bit on the CPU, as a run never interrupted.

The history (returned, and written as JSON lines to ``log_path``) has one record per epoch
(``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``, ``seconds``, ``images_per_s``, which
counts all processes under ``mg.distributed``) and one per logging interval (``steps``: ``step``, ``loss``,
``acc``, ``lr``).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import numpy

from ..runtime.backend import get_array_module
from ..kernels.dispatch import gpu_kernels
from ..nn.layer import no_grad
from ..io.atomic_write import write_bytes_atomic
from .rundir import open_append
from .state import (Callback, FunctionCallback, Meter, NonFiniteLossError, TrainState, check_positive,
                    lr_of, nonfinite_error, record_into, resolve_scheduler_interval)
from .checkpoint import CHECKPOINT_NAME, read_train_state, restore_training_checkpoint, save_training_checkpoint

__all__ = ["fit", "evaluate", "stderr_is_terminal"]




# -- the loop -----------------------------------------------------------------------------------------
def evaluate(model, loader, loss=None, progress=False) -> dict:
    """Run ``model`` in eval mode (no caches) over ``loader``: ``{"loss", "accuracy", "n", "seconds", "images_per_s"}``.

    ``loss`` (optional) must average over the batch (reduction "mean"); accuracy is reported
    for (N, classes) outputs with integer labels. The sums are read back once, at the end.
    """
    was_training = getattr(model, "training", False)
    model.eval()
    start = time.perf_counter()
    meter = None
    try:
        with no_grad(), _deferred_target_checks(loss):
            bar = _progress_bar(len(loader), 0, "evaluate", progress)
            for x, y in loader:
                out = model(x)
                xp = get_array_module(out)
                meter = meter or Meter(xp)
                value = loss(out, y) if loss is not None else xp.zeros((), dtype=out.dtype)
                meter.add(value, out, y, -1)
                bar.update(1)
            bar.close()
            _check_targets(loss)
    finally:
        model.train(was_training)
    if meter is None:
        raise ValueError("evaluate: the loader produced no batches")
    values = meter.read()
    seconds = time.perf_counter() - start
    n = values["count"]
    return {"loss": values["loss_sum"] / n if loss is not None else None,
            "accuracy": values["correct"] / n if meter.has_accuracy else None,
            "n": n, "seconds": seconds, "images_per_s": n / seconds if seconds > 0 else None}


def _deferred_target_checks(loss):
    """While a loop runs, a class-index loss counts out-of-range targets on the device instead of
    reading a check back every batch (a device-to-host sync); _check_targets reads the count."""
    deferred = getattr(loss, "deferred_checks", None)
    return deferred() if deferred is not None else contextlib.nullcontext()


def _check_targets(loss):
    check = getattr(loss, "check_deferred", None)
    if check is not None:
        check()


def _progress_bar(total, initial, desc, enabled):
    if enabled is None:     # the default of fit: a bar for a person at a terminal, none in a redirected log
        enabled = stderr_is_terminal()
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True, leave=True)


def stderr_is_terminal() -> bool:
    """True when stderr (where tqdm draws) is a terminal: the rule of ``progress=None`` and of ``minigrad
    --progress auto``."""
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError):    # a replaced or closed stream
        return False


class _NoBar:
    def update(self, n=1): ...
    def set_postfix(self, *args, **kwargs): ...
    def close(self): ...


def fit(model, loss, optimizer, train_loader, epochs, val_loader=None, scheduler=None, callbacks=(),
        checkpoint_dir=None, checkpoint_every=None, resume=False, log_path=None, progress=None,
        log_every=50, scheduler_interval=None, metadata=None) -> dict:
    """Train ``model`` for ``epochs`` epochs; return the history dict (see the module docstring).

    Args:
        model: a Layer (Sequential, Graph, ...); its output and ``train_loader``'s targets go to ``loss``.
        loss: e.g. ``mg.nn.CrossEntropyLoss()``: ``loss(out, y)`` is a 0-d array, ``loss.backward()`` d/d out.
        optimizer: an ``mg.optim`` optimizer over ``model.parameters()``.
        train_loader: yields ``(x, y)`` batches (``mg.data.DataLoader``; its state is checkpointed).
        epochs: total number of epochs (a resumed run continues up to this number).
        val_loader: evaluated at the end of each epoch (``val_loss``, ``val_acc``).
        scheduler: stepped once per epoch, or per step for OneCycleLR / ``scheduler_interval="step"``;
            ReduceLROnPlateau is stepped with the epoch's validation loss (the training loss without val_loader).
        callbacks: Callback objects, or functions ``fn(state, logs)`` called at the end of each epoch.
        checkpoint_dir: where ``checkpoint.npz`` is written (each epoch, and every ``checkpoint_every`` steps).
        resume: True continues from ``checkpoint_dir/checkpoint.npz`` (which must exist); a path names the file.
        log_path: JSON-lines file receiving every history record (rewritten from the checkpoint on resume).
        progress: a tqdm bar per epoch on stderr (loss, accuracy, images/s): True always, False never, None
            (the default) only when stderr is a terminal, so a log redirected to a file gets no bar.
        log_every: steps between metric reads (the only device-to-host syncs of the loop).
        metadata: extra JSON-able entries stored in every checkpoint (e.g. how to rebuild the model).
    """
    check_positive("epochs", epochs, allow_none=False)
    check_positive("checkpoint_every", checkpoint_every)
    check_positive("log_every", log_every, allow_none=False)
    interval = resolve_scheduler_interval(scheduler, scheduler_interval)
    for c in callbacks:
        if not isinstance(c, Callback) and not callable(c):
            raise TypeError(f"fit: callbacks must be Callback objects or functions, got {type(c).__name__}")
    callbacks = [c if isinstance(c, Callback) else FunctionCallback(c) for c in callbacks]
    if (checkpoint_every or resume is True) and checkpoint_dir is None:
        raise ValueError("fit: checkpoint_every and resume=True need checkpoint_dir")
    checkpoint = os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_NAME) if checkpoint_dir is not None else None
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
    steps_per_epoch = len(train_loader)
    state = TrainState(model, optimizer, scheduler, epochs)
    meter_values, epoch_seconds = None, 0.0
    if resume:
        source = checkpoint if resume is True else os.fspath(resume)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"fit: resume requested but there is no checkpoint at {source}; "
                                    "start without resume to train from scratch")
        meter_values, epoch_seconds = restore_training_checkpoint(source, state, train_loader, val_loader)
        state.checkpoint_step = state.step if source == checkpoint else None
    log = state.log = _open_log(log_path, state.records)

    def save_checkpoint(meter, seconds):
        _check_targets(loss)
        values = meter.read() if meter is not None else None
        if values is not None and values["bad_step"] >= 0:  # never checkpoint a diverged model
            raise nonfinite_error(values["bad_step"], state.epoch, steps_per_epoch, state, checkpoint)
        save_training_checkpoint(checkpoint, state, values, seconds, train_loader, val_loader, metadata)
        state.checkpoint_step = state.step
        for c in callbacks:
            c.on_checkpoint(state, checkpoint)

    _warm_up_gpu(state)
    for c in callbacks:
        c.on_train_begin(state)
    try:
        with _deferred_target_checks(loss):        # no per-batch sync for the label check
            while state.epoch < epochs and not state.stop_training:
                finished = _run_epoch(state, loss, train_loader, val_loader, interval, callbacks, log, progress,
                                      log_every, checkpoint_every if checkpoint else None, save_checkpoint,
                                      meter_values, epoch_seconds, steps_per_epoch, checkpoint)
                meter_values, epoch_seconds = None, 0.0
                if checkpoint and finished:
                    save_checkpoint(None, 0.0)
    finally:
        if log is not None:
            log.close()
    for c in callbacks:
        c.on_train_end(state)
    return state.history


def _warm_up_gpu(state):
    """On the GPU, compile minigrad's CUDA kernels before the first epoch's clock starts; the time is a
    history event {"type": "compile", "seconds": ...} (history["events"]), not part of an epoch's seconds."""
    params = state.model.parameters()
    gpu = gpu_kernels(params[0].data) if params else None
    if gpu is not None:
        start = time.perf_counter()
        gpu.warm_up(params[0].dtype)
        state.add_record({"type": "compile", "seconds": time.perf_counter() - start})


def _all_processes(train_loader, count: int) -> int:
    """The images all processes trained on when this one trained on ``count``.

    A ``DistributedDataLoader`` serves each of its ``world_size`` processes an equal shard of every epoch, so
    the epoch's ``images_per_s`` counts them all (the throughput of the job, not of one process).
    """
    return count * getattr(train_loader, "world_size", 1)


def _open_log(log_path, records):
    if log_path is None:
        return None
    directory = os.path.dirname(os.fspath(log_path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    # A resumed run rewrites what the checkpoint knows, then continues. Replaced by rename and appended with
    # O_NOFOLLOW: a symbolic link planted at log_path is replaced, never written through.
    write_bytes_atomic(log_path, "".join(json.dumps(record) + "\n" for record in records).encode("utf-8"))
    return open_append(log_path)


def _run_epoch(state, loss, train_loader, val_loader, interval, callbacks, log, progress, log_every,
               checkpoint_every, save_checkpoint, meter_values, seconds_before, steps_per_epoch, checkpoint):
    model, optimizer, scheduler = state.model, state.optimizer, state.scheduler
    epoch = state.epoch
    model.train()
    for c in callbacks:
        c.on_epoch_begin(state)
    done = state.step - epoch * steps_per_epoch if meter_values is not None else 0
    bar = _progress_bar(steps_per_epoch, done, f"epoch {epoch + 1}/{state.epochs}", progress)
    meter = None
    start = time.perf_counter() - seconds_before
    first_count = meter_values["count"] if meter_values else 0
    clock = {"time": time.perf_counter(), "count": first_count}

    def read_and_log(final=False):
        _check_targets(loss)       # a bad label first: it can also make the loss non-finite
        values = meter.read()
        if values["bad_step"] >= 0:
            raise nonfinite_error(values["bad_step"], epoch, steps_per_epoch, state, checkpoint)
        logged = meter.logged
        n = values["count"] - logged["count"]
        if n and not final:
            logs = {"type": "step", "step": state.step, "epoch": epoch + 1,
                    "loss": (values["loss_sum"] - logged["loss_sum"]) / n,
                    "acc": (values["correct"] - logged["correct"]) / n if meter.has_accuracy else None,
                    "lr": lr_of(optimizer)}
            record_into(state, log, logs)
            meter.logged = {"loss_sum": values["loss_sum"], "correct": values["correct"], "count": values["count"]}
            for c in callbacks:
                c.on_log(state, logs)
        now = time.perf_counter()
        seen = values["count"] - clock["count"]
        count = max(values["count"], 1)
        postfix = {"loss": f"{values['loss_sum'] / count:.4f}"}
        if meter.has_accuracy:
            postfix["acc"] = f"{values['correct'] / count:.4f}"
        if final:  # the epoch's average speed
            elapsed = now - start
            postfix["img/s"] = f"{(values['count'] - first_count) / elapsed:.0f}" if elapsed > 0 else "?"
        elif now > clock["time"]:
            postfix["img/s"] = f"{seen / (now - clock['time']):.0f}"
        bar.set_postfix(postfix, refresh=False)
        clock.update(time=now, count=values["count"])
        return values

    finished = done >= steps_per_epoch
    if not finished:
        for x, y in train_loader:
            if meter is None:
                meter = Meter(get_array_module(x), meter_values)
            optimizer.zero_grad()
            out = model(x)
            value = loss(out, y)
            model.backward_parameters(loss.backward())   # the data needs no gradient
            optimizer.step()
            state.step += 1
            if interval == "step":
                scheduler.step()
            meter.add(value, out, y, state.step)
            bar.update(1)
            for c in callbacks:
                c.on_step_end(state)
            batch = state.step - epoch * steps_per_epoch
            if state.step % log_every == 0:
                read_and_log()
            if checkpoint_every and state.step % checkpoint_every == 0 and batch < steps_per_epoch:
                save_checkpoint(meter, time.perf_counter() - start)
            if state.stop_training:
                break
        else:
            finished = True
    if meter is None:  # resumed exactly at the end of the epoch's batches
        meter = Meter(numpy, meter_values)
    values = read_and_log(final=True)
    bar.close()
    if not finished:  # a callback stopped training mid-epoch
        return False
    seconds = time.perf_counter() - start
    count = max(values["count"], 1)
    record = {"type": "epoch", "epoch": epoch + 1, "step": state.step,
              "train_loss": values["loss_sum"] / count,
              "train_acc": values["correct"] / count if meter.has_accuracy else None,
              "lr": lr_of(optimizer), "seconds": seconds,
              "images_per_s": _all_processes(train_loader, values["count"]) / seconds if seconds > 0 else None}
    if val_loader is not None:
        val = evaluate(model, val_loader, loss)
        record["val_loss"], record["val_acc"] = val["loss"], val["accuracy"]
        model.train()
    if interval == "epoch":
        if getattr(scheduler, "needs_metric", False):   # ReduceLROnPlateau: the validation loss, else the training loss
            scheduler.step(record["val_loss"] if val_loader is not None else record["train_loss"])
        else:
            scheduler.step()
    state.epoch = epoch + 1
    record_into(state, log, record)
    for c in callbacks:
        c.on_epoch_end(state, record)
    return True

