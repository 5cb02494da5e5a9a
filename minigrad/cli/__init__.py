"""The ``minigrad`` command: train, evaluate, info, export, bench (entry point ``minigrad.cli:main``).

One module per concern:

- ``main``: runs a command; a user mistake becomes one line on stderr and exit status 2 (``--debug``: traceback);
- ``parser``: the subcommands and flags (the examples of ``minigrad --help``);
- ``common``: defaults, the models/optimizers/schedulers the commands build, ``CLIError``;
- ``train_command`` (``minigrad train``), ``plot`` (``--plot``), ``evaluate``, ``info``; ``export`` is
  ``minigrad.onnx.command``, ``bench`` is ``minigrad.bench``.

``--json`` prints one JSON object with the final metrics on stdout (everything else goes to stderr).
"""
from .common import (DEFAULT_LR, DEFAULTS, MODELS, OPTIMIZERS, SCHEDULERS, CLIError, build_model, build_optimizer,
                     build_scheduler)
from .info import collect_info
from .main import main
from .parser import build_parser
from .plot import plot_history

__all__ = ["main", "build_parser", "MODELS", "OPTIMIZERS", "SCHEDULERS", "DEFAULTS", "DEFAULT_LR", "CLIError",
           "build_model", "build_optimizer", "build_scheduler", "collect_info", "plot_history"]
