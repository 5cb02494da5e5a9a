"""Branch-free NumPy block kernels for the activations whose backward (or forward) picks between two formulas:
Hardswish, the ELU family (ELU, SELU, CELU) and Softplus.

Each kernel handles one block of blockwise (kernels/cpu_blocks.py) and writes its output; it returns False,
having written nothing that counts, when the block holds a NaN input (then the caller computes the block with the
general formula: NaN takes PyTorch's "else" branch, which the sign tests below cannot see). Branches are picked
with sign_bits (a - b < 0 exactly when a < b, for numbers) and blend_bits (a bitwise select), in place on the
output and one scratch array, instead of boolean masks and NumPy's where. Every selected value is the formula's
own number, so a kernel returns what the general formula returns, bit for bit (a +0.0 where that gives -0.0 at
most).
"""
from __future__ import annotations

import numpy as np

from .cpu_blocks import blend_bits, sign_bits
from .cpu_runtime import all_finite

__all__ = ["hardswish_grad", "elu", "elu_grad", "softplus_select", "softplus_grad_select"]


def _no_nan(*blocks) -> bool:
    """True for blocks (of at least one dimension: a 0-d input takes the general formula) that hold no NaN."""
    return all(b.ndim > 0 and (all_finite(b) or not np.isnan(b).any()) for b in blocks)


def hardswish_grad(x, grad_out, dx) -> bool:
    """dx = 0 (x <= -3), grad_out (x / 3 + 1/2) (-3 < x < 3), grad_out (x >= 3)."""
    if not _no_nan(x):
        return False
    scratch = np.subtract(x, 3.0)
    below_3 = sign_bits(scratch)                       # all ones where x < 3
    np.divide(x, 3.0, out=dx)
    dx += 0.5
    blend_bits(below_3, dx, 1.0, out=dx)               # x / 3 + 1/2 where x < 3, else 1
    dx *= grad_out                                     # grad_out * 1 = grad_out exactly (NaN, inf included)
    np.subtract(-3.0, x, out=scratch)
    above_minus_3 = sign_bits(scratch)                 # all ones where -3 - x < 0, i.e. x > -3
    dx.view(above_minus_3.dtype)[...] &= above_minus_3  # +0.0 where x <= -3, whatever grad_out holds
    return True


def elu(x, y, alpha: float, scale: float, input_scale: float) -> bool:
    """y = scale x (x > 0), alpha scale expm1(input_scale x) (x <= 0), as min-branch + max-branch: each branch is
    exactly 0 on the other side (expm1(0) = 0, max(x, 0) = 0), so their sum is the selected number."""
    if not _no_nan(x):
        return False
    np.minimum(x, 0.0, out=y)
    if input_scale != 1.0:
        y *= input_scale
    np.expm1(y, out=y)
    y *= alpha * scale
    positive = np.maximum(x, 0.0)
    if scale != 1.0:
        positive *= scale
    y += positive
    return True


def elu_grad(x, grad_out, dx, alpha: float, scale: float, input_scale: float) -> bool:
    """dx = grad_out scale (x > 0), grad_out (input_scale alpha scale) exp(input_scale x) (x <= 0)."""
    if not _no_nan(x):
        return False
    slope = input_scale * alpha * scale
    np.minimum(x, 0.0, out=dx)
    if input_scale != 1.0:
        dx *= input_scale
    np.exp(dx, out=dx)                                 # exp(0) = 1 where x > 0
    if slope != 1.0:
        dx *= slope
    if slope != scale:                                 # (ELU(1): slope * 1 is already scale where x > 0)
        not_positive = sign_bits(np.subtract(0.0, x))  # all ones where 0 - x < 0 (x > 0; 0 - 0 is +0.0) ...
        np.invert(not_positive, out=not_positive)      # ... inverted: x <= 0
        blend_bits(not_positive, dx, scale, out=dx)
    dx *= grad_out                                     # grad_out * scale where x > 0
    return True


def _at_most_threshold(x, threshold: float, beta: float):
    """All-ones bits where beta x <= threshold (Softplus's log branch), or None for a block holding a NaN or an
    infinite threshold."""
    if not _no_nan(x) or not np.isfinite(threshold):
        return None
    above = sign_bits(np.subtract(threshold, np.multiply(x, beta) if beta != 1.0 else x))   # threshold - beta x < 0
    return np.invert(above, out=above)


def softplus_select(x, soft, threshold: float, beta: float) -> bool:
    """soft (the log(1 + exp(beta x)) / beta branch, written) -> x where beta x > threshold, in place."""
    keep = _at_most_threshold(x, threshold, beta)
    if keep is None:
        return False
    blend_bits(keep, soft, x, out=soft)
    return True


def softplus_grad_select(x, slope, threshold: float, beta: float) -> bool:
    """slope (sigmoid(beta x), written) -> 1 where beta x > threshold, in place (the caller multiplies by
    grad_out: grad_out * 1 is grad_out exactly)."""
    keep = _at_most_threshold(x, threshold, beta)
    if keep is None:
        return False
    blend_bits(keep, slope, 1.0, out=slope)
    return True
