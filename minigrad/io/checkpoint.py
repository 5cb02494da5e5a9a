"""Weight files and checkpoints: one ``.npz`` archive, no pickle, written atomically, verified on load.

    mg.save("ckpt.npz", model, optimizer, scheduler=sched, epoch=3)   # metadata: any JSON-able keywords
    mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, "ckpt.npz")
    obj = mg.load("ckpt.npz")                      # the same dict back (io/tree.py), torch.save's common use
    ckpt = mg.load("ckpt.npz", backend="numpy")    # Checkpoint: ["model"], ["optimizer"], ["metadata"], ...
    mg.load_into("ckpt.npz", model, optimizer)     # checks everything first, then loads (all or nothing)

File layout (``numpy.savez``, read back with ``allow_pickle=False`` always)::

    model/<state-dict name>              one array per parameter/buffer, as the model holds it
    optimizer/state/<index>/<name>       optimizer state arrays (exp_avg, momentum_buffer, ...)
    __meta__                             uint8 array: UTF-8 JSON with everything that is not an array
    __meta_crc32__                       uint64 array: CRC32 of the JSON bytes

The JSON holds the format name ``"minigrad-checkpoint"``, the format ``version`` (1), the
model's key order, per array its dtype, shape and CRC32, the optimizer's type, parameter
groups and scalar state (``step``), the scheduler's type and state, the global RNG state
(``mg.random``) and the user's metadata.

Writing: a temp file in the target directory, flush + fsync, ``os.replace`` over the target,
fsync of the directory. An exception (disk full, Ctrl-C) before the rename leaves the old
file intact and removes the temp file. Saving copies arrays to the host; the model stays where it is.

Loading: every array is read and its dtype, shape and CRC32 checked before anything is returned. A
truncated, corrupted, foreign or wrong-version file, a header of the wrong structure, or a path that is
not a regular file (a FIFO, a device) raises ``CheckpointError``.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy

from ..runtime import random as mg_random
from ..runtime.backend import backend_of, get_backend, is_array, to_backend
from .atomic_write import write_atomic
from .checkpoint_read import (FORMAT, META_CRC_NAME, META_LIMIT, META_NAME, VERSION, CheckpointError, crc32_of,
                              declared_entry, read_verified)
from .safetensors_file import SafetensorsError, load_safetensors, save_safetensors
from . import tree as object_tree

__all__ = ["CheckpointError", "Checkpoint", "save", "load", "load_into", "FORMAT", "VERSION", "META_LIMIT",
           "save_safetensors", "load_safetensors", "SafetensorsError"]


class Checkpoint(dict):
    """What ``mg.load`` returns: a dict with keys

    ``"model"`` (OrderedDict name -> array on the requested backend), ``"optimizer"`` (an optimizer
    state dict or None), ``"optimizer_type"``, ``"scheduler"`` (scheduler state dict or None),
    ``"scheduler_type"``, ``"metadata"`` (dict), ``"rng"`` (global RNG state), ``"version"``.
    """

    path = property(lambda self: self["path"])

    def __repr__(self):
        model = self["model"]
        return (f"Checkpoint({self['path']!r}, version={self['version']}, {len(model)} model arrays, "
                f"optimizer={self['optimizer_type']}, scheduler={self['scheduler_type']}, "
                f"metadata={sorted(self['metadata'])})")


# -- saving ----------------------------------------------------------------------------------------------

def _json_default(obj):
    """Numpy scalars and 0-d arrays become Python numbers; anything else is refused."""
    if isinstance(obj, numpy.generic):
        return obj.item()
    if is_array(obj) and obj.ndim == 0:
        return to_backend(obj, "numpy").item()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"mg.save: cannot store {type(obj).__name__} in checkpoint metadata (JSON only: numbers, "
                    "strings, bools, None, lists and dicts with string keys; arrays belong in the model)")


def _host(array, what):
    if not is_array(array):
        raise TypeError(f"mg.save: {what} is a {type(array).__name__}, not a NumPy or CuPy array")
    host = numpy.asarray(to_backend(array, "numpy"), order="C")   # (ascontiguousarray makes 0-d 1-d)
    if host.dtype.hasobject:
        raise TypeError(f"mg.save: {what} has dtype object, which cannot be saved without pickle")
    return host


def _model_state(model):
    if isinstance(model, Mapping):
        return model
    if hasattr(model, "state_dict") and callable(model.state_dict):
        return model.state_dict()
    raise TypeError(f"mg.save: expected a Layer or a state dict (name -> array), got {type(model).__name__}")


def _write_archive(fileobj, arrays: dict):
    """Write the arrays as an uncompressed .npz archive (a seam the tests use to simulate failures)."""
    numpy.savez(fileobj, allow_pickle=False, **arrays)


def save(path, model, optimizer=None, *, scheduler=None, **metadata):
    """Write ``model`` (a Layer or a state dict), optionally ``optimizer`` and ``scheduler``, and JSON-able
    ``metadata`` keywords (epoch=..., step=...) to one ``.npz`` file at ``path``, atomically.

    The path is used as given (no ``.npz`` is appended). Arrays are copied to the host for writing;
    the model, optimizer and their backend are not changed. Returns the path.

    ``torch.save``'s order, ``mg.save(model.state_dict(), path)`` or ``mg.save(model, path)``, is accepted
    too: a path is never a model, so the two arguments are told apart by their types.
    """
    if _is_path(model) and not _is_path(path) and (isinstance(path, (Mapping, list, tuple)) or
                                                   hasattr(path, "state_dict")):
        path, model = model, path  # torch.save(obj, f) order
    if not _is_path(path):
        raise TypeError(f"mg.save: expected a file path (str or os.PathLike) as the first argument, got "
                        f"{type(path).__name__}; call mg.save(path, model) or mg.save(path, model.state_dict())")
    path = os.fspath(path)
    arrays, entries = {}, {}
    model_keys, tree = [], None
    if object_tree.is_tree(model):             # a dict of state dicts, numbers, strings ...: stored as it is
        if optimizer is not None or scheduler is not None or metadata:
            raise TypeError("mg.save: a saved dict holds everything itself; put the optimizer's and scheduler's "
                            "state_dict() and the metadata into it")
        tree, found = object_tree.encode(model)
        arrays.update((f"tree/{i}", _host(array, where)) for i, (where, array) in enumerate(found))
        model = {}
    for name, value in _model_state(model).items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"mg.save: state-dict names must be non-empty strings, got {name!r}")
        key = f"model/{name}"
        arrays[key] = _host(value, f"model entry '{name}'")
        model_keys.append(name)
    optimizer_meta = None
    if optimizer is not None:
        if not (hasattr(optimizer, "state_dict") and hasattr(optimizer, "param_groups")):
            raise TypeError(f"mg.save: optimizer must be a minigrad Optimizer, got {type(optimizer).__name__}")
        osd = optimizer.state_dict()
        scalars = {}
        for index, entry in osd["state"].items():
            for name, value in entry.items():
                if is_array(value):
                    arrays[f"optimizer/state/{int(index)}/{name}"] = _host(value, f"optimizer state {index}/{name}")
                else:
                    scalars.setdefault(str(int(index)), {})[name] = value
        optimizer_meta = {"type": type(optimizer).__name__, "param_groups": osd["param_groups"],
                          "scalar_state": scalars, "indices": sorted(int(i) for i in osd["state"])}
    scheduler_meta = None
    if scheduler is not None:
        scheduler_meta = {"type": type(scheduler).__name__, "state": scheduler.state_dict()}
    for key, array in arrays.items():
        entries[key] = {"dtype": array.dtype.str, "shape": list(array.shape), "crc32": crc32_of(array)}
    meta = {"format": FORMAT, "version": VERSION, "model_keys": model_keys, "arrays": entries,
            "optimizer": optimizer_meta, "scheduler": scheduler_meta, "metadata": metadata,
            "rng": mg_random.get_state(), "saved_from_backend": _backend_name(model)}
    if tree is not None:
        meta["tree"] = tree
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(str(exc) if str(exc).startswith("mg.save") else f"mg.save: cannot encode metadata: {exc}") \
            from None
    meta_bytes = numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8)
    arrays[META_NAME] = meta_bytes
    arrays[META_CRC_NAME] = numpy.array([crc32_of(meta_bytes)], dtype=numpy.uint64)

    return write_atomic(path, lambda handle: _write_archive(handle, arrays))   # _write_archive: a test seam


def _is_path(obj) -> bool:
    return isinstance(obj, (str, bytes, os.PathLike))


def _backend_name(model):
    for value in _model_state(model).values():
        if is_array(value):
            return backend_of(value)
    return None


# -- loading ---------------------------------------------------------------------------------------------

def load(path, backend=None):
    """Read and verify a file written by ``mg.save``; arrays land on ``backend`` (default: the active one).

    Returns a Checkpoint, or for a file written from a dict (``mg.save({"model": ..., "epoch": 3}, path)``)
    that dict. Raises CheckpointError for a truncated, corrupted, foreign or wrong-version file (nothing is
    returned).
    """
    path = os.fspath(path)
    backend = backend if backend is not None else get_backend()
    meta, arrays = read_verified(path)
    try:
        if "tree" in meta:
            return _load_tree(path, meta, arrays, backend)
        return _checkpoint(path, meta, arrays, backend)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:   # a header of the wrong shape
        raise CheckpointError(f"{path}: the checkpoint header is malformed ({type(exc).__name__}: {exc}); the file "
                              "was edited or was not written by mg.save") from exc


def _checkpoint(path, meta, arrays, backend):
    """The Checkpoint of a verified header and its arrays (KeyError, ... for a header mg.save did not write)."""
    model = OrderedDict((name, to_backend(arrays[f"model/{name}"], backend)) for name in meta["model_keys"])
    optimizer = None
    opt_meta = meta.get("optimizer")
    if opt_meta is not None:
        state = {int(i): dict(opt_meta["scalar_state"].get(str(i), {})) for i in opt_meta["indices"]}
        for key, array in arrays.items():
            if key.startswith("optimizer/state/"):
                _, _, index, name = key.split("/", 3)
                state.setdefault(int(index), {})[name] = to_backend(array, backend)
        groups = opt_meta["param_groups"]
        for group in groups:
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        optimizer = {"state": state, "param_groups": groups}
    sched_meta = meta.get("scheduler")
    return Checkpoint(path=path, version=meta["version"], model=model, optimizer=optimizer,
                      optimizer_type=opt_meta["type"] if opt_meta else None,
                      scheduler=sched_meta["state"] if sched_meta else None,
                      scheduler_type=sched_meta["type"] if sched_meta else None,
                      metadata=meta.get("metadata", {}), rng=meta.get("rng"))


def _load_tree(path, meta, arrays, backend):
    try:
        return object_tree.decode_stored(meta["tree"], arrays, lambda array: to_backend(array, backend))
    except (object_tree.TreeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: {exc}; the file is corrupted or crafted") from None


def _check_model(path, model, state):
    """Raise CheckpointError unless ``state`` has exactly the model's keys with the same shapes."""
    slots = model.state_dict()
    missing = [k for k in slots if k not in state]
    unexpected = [k for k in state if k not in slots]
    if missing or unexpected:
        raise CheckpointError(f"{path}: the checkpoint does not fit {type(model).__name__} (another architecture?): "
                              f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}, unexpected keys "
                              f"{unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}; the model was not changed")
    for key, current in slots.items():
        if tuple(state[key].shape) != tuple(current.shape):
            raise CheckpointError(f"{path}: '{key}' has shape {tuple(state[key].shape)} in the checkpoint but "
                                  f"{tuple(current.shape)} in {type(model).__name__}; the model was not changed")
        saved_kind, model_kind = state[key].dtype.kind, current.dtype.kind
        if saved_kind != model_kind and not {saved_kind, model_kind} <= {"i", "u"}:
            raise CheckpointError(f"{path}: '{key}' has dtype {state[key].dtype} in the checkpoint but "
                                  f"{current.dtype} in {type(model).__name__}; the model was not changed")


def _declared_model(path) -> OrderedDict:
    """The model state the checkpoint's header declares, as zero-cost views (shape and dtype only)."""
    meta, _ = read_verified(path, meta_only=True)
    if "tree" in meta:
        raise CheckpointError(f"{path}: the file holds an object saved from a dict (mg.save(dict, path)), not a "
                              "model checkpoint: obj = mg.load(path); model.load_state_dict(obj['model'])")
    declared = OrderedDict()
    try:
        for name in meta["model_keys"]:
            dtype, shape = declared_entry(meta["arrays"][f"model/{name}"])
            declared[name] = numpy.broadcast_to(numpy.zeros((), dtype=dtype), shape)   # () -> shape, no memory
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the checkpoint header lists model arrays it does not describe "
                              f"({type(exc).__name__}: {exc}); the file is corrupted") from exc
    return declared


def _check_saved_kind(path, ckpt, what: str, obj) -> None:
    """Raise unless the checkpoint holds `what` ('optimizer' or 'scheduler') state of obj's class."""
    article = "an" if what[0] in "aeiou" else "a"
    if ckpt[what] is None:
        raise CheckpointError(f"{path}: the checkpoint holds no {what} state (saved without {article} {what})")
    if ckpt[f"{what}_type"] != type(obj).__name__:
        raise CheckpointError(f"{path}: the checkpoint holds {ckpt[f'{what}_type']} state but the {what} "
                              f"is {type(obj).__name__}")


def load_into(path, model, optimizer=None, backend=None, *, scheduler=None, restore_rng=False) -> Checkpoint:
    """Load a checkpoint into ``model`` (and ``optimizer``, ``scheduler``): all or nothing.

    Everything is verified first (file integrity, the model's keys and shapes, the optimizer's type,
    groups and state shapes, the scheduler's type); on any problem CheckpointError is raised and
    nothing is changed. Arrays are copied into the model where it lives (keeping its dtypes); with
    ``backend`` the model (and then its optimizer state) moves there afterwards. ``restore_rng=True``
    also restores minigrad's global random generator (for a bitwise-identical resume).
    Returns the Checkpoint (for its metadata).
    """
    path = os.fspath(path)
    _check_model(path, model, _declared_model(path))    # before any array is inflated
    ckpt = load(path, backend=model.backend or get_backend())
    _check_model(path, model, ckpt["model"])
    prepared = None
    if optimizer is not None:
        _check_saved_kind(path, ckpt, "optimizer", optimizer)
        try:
            prepared = optimizer._prepare_state_dict(ckpt["optimizer"])
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise CheckpointError(f"{path}: the optimizer state does not fit: {exc}") from exc
    if scheduler is not None:
        _check_saved_kind(path, ckpt, "scheduler", scheduler)
    if restore_rng and not isinstance(ckpt["rng"], dict):
        raise CheckpointError(f"{path}: the checkpoint holds no random-generator state")
    # Everything fits: apply.
    model.load_state_dict(ckpt["model"])
    if prepared is not None:
        optimizer._commit_state_dict(prepared)
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if restore_rng:
        mg_random.set_state(ckpt["rng"])
    if backend is not None:
        model.to(backend)
    return ckpt
