"""Graph: a directed acyclic graph of layers (residual connections, branches, concat, shared layers).

    g = Graph()
    x = g.input("x")
    h = g.add("conv1", Conv2d(16, 16, 3, padding=1), x)
    h = g.add("relu1", ReLU(), h)
    y = g.add("sum", Add(), h, x)
    g.output(y)

A node may only consume values that already exist, so insertion order is a topological order
and cycles cannot be built.
forward(*inputs):  runs the nodes in insertion order; a value is freed after its last use
                   (layers cache what their backward needs, the graph keeps no activations).
                   A ReLU node read only by the next node, a MaxPool2d, runs as pool, then ReLU
                   (the same bits, the ReLU on the pooled elements: nn/fusion.py).
backward(grads):   runs the nodes in reverse; where a value fans out to several nodes its
                   gradients are summed; a node whose output gets no gradient is skipped.
A layer used at several nodes (shared) keeps one set of parameters; the graph snapshots its
cache after each use (Layer.save_caches) and restores it before that use's backward, and
the parameter gradients of all uses add up. State-dict names: ``<node name>.<param name>``,
a shared layer's under its first node.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module, is_array
from .container import Container, check_child_name, run_named
from .fusion import fuses, relu_then_pool
from .layer import Layer

__all__ = ["Graph", "Value"]


class Value:
    """A symbolic value of a Graph: a graph input or a node's output (``g.input`` / ``g.add``)."""

    __slots__ = ("graph", "name", "producer")

    def __init__(self, graph, name, producer):
        self.graph, self.name, self.producer = graph, name, producer  # producer: node index or None

    def __repr__(self):
        kind = "input" if self.producer is None else "node"
        return f"Value({kind} {self.name!r})"


class _Node:
    __slots__ = ("name", "layer", "inputs", "output")

    def __init__(self, name, layer, inputs, output):
        self.name, self.layer, self.inputs, self.output = name, layer, inputs, output


class Graph(Container):
    """A DAG of layers with one or more inputs and outputs.

    forward(*inputs) returns one array (one output) or a tuple (several outputs);
    backward(grad) takes one array or a tuple with one gradient per output (None for an
    output that does not reach the loss) and returns the input gradient(s) likewise.
    ``g["conv1"]`` is the layer of node conv1; ``g.nodes`` lists (name, layer, input names).
    """

    def __init__(self):
        super().__init__()
        self._inputs: list[Value] = []
        self._nodes: list[_Node] = []
        self._outputs: list[Value] = []
        self._names: set[str] = set()

    # -- building -------------------------------------------------------------------------------
    def _new_name(self, name, where):
        check_child_name(name, where)
        if name in self._names:
            raise ValueError(f"{where}: duplicate name {name!r}: the graph already has an input or node "
                             "with this name")
        self._names.add(name)
        return name

    def _check_value(self, value, where, what):
        if not isinstance(value, Value):
            raise TypeError(f"{where}: {what} must be a value returned by g.input() or g.add() of this graph, "
                            f"got {type(value).__name__}")
        if value.graph is not self:
            raise ValueError(f"{where}: {what} ({value.name!r}) belongs to another graph; a graph can only use "
                             "its own inputs and node outputs")

    def input(self, name: str) -> Value:
        """Declare a graph input; forward(*inputs) takes the inputs in declaration order."""
        value = Value(self, self._new_name(name, f"Graph.input({name!r})"), None)
        self._inputs.append(value)
        return value

    def add(self, name: str, layer: Layer, *inputs: Value) -> Value:
        """Add node ``name`` computing ``layer(*inputs)``; returns its output value."""
        where = f"Graph.add({name!r})"
        check_child_name(name, where)
        if not isinstance(layer, Layer):
            raise TypeError(f"{where}: expected a minigrad Layer, got {type(layer).__name__}")
        if any(sub is self for sub in layer.modules()):
            raise ValueError(f"{where}: a graph cannot contain itself")
        if not inputs:
            raise ValueError(f"{where}: a node needs at least one input value")
        for i, value in enumerate(inputs):
            self._check_value(value, where, f"input {i}")
        self._new_name(name, where)
        output = Value(self, name, len(self._nodes))
        self._nodes.append(_Node(name, layer, tuple(inputs), output))
        if not any(layer is child for child in self._layers.values()):
            self._layers[name] = layer          # state-dict names: <first node name>.<param name>
            layer.name = self._qualified(name)
        return output

    def output(self, *values: Value) -> None:
        """Declare the graph output(s), once. Several values make forward return a tuple."""
        where = "Graph.output"
        if self._outputs:
            raise ValueError(f"{where}: the outputs are already set ({self._output_names()})")
        if not values:
            raise ValueError(f"{where}: give at least one value")
        for i, value in enumerate(values):
            self._check_value(value, where, f"output {i}")
        self._outputs = list(values)

    def _output_names(self):
        return ", ".join(v.name for v in self._outputs)

    # -- introspection --------------------------------------------------------------------------
    @property
    def nodes(self):
        """[(node name, layer, (input value names...)), ...] in execution order."""
        return [(n.name, n.layer, tuple(v.name for v in n.inputs)) for n in self._nodes]

    @property
    def input_names(self):
        return [v.name for v in self._inputs]

    @property
    def output_names(self):
        return [v.name for v in self._outputs]

    def __getitem__(self, name):
        for node in self._nodes:
            if node.name == name:
                return node.layer
        raise KeyError(f"Graph has no node named {name!r}; nodes: {[n.name for n in self._nodes]}")

    def __len__(self):
        return len(self._nodes)

    def _first_use(self, node):
        return self._layers.get(node.name) is node.layer

    def _name_children(self):
        for node in self.__dict__.get("_nodes", ()):
            if self._first_use(node):
                node.layer.name = self._qualified(node.name)

    # -- forward / backward -------------------------------------------------------------------------
    def _run(self, node, fn, *args):
        """Run a node's forward/backward with the layer named after this node (shared layers too)."""
        qualified = self._qualified(node.name)
        layer = node.layer
        if self._first_use(node):
            return run_named(qualified, "in node", fn, *args)
        first = layer.name
        layer.name = qualified
        try:
            return run_named(qualified, "in node", fn, *args)
        finally:
            layer.name = first

    def forward(self, *inputs):
        """inputs: one array per g.input(), in declaration order -> output array or tuple of arrays."""
        if not self._outputs:
            raise RuntimeError(f"{self.label}: no outputs; call g.output(value, ...) before running the graph")
        if len(inputs) != len(self._inputs):
            raise TypeError(f"{self.label}: expected {len(self._inputs)} input(s) ({', '.join(self.input_names)}), "
                            f"got {len(inputs)}")
        for value, x in zip(self._inputs, inputs):
            if not is_array(x):
                raise TypeError(f"{self.label}: input {value.name!r} must be a NumPy or CuPy array, "
                                f"got {type(x).__name__}")
        last_use = {}                                     # value -> index of its last consuming node
        for index, node in enumerate(self._nodes):
            for value in node.inputs:
                last_use[value] = index
        keep = set(self._outputs)
        values = dict(zip(self._inputs, inputs))
        saved = []                                        # per node: its layer's caches after this use
        uses = {}
        for node in self._nodes:
            uses[id(node.layer)] = uses.get(id(node.layer), 0) + 1
        index = 0
        while index < len(self._nodes):
            node = self._nodes[index]
            args = [values[v] for v in node.inputs]
            if self._fuses(index, args, last_use, keep, uses):
                pool = self._nodes[index + 1]             # ReLU, MaxPool2d: pool first (nn/fusion.py)
                values[pool.output] = self._run(pool, relu_then_pool, node.layer, pool.layer, *args)
                saved += [node.layer.save_caches(), pool.layer.save_caches()]
                index += 1
            else:
                values[node.output] = self._run(node, node.layer, *args)
                saved.append(node.layer.save_caches())
            for value in set(node.inputs):
                if last_use[value] <= index and value not in keep:
                    del values[value]
            index += 1
        outputs = tuple(values[v] for v in self._outputs)
        meta = [(tuple(y.shape), y.dtype) if is_array(y) else None for y in outputs]
        self._cache = (saved, meta, [(tuple(x.shape), x.dtype, get_array_module(x)) for x in inputs])
        return outputs[0] if len(outputs) == 1 else outputs

    def _fuses(self, index, args, last_use, keep, uses) -> bool:
        """Node ``index`` is a ReLU whose output only the next node, a MaxPool2d, reads (not a graph output),
        each layer at one node, and fusion.fuses allows running the pool first."""
        if index + 1 >= len(self._nodes) or len(args) != 1:
            return False
        node, pool = self._nodes[index], self._nodes[index + 1]
        return (pool.inputs == (node.output,) and last_use.get(node.output) == index + 1
                and node.output not in keep and uses[id(node.layer)] == 1 and uses[id(pool.layer)] == 1
                and fuses(node.layer, pool.layer, args[0]))

    def backward(self, grad_out):
        """grad_out: the output's gradient, or a tuple with one per output (None: no gradient).

        Returns the gradient of the input (or a tuple, one per input; zeros for an unused input).
        """
        return self._backward(grad_out, need_inputs=True)

    def backward_parameters(self, grad_out):
        """Parameter gradients only: no gradient is computed for the graph's inputs. A node none of
        whose inputs depends on a parameter gets ``backward_parameters`` (or is skipped if it has no
        parameters); the others run ``backward`` as usual. Returns None."""
        self._backward(grad_out, need_inputs=False)

    def _values_needing_grad(self) -> set:
        """Values that depend on some parameter of the graph (their gradient reaches a parameter)."""
        needing = set()
        for node in self._nodes:
            if any(v in needing for v in node.inputs) or node.layer.has_trainable_parameters():
                needing.add(node.output)
        return needing

    def _backward(self, grad_out, need_inputs):
        saved, meta, input_meta = self.take_cache()
        n_out = len(self._outputs)
        if n_out == 1:
            grads_out = (grad_out,)
        elif not isinstance(grad_out, (tuple, list)) or len(grad_out) != n_out:
            got = f"a tuple of {len(grad_out)}" if isinstance(grad_out, (tuple, list)) else type(grad_out).__name__
            raise TypeError(f"{self.label}: the graph has {n_out} outputs ({self._output_names()}); expected a "
                            f"tuple of {n_out} gradients (None for an unused output), got {got}")
        else:
            grads_out = tuple(grad_out)
        grads = {}
        for value, grad, info in zip(self._outputs, grads_out, meta):
            if grad is None:
                continue
            if info is not None and tuple(getattr(grad, "shape", ())) != info[0]:
                raise ValueError(f"{self.label}: the gradient for output {value.name!r} has shape "
                                 f"{tuple(getattr(grad, 'shape', ()))}, expected {info[0]} (the output's shape)")
            self._accumulate(grads, value, grad)
        needing = None if need_inputs else self._values_needing_grad()
        for index in range(len(self._nodes) - 1, -1, -1):
            node = self._nodes[index]
            grad = grads.pop(node.output, None)
            caches, saved[index] = saved[index], None
            if grad is None:                              # the output does not reach the loss
                node.layer.clear_cache()
                continue
            node.layer.restore_caches(caches)
            if needing is not None and not any(v in needing for v in node.inputs):
                if node.layer.has_trainable_parameters():       # e.g. the first conv: no dx for the data
                    self._run(node, node.layer.backward_parameters, grad)
                else:
                    node.layer.clear_cache()
                continue
            in_grads = self._run(node, node.layer.backward, grad)
            if len(node.inputs) == 1:
                in_grads = (in_grads,)
            elif not isinstance(in_grads, (tuple, list)) or len(in_grads) != len(node.inputs):
                raise TypeError(f"{self.label}: node {node.name!r} has {len(node.inputs)} inputs, but its "
                                f"backward returned {type(in_grads).__name__} instead of a tuple of "
                                f"{len(node.inputs)} gradients")
            for value, g in zip(node.inputs, in_grads):
                if g is not None and (needing is None or value in needing):
                    self._accumulate(grads, value, g)
        if not need_inputs:
            return None
        result = []
        for value, (shape, dtype, xp) in zip(self._inputs, input_meta):
            g = grads.get(value)
            result.append(g if g is not None else xp.zeros(shape, dtype=dtype))
        return result[0] if len(result) == 1 else tuple(result)

    @staticmethod
    def _accumulate(grads, value, grad):
        """Sum the gradients of a value that fans out (never in place: layers may return aliases)."""
        grads[value] = grad if value not in grads else grads[value] + grad

    # -- printing -------------------------------------------------------------------------------
    def __repr__(self):
        lines = ["Graph(", f"  inputs: {', '.join(self.input_names)}"]
        for node in self._nodes:
            sources = ", ".join(v.name for v in node.inputs)
            if self._first_use(node):
                body = repr(node.layer).replace("\n", "\n  ")
            else:
                first = next(n.name for n in self._nodes if self._first_use(n) and n.layer is node.layer)
                body = f"<shared with {first!r}>"
            lines.append(f"  ({node.name}): {body} <- {sources}")
        lines.append(f"  outputs: {self._output_names()}")
        return "\n".join(lines) + "\n)"
