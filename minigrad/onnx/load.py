"""mg.onnx.load: an ONNX file as a trainable minigrad Graph (parameters from initializers).

    graph = mg.onnx.load("model.onnx")         # files of mg.onnx.export and of torch.onnx.export
    graph.train(); y = graph(x); graph.backward(dy); optimizer.step()

Each ONNX node becomes one Graph node with a minigrad layer (Conv -> Conv2d, Gemm or MatMul[+Add]
-> Linear, BatchNormalization -> BatchNorm1d/2d with the running statistics as buffers, ...); the
nodes that only compute constants or shapes (Constant, Identity/Transpose of an initializer, the
Shape -> Gather -> Unsqueeze -> Concat chain of ``x.view(x.size(0), -1)``) are evaluated (importer.py), and a
Pad (pads >= 0) right before a Conv becomes the convolution's padding (or padding_mode). Node names come from
the weight's initializer name (``layer1.0.conv1.weight`` -> node ``layer1_0_conv1``, so the state-dict
name is ``layer1_0_conv1.weight``), else from the ONNX node name; '.' is not allowed in a node name.
An op, an attribute value or a pattern that has no exact minigrad equivalent raises OnnxError naming
the node, the op and the attribute: never a silently different graph. Before use, every initializer's bytes
are checked against its dims and type, every attribute's length and range and every constant's rank and
dtype (checks.py); shapes come from onnx's shape inference on the graph, not from the file's value_info. A
corrupted file that still provokes another error while a node is converted gets OnnxError naming that node
(importer.py's ``run`` catches it around each node's whole ``convert``, the family mixins' overrides included),
and one raised outside any node's conversion gets OnnxError naming the file (``load``), so ``load`` raises
nothing else for a bad file (tests/test_onnx_mutations.py).
"""
from __future__ import annotations

import math

import numpy

from ..runtime.backend import get_backend, to_backend
from ..nn import (GELU, AdaptiveAvgPool2d, Add, BatchNorm1d, BatchNorm2d, Concat, Dropout, Flatten, Graph,
                  LayerNorm, LeakyReLU, Linear, LogSoftmax, Mul, Parameter, ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .common import OnnxError, require_onnx
from .files import read_model
from .importer import UNFORESEEN, Dim, Importer, decimal
from .spatial import SpatialOps
from .pool_ops import PoolOps   # before SpatialOps: the 1-d Conv/MaxPool/AveragePool first
from .activation_ops import ActivationOps
from .norm_ops import NormOps
from .embedding_ops import EmbeddingOps
from .resample_ops import ResampleOps

__all__ = ["load"]

_SIMPLE = {"Relu": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh}


def _on_backend(array, dtype):
    """A copy of an initializer on the active backend (where the layers being built keep their arrays)."""
    return to_backend(numpy.array(array, dtype=dtype, order="C"), get_backend())


# The family mixins come before Importer: some extend its run / convert (formulas read as one layer), via super().
# Importer.run calls self.convert(node) inside its last-resort net, so an override needs no net of its own.
class _OnnxToMinigrad(PoolOps, SpatialOps, ActivationOps, NormOps, EmbeddingOps, ResampleOps, Importer):
    """One method per supported ONNX op: check its attributes, build the minigrad layer, add the node."""

    @staticmethod
    def _set(layer, weight, bias):
        layer.weight.data = _on_backend(weight, weight.dtype)
        if bias is not None:
            layer.bias.data = _on_backend(bias, weight.dtype).reshape(-1)   # (1, O) -> (O,)

    def op_Gemm(self, node):
        attrs = self.attrs(node, {"alpha", "beta", "transA", "transB"})
        for name, default in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
            self.require(node, attrs.get(name, default) == default, name, attrs.get(name), f"only {default}")
        weight = self.const(node, 1, "weight B", required=True, ndim=2, floating=True)
        bias = self.const(node, 2, "bias C", floating=True)
        weight = weight if self._flag(node, attrs, "transB") else weight.T          # (in, out) -> (out, in)
        out = weight.shape[0]
        if bias is not None and bias.shape not in ((), (1,), (out,), (1, out)):
            # ONNX broadcasts C to (N, O): (O, 1) or (N, O) would be a bias per row, not per output feature
            raise self.fail(node, f"bias C of shape {bias.shape} is not supported (only (), (1,), ({out},) or "
                                  f"(1, {out}): one value per output feature or one for all)")
        if bias is not None:
            bias = numpy.broadcast_to(bias.reshape(-1), (out,))   # (), (1,), (O,) or (1, O) -> (O,)
        layer = Linear(weight.shape[1], weight.shape[0], bias is not None, dtype=weight.dtype)
        self._set(layer, weight, bias)
        self.check_input(node, node.input[0], 2, 1, weight.shape[1])
        self.add(node, layer, [node.input[0]], weight_input=1)

    def op_MatMul(self, node):
        self.attrs(node, set())
        weight = self.const(node, 1, "second operand", required=True, ndim=2, floating=True)
        layer = Linear(weight.shape[0], weight.shape[1], bias=False, dtype=weight.dtype)
        self._set(layer, weight.T, None)                                   # (in, out) -> (out, in)
        self.check_input(node, node.input[0], len(self.shapes.get(node.input[0]) or [2]), -1, weight.shape[0])
        self.add(node, layer, [node.input[0]], weight_input=1)

    def op_Add(self, node):
        self.attrs(node, set())
        a, b = node.input
        if a in self.consts:
            a, b = b, a
        if b not in self.consts:
            return self._merge(node, Add(), [a, b])
        layer = self.layers_by_value.get(a)                                # MatMul + Add -> Linear with bias
        bias = self.const(node, list(node.input).index(b), "constant operand", floating=True)
        fits = (isinstance(layer, Linear) and self.uses.get(a) == 1 and bias.size == layer.out_features
                and bias.shape[-1:] == (layer.out_features,) and bias.ndim <= 2)
        same = fits and layer.bias is not None and bool(                    # a shared MatMul's second use
            numpy.array_equal(to_backend(layer.bias.data, "numpy"), bias.reshape(-1)))   # (1, O) -> (O,)
        if not fits or (layer.bias is not None and not same):
            raise self.fail(node, f"adding the constant '{b}' of shape {bias.shape} is supported only as the bias "
                                  "right after a MatMul (one value per output feature)")
        if layer.bias is None:
            layer.bias = Parameter(_on_backend(bias, layer.weight.dtype).reshape(-1))   # (1, O) -> (O,)
        self.values[node.output[0]] = self.values[a]
        self.layers_by_value[node.output[0]] = layer

    def _merge(self, node, layer, inputs):
        constant = next((n for n in inputs if n in self.consts), None)
        if constant is not None:
            raise self.fail(node, f"its input '{constant}' is a constant; a {node.op_type} with a constant is "
                                  "supported only as the bias after a MatMul or inside GELU's formula")
        shapes = [self.shapes.get(n) for n in inputs]
        if isinstance(layer, (Add, Mul)) and any(s is None or s != shapes[0] for s in shapes[1:]):
            raise self.fail(node, f"inputs of shapes {shapes} (unknown or different): broadcasting is not supported")
        self.add(node, layer, inputs)

    def op_Sum(self, node):
        self.attrs(node, set())
        if len(node.input) == 1:
            self.values[node.output[0]] = self.value(node, node.input[0])
        else:
            self._merge(node, Add(), list(node.input))

    def op_Mul(self, node):
        self.attrs(node, set())
        self._merge(node, Mul(), list(node.input))

    def op_Concat(self, node):
        attrs = self.attrs(node, {"axis"})
        ranks = {len(self.shapes[n]) if self.shapes.get(n) is not None else None for n in node.input}
        axis = self.concat_axis(node, attrs, ranks.pop() if len(ranks) == 1 else None)
        self.add(node, Concat(dim=axis), list(node.input))

    def op_Relu(self, node):
        self.attrs(node, set())
        self.add(node, _SIMPLE[node.op_type](), [node.input[0]])

    op_Sigmoid = op_Tanh = op_Relu

    def op_LeakyRelu(self, node):
        self.add(node, LeakyReLU(self.attrs(node, {"alpha"}).get("alpha", 0.01)), [node.input[0]])

    def op_Gelu(self, node):
        approximate = self.attrs(node, {"approximate"}).get("approximate", "none")
        self.require(node, approximate in ("none", "tanh"), "approximate", approximate, "'none' or 'tanh'")
        self.add(node, GELU(approximate), [node.input[0]])

    def op_Softmax(self, node):
        attrs = self.attrs(node, {"axis"})
        rank = len(self.shapes.get(node.input[0]) or [])
        axis = attrs.get("axis", -1 if self.opset >= 13 else 1)
        if not rank or not -rank <= axis < rank:
            raise self.fail(node, f"attribute 'axis' = {axis} is not supported for an input of rank "
                                  f"{rank or 'unknown'} (expected an axis of the input)")
        if self.opset < 13 and not (rank and axis % rank == rank - 1):
            raise self.fail(node, f"attribute 'axis' = {axis} is not supported below opset 13 unless it is the "
                                  "last axis (the old Softmax flattened the trailing axes)")
        self.add(node, (LogSoftmax if node.op_type == "LogSoftmax" else Softmax)(dim=axis), [node.input[0]])

    op_LogSoftmax = op_Softmax

    def op_GlobalAveragePool(self, node):
        self.attrs(node, set())
        if len(self.shapes.get(node.input[0]) or [4]) != 4:
            raise self.fail(node, "only 4-D (N, C, H, W) input is supported")
        self.add(node, AdaptiveAvgPool2d(1), [node.input[0]])

    def op_ReduceMean(self, node):
        """The mean over (H, W) of a 4-D input: a global average pool (then a flatten without keepdims)."""
        attrs = self.attrs(node, {"axes", "keepdims", "noop_with_empty_axes"})
        axes = attrs.get("axes")
        if axes is None:
            given = self.const(node, 1, "axes")
            axes = [] if given is None else [int(a) for a in given.reshape(-1)]   # (k,) or () -> k axes
        rank = len(self.shapes.get(node.input[0]) or [])
        if rank != 4 or sorted(a % 4 for a in axes) != [2, 3]:
            raise self.fail(node, f"attribute 'axes' = {axes} is not supported (only the mean over the last two "
                                  f"axes of a 4-D input, a global average pool; input rank {rank or 'unknown'})")
        pool = AdaptiveAvgPool2d(1)
        self._flag(node, attrs, "noop_with_empty_axes")
        layer = pool if self._flag(node, attrs, "keepdims", 1) else Sequential(pool, Flatten())   # -> (N, C)
        self.add(node, layer, [node.input[0]])

    def op_BatchNormalization(self, node):
        attrs = self.attrs(node, {"epsilon", "momentum", "training_mode", "spatial"})
        self.require(node, attrs.get("training_mode", 0) == 0, "training_mode", attrs.get("training_mode"),
                     "inference form only")
        self.require(node, attrs.get("spatial", 1) == 1, "spatial", attrs.get("spatial"), "only 1")
        self.check_outputs(node)
        scale, bias, mean, var = (self.const(node, i, what, required=True, ndim=1, floating=True) for i, what in
                                  ((1, "scale"), (2, "bias B"), (3, "input_mean"), (4, "input_var")))
        shape = self.shapes.get(node.input[0])
        rank = len(shape) if shape is not None else None
        cls = BatchNorm2d if rank == 4 else BatchNorm1d
        if rank not in (2, 3, 4):
            raise self.fail(node, f"input of rank {rank} is not supported (2-D, 3-D or 4-D)")
        channels = {a.shape[0] for a in (scale, bias, mean, var)} | ({shape[1]} if shape[1] is not None else set())
        if len(channels) != 1:
            raise self.fail(node, f"scale, bias, mean and variance of shapes {scale.shape}, {bias.shape}, "
                                  f"{mean.shape}, {var.shape} do not match the input's {shape[1]} channels")
        self.require(node, attrs.get("epsilon", 1e-5) >= 0, "epsilon", attrs.get("epsilon"), "not negative")
        self.require(node, 0 <= attrs.get("momentum", 0.9) <= 1, "momentum", attrs.get("momentum"), "in [0, 1]")
        layer = cls(scale.shape[0], eps=attrs.get("epsilon", 1e-5), momentum=decimal(1.0 - attrs.get("momentum", 0.9)),
                    dtype=scale.dtype)
        self._set(layer, scale, bias)
        layer.running_mean[...] = _on_backend(mean, layer.running_mean.dtype)
        layer.running_var[...] = _on_backend(var, layer.running_var.dtype)
        self.add(node, layer, [node.input[0]], weight_input=1)

    def op_LayerNormalization(self, node):
        attrs = self.attrs(node, {"axis", "epsilon", "stash_type"})
        self.check_outputs(node)
        scale = self.const(node, 1, "scale", required=True, floating=True)
        bias = self.const(node, 2, "bias B", floating=True)
        if bias is not None and bias.shape != scale.shape:
            raise self.fail(node, f"bias B of shape {bias.shape} does not match the scale's {scale.shape}")
        self.require(node, attrs.get("stash_type", 1) == 1, "stash_type", attrs.get("stash_type"), "only 1")
        axis, rank = attrs.get("axis", -1), len(self.shapes.get(node.input[0]) or [])
        if not rank or scale.ndim == 0 or list(scale.shape) != self.shapes[node.input[0]][rank - scale.ndim:]:
            raise self.fail(node, f"the scale of shape {scale.shape} does not match the input's trailing "
                                  f"dimensions {self.shapes.get(node.input[0])}")
        if (axis if axis < 0 else axis - rank if rank else None) != -scale.ndim:
            raise self.fail(node, f"attribute 'axis' = {axis} does not match the scale of shape {scale.shape}")
        self.require(node, attrs.get("epsilon", 1e-5) >= 0, "epsilon", attrs.get("epsilon"), "not negative")
        layer = LayerNorm(scale.shape, eps=attrs.get("epsilon", 1e-5), bias=bias is not None, dtype=scale.dtype)
        self._set(layer, scale, None)
        if bias is not None:
            layer.bias.data = _on_backend(bias, scale.dtype)
        self.add(node, layer, [node.input[0]], weight_input=1)

    def op_Flatten(self, node):
        axis = self.attrs(node, {"axis"}).get("axis", 1)
        self.require(node, axis == 1, "axis", axis, "only 1: (N, ...) -> (N, rest), minigrad's Flatten()")
        self.add(node, Flatten(), [node.input[0]])

    def op_Reshape(self, node):
        attrs = self.attrs(node, {"allowzero"})
        given = self.const(node, 1, "shape", required=True)
        if given.ndim != 1 or (given.dtype != object and given.dtype.kind not in "iu"):
            raise self.fail(node, f"its target shape of shape {given.shape} and dtype {given.dtype} is not a 1-D "
                                  "integer tensor")
        x, target = node.input[0], [t if isinstance(t, Dim) else int(t) for t in given]   # (r,) target shape
        if self._flag(node, attrs, "allowzero"):     # 0 in the target is then a zero-size dimension, not "copy"
            self.require(node, 0 not in [t for t in target if not isinstance(t, Dim)], "allowzero",
                         attrs["allowzero"], "a target shape with a 0 entry would make an empty dimension")
        shape = self.shapes.get(x)
        if not shape:
            raise self.fail(node, f"the rank of '{x}' is unknown")

        def keeps(token, i):   # does target entry `token` at output position keep input dimension i?
            if isinstance(token, Dim):
                return token.value == x and token.index == i
            return token == 0 or (shape[i] is not None and token == shape[i])

        rank = len(shape)
        flat = [i for i, t in enumerate(target) if not isinstance(t, Dim) and t == -1]
        if len(flat) == 1 and 1 <= len(target) <= rank:
            start, tail = flat[0], len(target) - flat[0] - 1
            end = rank - tail - 1
            if all(keeps(target[i], i) for i in range(start)) and \
                    all(keeps(target[start + 1 + j], end + 1 + j) for j in range(tail)):
                return self.add(node, Flatten(start, end), [x])
        if len(target) == 2 and all(d is not None for d in shape[1:]) and not any(isinstance(t, Dim) for t in target) \
                and target[0] == -1 and target[1] == math.prod(shape[1:]):
            return self.add(node, Flatten(), [x])
        shown = "[" + ", ".join(f"size({t.index})" if isinstance(t, Dim) else str(t) for t in target) + "]"
        raise self.fail(node, f"reshaping {shape} to {shown} is not a flatten; only flattening reshapes (such as "
                              "x.view(x.size(0), -1)) are supported: minigrad has no general reshape layer")

    def op_Identity(self, node):
        self.attrs(node, set())
        self.values[node.output[0]] = self.value(node, node.input[0])

    def op_Dropout(self, node):
        attrs = self.attrs(node, {"ratio", "seed", "is_test"})
        ratio = self.const(node, 1, "ratio", ndim=(0, 1), floating=True)
        training = self.const(node, 2, "training_mode", ndim=(0, 1))
        if any(a is not None and a.size != 1 for a in (ratio, training)):
            raise self.fail(node, "its ratio and training_mode must be single values")
        training = None if training is None else bool(training.reshape(-1)[0])
        self.require(node, not training, "training_mode", training, "inference form only")
        self.check_outputs(node)
        p = decimal(ratio.reshape(-1)[0]) if ratio is not None else float(attrs.get("ratio", 0.5))
        self.require(node, 0 <= p < 1, "ratio", p, "in [0, 1)")
        self.add(node, Dropout(p), [node.input[0]])

    def op_Pad(self, node):
        pads, mode, _ = self.pad_arguments(node, 4, zero_value=True)
        self.require(node, all(p >= 0 for p in pads), "pads", pads,
                     "a negative pad crops the input; minigrad has no crop layer and a Conv's padding only adds")
        self.value(node, node.input[0])
        self.pending_pad[node.output[0]] = (node.input[0], [pads[2], pads[3], pads[6], pads[7]], mode)


def load(path) -> Graph:
    """Read an ONNX file (a path, bytes or an onnx.ModelProto) -> a trainable minigrad Graph.

    The Graph is in training mode and on the active backend (like newly built layers); its parameters
    are copies of the initializers (external data files such as ``model.onnx.data`` are read from the
    file's folder), BatchNorm's running statistics are buffers. Raises OnnxError for a
    truncated or invalid file and for an op, attribute or pattern without an exact minigrad equivalent
    (the message names the node, op and attribute).
    """
    where = "mg.onnx.load"
    onnx = require_onnx(where)
    model, label = read_model(onnx, path, where)
    if not model.graph.output:
        raise OnnxError(f"{where}: {label}: the graph declares no outputs; a model computes at least one (the file "
                        "is corrupted, or its outputs were removed)")
    try:
        return _OnnxToMinigrad(onnx, model, f"{where}: {label}").run(model)
    except OnnxError:
        raise
    except UNFORESEEN as exc:   # outside a node's conversion (which names the node): reading the whole graph
        raise OnnxError(f"{where}: {label}: cannot be read as a minigrad Graph ({type(exc).__name__}: {exc}); the "
                        "file is corrupted or uses a form mg.onnx.load does not support") from exc
