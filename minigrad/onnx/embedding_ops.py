"""ONNX export and import of Embedding (nn/embedding.py).

Export (``EXPORTERS``, merged into export.py's table): ``Gather(weight, indices, axis=0)``, the weight an
initializer named by its state-dict name; the model's input is then the integer indices (int64 or int32, as
the example input), any shape (*) -> (*, embedding_dim). padding_idx and scale_grad_by_freq shape only the
gradient: the exported inference graph is the same. (The losses have no ONNX form: mg.onnx.export writes
models, not criteria.)

Import (``EmbeddingOps``, a mixin of the importer in load.py): a Gather whose data is a constant 2-D float table
and whose indices are computed (a graph input, or a value of the graph) along axis 0 becomes a trainable
Embedding holding a copy of the table; Gathers reading the same table share one Embedding (tied weights). A
Gather whose inputs are all constants is folded by importer.py as before; any other Gather (computed data,
another axis, a table not 2-D) raises OnnxError naming the node. ONNX counts negative indices from the end;
Embedding, as PyTorch's, refuses them when the graph runs (IndexError naming the node).
"""
from __future__ import annotations

import numpy

from ..nn.embedding import Embedding
from ..runtime.backend import get_backend, to_backend

__all__ = ["EXPORTERS", "EmbeddingOps"]


def _tag(layer) -> str:
    """The node name export.py gives a layer: its qualified name, else its class name."""
    return layer.name or type(layer).__name__


def _export_embedding(emitter, layer, names, arrays, y):
    """indices (*) -> Gather(weight, indices, axis=0): (*, embedding_dim)."""
    return emitter.node("Gather", [emitter.state(layer.weight, layer, "weight"), names[0]], _tag(layer), axis=0)


EXPORTERS = {Embedding: _export_embedding}


class EmbeddingOps:
    """Mixed into the importer (minigrad/onnx/load.py): Gather from a constant table -> Embedding."""

    def op_Gather(self, node):
        attrs = self.attrs(node, {"axis"})
        self.check_outputs(node)
        if len(node.input) != 2 or not node.input[0] or not node.input[1]:
            raise self.fail(node, f"expected 2 inputs (data, indices), got {list(node.input)}; the file is corrupted")
        data, indices = node.input
        if data not in self.consts:
            raise self.fail(node, f"its data ('{data}') is computed at run time; only a Gather of rows from a "
                                  "constant table (an Embedding) is supported")
        table = self.const(node, 0, "data (the embedding table)", required=True, ndim=2, floating=True)
        axis = attrs.get("axis", 0)
        self.require(node, axis in (0, -2), "axis", axis, "only 0: rows of the table, as an Embedding reads them")
        rows, dim = table.shape
        if rows == 0 or dim == 0:
            raise self.fail(node, f"its table of shape {table.shape} is empty; an Embedding has at least one row "
                                  "and one column")
        key = ("Gather", self.const_key(data))           # one Embedding per table: tied uses share it
        layer = self.shared.get(key)
        if layer is None:
            weight = to_backend(numpy.array(table, order="C"), get_backend())
            layer = self.shared[key] = Embedding.from_pretrained(weight, freeze=False)
        self.value(node, indices)                        # a computed value (raises for a constant or a Pad)
        self.add(node, layer, [indices], weight_input=0)
