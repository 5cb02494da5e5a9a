"""Sequential: layers run one after another; backward runs them in reverse.

forward:  x -> layer0 -> layer1 -> ... -> y
backward: dy -> layerN.backward -> ... -> layer0.backward -> dx
Each child keeps its own cache; the container caches nothing itself.
State-dict names are PyTorch's: ``0.weight``, ``1.running_mean`` (or the OrderedDict keys).
"""
from __future__ import annotations

from collections import OrderedDict

from .fusion import fuses, relu_then_pool
from .layer import Layer

__all__ = ["Sequential", "check_child_name", "run_named"]


def check_child_name(name, where: str) -> str:
    """A child/node name must be a non-empty str without '.' (dots separate state-dict levels)."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: a layer name must be a str, got {type(name).__name__} {name!r}")
    if not name or "." in name:
        raise ValueError(f"{where}: invalid layer name {name!r}: it must be non-empty and contain no '.' "
                         "(dots separate the levels of state-dict names)")
    return name


def run_named(name: str, kind: str, fn, *args):
    """Call fn(*args); an exception that does not already name `name` is re-raised with the same type
    and the prefix "<kind> '<name>': " so the user sees which node or child failed."""
    try:
        return fn(*args)
    except Exception as exc:
        message = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
        if f"'{name}" in message:
            raise
        try:
            renamed = type(exc)(f"{kind} '{name}': {message}")
        except Exception:  # an exception type with a special constructor: keep it unchanged
            raise exc from None
        raise renamed.with_traceback(exc.__traceback__) from exc


class Container(Layer):
    """A layer whose children are named by their position in it: naming the container renames them.

    A child's ``name`` (used by errors via ``label``) is its qualified key, e.g. ``features.0``.
    """
    FORWARD_COPIES = 0      # its children allocate, each checked by the memory guard itself

    @property
    def name(self):
        return self.__dict__.get("_container_name")

    @name.setter
    def name(self, value):
        self.__dict__["_container_name"] = value
        if "_layers" in self.__dict__:
            self._name_children()

    def _qualified(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def _name_children(self):
        for key, child in self._layers.items():
            child.name = self._qualified(key)


class Sequential(Container):
    """Sequential(*layers) or Sequential(OrderedDict(name=layer, ...)), like ``torch.nn.Sequential``.

    ``model[i]`` is a layer, ``model[a:b]`` a Sequential sharing the layers (keys kept);
    ``len(model)``, iteration, ``append``/``extend`` work as in PyTorch.
    forward(x) runs the layers in order; backward(grad) runs their backward in reverse.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            items = list(layers[0].items())
        else:
            items = [(str(i), layer) for i, layer in enumerate(layers)]
        for key, layer in items:
            self._add(key, layer)

    def _add(self, key, layer):
        where = "Sequential"
        check_child_name(key, where)
        if not isinstance(layer, Layer):
            raise TypeError(f"{where}: entry {key!r} must be a minigrad Layer, got {type(layer).__name__}")
        if key in self._layers:
            raise ValueError(f"{where}: duplicate layer name {key!r}")
        if any(inner is self for inner in layer.modules()):
            raise ValueError(f"{where}: cannot add {type(layer).__name__} {key!r}: it contains this Sequential, "
                             "and a layer cannot contain itself")
        self._layers[key] = layer
        layer.name = self._qualified(key)

    # -- container protocol -----------------------------------------------------------------------
    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers.values())

    def __getitem__(self, index):
        keys = list(self._layers)
        if isinstance(index, slice):
            part = Sequential()  # shares the layers; their names stay those of this container
            for key in keys[index]:
                part._layers[key] = self._layers[key]
            return part
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"Sequential indices must be int or slice, got {type(index).__name__}")
        if not -len(keys) <= index < len(keys):
            raise IndexError(f"Sequential index {index} is out of range for {len(keys)} layers")
        return self._layers[keys[index]]

    def append(self, layer):
        """Add a layer at the end under the key str(len(self)), as PyTorch does; returns self."""
        self._add(str(len(self)), layer)
        return self

    def extend(self, layers):
        for layer in layers:
            self.append(layer)
        return self

    # -- forward / backward -----------------------------------------------------------------------
    def forward(self, input):
        """Run the layers in order. Each layer caches what its own backward needs; a layer that appears
        more than once (``Sequential(lin, lin)``) has its caches saved after each use, like Graph does.
        A ReLU directly followed by a MaxPool2d runs as pool, then ReLU: the same output, input and parameter
        gradients bit for bit, the ReLU on the pooled elements only (nn/fusion.py)."""
        items = list(self._layers.items())
        counts = {}
        for _, layer in items:
            counts[id(layer)] = counts.get(id(layer), 0) + 1
        uses = []
        position = 0
        while position < len(items):
            key, layer = items[position]
            if position + 1 < len(items) and self._fuses(layer, items[position + 1][1], counts, input):
                pool_key, pool = items[position + 1]         # ReLU, MaxPool2d: pool first (nn/fusion.py)
                input = run_named(self._qualified(pool_key), "in layer", relu_then_pool, layer, pool, input)
                uses += [None, None]
                position += 2
                continue
            input = run_named(self._qualified(key), "in layer", layer, input)
            uses.append(layer.save_caches() if counts[id(layer)] > 1 else None)
            position += 1
        self._cache = uses if any(use is not None for use in uses) else None
        return input

    @staticmethod
    def _fuses(layer, following, counts, input) -> bool:
        return counts[id(layer)] == 1 and counts[id(following)] == 1 and fuses(layer, following, input)

    def _backward_steps(self, items, start):
        """(position, key, layer) from the last to `start`, each shared layer's caches of that use restored."""
        uses = self._cache
        self._cache = None
        for position in range(len(items) - 1, start - 1, -1):
            key, layer = items[position]
            if uses is not None and uses[position] is not None:
                layer.restore_caches(uses[position])
            yield position, key, layer

    def backward(self, grad_out):
        """Run the layers' backward in reverse order; returns the gradient of the input."""
        for _, key, layer in self._backward_steps(list(self._layers.items()), 0):
            grad_out = run_named(self._qualified(key), "in layer", layer.backward, grad_out)
        return grad_out

    def backward_parameters(self, grad_out):
        """Backward down to the first layer that has parameters, which gets ``backward_parameters``:
        no input gradient is computed for it, and the layers before it (no parameters) are skipped."""
        items = list(self._layers.items())
        first = next((i for i, (_, layer) in enumerate(items) if layer.has_trainable_parameters()), None)
        if first is None:
            self._cache = None
            return None
        for position, key, layer in self._backward_steps(items, first):
            step = layer.backward_parameters if position == first else layer.backward
            grad_out = run_named(self._qualified(key), "in layer", step, grad_out)
        return None
