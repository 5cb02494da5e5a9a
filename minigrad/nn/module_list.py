"""ModuleList and ModuleDict: layers held in a list or a dict, as ``torch.nn.ModuleList`` / ``ModuleDict``.

They register their layers (so ``parameters()``, ``state_dict()`` with keys ``0.weight`` / ``key.weight``,
``to()``, ``train()/eval()`` and ``zero_grad()`` reach them) and have no forward or backward of their own:
the layer that holds them runs them, forward and backward, as in this custom layer::

    class MLP(mg.nn.Layer):
        def __init__(self, sizes):
            super().__init__()
            self.layers = mg.nn.ModuleList(mg.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
            self.act = mg.nn.ReLU()

        def forward(self, x):                  # x: (N, sizes[0]) -> (N, sizes[-1])
            for layer in self.layers:
                x = layer(x)
            return x

        def backward(self, grad):             # reverse order; returns the input's gradient
            for layer in reversed(self.layers):
                grad = layer.backward(grad)
            return grad
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .container import Container, check_child_name
from .layer import Layer

__all__ = ["ModuleList", "ModuleDict"]


def _checked_layer(layer, where: str, key):
    if not isinstance(layer, Layer):
        raise TypeError(f"{where}: entry {key!r} must be a minigrad Layer, got {type(layer).__name__}")
    return layer


class _Holder(Container):
    """A container without forward/backward of its own."""

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} has no forward: iterate over it in the forward of the "
                                  "layer that holds it (see minigrad.nn.module_list)")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} has no backward: run its layers' backward in the "
                                  "backward of the layer that holds it")

    def _set(self, key: str, layer):
        self._layers[key] = _checked_layer(layer, type(self).__name__, key)
        layer.name = self._qualified(key)

    def __len__(self):
        return len(self._layers)


class ModuleList(_Holder):
    """ModuleList(modules=None): a list of layers, indexed 0..n-1 (state-dict keys ``0.weight`` ...)."""

    def __init__(self, modules: Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"ModuleList indices must be int or slice, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"ModuleList index {index} is out of range for {len(self)} layers")
        return index % len(self)

    def _renumber(self, layers):
        self._layers.clear()
        for i, layer in enumerate(layers):
            self._set(str(i), layer)

    def __getitem__(self, index):
        layers = list(self._layers.values())
        if isinstance(index, slice):
            return ModuleList(layers[index])
        return layers[self._index(index)]

    def __setitem__(self, index, layer):
        self._set(str(self._index(index)), layer)

    def __delitem__(self, index):
        layers = list(self._layers.values())
        if isinstance(index, slice):
            del layers[index]
        else:
            del layers[self._index(index)]
        self._renumber(layers)

    def __iter__(self):
        return iter(list(self._layers.values()))

    def __reversed__(self):
        return reversed(list(self._layers.values()))

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def append(self, module):
        """Add a layer at the end; returns self."""
        self._set(str(len(self)), module)
        return self

    def extend(self, modules):
        """Add every layer of an iterable at the end; returns self."""
        if not isinstance(modules, Iterable) or isinstance(modules, Layer) and not isinstance(modules, ModuleList):
            raise TypeError(f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module):
        """Insert a layer before ``index`` (the later ones are renumbered)."""
        layers = list(self._layers.values())
        _checked_layer(module, "ModuleList", index)
        layers.insert(index, module)
        self._renumber(layers)


class ModuleDict(_Holder):
    """ModuleDict(modules=None): layers by name, in insertion order (state-dict keys ``name.weight`` ...)."""

    def __init__(self, modules: Mapping | Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str):
        if key not in self._layers:
            raise KeyError(f"ModuleDict has no layer {key!r}; it has {list(self._layers)}")
        return self._layers[key]

    def __setitem__(self, key: str, module):
        self._set(check_child_name(key, "ModuleDict"), module)

    def __delitem__(self, key: str):
        self[key]                                          # KeyError naming the keys if missing
        del self._layers[key]

    def __iter__(self):
        return iter(list(self._layers))

    def __contains__(self, key) -> bool:
        return key in self._layers

    def clear(self):
        self._layers.clear()

    def pop(self, key: str):
        layer = self[key]
        del self._layers[key]
        return layer

    def keys(self):
        return list(self._layers.keys())

    def items(self):
        return list(self._layers.items())

    def values(self):
        return list(self._layers.values())

    def update(self, modules):
        """Add or replace layers from a mapping or an iterable of (name, layer) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable):
            pairs = []
            for j, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise TypeError(f"ModuleDict.update: element #{j} should be a (name, layer) pair, got "
                                    f"{type(pair).__name__}")
                pairs.append(tuple(pair))
        else:
            raise TypeError(f"ModuleDict.update should be called with a mapping or an iterable of pairs, got "
                            f"{type(modules).__name__}")
        for key, module in pairs:
            self[key] = module
