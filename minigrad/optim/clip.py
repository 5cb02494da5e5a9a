"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` (in place on param.grad).

clip_grad_norm_:  total = || (||g_1||_p, ..., ||g_k||_p) ||_p     (the global p-norm of all gradients)
                  g_i *= min(1, max_norm / (total + 1e-6))
clip_grad_value_: g_i = clip(g_i, -clip_value, clip_value)
"""
from __future__ import annotations

import math

from ..runtime.backend import get_array_module, is_array
from ..nn.parameter import Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters, where):
    """The non-None gradients of a Parameter, an iterable of Parameters, or a Layer."""
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    elif hasattr(parameters, "parameters") and callable(parameters.parameters):
        parameters = parameters.parameters()
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Parameter):
            raise TypeError(f"{where}: item {i} is a {type(p).__name__}, not a minigrad Parameter")
        if p.grad is not None:
            if not is_array(p.grad):
                raise TypeError(f"{where}: gradient of parameter {i} is a {type(p.grad).__name__}, not an array")
            grads.append(p.grad)
    return grads


def _norm(xp, x, norm_type: float):
    """p-norm of all entries of x, as a 0-d array of x's dtype."""
    if norm_type == math.inf:
        return xp.max(xp.abs(x))
    if norm_type == -math.inf:
        return xp.min(xp.abs(x))
    if norm_type == 0:
        return xp.sum(x != 0).astype(x.dtype)
    if norm_type == 2:
        return xp.sqrt(xp.sum(x * x))
    if norm_type == 1:
        return xp.sum(xp.abs(x))
    return xp.sum(xp.abs(x) ** norm_type) ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their global ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm before clipping, a 0-d array on the gradients' backend (like PyTorch's tensor).
    Raises RuntimeError with error_if_nonfinite=True when the norm is NaN or infinite.
    """
    where = "clip_grad_norm_"
    norm_type = float(norm_type)
    max_norm = float(max_norm)
    if max_norm < 0 or math.isnan(max_norm):
        raise ValueError(f"{where}: max_norm must be >= 0, got {max_norm}")
    if norm_type < 0 and norm_type != -math.inf:
        raise ValueError(f"{where}: norm_type must be >= 0, inf or -inf, got {norm_type}")
    grads = _grads(parameters, where)
    xp = get_array_module(*grads, names=[f"gradient {i}" for i in range(len(grads))])
    if not grads:
        return xp.asarray(0.0)
    norms = xp.stack([_norm(xp, g.ravel(), norm_type) for g in grads])   # (k,)
    total = _norm(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"{where}: the total norm of order {norm_type} of the gradients is {float(total)}; "
                           "set error_if_nonfinite=False to clip anyway")
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef.astype(g.dtype)
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    if clip_value < 0 or math.isnan(clip_value):
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters, "clip_grad_value_"):
        xp = get_array_module(g)
        xp.clip(g, -clip_value, clip_value, out=g)
