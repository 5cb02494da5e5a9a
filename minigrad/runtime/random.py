"""Global random state: ``mg.manual_seed(n)`` makes initialisation, dropout and shuffling reproducible.

Random numbers are drawn on the host with a NumPy Generator (PCG64), then moved to the
active backend, so a seed gives the same initial weights on the CPU and on the GPU.
"""
from __future__ import annotations

import numpy

_generator = numpy.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed minigrad's global generator (weights init, Dropout masks, default DataLoader seeds)."""
    global _generator
    _generator = numpy.random.default_rng(int(seed))


def generator() -> numpy.random.Generator:
    """The global host-side generator."""
    return _generator


def get_state() -> dict:
    """Generator state as a JSON-able dict (saved in checkpoints for bitwise resume)."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state


def uniform(low: float, high: float, shape, dtype="float32"):
    """Host array of uniform samples in [low, high), cast to dtype."""
    return _generator.uniform(low, high, size=shape).astype(dtype)
