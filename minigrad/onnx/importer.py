"""The ONNX graph walk behind mg.onnx.load: constants, shape arithmetic, names, attribute checks.

Initializers and Constant nodes are NumPy arrays; a node whose inputs are all constants (Identity,
Transpose, Cast, Gather, Unsqueeze, Squeeze, Concat, Reshape) is evaluated here. ``Shape(x)`` gives an
array of ``Dim(x, i)`` markers, so the Shape -> Gather -> Unsqueeze -> Concat chain of
``x.view(x.size(0), -1)`` evaluates to ``[Dim(x, 0), -1]``, which the Reshape handler reads as a flatten.
A GELU written as its formula (below opset 20) becomes one GELU layer (patterns.py). Every other node
goes to the subclass's ``op_<OpType>`` method, which adds one Graph node.
"""
from __future__ import annotations

import hashlib

import numpy

from ..nn import GELU, Graph
from .checks import read_tensor
from .common import OnnxError, node_name
from .patterns import FORMULA_HINT, FORMULA_OPS, find_gelus

__all__ = ["Importer", "Dim", "decimal", "UNFORESEEN"]

# What a corrupted file can still provoke in NumPy or a layer constructor after every check (IndexError and
# KeyError are LookupErrors, ZeroDivisionError and OverflowError ArithmeticErrors, RecursionError a RuntimeError):
# turned into an OnnxError naming the node (Importer.run) or the file (load).
UNFORESEEN = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RuntimeError)
# Ops whose output has their first input's type and shape but that onnx's shape inference leaves without one
# (onnx 1.23 has no inference function for GroupNormalization): the importer gives them their input's.
SAME_SHAPE_OPS = ("GroupNormalization",)


def decimal(value: float) -> float:
    """A float attribute (stored as float32) as the shortest decimal that gives it back: 0.9f -> 0.9."""
    return float(str(numpy.float32(value)))


class Dim:
    """Dimension ``index`` of the runtime value ``value`` (what Shape(x)[i] evaluates to)."""
    __slots__ = ("value", "index")

    def __init__(self, value, index):
        self.value, self.index = value, index


class Importer:
    """The walk over an ONNX graph: constants and shapes folded here, every other node handed to
    ``self.op_<OpType>(node)`` (defined by the subclass in minigrad/onnx/load.py)."""

    def __init__(self, onnx, model, where):
        self.onnx, self.where, self.graph = onnx, where, Graph()
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.consts, self.source = {}, {}        # name -> numpy array; name -> the initializer it came from
        for init in model.graph.initializer:
            self.consts[init.name] = read_tensor(onnx, init, f"{where}: initializer '{init.name}'")
            self.source[init.name] = init.name
        self.shapes = {}                          # value name -> [int | None, ...] from shape inference
        for info in self._inferred(model):
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
                self.shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None
                                          for d in info.type.tensor_type.shape.dim]
        self.values, self.pending_pad, self.layers_by_value, self.used_names = {}, {}, {}, set()
        self.uses, self.shared = {}, {}
        for node in model.graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
        for out in model.graph.output:
            self.uses[out.name] = self.uses.get(out.name, 0) + 1

    def _inferred(self, model):
        """The shapes the graph computes from its inputs' declarations: the file's value_info and output shapes
        are left out (a wrong one must not decide how a node is read), onnx's inference fills them in."""
        bare = self.onnx.ModelProto()
        bare.CopyFrom(model)
        del bare.graph.value_info[:]
        for out in bare.graph.output:
            out.type.tensor_type.ClearField("shape")
        keeping = [n for n in bare.graph.node if n.op_type in SAME_SHAPE_OPS and n.domain in ("", "ai.onnx")
                   and len(n.input) and len(n.output) and n.input[0] and n.output[0]]
        for _ in range(len(keeping) + 1):       # each such node's output added once: a chain of them ends
            try:
                inferred = self.onnx.shape_inference.infer_shapes(bare, data_prop=True)
            except Exception as exc:      # InferenceError: the graph's own shapes contradict each other
                raise OnnxError(f"{self.where}: the graph's shapes cannot be inferred ({type(exc).__name__}: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}); the file is "
                                "corrupted or not a valid model") from exc
            infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
            known = {i.name: i for i in infos if i.type.HasField("tensor_type")
                     and i.type.tensor_type.HasField("shape")}
            missing = [n for n in keeping if n.output[0] not in known and n.input[0] in known]
            keeping = [n for n in keeping if all(n is not m for m in missing)]
            if not missing:
                break
            for node in missing:          # its output: its input's type and shape, then infer again from there
                info = bare.graph.value_info.add()
                info.CopyFrom(known[node.input[0]])
                info.name = node.output[0]
        return infos

    # -- errors and attributes ------------------------------------------------------------------
    def fail(self, node, reason):
        label = node.name or (node.output[0] if len(node.output) else "")
        return OnnxError(f"{self.where}: node '{label}' ({node.op_type}): {reason}")

    def attrs(self, node, allowed):
        """The node's attributes as Python values; an attribute not in ``allowed`` raises OnnxError."""
        found = {}
        for attr in node.attribute:
            value = self.onnx.helper.get_attribute_value(attr)
            found[attr.name] = (value.decode() if isinstance(value, bytes) else
                                decimal(value) if isinstance(value, float) else value)
            if attr.name not in allowed:
                raise self.fail(node, f"attribute '{attr.name}' = {found[attr.name]!r} is not supported "
                                      f"(supported attributes of {node.op_type}: {sorted(allowed) or 'none'})")
        return found

    def require(self, node, ok, attr, value, why):
        if not ok:
            raise self.fail(node, f"attribute '{attr}' = {value!r} is not supported ({why})")

    def const(self, node, index, what, required=False, ndim=None, floating=False):
        """Input ``index`` as a constant (None if absent and not ``required``), of rank ``ndim`` (an int or a
        tuple of ranks) and a floating-point dtype if ``floating``; OnnxError naming the node otherwise."""
        name = node.input[index] if len(node.input) > index else ""
        if name == "":
            if required:
                raise self.fail(node, f"its {what} (input {index}) is missing; the file is corrupted")
            return None
        if name not in self.consts:
            raise self.fail(node, f"its {what} ('{name}') is computed at run time; only a constant "
                                  "(an initializer) is supported")
        array = self.consts[name]
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        if ranks is not None and array.ndim not in ranks:
            raise self.fail(node, f"its {what} '{name}' has shape {array.shape}; expected rank "
                                  f"{' or '.join(map(str, ranks))}")
        if array.dtype == object and (floating or ndim is not None):
            raise self.fail(node, f"its {what} '{name}' is a shape computed at run time; only a constant is supported")
        if floating and array.dtype not in (numpy.float32, numpy.float64):
            raise self.fail(node, f"its {what} '{name}' has dtype {array.dtype}; minigrad layers take float32 or "
                                  "float64 parameters (export the model in one of them)")
        return array

    def value(self, node, name):
        if name in self.pending_pad:
            raise self.fail(node, f"its input '{name}' comes from a Pad; a Pad is supported only right before a Conv")
        if name not in self.values:
            raise self.fail(node, f"input '{name}' is a constant or unknown value; only computed inputs are "
                                  "supported here")
        return self.values[name]

    # -- naming and adding ---------------------------------------------------------------------
    def name_for(self, node, weight_input=None):
        """Node name from the weight's initializer name ('fc.weight' -> 'fc'), else from the ONNX node name."""
        source = self.source.get(node.input[weight_input]) if weight_input is not None else None
        if source and "::" not in source:
            base = source.rsplit(".", 1)[0] if "." in source else source
        else:
            parts = [p for p in (node.name or "").split("/") if p]
            base = parts[-2] if len(parts) >= 2 else (parts[0] if parts else node.op_type.lower())
        base = node_name(base)
        name, i = base, 1
        while name in self.used_names:
            name, i = f"{base}_{i}", i + 1
        self.used_names.add(name)
        return name

    def add(self, node, layer, inputs, weight_input=None):
        if weight_input is not None:      # nodes reading the same initializers, same attributes: one layer
            key = (node.op_type, tuple(self.const_key(n) for n in node.input[1:]), tuple(
                (a.name, repr(self.onnx.helper.get_attribute_value(a))) for a in node.attribute))
            layer = self.shared.setdefault(key, layer)
        value = self.graph.add(self.name_for(node, weight_input), layer, *[self.value(node, n) for n in inputs])
        self.values[node.output[0]] = value
        self.layers_by_value[node.output[0]] = layer
        return layer

    def const_key(self, name):
        """What identifies a constant input: its initializer, shape and bytes (a Transpose of it differs)."""
        if name not in self.consts:
            return name
        array = numpy.ascontiguousarray(self.consts[name])
        return (self.source.get(name, name), array.shape, hashlib.sha1(array.tobytes()).hexdigest())

    def concat_axis(self, node, attrs, rank):
        """Concat's axis (default 1 below opset 4, required from 4), checked against the inputs' rank."""
        axis = attrs.get("axis", 1 if self.opset < 4 else None)
        if axis is None:
            raise self.fail(node, "attribute 'axis' is missing (required from opset 4); the file is corrupted")
        if rank is None or not -rank <= axis < rank:
            raise self.fail(node, f"attribute 'axis' = {axis} is not supported for inputs of rank "
                                  f"{rank if rank is not None else 'unknown'} (expected an axis of the inputs)")
        return axis % rank

    def check_outputs(self, node, count=1):
        extra = [o for o in node.output[count:] if o and self.uses.get(o)]
        if extra:
            raise self.fail(node, f"its extra output(s) {extra} are used; only the first output is supported")

    # -- the walk ------------------------------------------------------------------------------
    def run(self, model):
        for inp in model.graph.input:
            if inp.name not in self.consts:
                self.used_names.add(node_name(inp.name))
                self.values[inp.name] = self.graph.input(node_name(inp.name))
        gelus, inside = find_gelus(self.onnx, model.graph, self.consts)     # GELU written as its formula
        for index, node in enumerate(model.graph.node):
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"op domain '{node.domain}' is not supported (only the default ONNX domain)")
            if index in inside:                   # a node inside a GELU formula: its last Mul adds the layer
                continue
            try:                                  # the last-resort net, around everything done for this node:
                if index in gelus:                # the mixins' convert overrides (before and after their super()
                    x, approximate = gelus[index]   # call) as well as Importer.convert and the op_ handlers
                    self.add(node, GELU(approximate), [x])
                else:
                    self.convert(node)
            except OnnxError:
                raise
            except UNFORESEEN as exc:
                raise self.fail(node, f"cannot be read as a minigrad layer ({type(exc).__name__}: {exc}); the file "
                                      "is corrupted or uses a form mg.onnx.load does not support") from exc
        outputs = []
        for out in model.graph.output:
            if out.name not in self.values:
                raise OnnxError(f"{self.where}: graph output '{out.name}' is a constant or comes from a Pad; "
                                "only computed outputs are supported")
            outputs.append(self.values[out.name])
        self.graph.output(*outputs)
        return self.graph

    def convert(self, node):
        """Fold or convert one node. The checks of each op raise OnnxError naming the node; as a last resort,
        anything else a corrupted file still provokes (NumPy's or a layer's ValueError, ...) becomes one too:
        ``run`` catches it around the whole ``self.convert(node)`` call, so a mixin that overrides ``convert``
        (and does its own work before or after ``super().convert``) is inside that net without a net of its own."""
        if self.fold(node):
            return
        handler = getattr(self, f"op_{node.op_type}", None)
        if handler is None:
            hint = f"; {FORMULA_HINT}" if node.op_type in FORMULA_OPS else ""
            raise self.fail(node, f"op {node.op_type} is not supported by mg.onnx.load (supported: "
                                  f"{', '.join(sorted(n[3:] for n in dir(self) if n.startswith('op_')))}){hint}")
        handler(node)

    def fold(self, node) -> bool:
        """Evaluate a node whose inputs are all constants (or shapes); True if it was one."""
        op, ins = node.op_type, [n for n in node.input if n]
        if op == "Constant":
            attrs = self.attrs(node, {"value", "value_float", "value_floats", "value_int", "value_ints"})
            if len(attrs) != 1:
                raise self.fail(node, f"has attributes {sorted(attrs)}; a Constant has exactly one value")
            (key, value), = attrs.items()
            self.consts[node.output[0]] = (read_tensor(self.onnx, value, f"{self.where}: node '{node.name}' "
                                                       "(Constant): attribute 'value'") if key == "value"
                                           else numpy.asarray(value))
            return True
        if op == "Shape" and len(ins) == 1 and ins[0] in self.values and not node.attribute:
            rank = len(self.shapes.get(ins[0]) or [])
            if not rank:
                raise self.fail(node, f"the rank of '{ins[0]}' is unknown")
            self.consts[node.output[0]] = numpy.array([Dim(ins[0], i) for i in range(rank)], dtype=object)
            return True
        if not ins or not all(n in self.consts for n in ins):
            return False
        c = [self.consts[n] for n in ins]
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        integer = {"Gather": [1], "Unsqueeze": [1], "Squeeze": [1], "Reshape": [1]}.get(op, [])
        if any(i < len(c) and (c[i].dtype.kind not in "iu" or (op != "Gather" and c[i].ndim != 1)) for i in integer):
            raise self.fail(node, "its indices, axes or target shape are not a constant integer tensor (1-D for "
                                  "axes and shapes)")
        if any(not isinstance(a, int) for a in (attrs.get("axes") or [])):
            raise self.fail(node, f"attribute 'axes' = {attrs['axes']!r} is not a list of integers")
        if op == "Identity" or op == "Cast" and c[0].dtype == object:
            result = c[0]
        elif op == "Cast":
            to = attrs.get("to")
            if not isinstance(to, int) or to not in self.onnx.TensorProto.DataType.values() or to in (0, 8, 16):
                raise self.fail(node, f"attribute 'to' = {to!r} is not supported (a numeric ONNX data type)")
            result = c[0].astype(self.onnx.helper.tensor_dtype_to_np_dtype(to))
        elif op == "Transpose":
            result = numpy.transpose(c[0], attrs.get("perm"))          # axes permuted by perm (default: reversed)
        elif op == "Gather":
            axis = attrs.get("axis", 0)
            if not -c[0].ndim <= axis < c[0].ndim or c[1].size and not (-c[0].shape[axis] <= c[1].min()
                                                                        and c[1].max() < c[0].shape[axis]):
                raise self.fail(node, f"attribute 'axis' = {axis} or indices {c[1].tolist()} out of range for a "
                                      f"constant of shape {c[0].shape}")
            result = numpy.take(c[0], c[1].astype(numpy.int64), axis=axis)
        elif op in ("Unsqueeze", "Squeeze"):
            axes = attrs.get("axes", c[1].tolist() if len(c) > 1 else None)
            rank = c[0].ndim + (len(axes) if op == "Unsqueeze" else 0)
            if axes is not None and (any(not -rank <= a < rank for a in axes)
                                     or len({a % rank for a in axes}) < len(axes)):
                raise self.fail(node, f"axes {axes} are not distinct axes of a rank-{rank} tensor")
            result = (numpy.expand_dims(c[0], tuple(axes)) if op == "Unsqueeze"         # a 1 inserted at each axis
                      else numpy.squeeze(c[0], None if axes is None else tuple(axes)))  # each axis (size 1) removed
        elif op == "Concat":
            result = numpy.concatenate(c, axis=self.concat_axis(node, attrs, c[0].ndim))
        elif op == "Reshape" and c[0].dtype != object and c[1].ndim == 1 and not node.attribute:
            target = c[1].astype(numpy.int64).tolist()
            if any(d == 0 for d in target[c[0].ndim:]) or any(d < -1 for d in target) or target.count(-1) > 1:
                raise self.fail(node, f"target shape {target} is not valid for a constant of shape {c[0].shape}")
            target = [d if d != 0 else c[0].shape[i] for i, d in enumerate(target)]
            result = c[0].reshape(target)   # (...) -> the constant target shape (0: that dimension kept)
        else:
            raise self.fail(node, f"op {op} on constants is not supported")
        if op in ("Gather", "Unsqueeze", "Squeeze", "Transpose") and not _known_attrs(attrs, op):
            raise self.fail(node, f"attributes {sorted(attrs)} are not supported on constants")
        self.consts[node.output[0]] = numpy.asarray(result)
        if op in ("Identity", "Transpose", "Cast") and ins[0] in self.source:
            self.source[node.output[0]] = self.source[ins[0]]
        return True


def _known_attrs(attrs, op):
    return set(attrs) <= {"Gather": {"axis"}, "Unsqueeze": {"axes"}, "Squeeze": {"axes"}, "Transpose": {"perm"}}[op]
