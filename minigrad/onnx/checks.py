"""Checked reads for mg.onnx.load: a tensor whose bytes match its dims and type, attribute lists of the right
length and range. ``onnx.checker`` checks a file's structure and attribute types but not these: one flipped
bit can make an initializer's byte count disagree with its dims, a kernel_shape can have three entries. Each
function raises OnnxError (through the ``fail(reason)`` it is given, which names the node) instead of letting
NumPy or a layer constructor raise something else later.
"""
from __future__ import annotations

import math

import numpy

from .common import OnnxError

__all__ = ["read_tensor", "tensor_nbytes", "int_list", "FLOAT_TYPES"]

FLOAT_TYPES = (numpy.dtype("float16"), numpy.dtype("float32"), numpy.dtype("float64"))
_FIELDS = {  # data_type -> the typed field that holds its values when raw_data is empty
    1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data", 5: "int32_data", 6: "int32_data",
    7: "int64_data", 9: "int32_data", 10: "int32_data", 11: "double_data", 12: "uint64_data", 13: "uint64_data"}


def _dtype(onnx, tensor, what):
    if tensor.data_type not in _FIELDS:
        name = onnx.TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in \
            onnx.TensorProto.DataType.values() else tensor.data_type
        raise OnnxError(f"{what} has data type {name}, which mg.onnx.load does not read (floating-point, integer "
                        "and bool tensors only)")
    return numpy.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))


def tensor_nbytes(onnx, tensor, what) -> int:
    """The byte count a tensor's dims and data type call for (OnnxError for a negative dim or a foreign type)."""
    if any(d < 0 for d in tensor.dims):
        raise OnnxError(f"{what} has dims {list(tensor.dims)}; a dimension cannot be negative")
    return math.prod(tensor.dims) * _dtype(onnx, tensor, what).itemsize


def read_tensor(onnx, tensor, what):
    """A TensorProto (data in memory) -> a NumPy array of shape ``dims``, after checking that its data has
    exactly the values its dims call for; OnnxError naming ``what`` otherwise."""
    dtype = _dtype(onnx, tensor, what)
    count = math.prod(tensor.dims) if all(d >= 0 for d in tensor.dims) else -1
    if count < 0:
        raise OnnxError(f"{what} has dims {list(tensor.dims)}; a dimension cannot be negative")
    if tensor.HasField("raw_data"):
        given, unit = len(tensor.raw_data), count * dtype.itemsize
    else:
        given, unit = len(getattr(tensor, _FIELDS[tensor.data_type])), count
    if given != unit:
        raise OnnxError(f"{what} of shape {tuple(tensor.dims)} and type {dtype} needs {unit} "
                        f"{'bytes' if tensor.HasField('raw_data') else 'values'}, the file gives {given}; the file "
                        "is corrupted (re-export the model)")
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as exc:
        raise OnnxError(f"{what} cannot be read ({type(exc).__name__}: {exc}); the file is corrupted") from exc
    if array.shape != tuple(tensor.dims):
        raise OnnxError(f"{what} reads as shape {array.shape}, not its dims {tuple(tensor.dims)}")
    return array


def int_list(fail, attrs, name, default, length, minimum, maximum=None):
    """Attribute ``name`` (a list of ints) as a tuple of ``length`` ints in [minimum, maximum]; else fail()."""
    value = attrs.get(name, default)
    if not isinstance(value, (list, tuple)) or len(value) != length or not all(isinstance(v, int) for v in value) \
            or any(v < minimum or (maximum is not None and v > maximum) for v in value):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise fail(f"attribute '{name}' = {value!r} is not supported (expected {length} integers {bound}; "
                   "minigrad reads 2-D convolutions and pools)")
    return tuple(value)
