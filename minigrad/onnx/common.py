"""What ONNX export and import share: the error type, the lazy ``onnx`` import, name rules.

ONNX value and initializer names may be any string; minigrad's layer names may not contain '.'
(dots separate state-dict levels), so ``node_name`` turns an ONNX name into a Graph node name.
"""
from __future__ import annotations

import re

from ..runtime.optional import require

__all__ = ["OnnxError", "require_onnx", "node_name", "OPSET_MIN", "OPSET_MAX"]

OPSET_MIN, OPSET_MAX = 13, 21      # Softmax along one axis since 13; ONNX Runtime runs up to 21 and beyond


class OnnxError(ValueError):
    """A model cannot be exported to ONNX, or an ONNX file cannot be imported as minigrad layers."""


def require_onnx(where: str):
    """The ``onnx`` package, or ImportError naming the ``onnx`` extra."""
    return require("onnx", where)


def node_name(text: str) -> str:
    """An ONNX name as a Graph node name: every character outside [A-Za-z0-9_] becomes '_'.

    'layer1.0.conv1' -> 'layer1_0_conv1'; '' -> 'node'.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_")
    return name or "node"
