"""ONNX test helpers for tests/test_onnx.py, test_onnx_import.py and test_onnx_load_errors.py: sample inputs,
ONNX Runtime, a scale-relative comparison, hand-built one-node models and PyTorch's TorchScript exporter.

Import it after ``pytest.importorskip("onnx")`` and ``pytest.importorskip("onnxruntime")``.
"""
import warnings

import numpy as np
import onnx
import onnxruntime as ort

import minigrad as mg
from minigrad import nn

__all__ = ["RTOL", "sample", "randomize_bn", "run_ort", "assert_close", "torch_export", "single_node_model",
           "value_info"]

RTOL = 1e-5


def sample(shape, seed=0, dtype="float32"):
    """Standard normal values of ``shape`` and ``dtype`` from a seeded generator."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def randomize_bn(model, seed=5):
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones make eval mode an identity)."""
    rng = np.random.default_rng(seed)

    def fill(array, values):
        array[...] = mg.backend.to_backend(values.astype(array.dtype), mg.backend.backend_of(array))

    for layer in model.modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.track_running_stats:
            c = layer.num_features
            fill(layer.running_mean, 0.1 * rng.standard_normal(c))
            fill(layer.running_var, 0.5 + rng.random(c))
            if layer.weight is not None:
                fill(layer.weight.data, 0.5 + rng.random(c))
            if layer.bias is not None:
                fill(layer.bias.data, 0.1 * rng.standard_normal(c))
    return model


def run_ort(path, *inputs):
    """The outputs of ONNX Runtime (CPU) on a file path or serialized model bytes."""
    session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def assert_close(actual, expected, rtol=RTOL):
    """Relative to the output's scale: max |a - e| <= rtol * max |e|."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-30)
    assert float(np.abs(actual - expected).max()) <= rtol * scale


def torch_export(module, x, path, opset=None):
    """The TorchScript exporter; ``opset`` None is its default (20 in PyTorch 2.9 and later)."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False,
                          opset_version=opset)


def single_node_model(node, inputs, outputs, initializers=(), opset=17):
    """A ModelProto of one node (default domain, ``opset``)."""
    helper = onnx.helper
    graph = helper.make_graph([node], "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def value_info(name, shape):
    """A float32 graph input/output declaration; a str in ``shape`` is a symbolic dimension."""
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)
