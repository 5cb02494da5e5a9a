"""A training run (``mg.train``): the loop, its state and callbacks, checkpoints, resuming, run directories.

    history = mg.train.fit(model, loss, optimizer, train_loader, epochs=4, val_loader=test_loader,
                           checkpoint_dir="runs/lenet5", resume=True)
    mg.train.evaluate(model, test_loader, loss)   # {"loss", "accuracy", "n", "seconds", "images_per_s"}

Modules: ``loop`` (fit, evaluate), ``state`` (TrainState, Callback, NonFiniteLossError), ``checkpoint``
(a run's checkpoint file), ``resume`` and ``resume_checks`` (continuing a run), ``rundir`` (one writer per
run directory, files never written through links), ``tensorboard`` (the TensorBoard callback; needs the
``[tensorboard]`` extra only when used).
"""
from . import checkpoint, loop, resume, resume_checks, rundir, state, tensorboard
from .checkpoint import CHECKPOINT_NAME, read_train_state
from .loop import evaluate, fit
from .state import Callback, NonFiniteLossError, TrainState
from .tensorboard import TensorBoard

__all__ = ["fit", "evaluate", "Callback", "TrainState", "NonFiniteLossError", "CHECKPOINT_NAME", "read_train_state",
           "TensorBoard", "checkpoint", "loop", "resume", "resume_checks", "rundir", "state", "tensorboard"]
