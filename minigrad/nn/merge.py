"""Multi-input layers for Graph nodes: Add, Mul, Concat.

Their forward takes several arrays and their backward returns a tuple, one gradient per input:
Add:    y = x0 + x1 + ...             dxi = dy
Mul:    y = x0 * x1 * ...             dxi = dy * prod_{j != i} xj
Concat: y = cat(x0, x1, ..., dim)     dxi = the slice of dy that xi filled
Inputs must agree exactly (same shape for Add/Mul, same shape outside ``dim`` for Concat, one
dtype, one backend): no silent broadcasting.
"""
from __future__ import annotations

from ..runtime.backend import backend_of, get_array_module
from ..runtime.checks import check_float_array, check_grad_like, check_same_dtype
from .layer import Layer

__all__ = ["Add", "Mul", "Concat"]


def _check_inputs(layer, xs, minimum: int = 2):
    """Common checks: enough inputs, floating arrays, one backend, one dtype. Returns xp."""
    where = layer.label
    if len(xs) < minimum:
        raise TypeError(f"{where}: expected at least {minimum} inputs, got {len(xs)}")
    for i, x in enumerate(xs):
        check_float_array(x, where, f"input {i}")
    xp = get_array_module(*xs, names=tuple(f"input {i}" for i in range(len(xs))), where=where)
    for i, x in enumerate(xs[1:], start=1):
        check_same_dtype(xs[0], x, where, "input 0", f"input {i}")
    return xp


def _check_same_shapes(layer, xs):
    first = tuple(xs[0].shape)
    for i, x in enumerate(xs[1:], start=1):
        if tuple(x.shape) != first:
            raise ValueError(f"{layer.label}: all inputs must have the same shape; input 0 has shape {first} "
                             f"but input {i} has shape {tuple(x.shape)}")
    return first


def _check_grad(layer, grad_out, shape):
    if tuple(getattr(grad_out, "shape", ())) != shape:
        raise ValueError(f"{layer.label}: expected grad_out of shape {shape} (the output shape), got "
                         f"{tuple(getattr(grad_out, 'shape', ()))}")


class Add(Layer):
    """Element-wise sum of two or more inputs of one shape. Caches the input count, shape, backend, dtype."""

    def forward(self, *xs):
        """xs: k arrays of shape S -> (S). """
        _check_inputs(self, xs)
        shape = _check_same_shapes(self, xs)
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        self._cache = (len(xs), shape, backend_of(y), y.dtype)
        return y

    def backward(self, grad_out):
        """dy: S -> (dy, dy, ...): one independent copy per input beyond the first."""
        count, shape, backend, dtype = self.take_cache()
        check_grad_like(grad_out, self.label, shape, backend, dtype)
        return (grad_out,) + tuple(grad_out.copy() for _ in range(count - 1))


class Mul(Layer):
    """Element-wise product of two or more inputs of one shape. Caches the inputs."""

    def forward(self, *xs):
        """xs: k arrays of shape S -> (S)."""
        _check_inputs(self, xs)
        _check_same_shapes(self, xs)
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        self._cache = xs
        return y

    def backward(self, grad_out):
        """dy: S -> (dy * prod_{j != i} xj for each input i)."""
        xs = self.take_cache()
        get_array_module(grad_out, xs[0], names=("grad_out", "input 0"), where=self.label)
        _check_grad(self, grad_out, tuple(xs[0].shape))
        check_same_dtype(grad_out, xs[0], self.label, "grad_out", "input 0")
        grads = []
        for i in range(len(xs)):
            g = grad_out
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x
            grads.append(g)
        return tuple(grads)


class Concat(Layer):
    """Concatenate inputs along ``dim`` (default 1, the channel axis of (N, C, H, W)).

    All other dimensions must match. Caches the sizes along ``dim``.
    """

    def __init__(self, dim: int = 1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"Concat: dim must be an int, got {dim!r}")
        self.dim = dim

    def forward(self, *xs):
        """xs: arrays (.., c_i, ..) -> (.., sum c_i, ..) along dim."""
        xp = _check_inputs(self, xs, minimum=1)
        ndim = xs[0].ndim
        if not -ndim <= self.dim < ndim:
            raise ValueError(f"{self.label}: dim={self.dim} is out of range for {ndim}-D inputs of shape "
                             f"{tuple(xs[0].shape)}")
        axis = self.dim % ndim
        first = tuple(xs[0].shape)
        for i, x in enumerate(xs[1:], start=1):
            shape = tuple(x.shape)
            if x.ndim != ndim or shape[:axis] + shape[axis + 1:] != first[:axis] + first[axis + 1:]:
                raise ValueError(f"{self.label}: inputs must match in every dimension except dim={self.dim}; "
                                 f"input 0 has shape {first} but input {i} has shape {shape}")
        sizes = tuple(int(x.shape[axis]) for x in xs)
        self._cache = (axis, sizes, first[:axis] + (sum(sizes),) + first[axis + 1:], backend_of(xs[0]), xs[0].dtype)
        return xp.concatenate(xs, axis=axis)

    def backward(self, grad_out):
        """dy: (.., sum c_i, ..) -> (the c_i-wide slice of dy for each input)."""
        axis, sizes, out_shape, backend, dtype = self.take_cache()
        check_grad_like(grad_out, self.label, out_shape, backend, dtype)
        grads, start = [], 0
        for size in sizes:
            index = (slice(None),) * axis + (slice(start, start + size),)
            grads.append(grad_out[index])              # (.., sum c, ..) -> (.., c_i, ..)
            start += size
        return tuple(grads)

    def extra_repr(self):
        return f"dim={self.dim}"
