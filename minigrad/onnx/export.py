"""mg.onnx.export: a Sequential or Graph (and the layers inside them) as an ONNX model, in inference semantics.

    mg.onnx.export(model, example_input, "model.onnx")        # opset 17, batch dimension named "N"

The model runs once on ``example_input`` in eval mode (BatchNorm with its running statistics,
Dropout as the identity) and every leaf layer is written as the ONNX nodes that compute the same:

    Conv2d            [Pad (reflect/edge/wrap) ->] Conv        pads (top, left, bottom, right), groups, dilation
    ConvTranspose2d   ConvTranspose                            pads, output_padding, groups, dilation
    Linear            Gemm (2-D input) | Transpose(W) -> MatMul -> Add (N-D input)
    activations       Relu, LeakyRelu, Sigmoid, Tanh, Gelu (opset >= 20; below: its Erf/Tanh formula)
    Softmax, LogSoftmax   Softmax, LogSoftmax along the resolved dim
    MaxPool2d, AvgPool2d  MaxPool, AveragePool (ceil_mode, count_include_pad)
    AdaptiveAvgPool2d(1)  GlobalAveragePool (other sizes: pool_ops.py)
    BatchNorm1d/2d    BatchNormalization (running statistics)
    LayerNorm         LayerNormalization (opset >= 17)
    Flatten           Flatten (start_dim=1, end_dim=-1) | Reshape
    Dropout, Identity Identity
    Add, Mul, Concat  Add (Sum for more than two), Mul, Concat

The layer families added later keep their emitters beside their importers: activation_ops.py (ELU ... PReLU),
norm_ops.py (GroupNorm, InstanceNorm2d, LocalResponseNorm), resample_ops.py (Upsample, PixelShuffle/Unshuffle,
pad layers, Dropout2d/AlphaDropout), pool_ops.py (adaptive and LP pools, Conv1d, 1-d pools), embedding_ops.py
(Embedding); docs/interop.md has the whole table.

Initializers are named by the model's state-dict names (``features.0.weight``); a shared layer's
parameters are written once. Nodes are named by the layer's qualified name. Any other layer, or
an option ONNX cannot express at this opset, raises OnnxError naming the layer and the reason.
"""
from __future__ import annotations

import math
import os

import numpy

from ..io.atomic_write import write_bytes_atomic
from ..runtime.backend import get_backend, is_array, to_backend
from ..functional.conv import resolve_padding
from ..nn import (GELU, AdaptiveAvgPool2d, Add, AvgPool2d, BatchNorm1d, BatchNorm2d, Concat, Conv2d,
                  ConvTranspose2d, Dropout, Flatten, Graph, Identity, Layer, LayerNorm, LeakyReLU, Linear, LogSoftmax,
                  MaxPool2d, Mul, ReLU, Sequential, Sigmoid, Softmax, Tanh)
from ..nn.grad_mode import no_grad
from .common import OPSET_MAX, OPSET_MIN, OnnxError, require_onnx

__all__ = ["export"]

_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _tag(layer) -> str:
    """A layer's ONNX node name: its qualified name in the model (``features.0``), else its class name."""
    return layer.name or type(layer).__name__


def _simple(op):
    """An emitter method for a one-input layer that is one ONNX op without attributes."""
    def method(self, layer, names, arrays, y):
        return self.node(op, names, _tag(layer))
    return method


class _Emitter:
    """Collects nodes and initializers while the model runs layer by layer on the example input."""

    def __init__(self, onnx, model, opset):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes, self.initializers, self.used = [], {}, set()
        self.state_names = {id(p): name for name, p in model.named_parameters()}
        self.state_names.update({id(b): name for name, b in model.named_buffers()})

    # -- names and constants ----------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}:{i}", i + 1
        self.used.add(name)
        return name

    def state(self, array_or_param, layer, what) -> str:
        """The initializer for a parameter/buffer, named by its state-dict name (written once)."""
        name = self.state_names.get(id(array_or_param))
        if name is None:
            raise OnnxError(f"mg.onnx.export: {what} of {layer.label} is not in the model's state dict")
        if name not in self.initializers:
            data = array_or_param.data if hasattr(array_or_param, "accumulate") else array_or_param
            self.initializers[name] = numpy.asarray(to_backend(data, "numpy"))
            self.used.add(name)
        return name

    def const(self, base: str, value, dtype) -> str:
        name = self.fresh(base)
        self.initializers[name] = numpy.asarray(value, dtype=dtype)
        return name

    def node(self, op, inputs, label, **attrs) -> str:
        """Append one node named after ``label``; returns its (fresh) output name."""
        out = self.fresh(label)
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    # -- layers -------------------------------------------------------------------------------------
    def emit(self, layer, names, arrays, outermost=False):
        """Write ``layer`` applied to the values ``names`` (computed: ``arrays``); returns (name, array)."""
        if type(layer) is Sequential:
            return self.sequential(layer, names, arrays)
        if type(layer) is Graph:
            return self.graph(layer, names, arrays, outermost)
        method = _LEAVES.get(type(layer))
        if method is None:
            raise OnnxError(f"mg.onnx.export: {layer.label} has no ONNX "
                            f"equivalent here; supported: {', '.join(sorted(t.__name__ for t in _LEAVES))}, "
                            "Sequential and Graph")
        y = layer(*arrays)
        return method(self, layer, names, arrays, y), y

    def sequential(self, seq, names, arrays):
        (name,), (x,) = names, arrays
        for layer in seq:
            name, x = self.emit(layer, [name], [x])
        return name, x

    def graph(self, g, names, arrays, outermost):
        if len(names) != len(g.input_names):
            raise OnnxError(f"mg.onnx.export: {g.label} takes {len(g.input_names)} inputs, got {len(names)}")
        values = dict(zip(g.input_names, zip(names, arrays)))
        for node, layer, sources in g.nodes:
            ins = [values[s] for s in sources]
            values[node] = self.emit(layer, [n for n, _ in ins], [a for _, a in ins])
        outs = [values[o] for o in g.output_names]
        if len(outs) != 1 and not outermost:
            raise OnnxError(f"mg.onnx.export: {g.label} inside another model has {len(outs)} outputs; "
                            "only the outermost graph may have several")
        return outs[0] if len(outs) == 1 else ([n for n, _ in outs], [a for _, a in outs])

    # -- one method per leaf layer: (layer, input names, input arrays, output) -> output name ---------
    def _check_4d(self, layer, x):
        if x.ndim != 4:
            raise OnnxError(f"mg.onnx.export: {layer.label} gets an input of "
                            f"shape {tuple(x.shape)}; ONNX needs the batched (N, C, H, W) form")

    def conv2d(self, layer, names, arrays, y):
        self._check_4d(layer, arrays[0])
        top, bottom, left, right = resolve_padding(layer.padding, layer.kernel_size, layer.stride,
                                                   layer.dilation, _tag(layer))
        x = names[0]
        if layer.padding_mode != "zeros":
            if layer.padding_mode == "circular" and self.opset < 19:
                raise OnnxError(f"mg.onnx.export: {layer.label} uses padding_mode='circular', "
                                f"which ONNX's Pad ('wrap') has only from opset 19; got opset={self.opset}")
            pads = self.const(f"{_tag(layer)}.pads", [0, 0, top, left, 0, 0, bottom, right], numpy.int64)
            x = self.node("Pad", [x, pads], f"{_tag(layer)}.pad", mode=_PAD_MODES[layer.padding_mode])
            top = bottom = left = right = 0
        inputs = [x, self.state(layer.weight, layer, "weight")]
        if layer.bias is not None:
            inputs.append(self.state(layer.bias, layer, "bias"))
        return self.node("Conv", inputs, _tag(layer), kernel_shape=list(layer.kernel_size),
                         strides=list(layer.stride), pads=[top, left, bottom, right],
                         dilations=list(layer.dilation), group=layer.groups)

    def conv_transpose2d(self, layer, names, arrays, y):
        self._check_4d(layer, arrays[0])
        expected = tuple((arrays[0].shape[2 + a] - 1) * layer.stride[a] - 2 * layer.padding[a] + layer.output_padding[a]
                         + layer.dilation[a] * (layer.kernel_size[a] - 1) + 1 for a in range(2))
        if tuple(y.shape[2:]) != expected:
            raise OnnxError(f"mg.onnx.export: {layer.label} was called with output_size; "
                            "export it with output_padding instead")
        inputs = [names[0], self.state(layer.weight, layer, "weight")]
        if layer.bias is not None:
            inputs.append(self.state(layer.bias, layer, "bias"))
        ph, pw = layer.padding
        return self.node("ConvTranspose", inputs, _tag(layer), kernel_shape=list(layer.kernel_size),
                         strides=list(layer.stride), pads=[ph, pw, ph, pw], dilations=list(layer.dilation),
                         group=layer.groups, output_padding=list(layer.output_padding))

    def linear(self, layer, names, arrays, y):
        weight = self.state(layer.weight, layer, "weight")
        if arrays[0].ndim == 2:
            inputs = [names[0], weight] + ([self.state(layer.bias, layer, "bias")] if layer.bias is not None else [])
            return self.node("Gemm", inputs, _tag(layer), transB=1)
        transposed = self.node("Transpose", [weight], f"{_tag(layer)}.weight_t", perm=[1, 0])   # (out, in) -> (in, out)
        out = self.node("MatMul", [names[0], transposed],                                    # (N, *, in) -> (N, *, out)
                        f"{_tag(layer)}.matmul" if layer.bias is not None else _tag(layer))
        if layer.bias is None:
            return out
        return self.node("Add", [out, self.state(layer.bias, layer, "bias")], _tag(layer))

    relu, sigmoid, tanh, identity = _simple("Relu"), _simple("Sigmoid"), _simple("Tanh"), _simple("Identity")

    def leaky_relu(self, layer, names, arrays, y):
        return self.node("LeakyRelu", names, _tag(layer), alpha=layer.negative_slope)

    def gelu(self, layer, names, arrays, y):
        if self.opset >= 20:
            return self.node("Gelu", names, _tag(layer), approximate=layer.approximate)
        x, dtype, label = names[0], arrays[0].dtype, _tag(layer)
        c = lambda what, v: self.const(f"{label}.{what}", v, dtype)  # noqa: E731  (scalar constants)
        if layer.approximate == "tanh":   # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = self.node("Mul", [self.node("Mul", [x, x], f"{label}.x2"), x], f"{label}.x3")
            inner = self.node("Add", [x, self.node("Mul", [cube, c("k", 0.044715)], f"{label}.kx3")], f"{label}.u")
            t = self.node("Tanh", [self.node("Mul", [inner, c("c", math.sqrt(2 / math.pi))], f"{label}.cu")],
                          f"{label}.tanh")
        else:                             # x/2 (1 + erf(x / sqrt 2))
            t = self.node("Erf", [self.node("Div", [x, c("sqrt2", math.sqrt(2.0))], f"{label}.scaled")],
                          f"{label}.erf")
        one_plus = self.node("Add", [t, c("one", 1.0)], f"{label}.one_plus")
        return self.node("Mul", [self.node("Mul", [x, one_plus], f"{label}.x_times"), c("half", 0.5)], label)

    def softmax(self, layer, names, arrays, y):
        ndim = arrays[0].ndim
        dim = layer.dim if layer.dim is not None else (0 if ndim in (0, 1, 3) else 1)
        op = "LogSoftmax" if type(layer) is LogSoftmax else "Softmax"
        return self.node(op, names, _tag(layer), axis=dim % max(ndim, 1))

    def _pool_attrs(self, layer):
        ph, pw = layer.padding
        return dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride), pads=[ph, pw, ph, pw],
                    ceil_mode=int(layer.ceil_mode))

    def max_pool2d(self, layer, names, arrays, y):
        self._check_4d(layer, arrays[0])
        if layer.return_indices:
            raise OnnxError(f"mg.onnx.export: {layer.label} has return_indices=True; export "
                            "supports only the pooled values")
        return self.node("MaxPool", names, _tag(layer), dilations=list(layer.dilation), **self._pool_attrs(layer))

    def avg_pool2d(self, layer, names, arrays, y):
        self._check_4d(layer, arrays[0])
        if layer.divisor_override is not None:
            raise OnnxError(f"mg.onnx.export: {layer.label} has divisor_override="
                            f"{layer.divisor_override}, which ONNX's AveragePool cannot express")
        return self.node("AveragePool", names, _tag(layer), count_include_pad=int(layer.count_include_pad),
                         **self._pool_attrs(layer))

    def adaptive_avg_pool2d(self, layer, names, arrays, y):
        self._check_4d(layer, arrays[0])
        if tuple(y.shape[2:]) != (1, 1):
            raise OnnxError(f"mg.onnx.export: {layer.label} has output_size "
                            f"{layer.output_size}; only the global average pool (output_size=1) is exported")
        return self.node("GlobalAveragePool", names, _tag(layer))

    def batch_norm(self, layer, names, arrays, y):
        if not layer.track_running_stats:
            raise OnnxError(f"mg.onnx.export: {layer.label} has "
                            "track_running_stats=False: it normalises with batch statistics even in eval mode, "
                            "which ONNX's BatchNormalization (inference) cannot express")
        dtype, c = arrays[0].dtype, layer.num_features
        scale = self.state(layer.weight, layer, "weight") if layer.weight is not None else \
            self.const(f"{_tag(layer)}.onnx_scale", numpy.ones(c), dtype)
        bias = self.state(layer.bias, layer, "bias") if layer.bias is not None else \
            self.const(f"{_tag(layer)}.onnx_bias", numpy.zeros(c), dtype)
        momentum = 0.9 if layer.momentum is None else 1.0 - layer.momentum
        return self.node("BatchNormalization", [names[0], scale, bias, self.state(layer.running_mean, layer,
                         "running_mean"), self.state(layer.running_var, layer, "running_var")], _tag(layer),
                         epsilon=layer.eps, momentum=momentum)

    def layer_norm(self, layer, names, arrays, y):
        if self.opset < 17:
            raise OnnxError(f"mg.onnx.export: {layer.label} needs LayerNormalization, "
                            f"which ONNX has from opset 17; got opset={self.opset}")
        scale = self.state(layer.weight, layer, "weight") if layer.weight is not None else \
            self.const(f"{_tag(layer)}.onnx_scale", numpy.ones(layer.normalized_shape), arrays[0].dtype)
        inputs = [names[0], scale] + ([self.state(layer.bias, layer, "bias")] if layer.bias is not None else [])
        return self.node("LayerNormalization", inputs, _tag(layer), axis=-len(layer.normalized_shape),
                         epsilon=layer.eps)

    def flatten(self, layer, names, arrays, y):
        ndim = arrays[0].ndim
        start, end = layer.start_dim % ndim, layer.end_dim % ndim
        if start == 1 and end == ndim - 1:
            return self.node("Flatten", names, _tag(layer), axis=1)
        shape = self.const(f"{_tag(layer)}.shape", [0] * start + [-1] + [0] * (ndim - 1 - end), numpy.int64)
        return self.node("Reshape", [names[0], shape], _tag(layer))

    def add(self, layer, names, arrays, y):
        return self.node("Add" if len(names) == 2 else "Sum", names, _tag(layer))

    def mul(self, layer, names, arrays, y):
        out = names[0]
        for i, other in enumerate(names[1:], start=1):
            out = self.node("Mul", [out, other], _tag(layer) if i == len(names) - 1 else f"{_tag(layer)}.{i}")
        return out

    def concat(self, layer, names, arrays, y):
        return self.node("Concat", names, _tag(layer), axis=layer.dim % arrays[0].ndim)


_LEAVES = {Conv2d: _Emitter.conv2d, ConvTranspose2d: _Emitter.conv_transpose2d, Linear: _Emitter.linear,
           ReLU: _Emitter.relu, LeakyReLU: _Emitter.leaky_relu, GELU: _Emitter.gelu, Sigmoid: _Emitter.sigmoid,
           Tanh: _Emitter.tanh, Softmax: _Emitter.softmax, LogSoftmax: _Emitter.softmax,
           MaxPool2d: _Emitter.max_pool2d, AvgPool2d: _Emitter.avg_pool2d,
           AdaptiveAvgPool2d: _Emitter.adaptive_avg_pool2d, BatchNorm1d: _Emitter.batch_norm,
           BatchNorm2d: _Emitter.batch_norm, LayerNorm: _Emitter.layer_norm, Flatten: _Emitter.flatten,
           Dropout: _Emitter.identity, Identity: _Emitter.identity, Add: _Emitter.add, Mul: _Emitter.mul,
           Concat: _Emitter.concat}
# The added layer families keep their ONNX emitters in their own modules (one block each):
# -- activations --
from . import activation_ops  # noqa: E402
_LEAVES.update(activation_ops.EXPORTERS)
# -- normalisation --
from . import norm_ops  # noqa: E402
_LEAVES.update(norm_ops.EXPORTERS)
# -- regularisation, resampling and padding --
from . import resample_ops  # noqa: E402
_LEAVES.update(resample_ops.EXPORTERS)
# -- pooling and 1-d signals --
from . import pool_ops  # noqa: E402
_LEAVES.update(pool_ops.EXPORTERS)   # AdaptiveAvgPool2d's too: any output size dividing the input's
# -- embeddings --
from . import embedding_ops  # noqa: E402
_LEAVES.update(embedding_ops.EXPORTERS)


def _value_info(onnx, name, array, batch):
    """A graph input/output declaration; dimension 0 is the symbolic batch "N" when it is the batch size."""
    dims = [d for d in array.shape]
    if dims and dims[0] == batch:
        dims[0] = "N"
    elem = onnx.helper.np_dtype_to_tensor_dtype(numpy.dtype(array.dtype))
    return onnx.helper.make_tensor_value_info(name, elem, dims)


def export(model, example_input, path, opset: int = 17):
    """Write ``model`` (Sequential, Graph or a supported layer) as an ONNX file at ``path``; returns the ModelProto.

    example_input: one array (N, ...) or a tuple, one per Graph input; it fixes every dimension but the
    batch (dimension 0), which is symbolic ("N"). The model runs once in eval mode; its train/eval
    flags are restored afterwards. The result passes ``onnx.checker.check_model(full_check=True)``.
    """
    where = "mg.onnx.export"
    onnx = require_onnx(where)
    if isinstance(opset, bool) or not isinstance(opset, int) or not OPSET_MIN <= opset <= OPSET_MAX:
        raise OnnxError(f"{where}: opset must be an int in [{OPSET_MIN}, {OPSET_MAX}], got {opset!r}")
    if not isinstance(model, Layer):
        raise TypeError(f"{where}: expected a minigrad Layer (Sequential, Graph, ...), got {type(model).__name__}")
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    for i, x in enumerate(inputs):
        if not is_array(x) or x.dtype.kind not in "fiu" or x.ndim < 1:   # integers: indices (an Embedding's input)
            raise TypeError(f"{where}: example input {i} must be a floating NumPy/CuPy array (integer indices for an "
                            f"Embedding) with a batch dimension, got {type(x).__name__} {getattr(x, 'shape', '')}")
    backend = model.backend or get_backend()
    inputs = tuple(to_backend(x, backend) for x in inputs)
    in_names = list(model.input_names) if type(model) is Graph else ["input"]
    emitter = _Emitter(onnx, model, opset)
    emitter.used.update(in_names)
    modes = [(layer, layer.training) for layer in model.modules()]
    model.eval()
    try:
        with no_grad():
            out_names, outputs = emitter.emit(model, in_names, list(inputs), outermost=True)
    finally:
        for layer, mode in modes:
            object.__setattr__(layer, "training", mode)
    if isinstance(out_names, str):
        out_names, outputs = [out_names], [outputs]
    final = list(model.output_names) if type(model) is Graph else ["output"]
    renames = {}
    for produced, wanted in zip(out_names, final):
        if produced in in_names or produced in renames:     # an input passed through: one Identity
            emitter.nodes.append(onnx.helper.make_node("Identity", [produced], [wanted], name=wanted))
        else:
            renames[produced] = wanted
    for node in emitter.nodes:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    batch = inputs[0].shape[0]
    host = lambda a: numpy.asarray(to_backend(a, "numpy"))  # noqa: E731
    graph = onnx.helper.make_graph(
        emitter.nodes, "minigrad",
        [_value_info(onnx, n, host(x), batch) for n, x in zip(in_names, inputs)],
        [_value_info(onnx, n, host(y), batch) for n, y in zip(final, outputs)],
        initializer=[onnx.numpy_helper.from_array(a, name) for name, a in emitter.initializers.items()])
    from .. import __version__
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, producer_name="minigrad", producer_version=__version__,
                                   opset_imports=opsets)
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)   # the oldest IR of this opset: old runtimes
    onnx.checker.check_model(proto, full_check=True)
    write_bytes_atomic(os.fspath(path), proto.SerializeToString())
    return proto
