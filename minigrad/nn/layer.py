"""Layer: the contract every minigrad layer follows (Parameter lives in nn/parameter.py).

A layer's ``forward(x)`` computes its output and stores in ``self._cache`` everything
``backward`` needs; ``backward(grad_out)`` returns the gradient of its input(s) and *adds*
its parameter gradients into ``param.grad``. The optimizer, separate, reads ``param.grad``.

Keeping all per-call state in ``self._cache`` lets a Graph run one shared layer at
several nodes: it saves the cache after each use and restores it before that use's backward.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy

from ..debug import anomaly, tracing
from ..io.checkpoint import Checkpoint
from ..runtime.backend import backend_of, check_backend_dtype, get_array_module, is_array, to_backend
from ..runtime.checks import check_same_dtype
from . import forward_record as records
from .grad_mode import is_grad_enabled, no_grad
from .module_tree import LayerTree
from .parameter import Parameter, move_array

__all__ = ["Parameter", "Layer", "no_grad", "is_grad_enabled"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Layer(LayerTree):
    """Base class of every layer.

    Subclasses implement ``forward(x)`` and ``backward(grad_out)`` and assign
    Parameters, sub-layers and buffers (``register_buffer``) as attributes; names
    become the state-dict keys, nested as PyTorch does (``0.weight``, ``block.bn.running_mean``).
    A layer whose input gradient can be skipped implements ``_backward(grad_out, need_input)``
    instead of ``backward``: ``backward`` and ``backward_parameters`` then both call it.
    """

    def __init_subclass__(cls, **kwargs):
        """Wrap each subclass's own forward/backward for mg.detect_anomaly() (one flag test when off)."""
        super().__init_subclass__(**kwargs)
        for phase in ("forward", "backward", "backward_parameters"):
            if phase in cls.__dict__:
                method = anomaly.checked(cls.__dict__[phase], phase)
                setattr(cls, phase, method if phase == "forward" else records.owned_backward(method))

    def __init__(self):
        if tracing.state["on"] is None:          # MINIGRAD_TRACE, read when the first layer is built
            tracing.resolve_environment()
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_layers", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "name", None)

    # -- attribute registration ------------------------------------------------------------
    def __setattr__(self, key, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Layer):
            target = self._layers
        elif key in self.__dict__.get("_buffer_names", ()):
            target = self._buffers
        else:
            target = None
        for table in (self._parameters, self._layers, self._buffers):
            if table is not target:
                table.pop(key, None)
        if target is None:
            object.__setattr__(self, key, value)
            return
        target[key] = value          # reassigning keeps the entry's place in the state dict
        self.__dict__.pop(key, None)

    def __getattr__(self, key):
        for table in ("_parameters", "_layers", "_buffers"):
            entries = self.__dict__.get(table)
            if entries is not None and key in entries:
                return entries[key]
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    def __delattr__(self, key):
        for table in (self._parameters, self._layers, self._buffers):
            if key in table:
                del table[key]
                return
        object.__delattr__(self, key)

    def register_buffer(self, name: str, array):
        """A non-trainable array saved in the state dict and moved by ``to()`` (e.g. running_mean)."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    # -- the contract ---------------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out):
        """grad_out (the output's shape) -> gradient of the input; adds the parameter gradients into
        ``param.grad``. Runs ``_backward(grad_out, need_input=True)`` when the layer has one."""
        if type(self)._backward is Layer._backward:
            raise NotImplementedError(f"{type(self).__name__} does not implement backward")
        return self._backward(grad_out, need_input=True)

    def backward_parameters(self, grad_out) -> None:
        """Backward for a layer whose input needs no gradient (the first layer of a network: its input
        is data): fills the parameter gradients like ``backward`` and returns None.

        Layers with ``_backward`` (Conv2d, ConvTranspose2d, Linear) skip computing the input gradient, and so
        do Sequential and Graph (Caffe's ``propagate_down = false``, PyTorch's input without
        ``requires_grad``); other layers run ``backward`` and drop it. ``mg.train.fit`` calls this on the model.
        """
        if type(self)._backward is Layer._backward:
            self.backward(grad_out)
        else:
            self._backward(grad_out, need_input=False)

    def _backward(self, grad_out, need_input: bool):
        """Parameter gradients, and the input gradient when need_input (else return None)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def trace_details(self, phase: str, args: tuple, out) -> list | None:
        """Extra lines for ``mg.trace()`` after this layer's ``phase`` ("forward", "backward",
        "backward_parameters") ran on ``args`` and returned ``out``: e.g. a convolution's unfold shapes.
        None: the trace's own line says it all."""
        return None

    def check_grad_out(self, grad_out, shape, like, like_name: str = "input"):
        """Raise unless grad_out is an array of `shape`, on the backend and of the dtype of `like`."""
        if not is_array(grad_out):
            raise TypeError(f"{self.label}: expected grad_out to be a NumPy or CuPy array, got "
                            f"{type(grad_out).__name__}")
        get_array_module(grad_out, like, names=("grad_out", like_name), where=self.label)
        if tuple(grad_out.shape) != tuple(shape):
            raise ValueError(f"{self.label}: expected grad_out of shape {tuple(shape)}, got {tuple(grad_out.shape)}")
        check_same_dtype(grad_out, like, self.label, "grad_out", like_name)

    def __call__(self, *inputs, **kwargs):
        """``forward(*inputs, **kwargs)``, keeping the books of nn/forward_record.py: inside ``no_grad()``
        every cache of this layer's tree is left as it was; a top-level training call gets a record that
        its output is tagged with, so a backward pairs a gradient with the forward it belongs to."""
        if not is_grad_enabled():
            saved = self.save_caches()
            records.enter_call()
            try:
                return self._run_forward(inputs, kwargs)
            finally:
                records.exit_call()
                self.restore_caches(saved)
        if records.call_depth():                   # a container running its children: it keeps the books
            return self._run_forward(inputs, kwargs)
        record = records.ForwardRecord(self, [records.record_of(x) for x in inputs])
        records.claim(self, record)
        records.enter_call()
        try:
            out = self._run_forward(inputs, kwargs)
        except BaseException:
            record.done = True                     # its caches are half written: no backward from them
            raise
        finally:
            records.exit_call()
        records.tag_outputs(out, record)
        return out

    @property
    def label(self) -> str:
        """How errors name this layer: its node name inside a Graph/Sequential, else its class."""
        cls = type(self).__name__
        return f"{cls} '{self.name}'" if self.name else cls

    def take_cache(self, *, keep: bool = False):
        """Return what forward cached; raise if backward comes before forward (or twice after one)."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward, or twice after one forward "
                               "(each forward allows one backward)")
        if not keep:
            self._cache = None
        return cache

    def clear_cache(self):
        for layer in self.modules():
            layer._cache = None
        if not records.call_depth():                # a user's call (not a Graph's, mid-backward)
            records.forget_records(self)

    def save_caches(self) -> list:
        """Snapshot every sub-layer's cache, [(layer, cache), ...] (Graph uses this to run a shared layer at
        several nodes; no_grad calls and nn/forward_record.py to put caches back)."""
        return [(layer, layer._cache) for layer in self.modules()]

    def restore_caches(self, caches: list):
        """Put back the caches ``save_caches`` returned, each into the layer it came from."""
        for layer, cache in caches:
            layer._cache = cache

    # -- modes and gradients ---------------------------------------------------------------------
    def train(self, mode: bool = True):
        for layer in self.modules():
            object.__setattr__(layer, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True):
        """Reset every parameter's gradient, as ``torch.nn.Module.zero_grad``: to None ("no gradient yet",
        the default) or, with ``set_to_none=False``, to zeros in place."""
        for param in self.parameters():
            param.zero_grad(set_to_none)

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (False) or unfreeze (True) every parameter of this layer and its sub-layers, like
        PyTorch's ``module.requires_grad_``; returns self. ``model.stem.requires_grad_(False)``."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def has_trainable_parameters(self) -> bool:
        """True when some parameter of this layer (or its sub-layers) requires a gradient."""
        return any(param.requires_grad for param in self.parameters())

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, object]":
        """Name -> array for every parameter and buffer, with PyTorch's names and order (each layer's
        parameters, then its buffers, then its sub-layers'); the arrays themselves, not copies."""
        return OrderedDict((name, layer._parameters[attr].data if is_param else layer._buffers[attr])
                           for name, (layer, attr, is_param) in self._state_slots().items())

    def _state_slots(self):
        """name -> (owner layer, attribute, is_parameter) for every state-dict entry."""
        slots = OrderedDict()
        for layer_name, layer in self.named_modules():
            prefix = f"{layer_name}." if layer_name else ""
            for name in layer._parameters:
                slots.setdefault(prefix + name, (layer, name, True))
            for name, buf in layer._buffers.items():
                if buf is not None:
                    slots.setdefault(prefix + name, (layer, name, False))
        return slots

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays from ``state`` (NumPy or CuPy, any backend) into this model, where it lives.

        Every key, shape and dtype kind is checked before anything is written, so a
        mismatched file leaves the model untouched. Returns (missing_keys, unexpected_keys).
        """
        if isinstance(state, Checkpoint):
            state = state["model"]  # model.load_state_dict(mg.load(path)): the checkpoint's model state
        if not isinstance(state, Mapping):
            hint = (" (mg.load returns a checkpoint: use model.load_state_dict(mg.load(path)['model']) or "
                    "mg.load_into(path, model))" if isinstance(state, (list, tuple)) else "")
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a mapping of names to arrays "
                            f"(like model.state_dict()), got {type(state).__name__}{hint}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        updates = []
        for key, (layer, attr, is_param) in slots.items():
            if key not in state:
                continue
            current = layer._parameters[attr].data if is_param else layer._buffers[attr]
            value = state[key]
            if not is_array(value):
                raise TypeError(f"{type(self).__name__}.load_state_dict: '{key}' is a {type(value).__name__}, "
                                "not a NumPy or CuPy array")
            shape = tuple(value.shape)
            if shape != tuple(current.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: '{key}' has shape {shape} in the "
                                 f"state dict but {tuple(current.shape)} in the model")
            kinds = {value.dtype.kind, current.dtype.kind}
            if len(kinds) > 1 and not kinds <= {"i", "u"}:
                raise TypeError(f"{type(self).__name__}.load_state_dict: '{key}' has dtype {value.dtype} in the "
                                f"state dict but {current.dtype} in the model")
            updates.append((layer, attr, is_param, current, value))
        for layer, attr, is_param, current, value in updates:
            new = to_backend(value, backend_of(current)).astype(current.dtype, copy=True)
            if is_param:
                layer._parameters[attr].data = new
            else:
                layer._buffers[attr] = new
        return IncompatibleKeys(missing, unexpected)

    def to(self, backend=None, dtype=None):
        """Move parameters, gradients and buffers to ``backend`` and/or cast floats to ``dtype``.

        ``to()`` with no argument moves to the active backend. Integer buffers keep their dtype.
        """
        if backend is None and dtype is None:
            from ..runtime.backend import get_backend
            backend = get_backend()
        if dtype is not None:
            try:
                kind = numpy.dtype(dtype).kind
            except TypeError:
                raise TypeError(f"{type(self).__name__}.to: unknown dtype {dtype!r}") from None
            if kind != "f":
                raise TypeError(f"{type(self).__name__}.to: parameters can only be cast to a floating dtype "
                                f"(float16/float32/float64), got {dtype!r}")
        for param in self.parameters():      # up front: nothing moves when one parameter cannot
            check_backend_dtype(param.backend if backend is None else backend,
                                param.dtype if dtype is None else dtype, f"{type(self).__name__}.to")
        for param in self.parameters():
            param.to(backend, dtype)
        for layer in self.modules():
            for name, buf in list(layer._buffers.items()):
                if buf is not None:
                    layer._buffers[name] = move_array(buf, backend, dtype)
            layer._cache = None
        records.forget_records(self)
        return self

    @property
    def backend(self) -> str | None:
        params = self.parameters()
        return params[0].backend if params else None

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].dtype if params else None

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._layers:
            return head + ")"
        lines = [head]
        for name, layer in self._layers.items():
            body = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


# Layer's own backward and backward_parameters run the subclasses' _backward: check them in anomaly mode too.
Layer.backward = records.owned_backward(anomaly.checked(Layer.backward, "backward"))
Layer.backward_parameters = records.owned_backward(anomaly.checked(Layer.backward_parameters, "backward_parameters"))
