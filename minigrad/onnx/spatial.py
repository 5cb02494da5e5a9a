"""The 2-D convolutions and pools of mg.onnx.load (Conv, ConvTranspose, MaxPool, AveragePool), every attribute
checked: kernel_shape, strides, dilations (2 positive integers each), pads (4 non-negative integers; ignored
with auto_pad VALID, as ONNX Runtime and the ONNX reference do), group (a divisor of the channels).
"""
from __future__ import annotations

from ..functional.conv import resolve_padding
from ..nn import AvgPool2d, Conv2d, ConvTranspose2d, MaxPool2d
from .checks import int_list

__all__ = ["SpatialOps", "PAD_MODES"]

PAD_MODES = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}


class SpatialOps:
    """Mixed into the importer (minigrad/onnx/load.py): one method per 2-D convolution or pool op."""

    def pad_arguments(self, node, rank: int, zero_value: bool):
        """(pads, mode, value) of a Pad node on a rank-3 (N, C, L) or rank-4 (N, C, H, W) value, checked: pads from
        the attribute or a constant integer input, a single constant_value (0 only when ``zero_value``), a mode
        minigrad has (constant, reflect, edge, wrap), no 'axes' input, and no padding of N or C."""
        attrs = self.attrs(node, {"mode", "pads", "value"})
        pads = attrs.get("pads")
        if pads is None:
            given = self.const(node, 1, "pads", required=True, ndim=1)
            self.require(node, given.dtype.kind == "i", "pads", given.dtype, "an integer tensor")
            pads = [int(p) for p in given]
        pads = list(pads)
        value = self.const(node, 2, "constant_value", ndim=(0, 1))
        if value is not None and value.size != 1:
            raise self.fail(node, f"its constant_value of shape {value.shape} is not a single value")
        value = attrs.get("value", 0.0) if value is None else float(value.reshape(-1)[0])
        mode = attrs.get("mode", "constant")
        self.require(node, mode in ("constant",) + tuple(PAD_MODES), "mode", mode, "constant, reflect, edge, wrap")
        if zero_value:
            self.require(node, value == 0.0, "constant_value", value, "only 0")
        if len(node.input) > 3 and node.input[3]:
            raise self.fail(node, "the 'axes' input is not supported")
        fixed = (0, 1, rank, rank + 1)                   # the begin and end pads of N and C
        if len(pads) != 2 * rank or any(pads[i] for i in fixed):
            axes = "the L axis of a 3-D input" if rank == 3 else "the H and W axes of a 4-D input"
            raise self.fail(node, f"pads {pads} are not supported (only {axes})")
        return pads, mode, value

    def _pads(self, node, attrs):
        """The checked pads (top, left, bottom, right); auto_pad VALID ignores them (pads 0, as ONNX Runtime)."""
        if attrs.get("auto_pad", "NOTSET") == "VALID":
            if node.op_type in ("Conv", "ConvTranspose") and "pads" in attrs:    # as ONNX Runtime: refused
                raise self.fail(node, f"attributes 'auto_pad' = 'VALID' and 'pads' = {attrs['pads']} are both given; "
                                      f"ONNX Runtime refuses such a {node.op_type}: keep one of them")
            return [0, 0, 0, 0]
        return list(int_list(lambda why: self.fail(node, why), attrs, "pads", (0, 0, 0, 0), 4, 0))

    def _pads2d(self, node, pads):
        """ONNX pads (top, left, bottom, right) -> a Conv/Pool padding (symmetric pair) or None."""
        top, left, bottom, right = pads
        return (top, left) if (top, left) == (bottom, right) else None

    def _spatial(self, node, attrs, weight=None):
        """(kernel, stride, dilation) of a 2-D Conv or pool, each checked; the kernel from the weight if absent."""
        self.require(node, attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID"), "auto_pad",
                     attrs.get("auto_pad"), "give explicit pads")
        fail = lambda why: self.fail(node, why)            # noqa: E731
        if weight is None and "kernel_shape" not in attrs:
            raise self.fail(node, "attribute 'kernel_shape' is missing (required); the file is corrupted")
        kernel = int_list(fail, attrs, "kernel_shape", None if weight is None else tuple(weight.shape[2:]), 2, 1)
        if weight is not None and tuple(weight.shape[2:]) != kernel:
            raise self.fail(node, f"attribute 'kernel_shape' = {list(kernel)} does not match the weight of shape "
                                  f"{weight.shape} (expected a 4-D weight with that kernel)")
        return kernel, int_list(fail, attrs, "strides", (1, 1), 2, 1), int_list(fail, attrs, "dilations", (1, 1), 2, 1)

    def check_input(self, node, name, rank, axis=None, size=None):
        """The inferred shape of input ``name`` must have ``rank`` (and ``size`` at ``axis``) where it is known."""
        shape = self.shapes.get(name)
        if shape is not None and (len(shape) != rank or axis is not None and shape[axis] not in (None, size)):
            wanted = f"rank {rank}" + (f" with {size} at axis {axis}" if axis is not None else "")
            raise self.fail(node, f"its input '{name}' has shape {shape}; its weights need {wanted}")

    def _flag(self, node, attrs, name, default=0):
        value = attrs.get(name, default)
        self.require(node, value in (0, 1), name, value, "0 or 1")
        return value

    def _group(self, node, attrs, weight, out_channels):
        group = attrs.get("group", 1)
        self.require(node, isinstance(group, int) and group >= 1 and out_channels % group == 0, "group", group,
                     f"a positive divisor of the {out_channels} output channels of the weight {weight.shape}")
        return group

    def _conv_weights(self, node):
        weight = self.const(node, 1, "weight", required=True, ndim=4, floating=True)
        bias = self.const(node, 2, "bias", ndim=1, floating=True)
        return weight, bias

    def op_Conv(self, node):
        attrs = self.attrs(node, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
        weight, bias = self._conv_weights(node)
        kernel, stride, dilation = self._spatial(node, attrs, weight)
        pads = self._pads(node, attrs)
        x, mode = node.input[0], "zeros"
        if x in self.pending_pad:                             # Pad -> Conv: the Pad becomes the padding
            x, pad_pads, pad_mode = self.pending_pad.pop(x)
            if pad_mode == "constant":
                pads = [a + b for a, b in zip(pads, pad_pads)]
            else:
                self.require(node, pads == [0, 0, 0, 0], "pads", pads, f"a {pad_mode} Pad before a padded Conv")
                pads, mode = pad_pads, PAD_MODES[pad_mode]
        padding = self._pads2d(node, pads)
        if padding is None and stride == (1, 1):
            top, bottom, left, right = resolve_padding("same", kernel, stride, dilation, self.where)
            padding = "same" if list(pads) == [top, left, bottom, right] else None
        self.require(node, padding is not None, "pads", pads, "asymmetric padding other than 'same'")
        group = self._group(node, attrs, weight, weight.shape[0])
        if bias is not None and bias.shape != (weight.shape[0],):
            raise self.fail(node, f"bias of shape {bias.shape} does not match the weight of shape {weight.shape}")
        layer = Conv2d(weight.shape[1] * group, weight.shape[0], kernel, stride, padding, dilation, group,
                       bias is not None, mode, dtype=weight.dtype)
        self._set(layer, weight, bias)
        self.check_input(node, x, 4, 1, weight.shape[1] * group)
        self.add(node, layer, [x], weight_input=1)

    def op_ConvTranspose(self, node):
        attrs = self.attrs(node, {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "pads",
                                  "strides"})
        weight, bias = self._conv_weights(node)
        kernel, stride, dilation = self._spatial(node, attrs, weight)
        padding = self._pads2d(node, self._pads(node, attrs))
        self.require(node, padding is not None, "pads", attrs.get("pads"), "asymmetric padding")
        group = self._group(node, attrs, weight, weight.shape[0])
        if bias is not None and bias.shape != (weight.shape[1] * group,):
            raise self.fail(node, f"bias of shape {bias.shape} does not match the weight of shape {weight.shape}")
        output_padding = int_list(lambda why: self.fail(node, why), attrs, "output_padding", (0, 0), 2, 0)
        self.require(node, all(p < max(s, d) for p, s, d in zip(output_padding, stride, dilation)),
                     "output_padding", list(output_padding), "each below the stride or the dilation")
        layer = ConvTranspose2d(weight.shape[0], weight.shape[1] * group, kernel, stride, padding,
                                output_padding, group, bias is not None, dilation,
                                dtype=weight.dtype)
        self._set(layer, weight, bias)
        self.check_input(node, node.input[0], 4, 1, weight.shape[0])
        self.add(node, layer, [node.input[0]], weight_input=1)

    def _pool(self, node, attrs):
        self.check_input(node, node.input[0], 4)
        kernel, stride, dilation = self._spatial(node, attrs)
        padding = self._pads2d(node, self._pads(node, attrs))
        self.require(node, padding is not None, "pads", attrs.get("pads"), "asymmetric padding")
        self.require(node, all(p <= k // 2 for p, k in zip(padding, kernel)), "pads", attrs.get("pads"),
                     "at most half the kernel")
        return kernel, stride, padding, dilation, bool(self._flag(node, attrs, "ceil_mode"))

    def op_MaxPool(self, node):
        attrs = self.attrs(node, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                                  "strides"})
        self.require(node, attrs.get("storage_order", 0) == 0, "storage_order", attrs.get("storage_order"), "only 0")
        self.check_outputs(node)
        kernel, stride, padding, dilation, ceil = self._pool(node, attrs)
        self.add(node, MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil), [node.input[0]])

    def op_AveragePool(self, node):
        attrs = self.attrs(node, {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads",
                                  "strides"})
        kernel, stride, padding, dilation, ceil = self._pool(node, attrs)
        self.require(node, dilation == (1, 1), "dilations", list(dilation), "AvgPool2d has no dilation")
        self.add(node, AvgPool2d(kernel, stride, padding, ceil, bool(self._flag(node, attrs, "count_include_pad"))),
                 [node.input[0]])
