"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay.

Exactly PyTorch's update (``torch.optim.SGD``), per parameter ``p`` with gradient ``g``::

    g = -g if maximize
    g = g + weight_decay * p                       (if weight_decay != 0)
    buf = g  (first step)  |  buf = momentum * buf + (1 - dampening) * g     (if momentum != 0)
    g = g + momentum * buf  (nesterov)  |  g = buf
    p = p - lr * g

State: ``momentum_buffer`` (same shape, dtype and backend as p) when momentum != 0.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module
from ..kernels.dispatch import gpu_kernels
from .optimizer import Optimizer, required


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        super()._validate_group(group)
        if not group["momentum"] >= 0.0:
            raise ValueError(f"SGD: invalid momentum={group['momentum']!r} (expected >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _update(self, group, p, grad, state):
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        xp = get_array_module(p.data)
        gpu = gpu_kernels(p.data, grad)
        if momentum != 0 and gpu is not None:          # one fused CUDA kernel (kernels/cuda.py)
            first = state.get("momentum_buffer") is None
            if first:
                state["momentum_buffer"] = xp.empty_like(p.data)
            gpu.kernel("sgd_momentum")(grad, lr, momentum, group["dampening"], wd, bool(group["nesterov"]),
                                       bool(group["maximize"]), first, p.data, state["momentum_buffer"])
            return
        if group["maximize"]:
            grad = -grad
        if wd != 0:
            grad = grad + wd * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()
                state["momentum_buffer"] = buf
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= lr * grad
