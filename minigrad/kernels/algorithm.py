"""The kernel-choice setting, ``mg.set_conv_algorithm`` / ``MINIGRAD_CONV``, held in one place: ``dispatch`` (the
tables) and ``compiled`` (the optional Numba loops) both read it; ``dispatch.set_conv_algorithm`` checks and sets it."""
from __future__ import annotations

from ..runtime import settings

__all__ = ["CONV_ALGORITHMS", "get_conv_algorithm", "store"]

CONV_ALGORITHMS = settings.CONV_ALGORITHMS      # ("auto", "reference", "winograd", "numpy", "compiled")
_algorithm = None        # resolved from MINIGRAD_CONV on first use


def store(name: str) -> None:
    """Set the choice (already checked by ``dispatch.set_conv_algorithm``)."""
    global _algorithm
    _algorithm = name


def get_conv_algorithm() -> str:
    """The convolution algorithm setting (default: $MINIGRAD_CONV, else 'auto')."""
    global _algorithm
    if _algorithm is None:
        _algorithm = settings.conv_algorithm() or "auto"   # $MINIGRAD_CONV; a bad value raises SettingError
    return _algorithm
