"""One gradient per forward: which forward a backward belongs to, kept by the Layer base class.

minigrad has no autograd tape: a layer's ``forward`` leaves in ``self._cache`` what its ``backward`` needs.
A training loop that runs a second forward before the first one's backward (a forward for logging, a
validation step in the middle) would then pair the first loss's gradient with the second batch's
activations. This module keeps the books that prevent that; ``Layer.__call__`` and ``Layer.backward``
use it, so every layer (custom ones too) follows the rule without code of its own:

- **no_grad leaves caches alone.** A call inside ``mg.no_grad()`` restores every cache of the layer's
  tree to what it was before the call.
- **Records.** Each top-level training call (``model(x)`` or ``loss(out, y)``, not the calls a container
  makes to its children) gets a ``ForwardRecord``: the caches of the layer's tree belong to it. When a
  later call replaces caches that a record still waiting for its backward owns, that record keeps them
  (its ``caches``), and they are freed when nothing refers to the record any more.
- **Tags.** The arrays a call returns are tagged with its record; a call that receives a tagged array
  remembers the record that made it; the gradient a backward returns for that input is tagged with it.
  So ``criterion.backward()`` returns a gradient tagged with the forward that made the loss's input.
- **Backward.** Given a tagged gradient, a layer's backward runs on that forward's caches (restored if a
  later forward replaced them): the result is the gradient of that forward, whatever ran in between.
  Given an untagged gradient (made by hand), it runs on the one forward still waiting; when several
  wait (their outputs or losses are still held), it is ambiguous and refused. Each record's backward
  runs once.

Holding the output of a training forward (or a loss computed from it) that is never backwarded keeps that
forward's activations alive, as holding a tensor with a graph does in PyTorch: evaluate under
``mg.no_grad()``, and keep logged losses as ``float(loss)``.
"""
from __future__ import annotations

import functools
import threading
import weakref

from ..runtime.backend import is_array

__all__ = ["ForwardRecord", "GradientOwnershipError", "call_depth", "enter_call", "exit_call", "tag_outputs",
           "record_of", "gradient_owner", "owned_backward", "claim", "select_record", "finish_backward", "forget_records"]

_local = threading.local()
_produced: dict = {}                                # id(array) -> ForwardRecord of the call that returned it
_gradient_of: dict = {}                             # id(gradient) -> ForwardRecord of the forward it belongs to
_owner = weakref.WeakKeyDictionary()                 # layer -> the record whose caches it holds now
_records_of = weakref.WeakKeyDictionary()            # top-level layer -> WeakSet of its records


class GradientOwnershipError(RuntimeError):
    """A backward that would pair a gradient with the activations of another forward."""


class ForwardRecord:
    """One top-level training call of ``layer``: the records of its inputs' producers, and its caches once a
    later call replaced them (None while they are in the layers, or after its backward)."""

    __slots__ = ("layer", "inputs", "caches", "done", "dropped", "__weakref__")

    def __init__(self, layer, inputs):
        self.layer = layer
        self.inputs = inputs          # per positional input: the record of the call that returned it, or None
        self.caches = None            # layer.save_caches() of the layer's tree, once parked
        self.done = False             # its backward ran (or its caches were dropped): no backward any more
        self.dropped = False          # its caches were dropped by to() or clear_cache()


def call_depth() -> int:
    """How many layer calls (forward or backward) are running on this thread."""
    return getattr(_local, "depth", 0)


def enter_call():
    _local.depth = call_depth() + 1


def exit_call():
    _local.depth = call_depth() - 1


def _tag(table, array, record):
    key = id(array)
    try:
        weakref.finalize(array, table.pop, key, None)   # the entry goes with the array (ids are reused)
    except TypeError:
        return                                          # not weak-referenceable: stays untagged
    table[key] = record


def tag_outputs(out, record):
    """Tag the array(s) a call returned (an array, or a tuple/list of them) with its record."""
    if is_array(out):
        _tag(_produced, out, record)
    elif isinstance(out, (tuple, list)):
        for item in out:
            if is_array(item):
                _tag(_produced, item, record)


def record_of(value):
    """The record of the call that returned ``value`` (None: not returned by a layer call, or untaggable)."""
    return _produced.get(id(value)) if is_array(value) else None


def gradient_owner(grad):
    """The record of the forward ``grad`` is the output gradient of (None: a gradient made by hand)."""
    return _gradient_of.get(id(grad)) if is_array(grad) else None


def claim(layer, record):
    """Make ``record`` the owner of the caches of ``layer``'s tree. Records that owned some of them and
    still wait for their backward keep their whole tree's caches first."""
    modules = layer.modules()
    for module in modules:
        owner = _owner.get(module)
        if owner is not None and owner is not record and not owner.done and owner.caches is None:
            owner.caches = owner.layer.save_caches()
    for module in modules:
        _owner[module] = record
    if record is not None:
        records = _records_of.get(layer)
        if records is None:
            records = _records_of[layer] = weakref.WeakSet()
        records.add(record)


def _owns(layer, record) -> bool:
    return all(_owner.get(module) is record for module in layer.modules())


def _waiting(layer) -> list:
    return [record for record in _records_of.get(layer, ()) if not record.done]


def select_record(layer, grad):
    """The record a backward of ``layer`` with ``grad`` belongs to, its caches put back in the layers;
    None when the layer has no records (a layer driven by ``forward`` directly: its caches as they are)."""
    record = gradient_owner(grad)
    if record is not None and record.layer is not layer:
        if any(module is layer for module in record.layer.modules()):   # stepping through a model's layers
            if record.done or not _owns(layer, record):
                raise GradientOwnershipError(
                    f"{layer.label}: the activations of the forward of {record.layer.label} this gradient "
                    "belongs to were replaced by a later forward (or its backward already ran); run "
                    f"{record.layer.label}'s backward instead, which restores them")
            return None
        if any(record.layer is module for module in layer.modules()) or record.done:
            record = None      # a sub-layer's own call, or a spent tag: judged as an untagged gradient
        else:
            raise GradientOwnershipError(
                f"{layer.label}: this gradient belongs to a forward of {record.layer.label}, not of "
                f"{layer.label}; pass it to that layer's backward")
    if record is None:
        waiting = _waiting(layer)
        if len(waiting) > 1:
            raise GradientOwnershipError(
                f"{layer.label}: {len(waiting)} forwards of this layer are waiting for a backward (their outputs "
                "or losses are still held), and this gradient does not say which one it belongs to. Call backward "
                "before the next training forward, run extra forwards and losses (logging, validation) inside "
                "mg.no_grad(), or keep logged losses as float(loss); a gradient returned by a loss's backward "
                "names its forward")
        if not waiting:
            if any(record.dropped for record in _records_of.get(layer, ())):
                raise _gone(layer)
            return None
        record = waiting[0]
    if record.dropped:
        raise _gone(layer)
    if record.done:
        raise GradientOwnershipError(
            f"{layer.label}: backward already ran for the forward this gradient belongs to (each forward allows "
            "one backward)")
    if not _owns(layer, record):
        if record.caches is None:
            raise _gone(layer)
        parked, record.caches = record.caches, None
        claim(layer, record)
        layer.restore_caches(parked)
    return record


def _gone(layer):
    return GradientOwnershipError(
        f"{layer.label}: the activations of the forward this gradient belongs to are gone (the layer was moved "
        "with to() or its caches cleared since); run the forward again")


def finish_backward(record, result):
    """Mark ``record``'s backward as run and tag the input gradient(s) ``result`` with the records of the
    calls that made the inputs."""
    record.done = True
    record.caches = None
    inputs, record.inputs = record.inputs, ()
    if is_array(result):
        if inputs and inputs[0] is not None:
            _tag(_gradient_of, result, inputs[0])
    elif isinstance(result, (tuple, list)):
        for grad, producer in zip(result, inputs):
            if producer is not None and is_array(grad):
                _tag(_gradient_of, grad, producer)


def forget_records(layer):
    """The caches of ``layer``'s tree were dropped (``to()``, ``clear_cache()``): the records that owned them
    allow no backward any more."""
    for module in layer.modules():
        owner = _owner.pop(module, None)
        if owner is not None and owner.caches is None and not owner.done:
            owner.done = owner.dropped = True


def owned_backward(method):
    """Wrap a backward so that, called by the user (not by a container), it runs on the caches of the forward
    its gradient belongs to, or is refused (nn/forward_record.py)."""
    @functools.wraps(method)
    def backward(self, *args, **kwargs):
        if call_depth():
            return method(self, *args, **kwargs)
        grad = args[0] if args else next(iter(kwargs.values()), None)
        record = select_record(self, grad)
        enter_call()
        try:
            result = method(self, *args, **kwargs)
        except BaseException:
            if record is not None:
                record.done = True           # its caches are (partly) spent: a retry needs a new forward
            raise
        finally:
            exit_call()
        if record is not None:
            finish_backward(record, result)
        return result
    return backward
