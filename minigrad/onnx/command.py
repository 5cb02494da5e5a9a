"""``minigrad export CHECKPOINT --onnx OUT.onnx [--safetensors OUT.safetensors]``: a trained run, out of minigrad.

CHECKPOINT is a checkpoint written by ``minigrad train`` (or its run directory); the network is rebuilt
from the run configuration stored in it, loaded, and written as ONNX (inference semantics, symbolic
batch, input (N, 1, 28, 28) — (N, 1, 32, 32) for the models trained on padded digits) and/or as
safetensors weights. A user mistake prints one line and exits with status 2.
"""
from __future__ import annotations

import errno
import os
import sys

import numpy

from ..io.checkpoint import CheckpointError, load, load_into
from ..io.safetensors_file import save_safetensors
from .common import OPSET_MAX, OPSET_MIN, OnnxError
from .export import export

__all__ = ["add_export_parser", "cmd_export"]

CHECKPOINT_NAME = "checkpoint.npz"


def add_export_parser(sub, build_model):
    """Add the ``export`` subcommand to ``sub``; ``build_model(name) -> (model, transform)`` rebuilds a run's net."""
    p = sub.add_parser("export", help="write a checkpoint of `minigrad train` as ONNX and/or safetensors")
    p.add_argument("checkpoint", help="checkpoint.npz, or a run directory (the --out of `minigrad train`)")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write the network as an ONNX model (mg.onnx.export)")
    p.add_argument("--safetensors", metavar="OUT", help="write the weights as safetensors (mg.io.save_safetensors)")
    p.add_argument("--opset", type=int, default=17, help=f"ONNX opset, {OPSET_MIN}..{OPSET_MAX} (default 17)")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p.set_defaults(func=cmd_export, build_model=build_model)
    return p


def cmd_export(args) -> int:
    try:
        written = _export(args)
    except (CheckpointError, OnnxError, OSError, ImportError) as exc:
        if args.debug:
            raise
        print(f"minigrad export: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def _export(args):
    if not args.onnx and not args.safetensors:
        raise OnnxError("nothing to write: give --onnx OUT.onnx and/or --safetensors OUT")
    path = args.checkpoint
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT_NAME)
    if not os.path.isfile(path):
        raise OnnxError(f"no such checkpoint: {path}; give a checkpoint.npz or the --out directory of a "
                        "`minigrad train` run")
    config = load(path, backend="numpy")["metadata"].get("run_config")
    if not isinstance(config, dict) or "model" not in config:
        raise OnnxError(f"{path} has no run configuration in its metadata (it was not written by `minigrad "
                        "train`); in Python, load it into your model and call mg.onnx.export(model, x, path)")
    model, transform = args.build_model(config["model"])
    model.to("numpy")
    load_into(path, model)
    written = []
    if args.safetensors:
        written.append(_writing("--safetensors", args.safetensors, lambda: save_safetensors(
            model, args.safetensors, metadata={"model": str(config["model"])})))
    if args.onnx:
        size = 28 if transform is None else 32        # the padded-digit models take 32x32 input
        dtype = next(iter(model.parameters())).dtype
        _writing("--onnx", args.onnx, lambda: export(model, numpy.zeros((1, 1, size, size), dtype=dtype), args.onnx,
                                                     opset=args.opset))
        written.append(os.fspath(args.onnx))
    return written


_WRITE_HINTS = {errno.ENOENT: "its directory does not exist: create it or give another path",
                errno.ENOTDIR: "a component of the path is a file, not a directory: give another path",
                errno.EISDIR: "it is a directory: give a file name in it",
                errno.EACCES: "no permission: give another path", errno.EPERM: "no permission: give another path",
                errno.EROFS: "the file system is read-only: give another path",
                errno.ENOSPC: "the disk is full: free some space or give another path"}


def _writing(flag, target, write):
    """``write()``, with an OSError (naming the target: minigrad.io.atomic_write) as one line naming the flag."""
    try:
        return write()
    except OSError as exc:
        if exc.strerror is None:
            raise
        hint = _WRITE_HINTS.get(exc.errno)
        raise OnnxError(f"{flag} {os.fspath(target)}: cannot write it ({exc.strerror})"
                        + (f"; {hint}" if hint else "")) from exc
