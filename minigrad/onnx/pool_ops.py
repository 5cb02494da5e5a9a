"""ONNX export and import of the pooling and 1-d layers (nn/pooling_more.py, nn/conv1d.py, nn/pooling1d.py).

Export (``EXPORTERS``, merged into export.py's table; batched input only):

    Conv1d             [Pad (reflect/edge/wrap, opset 19 for wrap) ->] Conv, 1-d attributes (kernel_shape [k], ...)
    MaxPool1d          MaxPool, 1-d attributes (ceil_mode, dilations); return_indices refused
    AvgPool1d          AveragePool, 1-d attributes (ceil_mode, count_include_pad)
    AdaptiveAvgPool2d, AdaptiveAvgPool1d   output 1 (x 1): GlobalAveragePool; sizes dividing the input's: AveragePool
                       with kernel = stride = input / output (the bins are then exactly those windows)
    AdaptiveMaxPool2d, AdaptiveMaxPool1d   the same with GlobalMaxPool / MaxPool; return_indices refused
    LPPool2d, LPPool1d LpPool(p) for an even integer p (ONNX's LpPool sums |x|^p, PyTorch x^p: equal only for even p)
                       when no window is clipped by ceil_mode (PyTorch rescales a clipped window by kh*kw / its size)

ONNX has no adaptive pooling: an output size that does not divide the input's, an odd or non-integer p, p = inf or
a clipped ceil_mode window raise OnnxError naming the layer and the reason.

Import (``PoolOps``, a mixin of the importer in load.py, before ``SpatialOps`` among its bases): a Conv with a 3-D
weight -> Conv1d (a Pad (reflect/edge/wrap/constant 0) right before it -> its padding or padding_mode), MaxPool /
AveragePool / LpPool on a 3-D input -> MaxPool1d / AvgPool1d / LPPool1d, LpPool on a 4-D input -> LPPool2d (even p,
no ceil_mode clipping), GlobalMaxPool -> AdaptiveMaxPool2d(1) (AdaptiveMaxPool1d(1) for 3-D),
GlobalAveragePool on a 3-D input -> AdaptiveAvgPool1d(1). 4-D Conv/MaxPool/AveragePool/Pad go on to SpatialOps.
"""
from __future__ import annotations

import math

import numpy

from ..functional.pool import pool_out_size
from ..functional.signal1d import conv1d_padding
from ..nn import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, AvgPool1d, Conv1d,
                  LPPool1d, LPPool2d, MaxPool1d)
from .checks import int_list
from .common import OnnxError
from .spatial import PAD_MODES

__all__ = ["EXPORTERS", "PoolOps"]

_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}   # padding_mode -> ONNX Pad mode


def _tag(layer) -> str:
    """The node name export.py gives a layer: its qualified name, else its class name."""
    return layer.name or type(layer).__name__


def _batched(layer, x, rank, layout):
    if x.ndim != rank:
        raise OnnxError(f"mg.onnx.export: {layer.label} gets an input of shape {tuple(x.shape)}; ONNX needs the "
                        f"batched {layout} form")


# -- export ------------------------------------------------------------------------------------------------------
def conv1d(emitter, layer, names, arrays, y):
    _batched(layer, arrays[0], 3, "(N, C, L)")
    (k,), (s,), (d,) = layer.kernel_size, layer.stride, layer.dilation
    _, (left, right) = conv1d_padding(layer.padding, k, s, d, layer.label)
    x = names[0]
    if layer.padding_mode != "zeros":
        if layer.padding_mode == "circular" and emitter.opset < 19:
            raise OnnxError(f"mg.onnx.export: {layer.label} uses padding_mode='circular', which ONNX's Pad ('wrap') "
                            f"has only from opset 19; got opset={emitter.opset}")
        pads = emitter.const(f"{_tag(layer)}.pads", [0, 0, left, 0, 0, right], numpy.int64)
        x = emitter.node("Pad", [x, pads], f"{_tag(layer)}.pad", mode=_PAD_MODES[layer.padding_mode])
        left = right = 0
    inputs = [x, emitter.state(layer.weight, layer, "weight")]
    if layer.bias is not None:
        inputs.append(emitter.state(layer.bias, layer, "bias"))
    return emitter.node("Conv", inputs, _tag(layer), kernel_shape=[k], strides=[s], pads=[left, right],
                        dilations=[d], group=layer.groups)


def max_pool1d(emitter, layer, names, arrays, y):
    _batched(layer, arrays[0], 3, "(N, C, L)")
    if layer.return_indices:
        raise OnnxError(f"mg.onnx.export: {layer.label} has return_indices=True; export supports only the pooled "
                        "values")
    return emitter.node("MaxPool", names, _tag(layer), kernel_shape=[layer.kernel_size], strides=[layer.stride],
                        pads=[layer.padding] * 2, dilations=[layer.dilation], ceil_mode=int(layer.ceil_mode))


def avg_pool1d(emitter, layer, names, arrays, y):
    _batched(layer, arrays[0], 3, "(N, C, L)")
    return emitter.node("AveragePool", names, _tag(layer), kernel_shape=list(layer.kernel_size),
                        strides=list(layer.stride), pads=list(layer.padding) * 2, ceil_mode=int(layer.ceil_mode),
                        count_include_pad=int(layer.count_include_pad))


def _adaptive(op):
    """The exporter of an adaptive pool: Global<op>Pool for output 1, <op>Pool when the sizes divide."""
    def export(emitter, layer, names, arrays, y):
        x = arrays[0]
        rank = 4 if isinstance(layer, (AdaptiveAvgPool2d, AdaptiveMaxPool2d)) else 3
        _batched(layer, x, rank, "(N, C, H, W)" if rank == 4 else "(N, C, L)")
        if getattr(layer, "return_indices", False):
            raise OnnxError(f"mg.onnx.export: {layer.label} has return_indices=True; export supports only the "
                            "pooled values")
        size, out = tuple(x.shape[2:]), tuple(y.shape[2:])
        if all(o == 1 for o in out):
            return emitter.node(f"Global{op}Pool", names, _tag(layer))
        if any(s % o for s, o in zip(size, out)):
            raise OnnxError(f"mg.onnx.export: {layer.label} has output_size {layer.output_size}, which does not divide "
                            f"the input's size {size}: ONNX has no adaptive pooling, and its {op}Pool equals "
                            "PyTorch's bins only when the input size is a multiple of the output size")
        window = [s // o for s, o in zip(size, out)]
        return emitter.node(f"{op}Pool", names, _tag(layer), kernel_shape=window, strides=window)
    return export


def _lp_pool(rank):
    def export(emitter, layer, names, arrays, y):
        x = arrays[0]
        _batched(layer, x, rank, "(N, C, H, W)" if rank == 4 else "(N, C, L)")
        p = layer.norm_type
        if not (math.isfinite(p) and p == int(p) and int(p) % 2 == 0 and p > 0):
            raise OnnxError(f"mg.onnx.export: {layer.label} has norm_type={p:g}; ONNX's LpPool sums |x|^p and PyTorch "
                            "x^p, which are equal only for an even positive integer p")
        kernel = [layer.kernel_size] if rank == 3 else list(layer.kernel_size)
        stride = [layer.stride] if rank == 3 else list(layer.stride)
        for size, k, s in zip(x.shape[2:], kernel, stride):
            if layer.ceil_mode and pool_out_size(size, k, s, 0, 1, True) != pool_out_size(size, k, s, 0, 1, False):
                raise OnnxError(f"mg.onnx.export: {layer.label} has ceil_mode=True and its last window is clipped "
                                f"(input size {size}, kernel {k}, stride {s}): PyTorch scales a clipped window's sum "
                                "by the kernel area over its size, ONNX's LpPool does not")
        return emitter.node("LpPool", names, _tag(layer), kernel_shape=kernel, strides=stride, p=int(p))
    return export


EXPORTERS = {Conv1d: conv1d, MaxPool1d: max_pool1d, AvgPool1d: avg_pool1d,
             AdaptiveAvgPool2d: _adaptive("Average"), AdaptiveAvgPool1d: _adaptive("Average"),
             AdaptiveMaxPool2d: _adaptive("Max"), AdaptiveMaxPool1d: _adaptive("Max"),
             LPPool2d: _lp_pool(4), LPPool1d: _lp_pool(3)}


# -- import ------------------------------------------------------------------------------------------------------
class PoolOps:
    """Mixed into the importer (minigrad/onnx/load.py) before SpatialOps: the 1-d forms of Conv, MaxPool,
    AveragePool and Pad, and LpPool, GlobalMaxPool; the 2-D forms go on to SpatialOps."""

    def _rank(self, name):
        shape = self.shapes.get(name)
        return len(shape) if shape is not None else None

    def _ints1(self, node, attrs, name, default, minimum=1, length=1):
        return int_list(lambda why: self.fail(node, why), attrs, name, default, length, minimum)

    def _window1d(self, node, attrs, weight=None):
        """(kernel, stride, dilation, (left, right)) of a 1-d Conv or pool, each attribute checked. A Conv's
        auto_pad SAME_UPPER (PyTorch's exporter writes it for padding='same') is PyTorch's 'same' at stride 1."""
        auto_pad = attrs.get("auto_pad", "NOTSET")
        same = weight is not None and auto_pad in ("SAME_UPPER", "SAME_LOWER")
        self.require(node, auto_pad in ("NOTSET", "VALID") or same, "auto_pad", auto_pad, "give explicit pads")
        if weight is None and "kernel_shape" not in attrs:
            raise self.fail(node, "attribute 'kernel_shape' is missing (required); the file is corrupted")
        (k,) = self._ints1(node, attrs, "kernel_shape", None if weight is None else (weight.shape[2],))
        if weight is not None and k != weight.shape[2]:
            raise self.fail(node, f"attribute 'kernel_shape' = {[k]} does not match the weight of shape {weight.shape}")
        (s,), (d,) = self._ints1(node, attrs, "strides", (1,)), self._ints1(node, attrs, "dilations", (1,))
        if same:
            total = d * (k - 1)
            self.require(node, s == 1 and (auto_pad == "SAME_UPPER" or total % 2 == 0), "auto_pad", auto_pad,
                         "only PyTorch's padding='same': stride 1, any extra padding at the end")
            return k, s, d, conv1d_padding("same", k, 1, d, self.where)[1]
        pads = (0, 0) if auto_pad == "VALID" else self._ints1(node, attrs, "pads", (0, 0), 0, 2)
        return k, s, d, tuple(pads)

    def op_Conv(self, node):
        weight = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if getattr(weight, "ndim", None) != 3:
            return super().op_Conv(node)
        attrs = self.attrs(node, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
        weight = self.const(node, 1, "weight", required=True, ndim=3, floating=True)
        bias = self.const(node, 2, "bias", ndim=1, floating=True)
        self.require(node, "pads" not in attrs or attrs.get("auto_pad", "NOTSET") != "VALID", "auto_pad", "VALID",
                     "with explicit pads as well; ONNX Runtime refuses such a Conv: keep one of them")
        k, s, d, pads = self._window1d(node, attrs, weight)
        x, mode = node.input[0], "zeros"
        if x in self.pending_pad:                             # Pad -> Conv: the Pad becomes the padding
            x, pad_pads, pad_mode = self.pending_pad.pop(x)
            if pad_mode == "constant":
                pads = (pads[0] + pad_pads[0], pads[1] + pad_pads[1])
            else:
                self.require(node, pads == (0, 0), "pads", list(pads), f"a {pad_mode} Pad before a padded Conv")
                pads, mode = tuple(pad_pads), PAD_MODES[pad_mode]
        same = conv1d_padding("same", k, 1, d, self.where)[1] if s == 1 else None
        padding = pads[0] if pads[0] == pads[1] else "same" if pads == same else None
        self.require(node, padding is not None, "pads", list(pads), "asymmetric padding other than 'same'")
        group = self._group(node, attrs, weight, weight.shape[0])
        if bias is not None and bias.shape != (weight.shape[0],):
            raise self.fail(node, f"bias of shape {bias.shape} does not match the weight of shape {weight.shape}")
        layer = Conv1d(weight.shape[1] * group, weight.shape[0], k, s, padding, d, group, bias is not None, mode,
                       dtype=weight.dtype)
        self._set(layer, weight, bias)
        self.check_input(node, x, 3, 1, weight.shape[1] * group)
        self.add(node, layer, [x], weight_input=1)

    def convert(self, node):
        """A Pad or GlobalAveragePool on a 3-D value: the 1-d handlers here (load.py's own are 4-D only). Other
        errors than OnnxError become one naming the node in Importer.run, around this whole method."""
        handler = {"Pad": self._pad1d, "GlobalAveragePool": self._global_average1d}.get(node.op_type)
        if handler is None or not node.input or node.input[0] not in self.values or self._rank(node.input[0]) != 3:
            return super().convert(node)
        handler(node)

    def _pad1d(self, node):
        """A Pad of a 3-D value's L axis (pads >= 0), kept for the Conv right after it (as load.py's op_Pad)."""
        pads, mode, _ = self.pad_arguments(node, 3, zero_value=True)
        self.require(node, all(p >= 0 for p in pads), "pads", pads,
                     "a negative pad crops the input; minigrad has no crop layer and a Conv's padding only adds")
        self.value(node, node.input[0])
        self.pending_pad[node.output[0]] = (node.input[0], [pads[2], pads[5]], mode)

    def _pool1d(self, node, attrs):
        self.require(node, "pads" not in attrs or attrs.get("auto_pad", "NOTSET") != "VALID", "auto_pad", "VALID",
                     "with explicit pads as well: keep one of them")
        k, s, d, (left, right) = self._window1d(node, attrs)
        self.require(node, left == right, "pads", [left, right], "asymmetric padding")
        self.require(node, left <= k // 2, "pads", [left, right], "at most half the kernel")
        return k, s, left, d, bool(self._flag(node, attrs, "ceil_mode"))

    def op_MaxPool(self, node):
        if self._rank(node.input[0]) != 3:
            return super().op_MaxPool(node)
        attrs = self.attrs(node, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                                  "strides"})
        self.require(node, attrs.get("storage_order", 0) == 0, "storage_order", attrs.get("storage_order"), "only 0")
        self.check_outputs(node)
        k, s, p, d, ceil = self._pool1d(node, attrs)
        self.add(node, MaxPool1d(k, s, p, d, ceil_mode=ceil), [node.input[0]])

    def op_AveragePool(self, node):
        if self._rank(node.input[0]) != 3:
            return super().op_AveragePool(node)
        attrs = self.attrs(node, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                                  "strides"})
        k, s, p, d, ceil = self._pool1d(node, attrs)
        self.require(node, d == 1, "dilations", [d], "AvgPool1d has no dilation")
        self.add(node, AvgPool1d(k, s, p, ceil, bool(self._flag(node, attrs, "count_include_pad"))), [node.input[0]])

    def op_LpPool(self, node):
        attrs = self.attrs(node, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "p", "pads", "strides"})
        shape = self.shapes.get(node.input[0])
        rank = len(shape) if shape is not None else None
        if rank not in (3, 4):
            raise self.fail(node, f"input of rank {rank} is not supported (3-D (N, C, L) or 4-D (N, C, H, W))")
        p = attrs.get("p", 2)
        self.require(node, isinstance(p, int) and p > 0 and p % 2 == 0, "p", p,
                     "an even positive integer: LpPool sums |x|^p, PyTorch's LPPool x^p")
        self.require(node, attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"), "auto_pad", attrs.get("auto_pad"),
                     "give explicit pads")
        fail = lambda why: self.fail(node, why)            # noqa: E731
        if "kernel_shape" not in attrs:
            raise self.fail(node, "attribute 'kernel_shape' is missing (required); the file is corrupted")
        kernel = int_list(fail, attrs, "kernel_shape", None, rank - 2, 1)
        stride = int_list(fail, attrs, "strides", (1,) * (rank - 2), rank - 2, 1)
        self.require(node, int_list(fail, attrs, "dilations", (1,) * (rank - 2), rank - 2, 1) == (1,) * (rank - 2),
                     "dilations", attrs.get("dilations"), "LPPool has no dilation")
        if attrs.get("auto_pad", "NOTSET") != "VALID":
            self.require(node, not any(int_list(fail, attrs, "pads", (0,) * (2 * rank - 4), 2 * rank - 4, 0)),
                         "pads", attrs.get("pads"), "LPPool has no padding")
        small = [size for size, k in zip(shape[2:], kernel) if size is not None and size < k]
        if small:
            raise self.fail(node, f"its input of shape {shape} is smaller than the kernel {list(kernel)}: no window "
                                  "fits")
        if self._flag(node, attrs, "ceil_mode"):
            clipped = [size is None or pool_out_size(size, k, s, 0, 1, True) != pool_out_size(size, k, s, 0, 1, False)
                       for size, k, s in zip(shape[2:], kernel, stride)]
            self.require(node, not any(clipped), "ceil_mode", 1, "a window clipped by ceil_mode (or an unknown input "
                         "size): PyTorch rescales it by the kernel area over its size")
        layer = LPPool1d(p, kernel[0], stride[0]) if rank == 3 else LPPool2d(p, kernel, stride)
        self.add(node, layer, [node.input[0]])

    def op_GlobalMaxPool(self, node):
        self.attrs(node, set())
        rank = self._rank(node.input[0])
        if rank not in (3, 4):
            raise self.fail(node, f"input of rank {rank} is not supported (3-D (N, C, L) or 4-D (N, C, H, W))")
        self.add(node, AdaptiveMaxPool2d(1) if rank == 4 else AdaptiveMaxPool1d(1), [node.input[0]])

    def _global_average1d(self, node):
        self.attrs(node, set())
        self.add(node, AdaptiveAvgPool1d(1), [node.input[0]])
