"""The ``minigrad`` command: train, evaluate, info, bench.

    minigrad train                      # LeNet-5 on MNIST, CPU, defaults reach >= 99% test accuracy
    minigrad train --backend cupy       # the same on the GPU
    minigrad train --model mlp --epochs 2 --optimizer sgd --lr 0.05 --out runs/mlp --plot
    minigrad train --out runs/lenet5 --resume      # continue a killed run (same final weights)
    mpirun -np 2 minigrad train --distributed      # data-parallel over 2 processes (mg.distributed)
    minigrad evaluate runs/lenet5/checkpoint.npz
    minigrad info                       # versions, backends, GPU, BLAS and threads
    minigrad export runs/lenet5 --onnx lenet5.onnx   # ONNX (and --safetensors) for other runtimes
    minigrad bench ...                  # benchmarks (minigrad.bench)

``--json`` prints one JSON object with the final metrics on stdout (everything else goes to stderr).
"""
from __future__ import annotations

import argparse
import errno
import io
import json
import math
import os
import sys
import time

__all__ = ["main", "build_parser", "MODELS", "OPTIMIZERS", "DEFAULTS"]

# Defaults of `minigrad train`, chosen to reach >= 99% MNIST test accuracy in a few CPU minutes.
DEFAULTS = {"model": "lenet5", "epochs": 4, "batch_size": 128, "optimizer": "adam", "scheduler": "onecycle",
            "seed": 0, "weight_decay": 0.0}
DEFAULT_LR = {"sgd": 0.05, "adam": 4e-3, "adamw": 4e-3, "rmsprop": 1e-3}
MODELS = ("lenet5", "mlp", "resnet20", "vgg_small")
OPTIMIZERS = tuple(DEFAULT_LR)
SCHEDULERS = ("onecycle", "cosine", "step", "none")


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


# -- building blocks ---------------------------------------------------------------------------------
def build_model(name: str):
    """A model for (N, 1, 28, 28) MNIST input, and the batch transform it needs (or None)."""
    from . import models
    from .data import MNIST_MEAN, MNIST_STD
    from .data.transforms import Pad
    if name == "lenet5":
        return models.lenet5(), None
    if name == "mlp":
        return models.mlp(784, (256, 128), 10), None
    if name == "resnet20":
        return models.resnet20(num_classes=10, in_channels=1), None
    if name == "vgg_small":  # built for 32x32: pad the 28x28 digits by 2 pixels of background
        return models.vgg_small(num_classes=10, in_channels=1), Pad(2, fill=-MNIST_MEAN / MNIST_STD)
    raise CLIError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")


def _weight_decay(optimizer: str, value: float) -> float:
    return (value or 1e-2) if optimizer == "adamw" else value   # adamw's default decay is 0.01


def build_optimizer(name: str, params, lr: float, weight_decay: float):
    from . import optim
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=_weight_decay(name, weight_decay))
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise CLIError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(name: str, optimizer, lr: float, epochs: int, steps_per_epoch: int):
    from .optim import lr_scheduler
    if name == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    if name == "none":
        return None
    raise CLIError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")


def _datasets(data_root, limit_train, limit_test, need_train=True):
    from .data import MNIST, DatasetNotFoundError
    try:
        train = MNIST("train", root=data_root, limit=limit_train) if need_train else None
        test = MNIST("test", root=data_root, limit=limit_test)
    except DatasetNotFoundError as exc:
        raise CLIError(str(exc)) from None
    return train, test


def _set_backend(name):
    import minigrad as mg
    try:
        mg.set_backend(name)
    except mg.BackendUnavailableError as exc:
        raise CLIError(f"--backend {name}: {exc}") from None


class _Printer:
    """Human-readable lines go to stdout, or to stderr when stdout carries --json output."""

    def __init__(self, json_mode: bool):
        self.stream = sys.stderr if json_mode else sys.stdout

    def __call__(self, *parts):
        print(*parts, file=self.stream, flush=True)


# -- minigrad train ------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from .rundir import open_run_directory
    say = _Printer(args.json)
    dist = _init_distributed(args)  # None without --distributed
    if dist is not None and not dist.is_main():
        say = lambda *parts: None  # noqa: E731  (only rank 0 prints)
    main_rank = dist is None or dist.is_main()
    if args.plot:
        _require_matplotlib()
    out = args.out or os.path.join("runs", args.model or DEFAULTS["model"])
    if args.override and not args.resume:
        raise CLIError("--override changes the settings of a resumed run: use it with --resume")
    if args.resume and args.overwrite:
        raise CLIError("--resume continues the run in --out and --overwrite replaces it: give only one")
    run_dir = open_run_directory(out, args.resume, args.overwrite, say) if main_rank else None  # rank 0 writes
    try:
        return _train(args, say, dist, out, run_dir)
    except OSError as exc:
        if exc.filename is None:        # e.g. ENOSPC from a write: name the run directory
            exc.filename = out
        raise
    finally:
        if run_dir is not None:
            run_dir.release()


def _train(args, say, dist, out, run_dir) -> int:
    import minigrad as mg
    from .data import DataLoader
    from .resume import ApplyResume, nonfinite_advice
    from .train import CHECKPOINT_NAME, Callback, fit, read_train_state

    main_rank = run_dir is not None
    checkpoint = os.path.join(out, CHECKPOINT_NAME)
    config = _train_config(args)
    resumed, callbacks = None, []
    if args.resume:
        if not os.path.isfile(checkpoint):
            raise CLIError(f"--resume: no checkpoint at {checkpoint}; start the run again without --resume"
                           + (" and with --overwrite" if run_dir is not None and run_dir.existing_outputs() else ""))
        resumed = _load_checkpoint(checkpoint)
        config = {**config, **(resumed["metadata"].get("run_config") or {})}   # the run's own settings
        say(f"Resuming from {checkpoint} (step {read_train_state(checkpoint)['step']})")
    _set_backend(args.backend)
    mg.manual_seed(config["seed"])
    train_set, test_set = _datasets(args.data_root, config["limit_train"], config["limit_test"])
    model, transform = build_model(config["model"])
    model.to(args.backend)
    if dist is None:
        train_loader = DataLoader(train_set, batch_size=config["batch_size"], shuffle=True, seed=config["seed"],
                                  transform=transform)
    else:  # same weights everywhere, gradients averaged; each rank loads batch_size / world of every batch
        model = dist.DataParallel(model)
        train_loader = dist.DistributedDataLoader(train_set, batch_size=config["batch_size"] // dist.world_size(),
                                                  shuffle=True, seed=config["seed"], transform=transform)
    test_loader = DataLoader(test_set, batch_size=1000, transform=transform)
    if resumed is not None:
        config, resume_changes = _plan_resume(args, config, resumed, len(train_loader), out)
        callbacks.append(ApplyResume(resume_changes, config, len(train_loader),
                                     weight_decay_of=lambda value: _weight_decay(config["optimizer"], value)))
        if resume_changes:
            say("Changed on resume: " + ", ".join(f"{key} {old} -> {new}" for key, (old, new)
                                                  in resume_changes.items()))
    optimizer = build_optimizer(config["optimizer"], model.parameters(), config["lr"], config["weight_decay"])
    scheduler = build_scheduler(config["scheduler"], optimizer, config["lr"], config["epochs"], len(train_loader))
    loss = mg.nn.CrossEntropyLoss()

    say(f"Training {config['model']} ({model.num_parameters():,} parameters) on MNIST: {len(train_set)} train / "
        f"{len(test_set)} test images, backend {args.backend}, {config['epochs']} epochs of {len(train_loader)} "
        f"batches of {config['batch_size']}, {config['optimizer']} lr={config['lr']:g} scheduler={config['scheduler']}; "
        f"checkpoints in {out}"
        + (f"; data-parallel over {dist.world_size()} processes, {train_loader.batch_size} per process"
           if dist is not None else ""))

    class EpochLine(Callback):
        def on_epoch_end(self, state, logs):
            # under --distributed each rank counts its own share: report all processes' images, like the final line
            rate = len(train_set) / logs["seconds"] if dist is not None and logs["seconds"] else logs["images_per_s"]
            say(f"epoch {logs['epoch']}/{state.epochs}: train loss {logs['train_loss']:.4f} acc "
                f"{logs['train_acc']:.4f} | test loss {logs['val_loss']:.4f} acc {logs['val_acc']:.4f} | "
                f"{logs['seconds']:.1f} s, {rate:.0f} images/s"
                + (f" (all {dist.world_size()} processes)" if dist is not None else ""))

    start = time.perf_counter()
    try:
        history = fit(model, loss, optimizer, train_loader, config["epochs"], val_loader=test_loader,
                      scheduler=scheduler, callbacks=[*callbacks, EpochLine()],
                      checkpoint_dir=out if main_rank else None,
                      checkpoint_every=args.checkpoint_every if main_rank else None, resume=bool(args.resume),
                      log_path=os.path.join(out, "history.jsonl") if main_rank else None,
                      progress=_show_progress(args) and main_rank,
                      metadata={"run_config": config})
    except mg.train.NonFiniteLossError as exc:
        raise CLIError(f"{exc} {nonfinite_advice(exc, config, out, args.data_root)}") from None
    wall = time.perf_counter() - start
    final = mg.train.evaluate(model, test_loader, loss)
    epochs_done = history.get("epoch", [])
    train_seconds = sum(history.get("seconds", []))
    images = len(train_set) * len(epochs_done) if epochs_done else 0
    metrics = {
        "model": config["model"], "backend": args.backend, "epochs": len(epochs_done),
        "test_accuracy": final["accuracy"], "test_loss": final["loss"], "test_images": final["n"],
        "train_loss": history["train_loss"][-1] if epochs_done else None,
        "train_accuracy": history["train_acc"][-1] if epochs_done else None,
        "train_seconds": train_seconds, "images_per_s": images / train_seconds if train_seconds else None,
        "wall_seconds": wall, "checkpoint": checkpoint, "history": os.path.join(out, "history.jsonl"),
        "compile_seconds": sum(e["seconds"] for e in history.get("events", []) if e["type"] == "compile") or None,
        "config": config,
    }
    if dist is not None:
        metrics["world_size"] = dist.world_size()
        metrics["allreduce_seconds"] = model.comm_seconds
        if not main_rank:
            return 0  # only rank 0 writes metrics, plots and prints
    if args.plot:
        metrics["plot"] = plot_history(history, os.path.join(out, "curves.png"), title=config["model"])
    run_dir.write_bytes("metrics.json", json.dumps(metrics, indent=2).encode("utf-8"))
    say(f"Test accuracy: {100 * final['accuracy']:.2f}% ({round(final['accuracy'] * final['n'])}/{final['n']}) "
        f"after {len(epochs_done)} epochs; training {train_seconds:.1f} s"
        + (f", {metrics['images_per_s']:.0f} images/s" if metrics["images_per_s"] else "")
        + (f"; curves in {metrics['plot']}" if args.plot else ""))
    if args.json:
        print(json.dumps(metrics), flush=True)
    return 0


def _load_checkpoint(path):
    from .io import load
    try:
        return load(path, backend="numpy")
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot read checkpoint {path}: {exc}") from None


def _plan_resume(args, config, resumed, steps_per_epoch, out):
    """The resumed run's config and the changes its flags make (minigrad.resume), or a CLIError."""
    from .resume import plan_resume
    from .train import read_train_state
    given = {key: getattr(args, key) for key in ("model", "epochs", "batch_size", "lr", "optimizer", "scheduler",
                                                 "weight_decay", "seed", "limit_train", "limit_test")
             if getattr(args, key) is not None}
    train_state = read_train_state(resumed["path"])
    return plan_resume(config, given, args.override, resumed["scheduler_type"], resumed["scheduler"],
                       train_state["epoch"], steps_per_epoch, out)


def _init_distributed(args):
    """mg.distributed after init() for --distributed (None otherwise); checks the flags that go with it."""
    if not args.distributed:
        if args.dist_timeout is not None:
            raise CLIError("--dist-timeout applies to --distributed runs only: add --distributed (under mpirun) "
                           "or leave it out")
        return None
    from . import distributed as dist
    if args.resume:
        raise CLIError("--resume is not supported with --distributed yet: resume the run without mpirun, "
                       "or start a new one")
    _set_backend(args.backend)  # before init(): on cupy, init() picks this process's GPU and starts NCCL
    if args.dist_timeout is not None:
        try:
            dist.set_timeout(args.dist_timeout)
        except ValueError as exc:
            raise CLIError(f"--dist-timeout: {exc}; give the seconds a collective may take, e.g. --dist-timeout 60") \
                from None
    try:
        dist.init()
    except dist.DistributedError as exc:
        raise CLIError(f"--distributed: {exc}") from None
    batch = args.batch_size or DEFAULTS["batch_size"]
    if batch % dist.world_size():
        raise CLIError(f"--distributed: --batch-size {batch} is the global batch and must be divisible by the "
                       f"number of processes ({dist.world_size()})")
    return dist


def _train_config(args) -> dict:
    optimizer = args.optimizer or DEFAULTS["optimizer"]
    return {"model": args.model or DEFAULTS["model"],
            "epochs": args.epochs if args.epochs is not None else DEFAULTS["epochs"],
            "batch_size": args.batch_size or DEFAULTS["batch_size"], "optimizer": optimizer,
            "lr": args.lr if args.lr is not None else DEFAULT_LR[optimizer],
            "scheduler": args.scheduler or DEFAULTS["scheduler"],
            "weight_decay": args.weight_decay if args.weight_decay is not None else DEFAULTS["weight_decay"],
            "seed": args.seed if args.seed is not None else DEFAULTS["seed"],
            "limit_train": args.limit_train, "limit_test": args.limit_test}


def _load_metadata(path) -> dict:
    from .io import load
    try:
        return dict(load(path)["metadata"])
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot read checkpoint {path}: {exc}") from None


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError('--plot needs matplotlib, which is not installed: pip install "minigrad[plot]"') from None


def plot_history(history: dict, path: str, title: str = "") -> str:
    """Save loss and accuracy curves (per logging interval and per epoch) as a PNG; returns the path."""
    from .rundir import write_bytes_atomic
    _require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = history.get("steps", {})
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    if steps.get("step"):
        ax_loss.plot(steps["step"], steps["loss"], lw=0.8, alpha=0.6, label="train (interval)")
    if history.get("step"):
        ax_loss.plot(history["step"], history["train_loss"], "o-", label="train (epoch)")
        if history.get("val_loss"):
            ax_loss.plot(history["step"], history["val_loss"], "s-", label="test")
        if history.get("train_acc"):
            ax_acc.plot(history["epoch"], history["train_acc"], "o-", label="train")
        if history.get("val_acc"):
            ax_acc.plot(history["epoch"], history["val_acc"], "s-", label="test")
    ax_loss.set(xlabel="step", ylabel="cross-entropy loss", yscale="log", title=f"{title} loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, image.getvalue())   # never through a link at path
    return path


# -- minigrad evaluate -------------------------------------------------------------------------------
def cmd_evaluate(args) -> int:
    import minigrad as mg
    from .data import DataLoader

    say = _Printer(args.json)
    if os.path.isdir(args.checkpoint):          # a run directory: its checkpoint.npz
        from .train import CHECKPOINT_NAME
        args.checkpoint = os.path.join(args.checkpoint, CHECKPOINT_NAME)
    if not os.path.isfile(args.checkpoint):
        raise CLIError(f"no such checkpoint: {args.checkpoint}; give a checkpoint.npz or the --out directory of "
                       "a `minigrad train` run")
    meta = _load_metadata(args.checkpoint)
    if "run_config" not in meta:
        raise CLIError(f"{args.checkpoint} has no run configuration in its metadata (it was not written by "
                       "`minigrad train`); load it in Python with mg.load_into(path, model)")
    config = meta["run_config"]
    _set_backend(args.backend)
    _, test_set = _datasets(args.data_root, None, args.limit_test, need_train=False)
    model, transform = build_model(config["model"])
    model.to(args.backend)
    mg.load_into(args.checkpoint, model)
    loader = DataLoader(test_set, batch_size=args.batch_size, transform=transform)
    result = mg.train.evaluate(model, loader, mg.nn.CrossEntropyLoss(), progress=_show_progress(args))
    result.update(model=config["model"], checkpoint=args.checkpoint, backend=args.backend)
    say(f"{config['model']} from {args.checkpoint}: test accuracy {100 * result['accuracy']:.2f}% "
        f"({round(result['accuracy'] * result['n'])}/{result['n']}), loss {result['loss']:.4f}, "
        f"{result['seconds']:.1f} s ({result['images_per_s']:.0f} images/s)")
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


# -- minigrad info -------------------------------------------------------------------------------------
def _dist_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_info() -> dict:
    """Versions, backends, GPU, BLAS and threads (imports CuPy when installed, never torch)."""
    import platform

    import numpy

    import minigrad as mg
    from .data import mnist_zarr_path

    cupy_dist = next((d for d in ("cupy-cuda13x", "cupy-cuda12x", "cupy") if _dist_version(d)), None)
    info = {
        "minigrad": mg.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "numpy": numpy.__version__, "torch": _dist_version("torch"),
        "cupy": f"{_dist_version(cupy_dist)} ({cupy_dist})" if cupy_dist else None,
        "tqdm": _dist_version("tqdm"), "zarr": _dist_version("zarr"), "matplotlib": _dist_version("matplotlib"),
        "mnist": mnist_zarr_path(),
    }
    backends = mg.backend.describe()
    info["active_backend"] = backends["active"]
    info["backends"] = ["numpy"] + (["cupy"] if backends.get("cupy") else [])
    info["gpu"] = backends.get("gpu")
    if info["cupy"] is None and backends.get("cupy"):   # importable without package metadata (a source build)
        info["cupy"] = backends["cupy"]
    if not backends.get("cupy"):
        info["cupy_unavailable"] = backends.get("cupy_unavailable")
    info["cpu_count"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    info["minigrad_threads"] = mg.get_num_threads()
    info["blas"] = _numpy_blas()
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                          "threading_layer", "architecture")}
                               for pool in threadpool_info()]
    except ImportError:
        info["threadpools"] = None
    info["thread_env"] = {k: os.environ[k] for k in ("MINIGRAD_NUM_THREADS", "OMP_NUM_THREADS",
                                                      "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                          if k in os.environ}
    return info


def _numpy_blas():
    import numpy
    try:
        config = numpy.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}
    except Exception:  # older NumPy without mode="dicts": not worth failing `minigrad info` for
        return None


def cmd_info(args) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = [("minigrad", info["minigrad"]), ("python", f"{info['python']} on {info['platform']}"),
            ("numpy", info["numpy"]), ("torch", info["torch"] or "not installed (only needed by the tests)"),
            ("cupy", info["cupy"] or 'not installed (GPU: pip install "minigrad[cuda12]" or "[cuda13]")'),
            ("backends", ", ".join(info["backends"]) + f" (active: {info['active_backend']})"),
            ("GPU", info["gpu"] or ("none (CuPy not installed)" if not info["cupy"] else
                                     f"none usable: {info.get('cupy_unavailable')}")),
            ("MNIST", info["mnist"] or 'not installed: pip install "minigrad[data]"'),
            ("BLAS", ", ".join(f"{k} {v}" for k, v in (info["blas"] or {}).items()) or "unknown"),
            ("CPUs", f"{info['cpu_count']} ({info.get('cpus_usable', '?')} usable)"),
            ("threads (minigrad)", f"{info['minigrad_threads']} (CPU kernels; mg.set_num_threads or "
                                   "MINIGRAD_NUM_THREADS)")]
    if info["threadpools"]:
        for pool in info["threadpools"]:
            rows.append((f"threads ({pool['internal_api']})",
                         f"{pool['num_threads']} [{pool['user_api']} {pool['version']}, {pool['architecture']}]"))
    else:
        rows.append(("threads", "unknown (pip install threadpoolctl to see BLAS/OpenMP thread pools)"))
    if info["thread_env"]:
        rows.append(("thread env", " ".join(f"{k}={v}" for k, v in info["thread_env"].items())))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


# -- minigrad bench ----------------------------------------------------------------------------------
def cmd_bench(bench_args) -> int:
    import importlib
    try:
        bench = importlib.import_module("minigrad.bench")   # lazily: `minigrad train` never imports it
    except ImportError as exc:
        if getattr(exc, "name", None) not in ("minigrad.bench", None):
            raise
        raise CLIError("`minigrad bench` is not available: this installation has no minigrad.bench module") from None
    parser = argparse.ArgumentParser(prog="minigrad bench", description="minigrad benchmarks")
    bench.add_arguments(parser)
    return bench.run(parser.parse_args(bench_args)) or 0


# -- parser ----------------------------------------------------------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _nonnegative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _progress_arguments(parser):
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                        help="progress bars on stderr: on, off, or auto (default: only when stderr is a terminal; "
                             "plain per-epoch lines otherwise)")
    parser.add_argument("--no-progress", dest="progress", action="store_const", const="off",
                        help="the same as --progress off")


def _show_progress(args) -> bool:
    if args.progress == "auto":
        return sys.stderr.isatty()
    return args.progress == "on"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit status 2) that points to --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    examples = __doc__.split("\n\n")[1]
    parser = _Parser(prog="minigrad", description="minigrad: train and evaluate small networks on "
                                     "MNIST, show system info, run benchmarks.", epilog="examples:\n" + examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"minigrad {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,info,export,bench}")
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
    t.add_argument("--backend", default="numpy", choices=("numpy", "cupy"), help="numpy (CPU) or cupy (GPU)")
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
    t.add_argument("--plot", action="store_true", help='save loss/accuracy curves as OUT/curves.png '
                                                        '(needs matplotlib: pip install "minigrad[plot]")')
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
    e.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    e.add_argument("--batch-size", type=_positive_int, default=1000)
    e.add_argument("--limit-test", type=_positive_int, metavar="N")
    e.add_argument("--data-root", metavar="DIR")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    _progress_arguments(e)
    e.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    e.set_defaults(func=cmd_evaluate)

    i = sub.add_parser("info", help="versions, backends, GPU, BLAS and thread count")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    from .onnx.command import add_export_parser    # minigrad export CHECKPOINT --onnx OUT.onnx
    add_export_parser(sub, build_model)

    # Listed for --help only: main() hands everything after "bench" to minigrad.bench's own parser.
    sub.add_parser("bench", help="benchmarks (see `minigrad bench --help`)", add_help=False)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


# What to do about an operating-system error while reading or writing a run's files.
_OS_ADVICE = {errno.ENOSPC: "free some space or choose another --out", errno.EDQUOT: "free some space or choose "
              "another --out", errno.EROFS: "the file system is read-only: choose another --out",
              errno.EACCES: "no permission: choose another --out or fix its permissions",
              errno.EPERM: "no permission: choose another --out or fix its permissions",
              errno.ENOTDIR: "a path component is a file, not a directory: choose another --out",
              errno.EEXIST: "a file is in the way: choose another --out",
              errno.ELOOP: "it is a symbolic link, which minigrad does not write through: remove it"}


def _error_line(exc) -> str | None:
    """The one-line message for a user-facing error, or None for an error that is a bug (traceback)."""
    from .io import CheckpointError
    from .resume import ResumeError
    from .rundir import RunDirectoryError
    if isinstance(exc, (CLIError, ResumeError, RunDirectoryError)):
        return str(exc)
    if isinstance(exc, CheckpointError):
        return f"{exc}; check the file, or start a new run with another --out (or --overwrite)"
    if isinstance(exc, MemoryError) and str(exc):   # the memory guard names the layer, shape and bytes
        return f"{exc} (the batch is set by --batch-size)"
    if isinstance(exc, OSError) and exc.errno in _OS_ADVICE:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}; {_OS_ADVICE[exc.errno]}"
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    debug = "--debug" in argv
    try:
        if command == "bench":
            return cmd_bench(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - user-facing errors become one line; anything else is re-raised
        line = _error_line(exc)
        if line is None or debug:
            raise
        print(f"minigrad {command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minigrad {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
