"""Padding layers: ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d, CircularPad2d (PyTorch's names,
signatures and semantics).

``padding`` is an int (all four sides) or a 4-tuple (left, right, top, bottom), as in PyTorch; a negative entry
crops. They run the padding code Conv2d's ``padding_mode`` uses (``minigrad.functional.padding``):

    ZeroPad2d / ConstantPad2d   y = x placed in a block filled with value     dx = the block of dy over x
    ReflectionPad2d             y[p] = x[reflect(p)]  (edge not repeated)     dx = dy scatter-added to the sources
    ReplicationPad2d            y[p] = x[clamp(p)]                            dx = dy scatter-added to the sources
    CircularPad2d               y[p] = x[p mod size]                          dx = dy scatter-added to the sources

Inputs: (N, C, H, W) or unbatched (C, H, W); the constant pads take any input of >= 2 dimensions (the last two
are padded), like PyTorch.
"""
from __future__ import annotations

import numbers

from ..functional.padding import as_planes, check_padding, pad2d, pad2d_backward
from ..runtime.backend import backend_of
from ..runtime.checks import check_float_array, check_grad_like, check_ndim
from .layer import Layer

__all__ = ["ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"]


def _quadruple(padding, where: str) -> tuple:
    """int or 4-sequence of ints -> (left, right, top, bottom)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * 4
    if isinstance(padding, (tuple, list)) and len(padding) == 4 and all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding):
        return tuple(int(p) for p in padding)
    raise TypeError(f"{where}: padding must be an int or a 4-tuple of ints (left, right, top, bottom), "
                    f"got {padding!r}")


class _Pad2d(Layer):
    """A 2-D pad in ``_mode`` (a functional.padding mode); forward caches the pads and the input's layout."""
    FORWARD_COPIES = 0      # pad2d checks its exact output bytes itself (runtime/memory.py)
    _mode = "zeros"

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(padding, type(self).__name__)

    def _value(self):
        return 0.0

    def forward(self, input):
        """input: (N, C, H, W) or (C, H, W) -> (N, C, H + top + bottom, W + left + right). Caches the pads."""
        where = self.label
        check_float_array(input, where)
        if self._mode == "zeros":
            if input.ndim < 2:
                raise ValueError(f"{where}: expected an input of at least 2 dimensions (*, H, W), got "
                                 f"{input.ndim}-D input of shape {tuple(input.shape)}")
        else:
            check_ndim(input, (3, 4), where, "(N, C, H, W) or (C, H, W)")
        left, right, top, bottom = self.padding
        pads = (top, bottom, left, right)
        lead, (h, w) = tuple(input.shape[:-2]), input.shape[-2:]
        check_padding((h, w), pads, self._mode, where)
        x4 = as_planes(input, where)                       # (*, H, W) -> (B, C, H, W), a view unless over 4-D
        y = pad2d(x4, pads, self._mode, self._value(), where=where)
        self._cache = (pads, tuple(input.shape), backend_of(input), input.dtype)
        return y.reshape(lead + tuple(y.shape[2:]))        # (B, C, H', W') -> (*, H', W')

    def backward(self, grad_out):
        """grad_out: (*, H', W') -> (*, H, W): the core copied, each padded entry added to its source."""
        pads, in_shape, backend, dtype = self.take_cache()
        top, bottom, left, right = pads
        out_shape = in_shape[:-2] + (in_shape[-2] + top + bottom, in_shape[-1] + left + right)
        check_grad_like(grad_out, self.label, out_shape, backend, dtype)
        g4 = as_planes(grad_out, self.label)                                    # (*, H', W') -> (B, C, H', W')
        return pad2d_backward(g4, pads, self._mode).reshape(in_shape)          # (B, C, H, W) -> (*, H, W)

    def extra_repr(self):
        return f"{self.padding}"


class ConstantPad2d(_Pad2d):
    """Pad the last two dimensions with ``value``; negative padding crops."""

    def __init__(self, padding, value):
        super().__init__(padding)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"ConstantPad2d: value must be a number, got {value!r}")
        self.value = value

    def _value(self):
        return float(self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """Pad the last two dimensions with zeros; negative padding crops."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ReflectionPad2d(_Pad2d):
    """Mirror the input at its borders without repeating the edge; each pad must be smaller than that size."""
    _mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Repeat the input's edge rows and columns."""
    _mode = "replicate"


class CircularPad2d(_Pad2d):
    """Wrap around: the left pad copies the rightmost columns, and so on; each pad at most that size."""
    _mode = "circular"
