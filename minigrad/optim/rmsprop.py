"""RMSprop with PyTorch's exact update (``torch.optim.RMSprop``, single-tensor path).

Per parameter ``p`` with gradient ``g``::

    g = -g if maximize
    g = g + weight_decay * p                          (if weight_decay != 0)
    v = alpha * v + (1 - alpha) * g * g               (square_avg)
    centered: m = lerp(m, g, 1 - alpha);  avg = sqrt(v - m * m) + eps    else avg = sqrt(v) + eps
    momentum > 0: buf = momentum * buf + g / avg;  p = p - lr * buf
    else:         p = p - lr * g / avg

State: ``step`` (int), ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).
"""
from __future__ import annotations

from ..runtime.backend import get_array_module
from .adam import lerp_
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False)."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        super()._validate_group(group)
        for key in ("eps", "momentum", "alpha"):
            if not group[key] >= 0.0:
                raise ValueError(f"RMSprop: invalid {key}={group[key]!r} (expected >= 0)")

    def _update(self, group, p, grad, state):
        xp = get_array_module(p.data)
        lr, alpha, eps, wd, momentum = (group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum"))
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros(p.shape, dtype=p.dtype)
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = xp.zeros(p.shape, dtype=p.dtype)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = xp.zeros(p.shape, dtype=p.dtype)
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if wd != 0:
            grad = grad + wd * p.data
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * (grad * grad)
        if group["centered"]:
            grad_avg = lerp_(state["grad_avg"], grad, 1 - alpha)
            avg = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            p.data -= lr * buf
        else:
            p.data -= lr * (grad / avg)
