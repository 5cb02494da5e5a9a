"""Weights in the safetensors format, readable by the ``safetensors`` package's PyTorch and NumPy loaders.

    mg.io.save_safetensors(model, "lenet.safetensors")          # a Layer or a state dict (name -> array)
    state = mg.io.load_safetensors("lenet.safetensors")         # dict name -> numpy array
    model.load_state_dict(state)

    # the same file in PyTorch (names and layouts are PyTorch's, see minigrad.torch_compat):
    torch_model.load_state_dict(safetensors.torch.load_file("lenet.safetensors"))

A safetensors file is an 8-byte header length, a JSON header (per tensor: dtype, shape, byte range;
plus optional string metadata) and the raw little-endian bytes; no pickle, nothing executed on load.
Writing goes through a temp file and ``os.replace`` (the old file survives a failure), like ``mg.save``.
Needs the ``onnx`` extra (``pip install -e ".[onnx]"`` from the checkout), which installs ``safetensors``.
"""
from __future__ import annotations

import json
import os
import struct
from collections import OrderedDict
from collections.abc import Mapping

import numpy

from .atomic_write import write_bytes_atomic
from .regular_file import open_regular
from ..runtime.backend import is_array, to_backend
from ..runtime.optional import require

__all__ = ["save_safetensors", "load_safetensors", "SafetensorsError"]


# safetensors dtypes that NumPy arrays hold (BF16 and the 8-bit floats have no NumPy dtype)
_NUMPY_DTYPES = {"F64", "F32", "F16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL"}


class SafetensorsError(ValueError):
    """A safetensors file is truncated, corrupted or not a safetensors file."""


def _state(model, where):
    if isinstance(model, Mapping):
        return model
    if hasattr(model, "state_dict") and callable(model.state_dict):
        return model.state_dict()
    raise TypeError(f"{where}: expected a Layer or a state dict (name -> array), got {type(model).__name__}")


def save_safetensors(model, path, metadata: dict | None = None):
    """Write ``model`` (a Layer or a state dict name -> NumPy/CuPy array) to ``path`` as safetensors.

    ``metadata``: optional dict of str -> str stored in the header. Arrays are copied to the host;
    the model is not changed. Returns the path.
    """
    where = "mg.io.save_safetensors"
    st_numpy = require("safetensors.numpy", where)
    path = os.fspath(path)
    arrays = OrderedDict()
    for name, value in _state(model, where).items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where}: state-dict names must be non-empty strings, got {name!r}")
        if not is_array(value):
            raise TypeError(f"{where}: entry '{name}' is a {type(value).__name__}, not a NumPy or CuPy array")
        host = numpy.asarray(to_backend(value, "numpy"), order="C")   # (ascontiguousarray makes 0-d 1-d)
        if host.dtype.hasobject:
            raise TypeError(f"{where}: entry '{name}' has dtype object, which safetensors cannot store")
        arrays[name] = host
    if metadata is not None and not (isinstance(metadata, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError(f"{where}: metadata must be a dict of str -> str, got {metadata!r}")
    data = st_numpy.save(dict(arrays), metadata=dict(metadata) if metadata else None)
    return write_bytes_atomic(path, data)


def load_safetensors(path, backend: str | None = None) -> "OrderedDict[str, object]":
    """Read a safetensors file -> OrderedDict name -> array (NumPy, or on ``backend`` when given).

    Raises SafetensorsError for a truncated or corrupted file, FileNotFoundError for a missing one.
    """
    where = "mg.io.load_safetensors"
    st_numpy = require("safetensors.numpy", where)
    path = os.fspath(path)
    with open_regular(path, where, SafetensorsError, "safetensors file") as handle:  # no FIFO, device, directory
        data = handle.read()
    try:
        header = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
        dtypes = {name: entry["dtype"] for name, entry in header.items() if name != "__metadata__"}
        for name, dtype in dtypes.items():      # a list or an object where a dtype name belongs
            if not isinstance(dtype, str):
                raise ValueError(f"tensor '{name}' has dtype {json.dumps(dtype)}, not a dtype name such as \"F32\"")
    except Exception as exc:  # too short for the length, a header cut off or not JSON
        raise SafetensorsError(f"{path}: cannot read the safetensors file ({type(exc).__name__}: {exc}); the file "
                               "is truncated, corrupted or not a safetensors file") from exc
    foreign = {name: dtype for name, dtype in dtypes.items() if dtype not in _NUMPY_DTYPES}
    if foreign:
        name, dtype = next(iter(sorted(foreign.items())))
        raise SafetensorsError(f"{path}: tensor '{name}' has dtype {dtype}, which NumPy cannot hold "
                               f"({len(foreign)} tensor(s) in all); convert them where they were saved, e.g. "
                               "tensor.float() in PyTorch")
    try:
        arrays = st_numpy.load(data)
    except Exception as exc:  # SafetensorError from a bad header or a byte range past the end
        raise SafetensorsError(f"{path}: cannot read the safetensors file ({type(exc).__name__}: {exc}); the file "
                               "is truncated, corrupted or not a safetensors file") from exc
    names = sorted(arrays, key=lambda name: (header[name]["data_offsets"][0], name))   # file order
    return OrderedDict((name, arrays[name] if backend is None else to_backend(arrays[name], backend))
                       for name in names)
