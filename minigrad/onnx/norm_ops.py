"""ONNX export and import of GroupNorm, InstanceNorm2d and LocalResponseNorm (nn/norm_more.py).

Export (``EXPORTERS``, merged into export.py's table; the model runs in eval mode):

    InstanceNorm2d     InstanceNormalization(x, weight, bias) (affine=False or bias=False: constant ones / zeros);
                       with track_running_stats=True eval normalises with the running statistics:
                       BatchNormalization(x, weight, bias, running_mean, running_var) (re-imported: a BatchNorm2d,
                       equal in eval; PyTorch's exporter refuses this case)
    GroupNorm          opset >= 21: GroupNormalization(x, weight, bias) (its scale and bias per channel from 21);
                       below: PyTorch's formula Reshape(x, [0, G, -1]) -> InstanceNormalization(ones(G), zeros(G))
                       -> Reshape(., Shape(x)) -> Mul(., Unsqueeze(weight)) -> Add(., Unsqueeze(bias))
    LocalResponseNorm  odd size, 4-D input: LRN(size, alpha, beta, bias=k) (PyTorch's window and alpha/size);
                       even size (ONNX centres its window the other way and ONNX Runtime refuses an even size) or
                       another rank (ONNX Runtime's LRN takes 4-D input only):
                       Div(x, Pow(Add(Conv(Mul(x, x), band), k), beta)), the band (C, C, 1, ..) holding alpha/size
                       where PyTorch's window reaches

Import (``NormOps``, a mixin of the importer in load.py, before ``Importer`` among its bases): the single ops
InstanceNormalization (4-D input) -> InstanceNorm2d, GroupNormalization (opset 21's per-channel scale and bias;
onnx rejects opset 18-20's) -> GroupNorm, LRN (odd size) -> LocalResponseNorm; a scale and bias that are the
constant ones and zeros exporters write for a layer without them (a Constant node, or an initializer named with
'::' or '.onnx_') give a layer without weight / bias. The formulas above (norm_patterns.py: ours, and PyTorch's
TorchScript GroupNorm) are read back as one layer each (size and alpha of the LRN from the band). PyTorch's own
LRN formula (Pad and AveragePool inside an If) is not read back: its nodes are refused one by one.
"""
from __future__ import annotations

import numpy

from ..nn.norm_more import GroupNorm, InstanceNorm2d, LocalResponseNorm
from ..runtime.backend import get_backend, to_backend
from .common import OnnxError
from .importer import Dim, decimal
from .norm_patterns import find_norm_formulas

__all__ = ["EXPORTERS", "NormOps"]


def _tag(layer) -> str:
    """The node name export.py gives a layer: its qualified name, else its class name."""
    return layer.name or type(layer).__name__


def _scale_and_bias(emitter, layer, channels: int, dtype):
    """The initializers of weight and bias, or constant ones / zeros of ``channels`` values."""
    scale = emitter.state(layer.weight, layer, "weight") if layer.weight is not None else \
        emitter.const(f"{_tag(layer)}.onnx_scale", numpy.ones(channels), dtype)
    bias = emitter.state(layer.bias, layer, "bias") if layer.bias is not None else \
        emitter.const(f"{_tag(layer)}.onnx_bias", numpy.zeros(channels), dtype)
    return scale, bias


# -- export --------------------------------------------------------------------------------------------------
def _instance_norm(emitter, layer, names, arrays, y):
    x = arrays[0]
    if x.ndim != 4:
        raise OnnxError(f"mg.onnx.export: {layer.label} gets an input of shape {tuple(x.shape)}; ONNX needs the "
                        "batched (N, C, H, W) form")
    scale, bias = _scale_and_bias(emitter, layer, x.shape[1], x.dtype)
    if not layer.track_running_stats:
        return emitter.node("InstanceNormalization", [names[0], scale, bias], _tag(layer), epsilon=layer.eps)
    statistics = [emitter.state(layer.running_mean, layer, "running_mean"),
                  emitter.state(layer.running_var, layer, "running_var")]
    return emitter.node("BatchNormalization", [names[0], scale, bias] + statistics, _tag(layer), epsilon=layer.eps,
                        momentum=1.0 - float(layer.momentum or 0.0))


def _unsqueezed(emitter, layer, name, ndim: int, what: str):
    """A (C,) initializer as (C, 1, ..., 1), to broadcast along dimension 1 of an ndim-D input."""
    if ndim <= 2:
        return name
    axes = emitter.const(f"{_tag(layer)}.{what}_axes", list(range(1, ndim - 1)), numpy.int64)
    return emitter.node("Unsqueeze", [name, axes], f"{_tag(layer)}.{what}_unsqueezed")


def _group_norm(emitter, layer, names, arrays, y):
    x, tag, groups = arrays[0], _tag(layer), layer.num_groups
    if emitter.opset >= 21 and x.ndim >= 3:
        scale, bias = _scale_and_bias(emitter, layer, x.shape[1], x.dtype)
        return emitter.node("GroupNormalization", [names[0], scale, bias], tag, epsilon=layer.eps,
                            num_groups=groups)
    target = emitter.const(f"{tag}.group_shape", [0, groups, -1], numpy.int64)
    grouped = emitter.node("Reshape", [names[0], target], f"{tag}.grouped")        # (N, C, *) -> (N, G, M)
    ones = emitter.const(f"{tag}.group_scale", numpy.ones(groups), x.dtype)
    zeros = emitter.const(f"{tag}.group_bias", numpy.zeros(groups), x.dtype)
    last = layer.weight is None and layer.bias is None
    normed = emitter.node("InstanceNormalization", [grouped, ones, zeros], f"{tag}.normalized", epsilon=layer.eps)
    shape = emitter.node("Shape", [names[0]], f"{tag}.shape")
    out = emitter.node("Reshape", [normed, shape], tag if last else f"{tag}.ungrouped")   # (N, G, M) -> (N, C, *)
    if layer.weight is not None:
        weight = _unsqueezed(emitter, layer, emitter.state(layer.weight, layer, "weight"), x.ndim, "weight")
        out = emitter.node("Mul", [out, weight], tag if layer.bias is None else f"{tag}.scaled")
    if layer.bias is not None:
        bias = _unsqueezed(emitter, layer, emitter.state(layer.bias, layer, "bias"), x.ndim, "bias")
        out = emitter.node("Add", [out, bias], tag)
    return out


def _local_response_norm(emitter, layer, names, arrays, y):
    x, tag, size = arrays[0], _tag(layer), layer.size
    if size % 2 and x.ndim == 4:
        return emitter.node("LRN", names, tag, size=size, alpha=layer.alpha, beta=layer.beta, bias=layer.k)
    c = x.shape[1]
    rows, cols = numpy.arange(c)[:, None], numpy.arange(c)[None, :]
    inside = (cols >= rows - size // 2) & (cols <= rows + (size - 1) // 2)          # PyTorch's window of channel c
    band = numpy.where(inside, layer.alpha / size, 0.0).reshape((c, c) + (1,) * (x.ndim - 2))   # (C, C, 1, ..)
    square = emitter.node("Mul", [names[0], names[0]], f"{tag}.square")
    window = emitter.node("Conv", [square, emitter.const(f"{tag}.band", band, x.dtype)], f"{tag}.window",
                          kernel_shape=[1] * (x.ndim - 2))
    base = emitter.node("Add", [window, emitter.const(f"{tag}.k", layer.k, x.dtype)], f"{tag}.base")
    power = emitter.node("Pow", [base, emitter.const(f"{tag}.beta", layer.beta, x.dtype)], f"{tag}.power")
    return emitter.node("Div", [names[0], power], tag)


EXPORTERS = {InstanceNorm2d: _instance_norm, GroupNorm: _group_norm, LocalResponseNorm: _local_response_norm}


def _on_backend(array, dtype):
    return to_backend(numpy.array(array, dtype=dtype, order="C"), get_backend())


# -- import -------------------------------------------------------------------------------------------------
class NormOps:
    """Mixed into the importer (minigrad/onnx/load.py), before ``Importer`` among its bases: one method per
    single ONNX op, and ``run`` / ``convert`` reading each formula of ``find_norm_formulas`` as one layer."""

    def run(self, model):
        finals, inside = find_norm_formulas(model.graph, {i.name for i in model.graph.initializer})
        self._norm_formulas, self._norm_formula_nodes = finals, inside
        return super().run(model)

    def convert(self, node):
        key = node.output[0] if node.output else None
        if key in self.__dict__.get("_norm_formula_nodes", ()):    # inside a formula: its last node adds the layer
            return
        found = self.__dict__.get("_norm_formulas", {}).get(key)
        if found is None:
            return super().convert(node)
        read = self._formula_group_norm if found["kind"] == "group_norm" else self._formula_lrn
        try:
            layer = read(node, found)
        except (ValueError, TypeError, IndexError) as exc:
            raise self.fail(node, f"the {found['kind']} formula cannot be read ({type(exc).__name__}: {exc})") from exc
        self.add(node, layer, [found["x"]])

    def _constant(self, node, name, what):
        if name not in self.consts:
            raise self.fail(node, f"its {what} ('{name}') is not a constant")
        return self.consts[name]

    def _per_channel(self, node, name, channels, rank, what):
        """A constant of shape (C,), (C, 1, ..) or (1, C, 1, ..) broadcasting along dimension 1, or one value for
        all (PyTorch writes 1.0 and 0.0 for a GroupNorm without weight or bias) -> (C,)."""
        array = self._constant(node, name, what)
        padded = (1,) * (rank - array.ndim) + tuple(array.shape)
        if array.ndim > rank or array.dtype.kind != "f" or padded not in (
                (1, channels) + (1,) * (rank - 2), (1,) * rank):
            raise self.fail(node, f"its {what} of shape {array.shape} is not one value per channel of the "
                                  f"{channels}-channel input")
        return numpy.broadcast_to(array.reshape(-1), (channels,))  # (C, 1, ..) or (1, .., 1) -> (C,)

    def _formula_group_norm(self, final, found):
        x, norm = found["x"], found["norm"]
        shape = self.shapes.get(x)
        if not shape or len(shape) < 2 or shape[1] is None:
            raise self.fail(final, f"the GroupNorm formula's input '{x}' has an unknown channel count")
        rank, channels = len(shape), shape[1]
        target = list(self._constant(found["reshape"], found["reshape"].input[1], "target shape"))
        groups = target[1] if len(target) == 3 else None
        if groups is None or isinstance(groups, Dim) or target[2] != -1 or not (
                target[0] == 0 or isinstance(target[0], Dim) and (target[0].value, target[0].index) == (x, 0)) \
                or not 1 <= int(groups) <= channels or channels % int(groups):
            raise self.fail(found["reshape"], f"reshaping {shape} to {target} is not the grouping of a GroupNorm "
                                              "([0, G, -1], G dividing the channels)")
        groups = int(groups)
        back = list(self._constant(found["back"], found["back"].input[1], "target shape"))
        keeps = [isinstance(t, Dim) and (t.value, t.index) == (x, i) or (not isinstance(t, Dim) and (
            t == shape[i] or i == 0 and t == 0)) for i, t in enumerate(back)]
        if len(back) != rank or not all(keeps):
            raise self.fail(found["back"], "the reshape after the group normalisation does not restore the "
                                           f"input's shape {shape}")
        attrs = self.attrs(norm, {"epsilon"})
        scale, bias = (self._constant(norm, norm.input[i], what) for i, what in ((1, "scale"), (2, "bias B")))
        if scale.dtype.kind != "f" or scale.shape != (groups,) or bias.shape != (groups,) or \
                not (scale == 1).all() or (bias != 0).any():
            raise self.fail(norm, "inside a GroupNorm formula its scale and bias must be ones and zeros, one "
                                  f"per group ({groups}); got shapes {scale.shape} and {bias.shape}")
        self.require(norm, attrs.get("epsilon", 1e-5) >= 0, "epsilon", attrs.get("epsilon"), "not negative")
        weights, previous = {}, found["back"].output[0]
        for role, what, identity in (("mul", "weight", 1.0), ("add", "bias", 0.0)):
            if role in found:
                a, b = found[role].input
                name = b if a == previous else a
                previous = found[role].output[0]
                constant = numpy.asarray(self._constant(found[role], name, what))
                if constant.size == 1 and channels > 1 and constant.dtype.kind == "f" and constant.item() == identity:
                    continue                 # PyTorch's GroupNorm without weight / bias multiplies by 1, adds 0
                weights[role] = self._per_channel(found[role], name, channels, rank, what)
        layer = GroupNorm(groups, channels, eps=attrs.get("epsilon", 1e-5), affine=bool(weights),
                          bias="add" in weights, dtype=scale.dtype)
        if "mul" in weights:
            layer.weight.data = _on_backend(weights["mul"], scale.dtype)
        if "add" in weights:
            layer.bias.data = _on_backend(weights["add"], scale.dtype)
        return layer

    def _scalar(self, node, name, what):
        value = numpy.asarray(self._constant(node, name, what))
        if value.size != 1 or value.dtype.kind not in "fiu":
            raise self.fail(node, f"its {what} of shape {value.shape} is not a single number")
        return float(value.reshape(-1)[0])                          # (1,) or () -> scalar

    def _formula_lrn(self, final, found):
        x, window = found["x"], found["window"]
        shape = self.shapes.get(x)
        if not shape or len(shape) < 3 or shape[1] is None:
            raise self.fail(final, f"the LocalResponseNorm formula's input '{x}' of shape {shape} is not (N, C, *)")
        c, spatial = shape[1], len(shape) - 2
        attrs = self.attrs(window, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"})
        plain = {"kernel_shape": [1] * spatial, "strides": [1] * spatial, "pads": [0] * 2 * spatial,
                 "dilations": [1] * spatial, "group": 1, "auto_pad": "NOTSET"}
        for name, default in plain.items():
            self.require(window, list(attrs.get(name, default)) == list(default) if isinstance(default, list)
                         else attrs.get(name, default) == default, name, attrs.get(name), f"only {default}")
        band = self._constant(window, window.input[1], "weight")
        if band.dtype.kind != "f" or band.shape != (c, c) + (1,) * spatial:
            raise self.fail(window, f"its weight of shape {band.shape} is not a ({c}, {c}) channel window")
        band = band.reshape(c, c)                                   # (C, C, 1, ..) -> (C, C)
        after, before = int((band[0] != 0).sum()) - 1, int((band[-1] != 0).sum()) - 1
        size = 2 * after + 1 if before == after else 2 * before if before == after + 1 else 0
        value = float(band[0, 0])
        rows, cols = numpy.arange(c)[:, None], numpy.arange(c)[None, :]
        window_of = (cols >= rows - size // 2) & (cols <= rows + (size - 1) // 2)
        if size < 1 or value == 0 or not numpy.array_equal(band, numpy.where(window_of, band.dtype.type(value), 0)):
            raise self.fail(window, "its weight is not LocalResponseNorm's window (alpha/size on the channels "
                                    "c - size//2 .. c + (size-1)//2, zero elsewhere)")
        base, power = found["base"], found["power"]
        k = self._scalar(base, [n for n in base.input if n != window.output[0]][0], "constant k")
        beta = self._scalar(power, power.input[1], "exponent beta")
        return LocalResponseNorm(size, alpha=decimal(value * size), beta=decimal(beta), k=decimal(k))

    # -- single ops ---------------------------------------------------------------------------------------------
    def _channels(self, node, rank_ok, what):
        shape = self.shapes.get(node.input[0])
        if not shape or not rank_ok(len(shape)) or shape[1] is None:
            raise self.fail(node, f"input of shape {shape} is not supported ({what})")
        return shape

    def _parameter(self, node, index, identity) -> bool:
        """Whether input ``index`` (a constant) is a trained parameter, not the ones or zeros an exporter writes
        for a layer without weight or bias: those are a Constant node or an initializer named like a constant
        ('onnx::...' by PyTorch, '<layer>.onnx_scale' by minigrad)."""
        if (self.consts[node.input[index]] != identity).any():
            return True
        source = self.source.get(node.input[index])
        return source is not None and "::" not in source and ".onnx_" not in source

    def _affine(self, node, scale, bias):
        """(weight or None, bias or None) of a layer from an ONNX normalisation's scale and bias inputs."""
        has_weight, has_bias = self._parameter(node, 1, 1.0), self._parameter(node, 2, 0.0)
        return (scale if has_weight or has_bias else None), (bias if has_bias else None)

    @staticmethod
    def _set_affine(layer, weight, bias):
        if weight is not None:
            layer.weight.data = _on_backend(weight, weight.dtype)
        if bias is not None:
            layer.bias.data = _on_backend(bias, weight.dtype)

    def op_InstanceNormalization(self, node):
        attrs = self.attrs(node, {"epsilon"})
        shape = self._channels(node, lambda r: r == 4, "only 4-D (N, C, H, W) input: minigrad has InstanceNorm2d")
        scale = self.const(node, 1, "scale", required=True, ndim=1, floating=True)
        bias = self.const(node, 2, "bias B", required=True, ndim=1, floating=True)
        if scale.shape != (shape[1],) or bias.shape != (shape[1],):
            raise self.fail(node, f"scale and bias of shapes {scale.shape} and {bias.shape} do not match the "
                                  f"input's {shape[1]} channels")
        self.require(node, attrs.get("epsilon", 1e-5) >= 0, "epsilon", attrs.get("epsilon"), "not negative")
        weight, bias = self._affine(node, scale, bias)
        layer = InstanceNorm2d(shape[1], eps=attrs.get("epsilon", 1e-5), affine=weight is not None,
                               bias=bias is not None, dtype=scale.dtype)
        self._set_affine(layer, weight, bias)
        self.add(node, layer, [node.input[0]], weight_input=1)

    def op_LRN(self, node):
        attrs = self.attrs(node, {"alpha", "beta", "bias", "size"})
        size = attrs.get("size")
        if size is None:
            raise self.fail(node, "attribute 'size' is missing (required); the file is corrupted")
        self.require(node, isinstance(size, int) and size >= 1 and size % 2 == 1, "size", size,
                     "an odd positive int: ONNX centres an even window one channel later than PyTorch, and ONNX "
                     "Runtime refuses it")
        self._channels(node, lambda r: r >= 3, "3-D or more, (N, C, *)")
        layer = LocalResponseNorm(size, alpha=attrs.get("alpha", 1e-4), beta=attrs.get("beta", 0.75),
                                  k=attrs.get("bias", 1.0))
        self.add(node, layer, [node.input[0]])

    def op_GroupNormalization(self, node):
        attrs = self.attrs(node, {"epsilon", "num_groups", "stash_type"})
        shape = self._channels(node, lambda r: r >= 3, "3-D or more, (N, C, *)")
        groups, channels = attrs.get("num_groups"), shape[1]
        self.require(node, isinstance(groups, int) and groups >= 1 and channels % groups == 0, "num_groups", groups,
                     f"a positive divisor of the input's {channels} channels")
        self.require(node, attrs.get("stash_type", 1) == 1, "stash_type", attrs.get("stash_type"), "only 1")
        self.require(node, attrs.get("epsilon", 1e-5) >= 0, "epsilon", attrs.get("epsilon"), "not negative")
        scale = self.const(node, 1, "scale", required=True, ndim=1, floating=True)
        bias = self.const(node, 2, "bias", required=True, ndim=1, floating=True)
        if scale.shape != (channels,) or bias.shape != (channels,):   # per channel (opset 21; 18-20 are invalid)
            raise self.fail(node, f"scale and bias of shapes {scale.shape} and {bias.shape}; expected ({channels},), "
                                  "one per channel")
        weight, bias = self._affine(node, scale, bias)
        layer = GroupNorm(groups, channels, eps=attrs.get("epsilon", 1e-5), affine=weight is not None,
                          bias=bias is not None, dtype=scale.dtype)
        self._set_affine(layer, weight, bias)
        self.add(node, layer, [node.input[0]], weight_input=1)
