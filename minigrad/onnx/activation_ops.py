"""ONNX export and import of the added activations (nn/activation_more.py).

Export (``EXPORTERS``, merged into export.py's table), x the input, constants of the input's dtype:

    ELU, CELU         Elu(alpha), Celu(alpha) (float32 only: ONNX's Celu has no float64; OnnxError)
    SELU              Selu(alpha, gamma = PyTorch's constants)
    Softsign          Softsign
    Hardsigmoid       HardSigmoid(alpha=1/6, beta=0.5)
    Hardswish         HardSwish (opset >= 14; opset 13: Mul(x, HardSigmoid(x)))
    Mish              Mish (opset >= 18; below: Mul(x, Tanh(Softplus(x))))
    SiLU              Mul(x, Sigmoid(x))
    Softplus          threshold 20 (PyTorch's default): Softplus(x) for beta = 1, else Div(Softplus(Mul(x, beta)), beta)
                      (ONNX's Softplus has no threshold; beyond it the two differ by at most e^-20 / beta);
                      another threshold: Where(Greater(beta x, threshold), x, <that>)
    ReLU6, Hardtanh   Clip(x, min, max)
    PReLU             PRelu(x, weight), the weight shaped (C, 1, ..., 1) to broadcast along dimension 1
    Tanhshrink        Sub(x, Tanh(x))
    Threshold         Where(LessOrEqual(x, threshold), value, x)

Import (``ActivationOps``, a mixin of the importer in load.py): the single ops above (Elu, Celu, Selu with
PyTorch's constants, Softsign, HardSigmoid with alpha 1/6 and beta 0.5, HardSwish, Mish, Softplus as
Softplus(), PRelu with a constant per-channel or single slope, Clip with constant bounds: ReLU6 for (0, 6),
else Hardtanh), and the formulas above, each read back as one layer when every intermediate value feeds only
the formula (``find_formulas``): SiLU, Mish, Hardswish, Tanhshrink, Softplus (both forms, and PyTorch's
Div(Softplus(Mul(x, beta)), beta)), Threshold (also Where(Greater(x, threshold), x, value)) and PyTorch's
Softsign, Div(x, Add(Abs(x), 1)).
"""
from __future__ import annotations

import math

import numpy

from ..functional.activation_more import SELU_ALPHA, SELU_SCALE
from ..nn.activation_more import (CELU, ELU, SELU, Hardsigmoid, Hardswish, Hardtanh, Mish, PReLU, ReLU6, SiLU,
                                  Softplus, Softsign, Tanhshrink, Threshold)
from ..runtime.backend import get_backend, to_backend
from .common import OnnxError
from .importer import decimal

__all__ = ["EXPORTERS", "ActivationOps", "find_formulas"]

_F32 = 1e-6          # a float attribute or constant is stored in float32: equal within this relative tolerance


def _tag(layer) -> str:
    """The node name export.py gives a layer: its qualified name, else its class name."""
    return layer.name or type(layer).__name__


def _close(a, b) -> bool:
    return a == b or (math.isfinite(b) and abs(a - b) <= _F32 * abs(b))


# -- export --------------------------------------------------------------------------------------------------
def _single(op, **fixed):
    def export(emitter, layer, names, arrays, y):
        return emitter.node(op, names, _tag(layer), **fixed)
    return export


def _alpha(op):
    def export(emitter, layer, names, arrays, y):
        if op == "Celu" and arrays[0].dtype != numpy.float32:
            raise OnnxError(f"mg.onnx.export: {layer.label} gets {arrays[0].dtype} input; ONNX's Celu takes float32 "
                            "only (export the model in float32)")
        return emitter.node(op, names, _tag(layer), alpha=layer.alpha)
    return export


def _c(emitter, layer, what, value, like):
    return emitter.const(f"{_tag(layer)}.{what}", value, like.dtype)


def _silu(emitter, layer, names, arrays, y):
    sigmoid = emitter.node("Sigmoid", names, f"{_tag(layer)}.sigmoid")
    return emitter.node("Mul", [names[0], sigmoid], _tag(layer))


def _mish(emitter, layer, names, arrays, y):
    if emitter.opset >= 18:
        return emitter.node("Mish", names, _tag(layer))
    softplus = emitter.node("Softplus", names, f"{_tag(layer)}.softplus")
    return emitter.node("Mul", [names[0], emitter.node("Tanh", [softplus], f"{_tag(layer)}.tanh")], _tag(layer))


def _hardswish(emitter, layer, names, arrays, y):
    if emitter.opset >= 14:
        return emitter.node("HardSwish", names, _tag(layer))
    gate = emitter.node("HardSigmoid", names, f"{_tag(layer)}.gate", alpha=1.0 / 6.0, beta=0.5)
    return emitter.node("Mul", [names[0], gate], _tag(layer))


def _softplus(emitter, layer, names, arrays, y):
    (x,), tag, beta = names, _tag(layer), layer.beta
    linear = layer.threshold != 20.0 and layer.threshold != math.inf
    z = x if beta == 1.0 else emitter.node("Mul", [x, _c(emitter, layer, "beta", beta, arrays[0])], f"{tag}.scaled")
    out = emitter.node("Softplus", [z], f"{tag}.softplus" if linear or beta != 1.0 else tag)
    if beta != 1.0:
        out = emitter.node("Div", [out, _c(emitter, layer, "beta", beta, arrays[0])], f"{tag}.div" if linear else tag)
    if not linear:
        return out
    above = emitter.node("Greater", [z, _c(emitter, layer, "threshold", layer.threshold, arrays[0])], f"{tag}.above")
    return emitter.node("Where", [above, x, out], tag)


def _clip(emitter, layer, names, arrays, y):
    low, high = (_c(emitter, layer, what, v, arrays[0]) for what, v in (("min", layer.min_val), ("max", layer.max_val)))
    return emitter.node("Clip", [names[0], low, high], _tag(layer))


def _prelu(emitter, layer, names, arrays, y):
    x, slope = arrays[0], emitter.state(layer.weight, layer, "weight")
    c = layer.num_parameters
    shape = (c,) + (1,) * (x.ndim - 2) if c > 1 and x.ndim > 2 else emitter.initializers[slope].shape[:1]
    stored = emitter.initializers[slope]
    if stored.shape != shape:          # (C,) -> (C, 1, ..., 1): the slope broadcasts along dimension 1
        if not any(slope in node.input for node in emitter.nodes):
            emitter.initializers[slope] = stored.reshape(shape)       # its first use: the entry itself reshaped
        else:                                                          # a shared PReLU on inputs of another rank
            target = emitter.const(f"{_tag(layer)}.slope_shape", shape, numpy.int64)
            slope = emitter.node("Reshape", [slope, target], f"{_tag(layer)}.slope")
    return emitter.node("PRelu", [names[0], slope], _tag(layer))


def _tanhshrink(emitter, layer, names, arrays, y):
    return emitter.node("Sub", [names[0], emitter.node("Tanh", names, f"{_tag(layer)}.tanh")], _tag(layer))


def _threshold(emitter, layer, names, arrays, y):
    below = emitter.node("LessOrEqual", [names[0], _c(emitter, layer, "threshold", layer.threshold, arrays[0])],
                         f"{_tag(layer)}.below")
    return emitter.node("Where", [below, _c(emitter, layer, "value", layer.value, arrays[0]), names[0]], _tag(layer))


EXPORTERS = {ELU: _alpha("Elu"), CELU: _alpha("Celu"), SELU: _single("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE),
             Softsign: _single("Softsign"), Hardsigmoid: _single("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
             Hardswish: _hardswish, Mish: _mish, SiLU: _silu, Softplus: _softplus, ReLU6: _clip, Hardtanh: _clip,
             PReLU: _prelu, Tanhshrink: _tanhshrink, Threshold: _threshold}


# -- formulas read back as one layer --------------------------------------------------------------------------
class _Graph:
    """Producers, use counts and scalar constants of an ONNX graph, for matching formulas."""

    def __init__(self, onnx, graph, consts):
        self.onnx, self.consts, self.nodes = onnx, consts, list(graph.node)
        self.producer = {out: i for i, node in enumerate(self.nodes) for out in node.output if out}
        self.uses = {}
        for name in [n for node in self.nodes for n in node.input] + [o.name for o in graph.output]:
            self.uses[name] = self.uses.get(name, 0) + 1

    def scalar(self, name):
        """The value of a one-element float constant (initializer or Constant node), else None."""
        array, index = self.consts.get(name), self.producer.get(name)
        if array is None and index is not None and self.nodes[index].op_type == "Constant":
            attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in self.nodes[index].attribute}
            array = self.onnx.numpy_helper.to_array(attrs["value"]) if "value" in attrs else attrs.get("value_float")
        array = None if array is None else numpy.asarray(array)
        if array is None or array.size != 1 or array.dtype.kind != "f":
            return None
        value = array.reshape(-1)[0]                                    # (1,) or () -> a number
        return decimal(value) if array.dtype == numpy.float32 else float(value)   # float32 0.1 -> 0.1

    def made_by(self, name, op, uses=1):
        """The index of the node computing ``name`` with ``op`` (default domain), if ``name`` has ``uses`` uses."""
        index = self.producer.get(name)
        if index is None or self.uses.get(name) != uses:
            return None
        node = self.nodes[index]
        return index if node.op_type == op and node.domain in ("", "ai.onnx") else None

    def bare(self, index, arity):
        """``index`` if that node has no attributes and ``arity`` inputs, else None (also for None)."""
        if index is None or self.nodes[index].attribute or len(self.nodes[index].input) != arity:
            return None
        return index

    def beside_const(self, index):
        """(other operand, scalar) of binary node ``index`` with one scalar constant operand, else (None, None)."""
        a, b = self.nodes[index].input
        for other, const in ((a, b), (b, a)):
            value = self.scalar(const)
            if value is not None and self.scalar(other) is None:
                return other, value
        return None, None

    # each matcher: node index -> (x, layer, indices of the formula's other nodes) or None
    def gated(self, index):
        """Mul(x, Sigmoid(x)) -> SiLU; Mul(x, Tanh(Softplus(x))) -> Mish; Mul(x, HardSigmoid(x)) -> Hardswish."""
        node = self.nodes[index]
        for x, gate in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            sig = self.bare(self.made_by(gate, "Sigmoid"), 1)
            if sig is not None and self.nodes[sig].input[0] == x:
                return x, SiLU(), [sig]
            hard = self.made_by(gate, "HardSigmoid")
            if hard is not None and self.nodes[hard].input[0] == x and self._hard_gate(hard):
                return x, Hardswish(), [hard]
            tanh = self.bare(self.made_by(gate, "Tanh"), 1)
            soft = None if tanh is None else self.bare(self.made_by(self.nodes[tanh].input[0], "Softplus"), 1)
            if soft is not None and self.nodes[soft].input[0] == x:
                return x, Mish(), [tanh, soft]
        return None

    def _hard_gate(self, index):
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in self.nodes[index].attribute}
        return (set(attrs) <= {"alpha", "beta"} and len(self.nodes[index].input) == 1
                and _close(attrs.get("alpha", 0.2), 1.0 / 6.0) and _close(attrs.get("beta", 0.5), 0.5))

    def tanhshrink(self, index):
        x, t = self.nodes[index].input
        tanh = self.bare(self.made_by(t, "Tanh"), 1)
        return (x, Tanhshrink(), [tanh]) if tanh is not None and self.nodes[tanh].input[0] == x else None

    def softsign(self, index):
        """Div(x, Add(Abs(x), 1)) -> Softsign (PyTorch's export of it)."""
        x, d = self.nodes[index].input
        add = self.bare(self.made_by(d, "Add"), 2)
        other, one = (None, None) if add is None else self.beside_const(add)
        absolute = None if one != 1.0 else self.bare(self.made_by(other, "Abs"), 1)
        return (x, Softsign(), [add, absolute]) if absolute is not None and self.nodes[absolute].input[0] == x else None

    def softplus(self, name, z_uses=1):
        """(x, beta, indices) if ``name`` is Softplus(x) or Div(Softplus(Mul(x, beta)), beta), else None."""
        div = self.bare(self.made_by(name, "Div"), 2)
        if div is None:
            soft = self.bare(self.made_by(name, "Softplus"), 1)
            return None if soft is None else (self.nodes[soft].input[0], 1.0, [soft])
        return self.softplus_div(div, z_uses)

    def softplus_div(self, div, z_uses=1):
        """(x, beta, indices) if node ``div`` is Div(Softplus(Mul(x, beta)), beta), else None."""
        beta = self.scalar(self.nodes[div].input[1])
        soft = self.bare(self.made_by(self.nodes[div].input[0], "Softplus"), 1)
        mul = None if soft is None else self.bare(self.made_by(self.nodes[soft].input[0], "Mul", z_uses), 2)
        if mul is None or beta is None or beta == 0.0:
            return None
        x, factor = self.beside_const(mul)
        return (x, beta, [div, soft, mul]) if x is not None and _close(factor, beta) else None

    def where(self, index):
        """Where(LessOrEqual(x, t), v, x) or Where(Greater(x, t), x, v) -> Threshold(t, v);
        Where(Greater(beta x, t), x, softplus) -> Softplus(beta, t)."""
        cond, a, b = self.nodes[index].input
        for op in ("LessOrEqual", "Greater"):
            test = self.bare(self.made_by(cond, op), 2)
            if test is None:
                continue
            first, limit = self.nodes[test].input
            threshold = self.scalar(limit)
            if threshold is None or self.scalar(first) is not None:
                return None
            x, value = (b, self.scalar(a)) if op == "LessOrEqual" else (a, self.scalar(b))
            if x == first and value is not None:
                return x, Threshold(threshold, value), [test]
            if op != "Greater":
                return None
            found = self.softplus(b, z_uses=2)
            if found is None or found[0] != a:
                return None
            x, beta, inner = found
            scaled = inner[2] if beta != 1.0 else None
            if (first == x and beta == 1.0) or (scaled is not None and self.nodes[scaled].output[0] == first):
                return x, Softplus(beta, threshold), [test] + inner
        return None


def find_formulas(onnx, graph, consts):
    """The activation formulas of ``graph`` -> ({final node index: (x, layer)}, indices of their other nodes).
    Matched from the last node back, so a formula inside a larger one is read as part of it."""
    g = _Graph(onnx, graph, consts)
    finals, inside = {}, set()
    for index in reversed(range(len(g.nodes))):
        node = g.nodes[index]
        if index in inside or node.domain not in ("", "ai.onnx") or node.attribute:
            continue
        try:
            found = _match(g, index, node)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):   # a constant no layer takes (NaN,
            found = None          # beta 0) or a corrupted one: left to the node-by-node import, which names it
        if found is not None and g.scalar(found[0]) is None and found[0] not in consts:
            x, layer, others = found
            finals[index] = (x, layer)
            inside.update(others)
    return finals, inside


def _match(g, index, node):
    """(x, layer, indices of the other nodes) if node ``index`` ends an activation formula, else None."""
    if node.op_type == "Mul" and len(node.input) == 2:
        return g.gated(index)
    if node.op_type == "Sub" and len(node.input) == 2:
        return g.tanhshrink(index)
    if node.op_type == "Where" and len(node.input) == 3:
        return g.where(index)
    if node.op_type == "Div" and len(node.input) == 2:
        soft = g.softplus_div(index)
        return (soft[0], Softplus(soft[1]), soft[2][1:]) if soft is not None else g.softsign(index)
    return None


# -- import -------------------------------------------------------------------------------------------------
class ActivationOps:
    """Mixed into the importer (minigrad/onnx/load.py), before ``Importer`` among its bases: one method per
    single ONNX op, and ``run`` / ``convert`` reading the formulas of ``find_formulas`` as one layer each."""

    def run(self, model):
        finals, inside = find_formulas(self.onnx, model.graph, self.consts)
        nodes = list(model.graph.node)
        self._formula_layers = {nodes[i].output[0]: found for i, found in finals.items()}
        self._formula_nodes = {nodes[i].output[0] for i in inside if nodes[i].output}
        return super().run(model)

    def convert(self, node):
        key = node.output[0] if node.output else None
        if key in self.__dict__.get("_formula_nodes", ()):     # inside a formula: its last node adds the layer
            return
        found = self.__dict__.get("_formula_layers", {}).get(key)
        if found is None:
            return super().convert(node)
        x, layer = found
        self.add(node, layer, [x])

    def _simple_op(self, node, layer):
        self.attrs(node, set())
        self.add(node, layer, [node.input[0]])

    def op_Elu(self, node):
        self.add(node, ELU(self.attrs(node, {"alpha"}).get("alpha", 1.0)), [node.input[0]])

    def op_Celu(self, node):
        alpha = self.attrs(node, {"alpha"}).get("alpha", 1.0)
        self.require(node, alpha != 0, "alpha", alpha, "not 0")
        self.add(node, CELU(alpha), [node.input[0]])

    def op_Selu(self, node):
        attrs = self.attrs(node, {"alpha", "gamma"})
        for name, value in (("alpha", SELU_ALPHA), ("gamma", SELU_SCALE)):
            found = attrs.get(name, value)
            self.require(node, _close(found, value), name, found, f"only PyTorch's SELU constant {value:.8g}")
        self.add(node, SELU(), [node.input[0]])

    def op_Softsign(self, node):
        self._simple_op(node, Softsign())

    def op_HardSwish(self, node):
        self._simple_op(node, Hardswish())

    def op_Mish(self, node):
        self._simple_op(node, Mish())

    def op_Softplus(self, node):
        """ONNX's Softplus has no threshold: PyTorch's default Softplus() (the two differ by at most e^-20 beyond
        x = 20, less than float32's resolution there)."""
        self._simple_op(node, Softplus())

    def op_HardSigmoid(self, node):
        attrs = self.attrs(node, {"alpha", "beta"})
        alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
        self.require(node, _close(alpha, 1.0 / 6.0), "alpha", alpha, "only 1/6, PyTorch's Hardsigmoid")
        self.require(node, _close(beta, 0.5), "beta", beta, "only 0.5, PyTorch's Hardsigmoid")
        self.add(node, Hardsigmoid(), [node.input[0]])

    def op_Clip(self, node):
        attrs = self.attrs(node, {"min", "max"})
        bounds = []
        for index, name, default in ((1, "min", -math.inf), (2, "max", math.inf)):
            value = self.const(node, index, name, ndim=(0, 1), floating=True)
            if value is not None and value.size != 1:
                raise self.fail(node, f"its {name} of shape {value.shape} is not a single value")
            number = None if value is None else value.reshape(-1)[0]                   # (1,) or () -> a number
            bounds.append(attrs.get(name, default) if value is None else
                          decimal(number) if value.dtype == numpy.float32 else float(number))
        low, high = bounds
        if not high > low:
            raise self.fail(node, f"bounds min={low}, max={high} are not supported (minigrad's Hardtanh needs "
                                  "max > min)")
        self.add(node, ReLU6() if (low, high) == (0.0, 6.0) else Hardtanh(low, high), [node.input[0]])

    def op_PRelu(self, node):
        self.attrs(node, set())
        slope = self.const(node, 1, "slope", required=True, floating=True)
        shape = self.shapes.get(node.input[0])
        if slope.size == 1:
            channels = 1
        else:
            rank = len(shape) if shape is not None else 0
            padded = (1,) * (rank - slope.ndim) + tuple(slope.shape)       # right-aligned, as ONNX broadcasts
            channels = slope.size
            if rank < 2 or slope.ndim > rank or padded[1] != channels or shape[1] not in (None, channels):
                raise self.fail(node, f"a slope of shape {slope.shape} for an input of shape {shape} is not "
                                      "supported (only one value, or one per channel along dimension 1: "
                                      "(C,) for (N, C), (C, 1, 1) for (N, C, H, W))")
        layer = PReLU(channels, dtype=slope.dtype)
        layer.weight.data = to_backend(numpy.array(slope.reshape(-1), dtype=slope.dtype), get_backend())  # -> (C,)
        self.add(node, layer, [node.input[0]], weight_input=1)
