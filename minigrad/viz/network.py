"""The boxes and arrows of a network: one box per layer use, with its output shape and parameter count.

    picture = graph(model, (1, 1, 28, 28))       # an SvgPicture: .svg, .save("net.svg"), inline in Jupyter
    boxes, arrows = network_of(model, (1, 1, 28, 28))

The shapes come from ``nn.summary`` (the mechanism of ``model.summary``: one forward pass on zeros under
``no_grad``, every layer in eval mode, nothing of the model changed). Its top-level rows are the model's
layer uses in the order they ran:

- a ``Graph``: one box per node (a layer shared by two nodes gets two boxes), arrows from each input value
  to the node that consumes it (a residual connection is one more arrow), plus a box per graph input and
  per graph output;
- a ``Sequential`` (or any other layer with sub-layers): its direct sub-layers in the order they ran, as a
  chain from the input box to the output box;
- a lone layer: one box.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..nn.graph import Graph
from ..nn.summary import summary
from .picture import SvgPicture
from .svg import draw_svg

__all__ = ["Box", "GraphPicture", "graph", "network_of", "shape_text"]


@dataclass
class Box:
    """One box of the drawing. kind: "layer" (a layer use), "input" or "output" (a graph's inputs/outputs).
    params: parameter count, or None for the second and later uses of a shared layer (``shared_with``)."""

    key: str
    kind: str
    name: str
    type_name: str = ""
    shape: str = ""
    params: int | None = 0
    shared_with: str = ""


def shape_text(shape) -> str:
    """(1, 6, 28, 28) -> "(1, 6, 28, 28)"; a list of shapes (several outputs) -> "(..), (..)"."""
    if isinstance(shape, list):
        return ", ".join(shape_text(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")" if isinstance(shape, tuple) else str(shape)


def _input_shapes(input_shape) -> list:
    multi = isinstance(input_shape, list) or (
        isinstance(input_shape, tuple) and input_shape and isinstance(input_shape[0], (tuple, list)))
    return [tuple(s) for s in input_shape] if multi else [tuple(input_shape)]


def network_of(model, input_shape, where: str = "mg.viz.graph") -> tuple[list[Box], list[tuple[str, str]]]:
    """(boxes in a topological order, arrows as (from key, to key)) of ``model`` run on ``input_shape``.

    input_shape: (N, C, H, W) or any shape the model takes; a list of shapes for a graph with several inputs.
    """
    if not hasattr(model, "parameters") or not hasattr(model, "modules"):
        raise TypeError(f"{where}: expected a minigrad layer or model (Sequential, Graph, ...), "
                        f"got {type(model).__name__}")
    result = summary(model, input_shape, verbose=False)
    top = [row for row in result.rows if row[0] == 0]
    shapes = _input_shapes(input_shape)
    if isinstance(model, Graph):
        return _graph_boxes(model, top, shapes, result.output_shape, where)
    names = [name for name, _ in model.named_children()]
    boxes = [Box("in:input", "input", "input", shape=shape_text(shapes[0] if len(shapes) == 1 else shapes))]
    seen = {}
    for index, (_, name, type_name, shape, params) in enumerate(top):
        label = names[index] if len(top) == len(names) else name
        box = Box(f"n{index}", "layer", label, type_name, shape_text(shape), params)
        if params is None:
            box.shared_with = seen.get(name, "")
        seen.setdefault(name, label)
        boxes.append(box)
    boxes.append(Box("out:output", "output", "output", shape=shape_text(result.output_shape)))
    arrows = [(a.key, b.key) for a, b in zip(boxes, boxes[1:])]
    return boxes, arrows


def _graph_boxes(graph, top, shapes, output_shape, where):
    nodes = graph.nodes
    if len(top) != len(nodes):
        raise RuntimeError(f"{where}: the graph has {len(nodes)} nodes but its forward ran {len(top)} top-level "
                           "layer calls; cannot match the shapes to the nodes")
    boxes, arrows, key_of = [], [], {}
    for name, shape in zip(graph.input_names, shapes):
        key_of[name] = f"in:{name}"
        boxes.append(Box(key_of[name], "input", name, shape=shape_text(shape)))
    first_node = {}
    for index, ((name, layer, inputs), row) in enumerate(zip(nodes, top)):
        key_of[name] = f"n{index}"
        box = Box(key_of[name], "layer", name, type(layer).__name__, shape_text(row[3]), row[4])
        if id(layer) in first_node:
            box.params, box.shared_with = None, first_node[id(layer)]
        first_node.setdefault(id(layer), name)
        boxes.append(box)
        arrows += [(key_of[value], box.key) for value in inputs]
    outputs = graph.output_names
    out_shapes = output_shape if len(outputs) > 1 else [output_shape]
    for name, shape in zip(outputs, out_shapes):
        boxes.append(Box(f"out:{name}", "output", "output" if len(outputs) == 1 else f"output {name}",
                         shape=shape_text(shape)))
        arrows.append((key_of[name], f"out:{name}"))
    return boxes, arrows


def graph(model, input_shape) -> SvgPicture:
    """A drawing of ``model``: one box per layer use, labelled with its node name, class, output shape for
    ``input_shape`` (e.g. (1, 1, 28, 28): N, C, H, W) and parameter count, joined by arrows in the order data
    flows, top to bottom; parallel branches side by side. Returns an SvgPicture (``.svg``, ``.save``)."""
    boxes, arrows = network_of(model, input_shape)
    total = sum(b.params or 0 for b in boxes)
    inputs = ", ".join(b.shape for b in boxes if b.kind == "input")
    title = f"{type(model).__name__}: input {inputs}, {total:,} parameters"
    return GraphPicture(draw_svg(boxes, arrows, title), title, boxes, arrows)


class GraphPicture(SvgPicture):
    """The SVG of a network (``.svg``), with what it shows: ``.boxes`` (network.Box) and ``.arrows``."""

    def __init__(self, svg, title, boxes, arrows):
        super().__init__(svg, title)
        self.boxes, self.arrows = boxes, arrows
