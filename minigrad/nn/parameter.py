"""Parameter: a trainable array and its gradient (``param.data``, ``param.grad``), freezable with
``requires_grad``. Layers hold them; backward adds into ``grad``; optimizers read ``grad`` and update ``data``.
"""
from __future__ import annotations

import numpy

from ..runtime.backend import backend_of, check_backend_dtype, get_array_module, is_array, to_backend

__all__ = ["Parameter", "move_array"]


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape, dtype and backend).

    ``grad`` is None until a backward gives the parameter a gradient ("no gradient yet", as in PyTorch):
    the first backward writes it, later ones add to it, until ``zero_grad`` (of the optimizer or the
    model; PyTorch's default ``set_to_none=True`` makes it None again, ``set_to_none=False`` zeroes it in
    place) or ``p.grad = None``. Optimizers skip a parameter whose grad is None.
    ``requires_grad=False`` freezes it (PyTorch's flag): ``grad`` is None, layers compute no gradient
    for it and optimizers leave it unchanged (fine-tuning with a frozen stem), whatever ``grad`` holds.
    """

    def __init__(self, data, requires_grad: bool = True):
        if not is_array(data):
            raise TypeError(f"Parameter: expected a NumPy or CuPy array, got {type(data).__name__}")
        check_backend_dtype(backend_of(data), data.dtype, "Parameter")   # float16 on CuPy: refused up front
        self.data = data
        self.grad = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if not isinstance(flag, (bool, numpy.bool_)):
            raise TypeError(f"Parameter.requires_grad must be True or False, got {flag!r}")
        flag = bool(flag)
        if not flag:
            self.grad = None
        self._requires_grad = flag

    def requires_grad_(self, requires_grad: bool = True):
        """Set ``requires_grad`` in place; returns self."""
        self.requires_grad = requires_grad
        return self

    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: int(self.data.size))
    backend = property(lambda self: backend_of(self.data))

    def accumulate(self, grad, where: str = "Parameter"):
        """``self.grad = g`` (a copy in the parameter's dtype) when there is no gradient yet, else
        ``self.grad += g``, after checking shape and backend (a wrong gradient fails loudly here); a frozen
        parameter (requires_grad=False) takes nothing."""
        if not self._requires_grad:
            return
        get_array_module(self.data, grad, names=("parameter", "gradient"), where=where)
        if tuple(grad.shape) != self.shape:
            raise ValueError(f"{where}: gradient of shape {tuple(grad.shape)} does not match the parameter "
                             f"of shape {self.shape}")
        if self.grad is None:
            self.grad = grad.astype(self.data.dtype, copy=True)   # a copy: never a view of a kernel's buffer
        else:
            self.grad += grad

    def numel(self) -> int:
        """Number of elements, as ``torch.Tensor.numel``."""
        return int(self.data.size)

    def zero_grad(self, set_to_none: bool = False):
        """Zero the gradient in place (``set_to_none=True``: make it None, "no gradient yet")."""
        if set_to_none:
            self.grad = None
        elif self.grad is not None:
            self.grad[...] = 0

    def to(self, backend=None, dtype=None):
        """Move/cast data and grad in place; returns self."""
        check_backend_dtype(self.backend if backend is None else backend, self.dtype if dtype is None else dtype,
                            "Parameter.to")
        self.data = move_array(self.data, backend, dtype)
        self.grad = None if self.grad is None else move_array(self.grad, backend, dtype)
        return self

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, backend={self.backend})"


def move_array(array, backend, dtype):
    """Array on `backend` (None: keep) with floating dtype `dtype` (None: keep; ints never cast)."""
    if backend is not None:
        array = to_backend(array, backend)
    if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
        array = array.astype(dtype)
    return array
