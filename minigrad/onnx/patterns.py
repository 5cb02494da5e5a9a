"""Formulas of several ONNX nodes that mg.onnx.load reads back as one layer: GELU below opset 20.

ONNX has the ``Gelu`` op from opset 20 only; below it, mg.onnx.export (and PyTorch's TorchScript
exporter) write GELU as its formula of elementwise nodes:

    approximate='none'   Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)                 x/2 (1 + erf(x / sqrt 2))
    approximate='tanh'   Mul(Mul(x, Add(Tanh(Mul(Add(x, Mul(Mul(Mul(x, x), x), 0.044715)),
                                             sqrt(2/pi))), 1)), 0.5)     x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

PyTorch's dynamo exporter writes the same functions as ``Mul(x, Mul(0.5, Add(Erf(Div(x, sqrt 2)), 1)))`` and with
``Pow(x, 3)`` for the cube: the product of x, 0.5 and (1 + t) is read in any grouping, x / sqrt 2 also as
x * (1 / sqrt 2), x^3 as Pow(x, 3), (x x) x or x (x x). The two operands of a Mul or Add may come in either
order. A formula is recognised only when every
constant is that scalar (to float32 precision) and every intermediate value feeds only the next node
of the formula; anything else is left to the node-by-node import, which refuses what it cannot read
(an ``Erf``, a ``Div``, a Mul by a constant), so a near-GELU never becomes a GELU silently.
"""
from __future__ import annotations

import math

import numpy

__all__ = ["find_gelus", "FORMULA_OPS", "FORMULA_HINT"]

FORMULA_OPS = ("Erf", "Div", "Pow")      # ops read only as part of a formula
FORMULA_HINT = ("an Erf, Div or Pow is read only inside GELU's formula x/2 (1 + erf(x / sqrt 2)) or its tanh "
                "form, with exactly its constants and no other use of its intermediate values")

_SQRT2, _SQRT_2_OVER_PI, _CUBIC = math.sqrt(2.0), math.sqrt(2.0 / math.pi), 0.044715
_FLOAT32_RTOL = 1e-6      # a constant written in float32 is within 6e-8 of its value


class _Formulas:
    """The producer of every value, its number of uses, and the scalar value of every constant."""

    def __init__(self, onnx, graph, consts):
        self.onnx, self.consts = onnx, consts
        self.producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
        self.nodes = list(graph.node)
        self.uses = {}
        for name in [n for node in graph.node for n in node.input] + [o.name for o in graph.output]:
            self.uses[name] = self.uses.get(name, 0) + 1

    def scalar(self, name):
        """The value of a one-element float constant (initializer or Constant node), else None."""
        array = self.consts.get(name)
        index = self.producer.get(name)
        if array is None and index is not None and self.nodes[index].op_type == "Constant":
            attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in self.nodes[index].attribute}
            array = (self.onnx.numpy_helper.to_array(attrs["value"]) if "value" in attrs
                     else attrs.get("value_float"))
        array = None if array is None else numpy.asarray(array)
        if array is None or array.size != 1 or array.dtype.kind != "f":
            return None
        return float(array.reshape(-1)[0])                              # (1,) or () -> scalar

    def is_const(self, name, value) -> bool:
        found = self.scalar(name)
        return found is not None and abs(found - value) <= _FLOAT32_RTOL * abs(value)

    def made_by(self, name, op):
        """The index of the node that computes ``name`` with ``op``, if ``name`` is used only once."""
        index = self.producer.get(name)
        if index is None or self.uses.get(name) != 1:
            return None
        node = self.nodes[index]
        ok = (node.op_type == op and node.domain in ("", "ai.onnx") and not node.attribute
              and len(node.input) == (1 if op in ("Erf", "Tanh") else 2))
        return index if ok else None

    def other(self, index, operand):
        """The operand of binary node ``index`` that is not ``operand`` (None if ``operand`` is not one)."""
        a, b = self.nodes[index].input
        return b if a == operand else a if b == operand else None

    def other_than_const(self, index, value):
        """The operand of binary node ``index`` beside the scalar constant ``value`` (None if no such)."""
        a, b = self.nodes[index].input
        return a if self.is_const(b, value) else b if self.is_const(a, value) else None

    def is_number(self, name, value) -> bool:
        """Like is_const, for an exponent: a one-element float or integer constant equal to ``value``."""
        array = self.consts.get(name)
        if array is None or array.size != 1 or array.dtype.kind not in "fiu":
            return self.is_const(name, value)
        return float(array.reshape(-1)[0]) == value

    def _factors(self, final):
        """The three factors of the product ``final`` computes with two single-use Muls, and their indices."""
        leaves, indices = [], [final]
        for name in self.nodes[final].input:
            inner = self.made_by(name, "Mul")
            if inner is None:
                leaves.append(name)
            else:
                leaves.extend(self.nodes[inner].input)
                indices.append(inner)
        return leaves, indices

    def gelu(self, final):
        """(x, approximate, indices of the formula's nodes) if node ``final`` ends a GELU, else None."""
        node = self.nodes[final]
        if node.op_type != "Mul" or node.domain not in ("", "ai.onnx") or len(node.input) != 2 or node.attribute:
            return None
        leaves, indices = self._factors(final)                                    # x, 0.5 and (1 + t)
        if len(leaves) != 3:
            return None
        for half in [i for i, name in enumerate(leaves) if self.is_const(name, 0.5)]:
            for plus in [i for i in range(3) if i != half]:
                x = leaves[3 - half - plus]
                one_plus = self.made_by(leaves[plus], "Add")
                if one_plus is None or x in self.consts or self.scalar(x) is not None:
                    continue
                t_name = self.other_than_const(one_plus, 1.0)
                erf, tanh = self.made_by(t_name, "Erf"), self.made_by(t_name, "Tanh")
                if erf is not None:
                    scaled = self._over_sqrt2(self.nodes[erf].input[0], x)
                    if scaled is not None:
                        return x, "none", indices + [one_plus, erf, scaled]
                elif tanh is not None:
                    inner = self._tanh_inner(self.nodes[tanh].input[0], x)
                    if inner is not None:
                        return x, "tanh", indices + [one_plus, tanh] + inner
        return None

    def _over_sqrt2(self, name, x):
        """The index of the node computing x / sqrt 2 (a Div, or a Mul by 1 / sqrt 2) as ``name``, else None."""
        div = self.made_by(name, "Div")
        if div is not None:
            ok = list(self.nodes[div].input[:1]) == [x] and self.is_const(self.nodes[div].input[1], _SQRT2)
            return div if ok else None
        mul = self.made_by(name, "Mul")
        if mul is not None and self.other_than_const(mul, 1.0 / _SQRT2) == x:
            return mul
        return None

    def _tanh_inner(self, name, x):
        """Indices of the nodes of sqrt(2/pi) (x + 0.044715 x^3) computing ``name``, else None."""
        scaled = self.made_by(name, "Mul")
        total = None if scaled is None else self.made_by(self.other_than_const(scaled, _SQRT_2_OVER_PI), "Add")
        kappa = None if total is None else self.made_by(self.other(total, x), "Mul")
        cube_name = None if kappa is None else self.other_than_const(kappa, _CUBIC)
        if cube_name is None:
            return None
        power = self.made_by(cube_name, "Pow")
        if power is not None:
            ok = self.nodes[power].input[0] == x and self.is_number(self.nodes[power].input[1], 3.0)
            return [scaled, total, kappa, power] if ok else None
        cube = self.made_by(cube_name, "Mul")
        square = None if cube is None else self.made_by(self.other(cube, x), "Mul")   # x^3 = (x x) x
        if square is None or list(self.nodes[square].input) != [x, x]:
            return None
        return [scaled, total, kappa, cube, square]


def find_gelus(onnx, graph, consts):
    """The GELU formulas of ``graph`` -> ({final node index: (x, approximate)}, indices of their other nodes).

    ``consts``: name -> NumPy array of the initializers. The final node (the last Mul) stands for the
    whole formula; the other nodes are skipped.
    """
    formulas = _Formulas(onnx, graph, consts)
    finals, inside = {}, set()
    for index in reversed(range(len(formulas.nodes))):
        if index in inside:
            continue
        found = formulas.gelu(index)
        if found is not None:
            x, approximate, indices = found
            finals[index] = (x, approximate)
            inside.update(indices[1:])
    return finals, inside
