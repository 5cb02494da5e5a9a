"""Checkpoints of a training run (``mg.train.fit``): the model, optimizer, scheduler and RNG state
(``mg.save``), plus ``train_state`` in the metadata: the loop position (epoch, step), the running
epoch's metric sums, the loaders' positions and the history, so a killed run continues bit for bit.
"""
from __future__ import annotations

from ..io.checkpoint import load, load_into, save
from .resume_checks import check_train_state

__all__ = ["CHECKPOINT_NAME", "FORMAT", "loader_state", "save_training_checkpoint", "read_train_state",
           "restore_training_checkpoint"]

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = 1   # of train_state


def loader_state(loader):
    return loader.state_dict() if hasattr(loader, "state_dict") else None


def save_training_checkpoint(path, state, meter_values, epoch_seconds, train_loader, val_loader, metadata):
    """mg.save: model, optimizer, scheduler and RNG state, plus ``train_state`` (loop position, sums, history)."""
    train_state = {
        "format": FORMAT, "epoch": state.epoch, "step": state.step, "records": state.records,
        "meter": meter_values, "epoch_seconds": epoch_seconds,
        "train_loader": loader_state(train_loader), "val_loader": loader_state(val_loader) if val_loader else None,
    }
    save(path, state.model, state.optimizer, scheduler=state.scheduler, train_state=train_state, **(metadata or {}))


def read_train_state(checkpoint) -> dict:
    """The training state stored in a checkpoint written by ``fit`` (epoch, step, history records, ...),
    checked for sense (minigrad/train/resume_checks.py: epoch >= 0, step within its epoch and schedule, ...)."""
    ckpt = load(checkpoint, backend="numpy")
    train_state = ckpt["metadata"].get("train_state")
    if not isinstance(train_state, dict):
        raise ValueError(f"{checkpoint}: not a training checkpoint written by mg.train.fit (no 'train_state' in "
                         "its metadata); load weights with mg.load_into(path, model) instead")
    if train_state.get("format") != FORMAT:
        raise ValueError(f"{checkpoint}: training-state format {train_state.get('format')!r} is not supported "
                         f"(expected {FORMAT})")
    check_train_state(checkpoint, train_state, ckpt["scheduler"])
    return train_state


def restore_training_checkpoint(path, state, train_loader, val_loader):
    """Everything checked first (loader fits, then mg.load_into's all-or-nothing load), then applied."""
    train_state = read_train_state(path)
    previous = None
    if train_state["train_loader"] is not None and hasattr(train_loader, "load_state_dict"):
        previous = train_loader.state_dict()
        train_loader.load_state_dict(train_state["train_loader"])   # raises if the dataset differs
    try:
        load_into(path, state.model, state.optimizer, scheduler=state.scheduler, restore_rng=True)
    except Exception:
        if previous is not None:                                     # a refused file changes nothing
            train_loader.load_state_dict(previous)
        raise
    if val_loader is not None and train_state["val_loader"] is not None and hasattr(val_loader, "load_state_dict"):
        val_loader.load_state_dict(train_state["val_loader"])
    state.epoch, state.step, state.records = train_state["epoch"], train_state["step"], train_state["records"]
    return train_state["meter"], train_state["epoch_seconds"]
