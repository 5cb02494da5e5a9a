"""Reading an ONNX model for mg.onnx.load: a path, bytes or a ModelProto -> a checked ModelProto.

A file may keep its initializers in external data files next to it (``model.onnx.data``; PyTorch's
dynamo exporter does so by default): given a path, those are read from the file's directory and each
one's byte count is checked against its shape. A truncated, corrupted or foreign file, a missing or
short data file, or a model that fails ``onnx.checker`` raises OnnxError naming the file.
"""
from __future__ import annotations

import math
import os

import numpy

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
            with open(label, "rb") as handle:
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
        if os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
            raise OnnxError(f"{where}: {label}: initializer '{tensor.name}' names the external data file "
                            f"'{location}', outside the model's folder; only files in {directory} are read")
        try:
            onnx.external_data_helper.load_external_data_for_tensor(tensor, directory)
        except Exception as exc:     # missing file, offset/length past its end, a location outside the folder
            raise OnnxError(f"{where}: {label}: cannot read the external data of initializer '{tensor.name}' "
                            f"from '{location}' in {directory} ({type(exc).__name__}: {exc})") from exc
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
        itemsize = numpy.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        expected = math.prod(tensor.dims) * itemsize
        if len(tensor.raw_data) != expected:
            raise OnnxError(f"{where}: {label}: initializer '{tensor.name}' of shape {tuple(tensor.dims)} needs "
                            f"{expected} bytes of external data, '{location}' gives {len(tensor.raw_data)}; the "
                            "data file is truncated or does not belong to this model")
