"""Nested objects in a checkpoint: ``mg.save({"model": ..., "optimizer": ..., "epoch": 3}, path)``.

``torch.save``'s most common use is one dict holding state dicts, numbers and strings. minigrad stores such a
tree without pickle: ``encode`` turns it into a JSON structure in which every array is a numbered
placeholder, plus the list of arrays (written as archive members ``tree/<n>``, checked like the model's);
``decode`` turns them back into the same structure. What a tree may hold:

    dict (keys: str, int, float, bool or None; order kept), OrderedDict, list, tuple,
    NumPy/CuPy arrays (any shape, no object dtype), numpy scalars, int, float (nan/inf too), str, bool, None

Anything else (a Layer, a Parameter, a function, a set) is refused naming where it is in the tree, e.g.
``obj['model']``. JSON encoding::

    {"t": "dict", "items": [[key, value], ...], "ordered": bool}   {"t": "list" | "tuple", "items": [...]}
    {"t": "array", "index": n}          {"t": "value", "value": number | str | bool | null}
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping

import numpy

from ..runtime.backend import is_array

__all__ = ["encode", "decode", "decode_stored", "is_tree", "TreeError"]

_KEY_TYPES = (str, int, float, bool, type(None))
MAX_DEPTH = 64                                     # nesting a saved tree may have


class TreeError(ValueError):
    """A stored tree whose structure is malformed (a crafted or corrupted header)."""


def is_tree(obj) -> bool:
    """True for what ``mg.save`` stores as a tree: a mapping that is not a flat state dict (name -> array),
    or a list/tuple."""
    if isinstance(obj, (list, tuple)):
        return True
    return isinstance(obj, Mapping) and not all(isinstance(k, str) and is_array(v) for k, v in obj.items())


def encode(obj, where: str = "obj"):
    """(JSON structure, [arrays]) of a tree; arrays are the caller's to copy to the host."""
    arrays = []

    def walk(value, path, depth):
        if depth > MAX_DEPTH:
            raise TypeError(f"mg.save: {path} is nested more than {MAX_DEPTH} levels deep")
        if is_array(value):
            arrays.append((path, value))
            return {"t": "array", "index": len(arrays) - 1}
        if isinstance(value, Mapping):
            items = []
            for key, item in value.items():
                if isinstance(key, numpy.generic):
                    key = key.item()
                if not isinstance(key, _KEY_TYPES):
                    raise TypeError(f"mg.save: {path} has a key of type {type(key).__name__} ({key!r}); keys must be "
                                    "str, int, float, bool or None")
                items.append([key, walk(item, f"{path}[{key!r}]", depth + 1)])
            return {"t": "dict", "items": items, "ordered": isinstance(value, OrderedDict)}
        if isinstance(value, (list, tuple)):
            return {"t": "tuple" if isinstance(value, tuple) else "list",
                    "items": [walk(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]}
        if isinstance(value, numpy.generic) and value.dtype.kind in "biuf":
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"t": "value", "value": value}
        hint = (" (save its state_dict() instead)" if hasattr(value, "state_dict") else
                " (save its .data array instead)" if is_array(getattr(value, "data", None)) else "")
        raise TypeError(f"mg.save: cannot store {type(value).__name__} at {path}{hint}; a saved object holds "
                        "dicts, lists, tuples, arrays, numbers, strings, bools and None (no pickle)")

    return walk(obj, where, 0), arrays


def decode(node, arrays: list):
    """The tree ``encode`` described, with its arrays; raises TreeError for a malformed structure (every array
    must be used exactly once)."""
    used = set()

    def walk(node, depth):
        if depth > MAX_DEPTH or not isinstance(node, dict):
            raise TreeError("the stored object's structure is malformed")
        kind = node.get("t")
        if kind == "array":
            index = node.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(arrays) or index in used:
                raise TreeError(f"the stored object refers to array {index!r}, which is not one of its "
                                f"{len(arrays)} arrays or is used twice")
            used.add(index)
            return arrays[index]
        if kind == "value":
            value = node.get("value")
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise TreeError("the stored object holds a value of an unknown kind")
            return value
        items = node.get("items")
        if not isinstance(items, list):
            raise TreeError("the stored object's structure is malformed")
        if kind in ("list", "tuple"):
            values = [walk(item, depth + 1) for item in items]
            return tuple(values) if kind == "tuple" else values
        if kind == "dict":
            result = OrderedDict() if node.get("ordered") else {}
            for pair in items:
                if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], _KEY_TYPES) or (
                        isinstance(pair[0], float) and math.isnan(pair[0])):
                    raise TreeError("the stored object has a malformed dict entry")
                result[pair[0]] = walk(pair[1], depth + 1)
            return result
        raise TreeError(f"the stored object holds a node of unknown kind {kind!r}")

    tree = walk(node, 0)
    if len(used) != len(arrays):
        raise TreeError(f"the stored object uses {len(used)} of its {len(arrays)} arrays")
    return tree


def decode_stored(node, arrays: dict, convert):
    """The tree of a checkpoint: ``arrays`` named "tree/0" .. "tree/K-1" (else TreeError), each passed through
    ``convert`` (e.g. onto a backend) before ``decode``."""
    count = len(arrays)
    if set(arrays) != {f"tree/{i}" for i in range(count)}:
        raise TreeError(f"the stored object's arrays are not numbered 0..{count - 1}")
    return decode(node, [convert(arrays[f"tree/{i}"]) for i in range(count)])
