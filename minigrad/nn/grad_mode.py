"""Gradient mode: ``no_grad()`` turns off the caches layers keep for backward (inference saves memory)."""
from __future__ import annotations

from contextlib import contextmanager

__all__ = ["no_grad", "is_grad_enabled"]

_grad_enabled = True


@contextmanager
def no_grad():
    """Inside this block, calling a layer keeps no cache for backward (inference saves memory)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return _grad_enabled
