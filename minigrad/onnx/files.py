"""Reading an ONNX model for mg.onnx.load: a path, bytes or a ModelProto -> a checked ModelProto.

A file may keep its initializers in external data files next to it (``model.onnx.data``; PyTorch's
dynamo exporter does so by default): given a path, those are read from the file's directory and each
one's byte count is checked against its shape, and no more than that count (plus one byte, to tell a too long
file) is read from it. A truncated, corrupted or foreign file, a missing or short data file, a path that is not
a regular file (a FIFO, a device, a directory), or a model that fails ``onnx.checker`` raises OnnxError naming
the file.
"""
from __future__ import annotations

import os

from ..io.regular_file import open_regular
from .checks import tensor_nbytes
from .common import OnnxError

__all__ = ["read_model"]


def read_model(onnx, source, where: str):
    """``source`` (path, bytes or onnx.ModelProto) -> (checked ModelProto with its data in memory, label)."""
    if isinstance(source, onnx.ModelProto):
        model, label, directory = source, "model", None
    elif not isinstance(source, (bytes, str, os.PathLike)):
        raise TypeError(f"{where}: expected a path, bytes or an onnx.ModelProto, got {type(source).__name__}")
    else:
        data = source if isinstance(source, bytes) else None
        label = "bytes" if data is not None else os.fspath(source)
        directory = None if data is not None else os.path.dirname(os.path.abspath(label))
        if data is None:
            with open_regular(label, where, OnnxError) as handle:     # not a FIFO, a device, a directory
                data = handle.read()
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:     # DecodeError from a truncated or foreign file
            raise OnnxError(f"{where}: {label}: cannot read the ONNX file ({type(exc).__name__}: {exc}); the file "
                            "is truncated, corrupted or not an ONNX model") from exc
    external = [t for t in _tensors(onnx, model) if onnx.external_data_helper.uses_external_data(t)]
    if external:
        _load_external(onnx, external, label, directory, where)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise OnnxError(f"{where}: {label}: not a valid ONNX model ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}); the file may be "
                        "truncated or corrupted") from exc
    return model, label


def _tensors(onnx, model):
    """The initializers and the tensors of Constant nodes (where external data can be)."""
    return list(model.graph.initializer) + [a.t for node in model.graph.node for a in node.attribute
                                            if a.type == onnx.AttributeProto.TENSOR]


def _load_external(onnx, tensors, label, directory, where):
    """Read each tensor's bytes from its external data file in ``directory`` (the model file's folder)."""
    locations = sorted({e.value for t in tensors for e in t.external_data if e.key == "location"})
    if directory is None:
        raise OnnxError(f"{where}: {label}: the model keeps {len(tensors)} initializer(s) in external data "
                        f"file(s) {locations}; pass the .onnx file's path so they are read from its folder")
    for tensor in tensors:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
        if "\0" in location:
            raise OnnxError(f"{where}: {label}: initializer '{tensor.name}' names its external data file with a NUL "
                            f"character ({location!r}); the file is corrupted or crafted")
        if os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
            raise OnnxError(f"{where}: {label}: initializer '{tensor.name}' names the external data file "
                            f"'{location}', outside the model's folder; only files in {directory} are read")
        entries = {e.key: e.value for e in tensor.external_data}
        name = f"{where}: {label}: initializer '{tensor.name}'"
        expected = tensor_nbytes(onnx, tensor, name)
        try:
            offset, length = int(entries.get("offset", 0)), entries.get("length")
            length = None if length is None else int(length)
        except ValueError:
            raise OnnxError(f"{name}: its external data offset {entries.get('offset')!r} or length "
                            f"{entries.get('length')!r} is not an integer; the file is corrupted") from None
        if offset < 0 or length is not None and length != expected:
            raise OnnxError(f"{name} of shape {tuple(tensor.dims)} needs {expected} bytes of external data, "
                            f"'{location}' gives {length} (offset {offset}, its declared length); the file is "
                            "corrupted or the data file does not belong to this model")
        path = os.path.join(directory, location)
        try:
            with open_regular(path, where, OnnxError) as handle:
                handle.seek(offset)
                data = handle.read(expected + (1 if length is None else 0))   # never more than the tensor needs
        except OSError as exc:       # missing file, no permission
            raise OnnxError(f"{where}: {label}: cannot read the external data of initializer '{tensor.name}' "
                            f"from '{location}' in {directory} ({type(exc).__name__}: {exc})") from exc
        if len(data) != expected:
            raise OnnxError(f"{where}: {label}: initializer '{tensor.name}' of shape {tuple(tensor.dims)} needs "
                            f"{expected} bytes of external data, '{location}' gives "
                            f"{'more' if len(data) > expected else len(data)} (from offset {offset}); the data "
                            "file is truncated or does not belong to this model")
        tensor.raw_data = data
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
