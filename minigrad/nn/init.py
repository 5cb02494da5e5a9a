"""Weight initialisation, as PyTorch does it by default, drawn from minigrad's global generator."""
from __future__ import annotations

import math

from ..runtime import random as mg_random
from ..runtime.backend import to_backend


def uniform(shape, bound: float, dtype="float32"):
    """Array of U(-bound, bound) samples on the active backend."""
    return to_backend(mg_random.uniform(-bound, bound, shape, dtype))


def kaiming_uniform(shape, fan_in: int, a: float = math.sqrt(5), dtype="float32"):
    """PyTorch's default layer init: U(-b, b), b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).

    With a = sqrt(5) this is b = 1 / sqrt(fan_in).
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    return uniform(shape, gain * math.sqrt(3.0 / fan_in), dtype)


def fan_in_bias(shape, fan_in: int, dtype="float32"):
    """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0, dtype)
