"""ONNX interchange (``mg.onnx``): export minigrad models, import ONNX files as trainable Graphs.

    mg.onnx.export(model, example_input, "model.onnx")   # run it in ONNX Runtime, on a server or a phone
    graph = mg.onnx.load("resnet.onnx")                  # a minigrad Graph: inspect, fine-tune, export again

Needs the ``onnx`` extra: ``pip install -e ".[onnx]"`` from the checkout (onnx, onnxruntime, safetensors).
"""
from .common import OnnxError
from .export import export
from .load import load

__all__ = ["export", "load", "OnnxError"]
