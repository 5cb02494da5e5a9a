"""The argument parser of ``minigrad``: subcommands, flags, and the checks of flag values.

    minigrad train                      # LeNet-5 on MNIST, CPU, defaults reach >= 99% test accuracy
    minigrad train --backend cupy       # the same on the GPU
    minigrad train --model mlp --epochs 2 --optimizer sgd --lr 0.05 --out runs/mlp --plot
    minigrad train --out runs/lenet5 --resume      # continue a killed run (same final weights)
    mpirun -np 2 minigrad train --distributed      # data-parallel over 2 processes (mg.distributed)
    minigrad evaluate runs/lenet5/checkpoint.npz
    minigrad report runs/lenet5         # runs/lenet5/report.html: the run in one offline page
    minigrad info                       # versions, backends, GPU, BLAS and threads
    minigrad export runs/lenet5 --onnx runs/lenet5/lenet5.onnx   # ONNX (and --safetensors), beside the run
    minigrad bench ...                  # benchmarks (minigrad.bench)

(the examples above are the epilog of ``minigrad --help``)
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from ..runtime import settings
from ..runtime.backend import BACKEND_ALIASES
from .common import DEFAULT_LR, DEFAULTS, MODELS, OPTIMIZERS, SCHEDULERS, BackendName, build_model
from .evaluate import cmd_evaluate
from .info import cmd_info
from .report_command import cmd_report
from .train_command import cmd_train

__all__ = ["build_parser", "CommandParser"]


def _number(kind, accepts, wanted: str):
    """An argparse type: text -> kind(text) when ``accepts`` it, else an error saying what was ``wanted``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda value: value >= 1, "a positive integer")
_positive_float = _number(float, lambda value: value > 0 and math.isfinite(value), "a positive number")
_nonnegative_int = _number(int, lambda value: value >= 0, "an integer >= 0")
_nonnegative_float = _number(float, lambda value: value >= 0 and math.isfinite(value), "a finite number >= 0")


def _progress_arguments(parser):
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                        help="progress bars on stderr: on, off, or auto (default: only when stderr is a terminal; "
                             "plain per-epoch lines otherwise)")
    parser.add_argument("--no-progress", dest="progress", action="store_const", const="off",
                        help="the same as --progress off")


def _backend(text):
    """An argparse type: a backend name or alias (as mg.set_backend takes it) -> "numpy" or "cupy".

    The default comes from $MINIGRAD_BACKEND (a BackendName marked from_env); a bad value there is named as such.
    """
    if getattr(text, "from_env", False):
        try:
            settings.backend_name()          # the message of every reader of $MINIGRAD_BACKEND
        except settings.SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    name = BACKEND_ALIASES.get(text.strip().lower())
    if name is None:
        raise argparse.ArgumentTypeError(f"unknown backend {text!r}: choose numpy (alias cpu) or cupy (alias cuda)")
    return BackendName(name, from_env=getattr(text, "from_env", False))


def _backend_argument(parser):
    env = os.environ.get("MINIGRAD_BACKEND", "").strip()
    parser.add_argument("--backend", type=_backend, metavar="{numpy,cupy}",
                        default=BackendName(env, from_env=True) if env else "numpy",
                        help="numpy (CPU; alias cpu) or cupy (GPU; alias cuda); default: $MINIGRAD_BACKEND when "
                             "it is set, else numpy")


class CommandParser(argparse.ArgumentParser):
    """argparse without abbreviations (``--epoch`` is not ``--epochs``), where a usage mistake is one line on
    stderr (exit status 2) pointing to the --help of the (sub)command it belongs to."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        """Exit 2 with one line; under mpirun only rank 0 prints it (every process has the same command line)."""
        from ..distributed.comm import launcher_rank
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n" if launcher_rank() in (None, 0)
                  else None)

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but arguments no parser knows are blamed on the sub-command they follow."""
        argv = list(args) if args is not None else None
        namespace, extras = self.parse_known_args(argv, namespace)
        if extras:
            owner = self._owner_of(extras, argv, namespace)
            owner.error(f"unrecognized arguments: {' '.join(extras)}{owner.suggestion(extras)}")
        return namespace

    def suggestion(self, extras) -> str:
        """"; did you mean --epochs?" for an unknown option close to one this parser has."""
        import difflib
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.75)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""

    def _owner_of(self, extras, argv, namespace):
        """The sub-command's parser when every unknown argument comes after its name, else this parser."""
        argv = sys.argv[1:] if argv is None else argv
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                command = getattr(namespace, action.dest, None)
                if command in action.choices and command in argv:
                    after = argv[argv.index(command) + 1:]
                    if all(extra in after for extra in extras):
                        return action.choices[command]
        return self


def build_parser() -> argparse.ArgumentParser:
    examples = __doc__.split("\n\n")[1]
    parser = CommandParser(prog="minigrad", description="minigrad: train and evaluate small networks on "
                                            "MNIST, show system info, run benchmarks.", epilog="examples:\n" + examples,
                                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"minigrad {_version()}",
                        help="print the version of minigrad and exit")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,report,info,export,gradcheck,bench}",
                                help="the command to run (`minigrad COMMAND --help` for its options)")
    sub.required = True

    t = sub.add_parser("train", help="train a model on MNIST (default: LeNet-5, CPU, >= 99%% test accuracy)")
    t.add_argument("--model", choices=MODELS, help=f"network (default {DEFAULTS['model']})")
    t.add_argument("--epochs", type=_positive_int, help=f"epochs (default {DEFAULTS['epochs']})")
    t.add_argument("--batch-size", type=_positive_int, help=f"batch size (default {DEFAULTS['batch_size']})")
    t.add_argument("--lr", type=_positive_float,
                   help="learning rate (peak lr with onecycle; default " +
                        ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help=f"optimizer (default {DEFAULTS['optimizer']}; "
                                                           "sgd uses momentum 0.9, nesterov)")
    t.add_argument("--scheduler", choices=SCHEDULERS, help=f"lr schedule (default {DEFAULTS['scheduler']})")
    t.add_argument("--weight-decay", type=_nonnegative_float, help="weight decay (default 0; adamw 0.01)")
    _backend_argument(t)
    t.add_argument("--seed", type=_nonnegative_int, help=f"random seed (default {DEFAULTS['seed']})")
    t.add_argument("--out", help="run directory: checkpoint.npz, history.jsonl, metrics.json, curves.png "
                                 "(default runs/MODEL)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (settings come from the checkpoint; "
                        "--epochs N extends or shortens it)")
    t.add_argument("--override", action="store_true",
                   help="with --resume: apply --lr and --weight-decay that differ from the run's from the next "
                        "step (recorded in history.jsonl); without it such flags are refused")
    t.add_argument("--overwrite", action="store_true",
                   help="start a new run in an --out that already holds one, deleting its outputs")
    t.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS",
                   help="also checkpoint every STEPS steps (always at the end of each epoch)")
    t.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on stdout")
    t.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR (scalars, weight "
                                                          "and gradient histograms, the first convolution's filters; "
                                                          'needs the tensorboard extra: pip install -e ".[tensorboard]"'
                                                          " in the minigrad checkout)")
    t.add_argument("--plot", action="store_true", help='save loss/accuracy curves as OUT/curves.png '
                                                        '(needs matplotlib: pip install -e ".[plot]" in the '
                                                        'minigrad checkout)')
    t.add_argument("--report", action="store_true",
                   help="write OUT/report.html after every epoch: the run in one offline page that reloads itself "
                        "while training runs (as `minigrad report OUT`; needs matplotlib, the plot extra)")
    t.add_argument("--limit-train", type=_positive_int, metavar="N", help="use only the first N training images")
    t.add_argument("--limit-test", type=_positive_int, metavar="N", help="use only the first N test images")
    t.add_argument("--data-root", metavar="DIR", help="read MNIST IDX files from DIR instead of the data extra")
    _progress_arguments(t)
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over the processes started by mpirun (mg.distributed): --batch-size is "
                        "the global batch, split over the processes; only rank 0 prints and writes files")
    t.add_argument("--dist-timeout", type=float, default=None, metavar="S",
                   help="with --distributed: seconds a collective (gradient all-reduce, ...) may take before the "
                        "job ends naming the unresponsive process (default 120, or $MINIGRAD_DIST_TIMEOUT)")
    t.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy of a checkpoint written by `minigrad train`")
    e.add_argument("checkpoint", help="checkpoint.npz, or a run directory (the --out of `minigrad train`)")
    _backend_argument(e)
    e.add_argument("--batch-size", type=_positive_int, default=1000, help="batch size (default 1000)")
    e.add_argument("--limit-test", type=_positive_int, metavar="N", help="use only the first N test images")
    e.add_argument("--data-root", metavar="DIR", help="read MNIST IDX files from DIR instead of the data extra")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    _progress_arguments(e)
    e.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("report", help="write RUN_DIR/report.html: curves, model, layers, filters, mistakes, "
                                      "in one page that opens offline")
    r.add_argument("run_dir", help="the run directory (the --out of `minigrad train`)")
    r.add_argument("--data-root", metavar="DIR", help="read MNIST IDX files from DIR instead of the data extra")
    r.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    r.set_defaults(func=cmd_report)

    i = sub.add_parser("info", help="versions, backends, GPU, BLAS and thread count")
    i.add_argument("--json", action="store_true", help="print everything as one JSON object on stdout")
    i.set_defaults(func=cmd_info)

    from ..onnx.command import add_export_parser    # minigrad export CHECKPOINT --onnx OUT.onnx
    add_export_parser(sub, build_model)
    from .gradcheck_command import add_gradcheck_parser   # minigrad gradcheck --model NAME
    add_gradcheck_parser(sub, _positive_int, _nonnegative_int)

    # Listed for --help only: main() hands everything after "bench" to minigrad.bench's own parser.
    sub.add_parser("bench", help="benchmarks (see `minigrad bench --help`)", add_help=False)
    return parser


def _version() -> str:
    from .. import __version__
    return __version__
