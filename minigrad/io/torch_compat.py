"""Weight exchange with PyTorch: torch state dict <-> minigrad state dict.

minigrad layers use PyTorch's parameter names and layouts (Linear weight ``(out, in)``, Conv2d weight
``(out, in/groups, kh, kw)``, ConvTranspose2d weight ``(in, out/groups, kh, kw)``, BatchNorm buffers
``running_mean``, ``running_var``, ``num_batches_tracked``), so a state dict converts key by key
with no transposes. PyTorch is imported only when a function needs it.

PyTorch -> minigrad (e.g. a model trained in PyTorch, evaluated or fine-tuned in minigrad)::

    torch_model = TorchNet(); torch_model.load_state_dict(torch.load("net.pt"))
    model = build_the_same_net_in_minigrad()          # same layer names, e.g. mg.nn.Sequential
    model.load_state_dict(mg.torch_compat.from_torch_state_dict(torch_model.state_dict()))

minigrad -> PyTorch (e.g. a model trained with minigrad, exported to the PyTorch ecosystem)::

    torch_model.load_state_dict(mg.torch_compat.to_torch_state_dict(model))
    torch.save(torch_model.state_dict(), "net.pt")

``model.load_state_dict`` copies the arrays onto the model's backend and casts them to its dtype.
When the two models name their layers differently (a minigrad Graph names parameters after its
nodes, ``conv1.weight``; a torch module after its attributes), pass ``key_map``: a dict
``{source name: target name}`` or a function ``name -> target name`` (return None to drop an entry).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy

from ..runtime.backend import is_array, to_backend

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]


def _import_torch(where):
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"{where} needs PyTorch, which is not installed ({exc}); install it with: pip install "
                          "torch") from exc
    return torch


def _rename(key_map, name):
    if key_map is None:
        return name
    if callable(key_map):
        return key_map(name)
    return key_map.get(name, name)


def from_torch_state_dict(torch_state_dict, dtype=None, key_map=None) -> "OrderedDict[str, numpy.ndarray]":
    """PyTorch state dict (name -> tensor) -> minigrad state dict (name -> NumPy array, host copies).

    ``dtype`` (e.g. "float32") casts floating-point entries; integer entries such as BatchNorm's
    ``num_batches_tracked`` (a 0-d int64 tensor) stay integer 0-d arrays. Non-float types NumPy lacks
    (bfloat16) become float32. ``key_map`` renames entries (see the module docstring).
    """
    if not isinstance(torch_state_dict, Mapping):
        raise TypeError(f"from_torch_state_dict: expected a mapping name -> tensor (module.state_dict()), got "
                        f"{type(torch_state_dict).__name__}")
    torch = None
    result = OrderedDict()
    for name, value in torch_state_dict.items():
        target = _rename(key_map, name)
        if target is None:
            continue
        if type(value).__module__.startswith("torch"):
            torch = torch or _import_torch("from_torch_state_dict")
            tensor = value.detach().cpu()
            if tensor.dtype == torch.bfloat16:
                tensor = tensor.float()
            array = tensor.resolve_conj().resolve_neg().numpy().copy()
        elif is_array(value) or isinstance(value, (int, float, numpy.generic)):
            array = numpy.array(to_backend(value, "numpy") if is_array(value) else value, copy=True)
        else:
            raise TypeError(f"from_torch_state_dict: entry '{name}' is a {type(value).__name__}, not a tensor")
        if dtype is not None and array.dtype.kind == "f":
            array = array.astype(dtype)
        if target in result:
            raise ValueError(f"from_torch_state_dict: two entries map to the name '{target}'")
        result[target] = array
    return result


def to_torch_state_dict(model_or_state, key_map=None) -> "OrderedDict[str, object]":
    """minigrad Layer or state dict (arrays on any backend) -> PyTorch state dict of CPU tensors (copies).

    Load the result with ``torch_module.load_state_dict(...)``; torch casts to the module's dtype.
    """
    torch = _import_torch("to_torch_state_dict")
    if isinstance(model_or_state, Mapping):
        state = model_or_state
    elif hasattr(model_or_state, "state_dict") and callable(model_or_state.state_dict):
        state = model_or_state.state_dict()
    else:
        raise TypeError(f"to_torch_state_dict: expected a minigrad Layer or a state dict, got "
                        f"{type(model_or_state).__name__}")
    result = OrderedDict()
    for name, value in state.items():
        target = _rename(key_map, name)
        if target is None:
            continue
        if not is_array(value):
            raise TypeError(f"to_torch_state_dict: entry '{name}' is a {type(value).__name__}, not an array")
        host = numpy.array(to_backend(value, "numpy"), copy=True)   # own memory, C-contiguous
        result[target] = torch.from_numpy(host)
    return result
