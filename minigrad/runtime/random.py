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


CHUNK = 1 << 16   # samples drawn (as float64) per step of draw_into: 512 KiB of temporaries at most


def draw_into(out, draw):
    """Fill the host array ``out`` (any shape, any float dtype) from ``draw(count)`` -> ``count`` float64 samples,
    CHUNK samples at a time, in C order; returns ``out``.

    The numbers are those of one ``draw(out.size)`` cast to out's dtype (a NumPy Generator's uniform and normal
    streams do not depend on how a draw is split), but no float64 temporary of out's size is ever made: a
    float32 weight of 13 GiB costs 13 GiB, not 13 + 27.
    """
    if not out.flags.c_contiguous:          # fill a contiguous copy, then write it back
        out[...] = draw_into(numpy.empty(out.shape, out.dtype), draw)
        return out
    flat = out.reshape(-1)                  # (*shape) -> (size,): a view of the C-contiguous out
    for start in range(0, flat.size, CHUNK):
        stop = min(start + CHUNK, flat.size)
        flat[start:stop] = draw(stop - start)
    return out


def uniform(low: float, high: float, shape, dtype="float32"):
    """Host array of uniform samples in [low, high), cast to dtype (drawn in chunks: no float64 copy)."""
    return draw_into(numpy.empty(shape, dtype), lambda count: _generator.uniform(low, high, size=count))
