"""``minigrad train``: a model on MNIST into a run directory (lock, checkpoints, history, metrics), resumable."""
from __future__ import annotations

import json
import math
import os
import time
import warnings

from .common import (DEFAULTS, DEFAULT_LR, CLIError, Printer, build_model, build_optimizer, build_scheduler,
                     default_weight_decay, load_datasets, require_matplotlib, run_config_of, set_backend,
                     show_progress)
from .plot import plot_history
from .report_command import require_plot_extra, run_record, write_report
from ..io.regular_file import check_regular

__all__ = ["cmd_train"]

# NumPy's floating-point warnings (warnings are process-wide, so this also covers the kernels' pool threads).
_FLOATING_POINT_WARNINGS = r"(overflow|invalid value|divide by zero|underflow) encountered"


def cmd_train(args) -> int:
    say = Printer(args.json)
    dist = _init_distributed(args)  # None without --distributed
    if dist is not None and not dist.is_main():
        say = lambda *parts: None  # noqa: E731  (only rank 0 prints)
    if args.plot:
        require_matplotlib()
    if getattr(args, "report", False):
        require_plot_extra("--report")
    if args.out is not None and not args.out.strip():
        raise CLIError("--out is empty: give the run directory (e.g. --out runs/lenet5), or leave out --out for "
                       "runs/MODEL", every_rank=True)
    out = args.out or os.path.join("runs", args.model or DEFAULTS["model"])
    if args.override and not args.resume:
        raise CLIError("--override changes the settings of a resumed run: use it with --resume", every_rank=True)
    if args.resume and args.overwrite:
        raise CLIError("--resume continues the run in --out and --overwrite replaces it: give only one",
                       every_rank=True)
    if dist is None:
        set_backend(args.backend)    # a missing CuPy is the first thing to hear, before anything about --out
    created = _missing_directories(out)   # what opening the run directory creates (removed again on a failure)
    try:
        run_dir = _open_run_directory(out, args, say, dist)   # rank 0 writes; None on the other ranks
    except _RankZeroRefused:
        return 2       # rank 0 was refused and says why: this rank ends too instead of waiting for it
    try:
        return _train(args, say, dist, out, run_dir)
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.filename is None:   # e.g. ENOSPC from a write: name the run directory
            exc.filename = out
        if run_dir is not None:
            _remove_if_unused(run_dir, created)
        raise
    finally:
        if run_dir is not None:
            run_dir.release()


def _overwrite_hint(run_dir) -> str:
    """What --resume without a checkpoint adds to "start the run again without --resume"."""
    if run_dir is not None and run_dir.existing_outputs():
        return " and with --overwrite"
    if run_dir is not None and run_dir.empty_history():     # a run that stopped before its first record
        return " (the empty history.jsonl there, left by a run stopped before its first record, is not a run: " \
               "--overwrite is not needed)"
    return ""


def _missing_directories(out) -> list:
    """``out`` and its parents that do not exist yet, innermost first."""
    missing, path = [], os.path.abspath(out)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _remove_if_unused(run_dir, created):
    """After a run that failed before writing anything (--resume with nothing to resume, a bad --data-root, an
    interrupt while loading, the memory guard at the first step): remove an empty history.jsonl that is the
    only output, then the directories this invocation created, when they hold nothing but the lock file. A
    directory that existed before is never removed; nor is one where anything else was written."""
    from ..train.rundir import HISTORY_NAME, LOCK_NAME
    try:
        if not run_dir.existing_outputs() and run_dir.empty_history():   # failed before its first record
            os.unlink(os.path.join(run_dir.path, HISTORY_NAME))
        if not created or os.listdir(run_dir.path) != [LOCK_NAME]:
            return
        os.unlink(os.path.join(run_dir.path, LOCK_NAME))   # still locked: no other process takes it meanwhile
        for directory in created:
            os.rmdir(directory)         # fails (and stops) at the first one that is not empty
    except OSError:
        pass


def _open_run_directory(out, args, say, dist):
    """Rank 0's lock on ``out`` (rundir.open_run_directory); under --distributed every rank learns the outcome.

    Only rank 0 writes the run's files, so only rank 0 takes the lock. When it is refused (another run holds
    ``out``, ...) the other ranks must not go on to wait for it in the first collective of training: rank 0
    broadcasts whether it got the lock, and on a refusal rank 0 raises its error (one line, exit 2) while the
    others raise _RankZeroRefused (exit 2 without a word). Returns rank 0's RunDirectory, None on the others.
    """
    from ..train.rundir import open_run_directory
    if dist is None:
        return open_run_directory(out, args.resume, args.overwrite, say)
    run_dir, refusal = None, None
    if dist.is_main():
        try:
            run_dir = open_run_directory(out, args.resume, args.overwrite, say)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
            refusal = exc
    refused = dist.broadcast_object(refusal is not None)
    if refusal is not None:
        raise refusal
    if refused:
        raise _RankZeroRefused()
    return run_dir


class _RankZeroRefused(Exception):
    """A rank other than 0 ends because rank 0 was refused (rank 0 prints why)."""


def _train(args, say, dist, out, run_dir) -> int:
    import minigrad as mg
    from ..data import DataLoader
    from ..train.resume import ApplyResume, check_loaders_fit, checked_train_state, nonfinite_advice
    from ..train.state import nonfinite_val_error
    from ..train.loop import CHECKPOINT_NAME, Callback, fit

    main_rank = run_dir is not None
    checkpoint = os.path.join(out, CHECKPOINT_NAME)
    config = _train_config(args)
    resumed, callbacks = None, []
    if args.resume:
        if not os.path.exists(checkpoint):
            raise CLIError(f"--resume: no checkpoint at {checkpoint}; start the run again without --resume"
                           + _overwrite_hint(run_dir))
        check_regular(checkpoint, "--resume", CLIError, "checkpoint")    # a FIFO or a device: mg.load's message
        resumed = _load_checkpoint(checkpoint)
        config = {**config, **run_config_of(checkpoint, resumed["metadata"])}   # the run's own settings
        train_state = checked_train_state(checkpoint, resumed["metadata"], resumed["scheduler"])
        say(f"Resuming from {checkpoint} (step {train_state['step']})")
    mg.manual_seed(config["seed"])
    train_set, test_set = load_datasets(args.data_root, config["limit_train"], config["limit_test"])
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
        check_loaders_fit(checkpoint, train_state, config, train_loader, test_loader)
        config, resume_changes = _plan_resume(args, config, resumed, len(train_loader), out)
        callbacks.append(ApplyResume(resume_changes, config, len(train_loader),
                                     weight_decay_of=lambda value: default_weight_decay(config["optimizer"], value)))
        if resume_changes:
            say("Changed on resume: " + ", ".join(f"{key} {old} -> {new}" for key, (old, new)
                                                  in resume_changes.items()))
        if ((resumed["metadata"].get("train_state") or {}).get("epoch") or 0) >= config["epochs"]:
            say(f"The run in {out} has already done its {_count(config['epochs'], 'epoch')}: nothing is left to "
                "train (--epochs N extends it); the figures below are the run's own.")
    optimizer = build_optimizer(config["optimizer"], model.parameters(), config["lr"], config["weight_decay"])
    scheduler = build_scheduler(config["scheduler"], optimizer, config["lr"], config["epochs"], len(train_loader))
    loss = mg.nn.CrossEntropyLoss()

    say(f"Training {config['model']} ({model.num_parameters():,} parameters) on MNIST: {len(train_set)} train / "
        f"{len(test_set)} test images, backend {args.backend}, {_count(config['epochs'], 'epoch')} of {len(train_loader)} "
        f"batches of {config['batch_size']}, {config['optimizer']} lr={config['lr']:g} scheduler={config['scheduler']}; "
        f"checkpoints in {out}"
        + (f"; data-parallel over {dist.world_size()} processes, {train_loader.batch_size} per process"
           if dist is not None else ""))

    class EpochLine(Callback):
        def on_epoch_end(self, state, logs):
            rate = logs["images_per_s"] or 0    # under --distributed: all processes' images, like the final line
            say(f"epoch {logs['epoch']}/{state.epochs}: train loss {logs['train_loss']:.4f} acc "
                f"{logs['train_acc']:.4f} | test loss {logs['val_loss']:.4f} acc {logs['val_acc']:.4f} | "
                f"{logs['seconds']:.1f} s, {rate:.0f} images/s"
                + (f" (all {dist.world_size()} processes)" if dist is not None else ""))

    class FiniteTestLoss(Callback):     # a test loss that is NaN/inf: the weights diverged (e.g. one step at lr 1e30)
        def on_epoch_end(self, state, logs):
            if logs.get("val_loss") is not None and not math.isfinite(logs["val_loss"]):
                raise nonfinite_val_error(logs["val_loss"], state, checkpoint if main_rank else None, "test")

    if args.tensorboard is not None and main_rank:     # before any work: a missing extra or an empty DIR is one line
        if not args.tensorboard.strip():
            raise CLIError("--tensorboard: the directory is empty; give a directory for the event files")
        try:
            callbacks.append(mg.train.TensorBoard(args.tensorboard))
        except ImportError as exc:
            raise CLIError(f"--tensorboard: {exc}") from None
    recorded = {"run_config": config, **run_record()}    # in every checkpoint: what the run report shows
    if getattr(args, "report", False) and main_rank:     # in progress after each epoch; the final one below
        callbacks.append(mg.viz.ReportCallback(out, train=train_set, test=test_set, transform=transform,
                                               last=False, metadata=recorded))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():     # NumPy's overflow/invalid-value warnings on the way to a non-finite
            warnings.filterwarnings("ignore", _FLOATING_POINT_WARNINGS, RuntimeWarning)   # loss: fit's error says it
            history = fit(model, loss, optimizer, train_loader, config["epochs"], val_loader=test_loader,
                          scheduler=scheduler, callbacks=[*callbacks, EpochLine(), FiniteTestLoss()],
                          checkpoint_dir=out if main_rank else None,
                          checkpoint_every=args.checkpoint_every if main_rank else None, resume=bool(args.resume),
                          log_path=os.path.join(out, "history.jsonl") if main_rank else None,
                          progress=show_progress(args) and main_rank,
                          metadata=recorded)
    except mg.train.NonFiniteLossError as exc:
        raise CLIError(f"{exc} {nonfinite_advice(exc, config, out, args.data_root)}") from None
    wall = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _FLOATING_POINT_WARNINGS, RuntimeWarning)
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
    if getattr(args, "report", False):
        say(f"Report: {write_report(out, data_root=args.data_root)}")
    say(f"Test accuracy: {100 * final['accuracy']:.2f}% ({round(final['accuracy'] * final['n'])}/{final['n']}) "
        f"after {len(epochs_done)} epochs; training {train_seconds:.1f} s"
        + (f", {metrics['images_per_s']:.0f} images/s" if metrics["images_per_s"] else "")
        + (f"; curves in {metrics['plot']}" if args.plot else ""))
    if args.json:
        print(json.dumps(metrics), flush=True)
    return 0


def _load_checkpoint(path):
    from ..io.checkpoint import load
    try:
        return load(path, backend="numpy")
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot read checkpoint {path}: {exc}") from None


def _plan_resume(args, config, resumed, steps_per_epoch, out):
    """The resumed run's config and the changes its flags make (minigrad.train.resume), or a CLIError."""
    from ..train.resume import plan_resume
    from ..train.loop import read_train_state
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
                           "or leave it out", every_rank=True)
        return None
    from .. import distributed as dist
    if args.resume:
        raise CLIError("--resume is not supported with --distributed yet: resume the run without mpirun, "
                       "or start a new one", every_rank=True)
    set_backend(args.backend)  # before init(): on cupy, init() picks this process's GPU and starts NCCL
    if args.dist_timeout is not None:
        try:
            dist.set_timeout(args.dist_timeout)
        except ValueError as exc:
            raise CLIError(f"--dist-timeout: {exc}; give the seconds a collective may take, e.g. --dist-timeout 60",
                           every_rank=True) from None
    try:
        dist.init()
    except dist.DistributedError as exc:
        raise CLIError(f"--distributed: {exc}") from None
    batch = args.batch_size or DEFAULTS["batch_size"]
    if batch % dist.world_size():
        raise CLIError(f"--distributed: --batch-size {batch} is the global batch and must be divisible by the "
                       f"number of processes ({dist.world_size()}): give a multiple of {dist.world_size()}",
                       every_rank=True)
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


def _count(n: int, noun: str) -> str:
    """"1 epoch", "4 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
