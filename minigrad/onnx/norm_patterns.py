"""The formulas of several ONNX nodes that mg.onnx.load reads back as one GroupNorm or LocalResponseNorm
(norm_ops.py writes them and its importer mixin reads them):

    GroupNorm          Reshape(x, [0, G, -1]) -> InstanceNormalization(ones(G), zeros(G)) -> Reshape(., Shape(x))
                       [-> Mul(., weight)] [-> Add(., bias)]   (ours, and PyTorch's TorchScript exporter's)
    LocalResponseNorm  Div(x, Pow(Add(Conv(Mul(x, x), band), k), beta))                    (ours)

A formula is matched on its structure here (each intermediate value used once, the constants computed from
initializers and Constant nodes only); its constants are checked when its last node is converted.
"""
from __future__ import annotations

__all__ = ["find_norm_formulas"]


# -- formulas read back as one layer -------------------------------------------------------------------------
_STATIC_OPS = ("Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Gather", "Concat")
_INPUTS = {"InstanceNormalization": 3, "Reshape": 2, "Mul": 2, "Add": 2, "Conv": 2, "Pow": 2, "Div": 2}


def _well_formed(node, op) -> bool:
    """``node`` is ``op`` in the default domain with its inputs (all given: a Conv without bias) and an output."""
    return (node.op_type == op and node.domain in ("", "ai.onnx") and len(node.input) == _INPUTS[op]
            and all(node.input) and len(node.output) >= 1 and bool(node.output[0]))


class _Walk:
    """Producers and consumers of an ONNX graph's values, for matching formulas."""

    def __init__(self, graph, initializers):
        self.nodes, self.initializers = list(graph.node), initializers
        self.producer = {out: node for node in self.nodes for out in node.output if out}
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}

    def static(self, name, depth=0) -> bool:
        """Whether ``name`` is computed from constants only (a Shape counts: the importer folds it)."""
        node = self.producer.get(name)
        if name in self.initializers or node is not None and node.op_type == "Shape":
            return True
        return node is not None and depth < 8 and node.op_type in _STATIC_OPS and all(
            self.static(n, depth + 1) for n in node.input if n)

    def made_by(self, name, op):
        """The node computing ``name`` with ``op`` when ``name`` has no other use, else None."""
        node = self.producer.get(name)
        if node is None or not _well_formed(node, op) or name in self.outputs or len(self.consumers.get(name, [])) != 1:
            return None
        return node

    def only_consumer(self, name, op):
        users = self.consumers.get(name, [])
        if name in self.outputs or len(users) != 1 or not _well_formed(users[0], op):
            return None
        return users[0]

    def affine_step(self, node, op):
        """The only consumer of node's output if it is ``op`` with a static second operand, else None."""
        follower = self.only_consumer(node.output[0], op)
        if follower is None:
            return None
        other = [n for n in follower.input if n != node.output[0]]
        return follower if len(other) == 1 and self.static(other[0]) else None

    def group_norm(self, norm):
        """Reshape -> InstanceNormalization ``norm`` -> Reshape [-> Mul] [-> Add], by role, or None."""
        reshape = self.made_by(norm.input[0], "Reshape") if _well_formed(norm, "InstanceNormalization") else None
        if reshape is None or self.static(reshape.input[0]) or not self.static(reshape.input[1]):
            return None
        back = self.only_consumer(norm.output[0], "Reshape")
        if back is None or back.input[0] != norm.output[0] or not all(self.static(n) for n in (
                back.input[1], norm.input[1], norm.input[2])):
            return None
        found, last = {"kind": "group_norm", "x": reshape.input[0], "reshape": reshape, "norm": norm,
                       "back": back}, back
        for role, op in (("mul", "Mul"), ("add", "Add")):
            step = self.affine_step(last, op)
            if step is not None:
                found[role], last = step, step
        return found

    def lrn(self, div):
        """Div(x, Pow(Add(Conv(Mul(x, x), band), k), beta)) ending at ``div``, by role, or None."""
        if not _well_formed(div, "Div"):
            return None
        x, power = div.input[0], self.made_by(div.input[1], "Pow")
        base = self.made_by(power.input[0], "Add") if power is not None and self.static(power.input[1]) else None
        if base is None:
            return None
        window = next((self.made_by(n, "Conv") for n in base.input if self.made_by(n, "Conv") is not None), None)
        other = [n for n in base.input if window is not None and n != window.output[0]]
        if window is None or len(other) != 1 or not self.static(window.input[1]) or not self.static(other[0]):
            return None
        square = self.made_by(window.input[0], "Mul")
        if square is None or list(square.input) != [x, x]:
            return None
        return {"kind": "lrn", "x": x, "square": square, "window": window, "base": base, "power": power,
                "div": div}


def find_norm_formulas(graph, initializers):
    """The GroupNorm and LocalResponseNorm formulas of ``graph`` -> ({output of a formula's last node: its nodes
    by role, with "kind" and "x" the input's name}, outputs of the formulas' other nodes)."""
    walk = _Walk(graph, initializers)
    finals, inside = {}, set()
    for node in walk.nodes:
        try:
            found = (walk.group_norm(node) if node.op_type == "InstanceNormalization" else
                     walk.lrn(node) if node.op_type == "Div" else None)
        except (ValueError, TypeError, LookupError, AttributeError):   # a corrupted node: no formula here; the
            found = None                            # node-by-node import then reads it or names it in an OnnxError
        if found is None:
            continue
        members = [n for role, n in found.items() if role not in ("kind", "x")]
        last = found.get("add") or found.get("mul") or found.get("back") or found.get("div")
        finals[last.output[0]] = found
        inside.update(n.output[0] for n in members if n is not last)
    return finals, inside
