"""What the run report reads from a run directory: checkpoint metadata, history, metrics, status, model, data.

    run = read_run("runs/lenet5")          # RunFiles: .records, .metadata, .metrics, .status, ...
    model, transform = mnist_model("lenet5")

A run directory is what ``minigrad train --out DIR`` or ``mg.train.fit(checkpoint_dir=DIR, log_path=...)``
writes; its ``checkpoint.npz`` is what makes it a run (``NotARunError`` otherwise). The history comes from
``history.jsonl`` when there is one, else from the checkpoint's ``train_state`` (the same records).

``mnist_model`` builds the networks of ``minigrad train --model NAME`` for (N, 1, 28, 28) MNIST input: the
same table as ``minigrad.cli.common.build_model`` (which sits above ``viz`` and cannot be imported from
here); tests/test_report.py checks that the two agree for every model.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from .. import models
from ..io.checkpoint import load

__all__ = ["NotARunError", "RunFiles", "read_run", "mnist_model", "MNIST_MODELS", "CHECKPOINT", "HISTORY",
           "REPORT_NAME", "run_is_live", "when"]

CHECKPOINT, HISTORY, METRICS, REPORT_NAME = "checkpoint.npz", "history.jsonl", "metrics.json", "report.html"
MNIST_MODELS = models.MNIST_MODELS          # the networks of minigrad train --model


class NotARunError(ValueError):
    """The directory holds no run (no checkpoint.npz); the message says what was expected."""


@dataclass
class RunFiles:
    """A run as its directory records it.

    records: history records ({"type": "epoch" | "step" | ...}); metadata: the checkpoint's metadata (run_config,
    train_state, ...); metrics: metrics.json (or None); checkpoint_time: the checkpoint's modification time
    (seconds since the epoch); epoch / epochs: epochs done and planned (epochs None when unknown)."""

    path: str
    checkpoint: str
    records: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    metrics: dict | None = None
    checkpoint_time: float | None = None
    epoch: int = 0
    epochs: int | None = None

    @property
    def config(self) -> dict:
        config = self.metadata.get("run_config")
        return config if isinstance(config, dict) else {}


def _read_history(path) -> list:
    records = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:          # a line being written right now (a run in progress): skip it
                continue
            if isinstance(record, dict) and "type" in record:
                records.append(record)
    return records


def read_run(run_dir) -> RunFiles:
    """The run in ``run_dir``; NotARunError when it has no checkpoint.npz."""
    path = os.fspath(run_dir)
    checkpoint = os.path.join(path, CHECKPOINT)
    if not os.path.isdir(path):
        raise NotARunError(f"{path} is not a directory: give the run directory of `minigrad train --out DIR` "
                           "(or of mg.train.fit(checkpoint_dir=DIR))")
    if not os.path.isfile(checkpoint):
        raise NotARunError(f"{path} holds no run: there is no {CHECKPOINT} in it (a run directory of `minigrad "
                           "train --out DIR`, or mg.train.fit(checkpoint_dir=DIR), has one after its first epoch)")
    metadata = dict(load(checkpoint, backend="numpy")["metadata"])
    run = RunFiles(path, checkpoint, metadata=metadata, checkpoint_time=os.path.getmtime(checkpoint))
    history = os.path.join(path, HISTORY)
    train_state = metadata.get("train_state") if isinstance(metadata.get("train_state"), dict) else {}
    run.records = _read_history(history) if os.path.isfile(history) else list(train_state.get("records") or [])
    if os.path.isfile(os.path.join(path, METRICS)):
        try:
            with open(os.path.join(path, METRICS), encoding="utf-8") as file:
                run.metrics = json.load(file)
        except ValueError:
            run.metrics = None
    run.epoch = int(train_state.get("epoch") or 0)
    epochs = run.config.get("epochs")
    run.epochs = epochs if isinstance(epochs, int) else None
    return run


def run_is_live(run_dir) -> bool:
    """True when a live process holds the run directory's lock (``minigrad train`` writes its PID there)."""
    try:
        with open(os.path.join(os.fspath(run_dir), ".lock"), encoding="ascii", errors="replace") as file:
            pid = int(file.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # alive, owned by another user
        return True
    return True


def mnist_model(name: str):
    """(model, batch transform or None) of ``minigrad train --model NAME`` (mg.models.mnist_model); ValueError
    for another name, saying how to report a run of another model."""
    try:
        return models.mnist_model(name)
    except ValueError as exc:
        raise ValueError(f"{exc}; for another model pass it: mg.viz.report(run_dir, model=model, test=loader)") \
            from None


def when(seconds: float | None) -> str:
    """A local time stamp of ``seconds`` since the epoch ("2025-01-31 14:05:09 +0100"), or "unknown"."""
    if seconds is None:
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(seconds))
