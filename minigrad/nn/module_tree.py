"""The tree of a layer and its sub-layers, with ``torch.nn.Module``'s names: walking it (``named_modules``,
``parameters``, ``buffers`` ...), editing it (``add_module``, ``register_parameter``, ``get_submodule`` ...),
casting and moving it (``float()``, ``double()``, ``cpu()``, ``cuda()``), and forward hooks.

``Layer`` (nn/layer.py) inherits these; they read the tables ``Layer.__init__`` creates: ``_parameters``,
``_buffers`` and ``_layers`` (name -> Parameter / array / Layer, in registration order).
"""
from __future__ import annotations

import itertools
import os

from ..runtime.memory import ENV, SMALL, check_bytes, logical_bytes
from .parameter import Parameter

__all__ = ["LayerTree", "RemovableHandle", "add_hook"]

_hook_ids = itertools.count()


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``handle.remove()`` unregisters the hook (as torch's)."""

    def __init__(self, table: dict, key: int):
        self._table, self.id = table, key

    def remove(self):
        self._table.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def add_hook(owner, table: str, hook, where: str) -> RemovableHandle:
    """Register ``hook`` in ``owner.__dict__[table]`` (a dict, created on first use); a removable handle."""
    if not callable(hook):
        raise TypeError(f"{where}: a hook must be callable, got {type(hook).__name__}")
    hooks = owner.__dict__.setdefault(table, {})
    key = next(_hook_ids)
    hooks[key] = hook
    return RemovableHandle(hooks, key)


def _check_name(name, where: str):
    if not isinstance(name, str):
        raise TypeError(f"{where}: the name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{where}: the name must be non-empty and contain no '.', got {name!r}")
    return name


class LayerTree:
    """torch.nn.Module's tree methods, mixed into Layer."""

    # -- walking ---------------------------------------------------------------------------------------------
    def named_children(self):
        return iter(self._layers.items())

    def children(self):
        return iter(self._layers.values())

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(name, layer) for this layer and every sub-layer, depth first; a shared layer once (all its names
        with ``remove_duplicate=False``)."""
        if isinstance(memo, str):          # named_modules("prefix"): the positional form minigrad had
            memo, prefix = None, memo
        seen = set() if memo is None else memo

        def walk(layer, name):
            if remove_duplicate and layer in seen:     # memo holds the layers seen, as torch's
                return
            seen.add(layer)
            yield name, layer
            for child_name, child in layer._layers.items():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def modules(self):
        """This layer and every sub-layer (a list; torch returns an iterator over the same layers)."""
        return [layer for _, layer in self.named_modules()]

    def apply(self, fn):
        """Call ``fn`` on every sub-layer (children first, depth first) and then on this layer, as
        ``torch.nn.Module.apply``; returns self. ``model.apply(init_weights)``."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _named_members(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        layers = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for layer_name, layer in layers:
            for name, member in getattr(layer, table).items():
                if member is None or (remove_duplicate and id(member) in seen):
                    continue
                seen.add(id(member))
                yield (f"{layer_name}.{name}" if layer_name else name), member

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, Parameter) pairs; a parameter shared by two sub-layers is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        """Every Parameter (a list; torch returns an iterator over the same parameters)."""
        return [param for _, param in self.named_parameters(recurse=recurse)]

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        return [buf for _, buf in self.named_buffers(recurse=recurse)]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def summary(self, input_shape, dtype=None, verbose: bool = True):
        """Print (and return) each layer's output shape and parameter count for ``input_shape``,
        e.g. ``model.summary((1, 1, 28, 28))``; see minigrad.nn.summary."""
        from .summary import summary
        return summary(self, input_shape, dtype=dtype, verbose=verbose)

    # -- editing ---------------------------------------------------------------------------------------------
    def add_module(self, name: str, module):
        """Register ``module`` (a Layer) as the child ``name``, as ``self.name = module`` does."""
        _check_name(name, f"{type(self).__name__}.add_module")
        if not isinstance(module, LayerTree):              # every Layer is one
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} must be a minigrad Layer, got "
                            f"{type(module).__name__}")
        setattr(self, name, module)

    register_module = add_module

    def register_parameter(self, name: str, param):
        """Register ``param`` (a Parameter) under ``name``, as ``self.name = param`` does."""
        _check_name(name, f"{type(self).__name__}.register_parameter")
        if not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: {name!r} must be a minigrad Parameter "
                            f"(mg.nn.Parameter(array)), got {type(param).__name__}")
        setattr(self, name, param)

    def get_submodule(self, target: str = ""):
        """The sub-layer at the dotted path ``target`` ("" is this layer), e.g. ``"features.0"``."""
        layer = self
        for part in target.split(".") if target else ():
            if part not in layer._layers:
                raise AttributeError(f"{type(layer).__name__} has no sub-layer {part!r} (looking for {target!r}; "
                                     f"it has {list(layer._layers)})")
            layer = layer._layers[part]
        return layer

    def set_submodule(self, target: str, module):
        """Replace (or add) the sub-layer at the dotted path ``target``."""
        parent, _, name = target.rpartition(".")
        self.get_submodule(parent).add_module(name, module)

    def _member(self, target: str, table: str, what: str):
        path, _, name = target.rpartition(".")
        owner = self.get_submodule(path)
        if name not in getattr(owner, table):
            raise AttributeError(f"{type(owner).__name__} has no {what} {name!r} (looking for {target!r})")
        return getattr(owner, table)[name]

    def get_parameter(self, target: str):
        """The Parameter at the dotted path ``target``, e.g. ``"0.weight"``."""
        return self._member(target, "_parameters", "parameter")

    def get_buffer(self, target: str):
        """The buffer at the dotted path ``target``, e.g. ``"1.running_mean"``."""
        return self._member(target, "_buffers", "buffer")

    # -- casting and moving ----------------------------------------------------------------------------------
    def float(self):
        """Cast floating parameters and buffers to float32 (``to(dtype="float32")``)."""
        return self.to(dtype="float32")

    def double(self):
        """Cast floating parameters and buffers to float64."""
        return self.to(dtype="float64")

    def half(self):
        """Cast floating parameters and buffers to float16 (NumPy only: CuPy's path refuses float16)."""
        return self.to(dtype="float16")

    def cpu(self):
        """Move to NumPy (``to("numpy")``)."""
        return self.to("numpy")

    def cuda(self, device=None):
        """Move to CuPy (``to("cupy")``); ``device`` other than None or 0 is not supported (one GPU)."""
        if device not in (None, 0, "cuda", "cuda:0"):
            raise NotImplementedError(f"{type(self).__name__}.cuda: device={device!r} is not supported; minigrad "
                                      "uses the current CUDA device (select it with CUDA_VISIBLE_DEVICES)")
        return self.to("cupy")

    # -- forward hooks ---------------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook):
        """``hook(layer, args)`` runs before each call's forward; a non-None result replaces the positional
        arguments (a tuple, or a single value). Returns a handle whose ``remove()`` unregisters it."""
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook):
        """``hook(layer, args, output)`` runs after each call's forward; a non-None result replaces the output.
        Returns a handle whose ``remove()`` unregisters it. (Backward hooks are not supported.)"""
        return self._add_hook("_forward_hooks", hook)

    def _add_hook(self, table: str, hook):
        return add_hook(self, table, hook, type(self).__name__)

    # How many arrays the size of the inputs a forward allocates at most (its output, cache and temporaries):
    # checked against the memory guard before forward runs. Containers allocate nothing themselves (0);
    # normalisations keep more (3). The size is the inputs' logical size: a broadcast view (np.broadcast_to)
    # of a few bytes that reads as gigabytes makes an output of gigabytes.
    FORWARD_COPIES = 2

    def _check_forward_memory(self, inputs):
        """MemoryError naming the layer when FORWARD_COPIES copies of the inputs do not fit (runtime/memory.py)."""
        nbytes, shape, like = logical_bytes(inputs)
        total = nbytes * self.FORWARD_COPIES
        if total >= SMALL or (total and ENV in os.environ):    # (the label is built only when a check runs)
            check_bytes(total, self.label, shape, what="forward's output and temporaries for an input",
                        like=like)

    def _run_forward(self, inputs, kwargs):
        """forward(*inputs, **kwargs) with the forward hooks around it."""
        pre, post = self.__dict__.get("_forward_pre_hooks"), self.__dict__.get("_forward_hooks")
        for hook in list(pre.values()) if pre else ():
            result = hook(self, inputs)
            if result is not None:
                inputs = result if isinstance(result, tuple) else (result,)
        if self.FORWARD_COPIES:
            self._check_forward_memory(inputs)
        out = self.forward(*inputs, **kwargs)
        for hook in list(post.values()) if post else ():
            result = hook(self, inputs, out)
            if result is not None:
                out = result
        return out
