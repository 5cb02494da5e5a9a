"""Linear (fully connected) and Flatten layers.

Linear:  y = x @ W^T + b      x: (N, *, in) -> (N, *, out)
         dW += dy^T @ x (out, in);  db += dy.sum over rows (out,);  dx = dy @ W (N, *, in)
         Small NumPy products run on one BLAS thread (minigrad.kernels.cpu_linear).
Flatten: a reshape; backward reshapes back.
"""
from __future__ import annotations

import math

import numpy

from ..functional.linear import linear_forward
from ..runtime.backend import backend_of
from ..kernels import cpu_linear
from ..runtime.checks import check_grad_like
from ..debug import tracing
from .init import fan_in_bias, kaiming_uniform
from .layer import Layer
from .parameter import Parameter


# Device names a layer's device= takes (as Layer.to does); a dtype given where one of these is expected, or the
# other way round, is a call written for minigrad's old order (dtype before device), refused with the new form.
_DEVICE_NAMES = ("numpy", "cpu", "np", "cupy", "cuda", "gpu", "cp")


def _is_dtype(value) -> bool:
    """Whether ``value`` names a dtype (a NumPy dtype, a scalar type, torch.float64, or a string such as 'float64')."""
    if isinstance(value, (numpy.dtype, type)):
        return True
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return True
    if isinstance(value, str) and value.lower() not in _DEVICE_NAMES:
        try:
            numpy.dtype(value)
        except TypeError:
            return False
        return True
    return False


def device_dtype(cls, device, dtype, leading: str):
    """The dtype a layer built with PyTorch's ``(..., device=None, dtype=None)`` pair creates its arrays in.

    dtype=None is float32 (PyTorch's default dtype). A dtype in the device slot -- ``Linear(4, 2, True, "float64")``,
    minigrad's old order -- or a device name in the dtype slot is refused with a TypeError naming the keyword form;
    ``leading`` is the text of the arguments before device, for that message. The device itself is applied by
    the layer afterwards, as ``.to(device)``.
    """
    import inspect

    where = cls.__name__
    if device is not None and _is_dtype(device):
        shown = f'"{device}"' if isinstance(device, str) else repr(device)
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]   # without self
        names = [p.name for p in params]
        order = ""
        if "device" in names:   # a subclass may have its own signature
            nth = names.index("device") + 1
            suffix = {1: "st", 2: "nd", 3: "rd"}.get(nth if nth < 20 else nth % 10, "th")
            order = (f" PyTorch's order is {where}({', '.join(str(p) for p in params)}), so the {nth}{suffix} "
                     "positional argument is device.")
        raise TypeError(f"{where}: device={device!r} is a dtype, not a device.{order} Pass the dtype by keyword: "
                        f"{where}({leading}, dtype={shown})")
    if isinstance(dtype, str) and dtype.lower() in _DEVICE_NAMES:
        raise TypeError(f"{where}: dtype={dtype!r} is a device, not a dtype; pass it as device={dtype!r}")
    return "float32" if dtype is None else dtype


class Linear(Layer):
    """y = x @ weight.T + bias. weight: (out_features, in_features); bias: (out_features,)."""
    FORWARD_COPIES = 0      # forward checks its exact output and workspace bytes itself (runtime/memory.py)

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        dtype = device_dtype(Linear, device, dtype, f"{in_features!r}, {out_features!r}, {bias!r}")
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        label = f"Linear({in_features}, {out_features})"          # names the layer in a MemoryError
        self.weight = Parameter(kaiming_uniform((out_features, in_features), in_features, dtype=dtype, where=label))
        self.bias = Parameter(fan_in_bias((out_features,), in_features, dtype=dtype, where=label)) if bias else None
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    def forward(self, input):
        """input: (N, *, in_features) -> (N, *, out_features). Caches input."""
        y = linear_forward(input, self.weight.data, None if self.bias is None else self.bias.data, self.label)
        self._cache = input
        return y

    def _backward(self, grad_out, need_input):
        """grad_out: (N, *, out_features) -> (N, *, in_features) or None; adds into weight.grad, bias.grad."""
        x = self.take_cache()
        self.check_grad_out(grad_out, tuple(x.shape[:-1]) + (self.out_features,), x)
        dy = grad_out.reshape(-1, self.out_features)       # (N, *, out) -> (M, out)
        x2 = x.reshape(-1, self.in_features)               # (N, *, in) -> (M, in)
        if self.weight.requires_grad:                        # a frozen weight: no product computed
            self.weight.accumulate(cpu_linear.matmul(dy.T, x2), self.label)   # (out, M) @ (M, in) -> (out, in)
        dx = cpu_linear.matmul(dy, self.weight.data).reshape(x.shape) if need_input else None   # (M, in) -> (N, *, in)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate(dy.sum(axis=0), self.label)
        return dx

    def trace_details(self, phase, args, out):
        """The products of this call for mg.trace()."""
        rows = math.prod(args[0].shape[:-1])                       # M: every position of (N, *)
        w_in, w_out = self.in_features, self.out_features
        if phase == "forward":
            return [f"GEMM     x @ W^T: {tracing.gemm_text((rows, w_in), (w_in, w_out))}"
                    + (f" + bias {(w_out,)}" if self.bias is not None else "")]
        lines = [f"dW       dy^T @ x: {tracing.gemm_text((w_out, rows), (rows, w_in))}"]
        if out is not None:
            lines.append(f"dx       dy @ W: {tracing.gemm_text((rows, w_out), (w_out, w_in))}")
        return lines

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Layer):
    """Flatten dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        if not hasattr(input, "shape"):
            raise TypeError(f"{self.label}: expected an array, got {type(input).__name__}")
        ndim = input.ndim
        for dim in (self.start_dim, self.end_dim):
            if ndim and not -ndim <= dim < ndim:
                raise IndexError(f"{self.label}: dimension out of range (expected to be in range of "
                                 f"[{-ndim}, {ndim - 1}] for an input of shape {tuple(input.shape)}, but got {dim})")
        start = self.start_dim % ndim if ndim else 0
        end = self.end_dim % ndim if ndim else 0
        if ndim == 0 or start > end:
            raise ValueError(f"{self.label}: cannot flatten dims {self.start_dim}..{self.end_dim} of an input "
                             f"of shape {tuple(input.shape)}")
        merged = math.prod(input.shape[start:end + 1])           # explicit, not -1: a zero-size input has no -1
        y = input.reshape(input.shape[:start] + (merged,) + input.shape[end + 1:])  # (.., a, b, ..) -> (.., a*b, ..)
        self._cache = (tuple(input.shape), tuple(y.shape), backend_of(input), input.dtype)
        return y

    def backward(self, grad_out):
        """grad_out: the output shape -> the input shape (a reshape)."""
        shape, out_shape, backend, dtype = self.take_cache()
        check_grad_like(grad_out, self.label, out_shape, backend, dtype)
        return grad_out.reshape(shape)                    # (.., a*b, ..) -> (.., a, b, ..)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
