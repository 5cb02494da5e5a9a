"""Adam and AdamW, with PyTorch's exact formulas (``torch.optim.Adam`` / ``AdamW``, single-tensor path).

Per parameter ``p`` with gradient ``g`` at step t (1-based)::

    g = -g if maximize
    Adam:  g = g + weight_decay * p          AdamW:  p = p * (1 - lr * weight_decay)   (decoupled)
    m = lerp(m, g, 1 - beta1)                # m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    v_hat = max(v_max, v) if amsgrad else v  (v_max is kept in state)
    step_size = lr / (1 - beta1**t)
    denom = sqrt(v_hat) / sqrt(1 - beta2**t) + eps
    p = p - step_size * m / denom

State: ``step`` (int), ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq``.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module
from ..kernels.dispatch import gpu_kernels
from .optimizer import Optimizer


def lerp_(start, end, weight: float):
    """start += weight * (end - start) in place, with PyTorch's two-sided formula (exact at weight 1)."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)
    return start


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _validate_group(self, group):
        super()._validate_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self.name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
                raise ValueError(f"{self.name}: invalid beta parameter at index {i}: {beta!r} "
                                 "(expected 0 <= beta < 1)")
        if not group["eps"] >= 0.0:
            raise ValueError(f"{self.name}: invalid eps={group['eps']!r} (expected >= 0)")

    def _update(self, group, p, grad, state):
        xp = get_array_module(p.data)
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros(p.shape, dtype=p.dtype)
            state["exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:  # amsgrad switched on later
            state["max_exp_avg_sq"] = xp.zeros(p.shape, dtype=p.dtype)
        state["step"] += 1
        step = state["step"]
        gpu = gpu_kernels(p.data, grad)
        if gpu is not None and not group["amsgrad"]:   # one fused CUDA kernel (kernels/cuda.py)
            gpu.kernel("adam")(grad, lr, beta1, beta2, eps, wd, 1 - beta1 ** step, (1 - beta2 ** step) ** 0.5,
                               self._decoupled, bool(group["maximize"]), p.data, state["exp_avg"],
                               state["exp_avg_sq"])
            return
        if group["maximize"]:
            grad = -grad
        if wd != 0:
            if self._decoupled:
                p.data *= 1 - lr * wd
            else:
                grad = grad + wd * p.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if group["amsgrad"]:
            max_sq = state["max_exp_avg_sq"]
            xp.maximum(max_sq, exp_avg_sq, out=max_sq)
            denom = xp.sqrt(max_sq) / bias_correction2_sqrt
        else:
            denom = xp.sqrt(exp_avg_sq) / bias_correction2_sqrt
        denom += eps
        p.data -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default weight_decay=0.01), as ``torch.optim.AdamW``."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
