"""Keep freed memory in the process, so big NumPy arrays do not page-fault on every step.

glibc's malloc serves large requests (above a threshold that adapts between 128 KiB and 32 MiB) with
fresh ``mmap`` pages and returns freed heap tops to the kernel. A training step allocates and frees
the same multi-MiB arrays (outputs, gradients) every time; each new page then costs a page fault and
a kernel zero-fill: about 1000 faults, 6-8 % of a CIFAR-sized Conv2d forward+backward. Like PyTorch's
caching allocator, minigrad asks malloc (once, at import, glibc only) to serve requests up to 32 MiB
from the heap and to keep up to 1 GiB of freed heap instead of trimming it.

Set ``MINIGRAD_MALLOC_TUNING=0`` (or off/no/false) before importing minigrad to leave malloc alone. Another
value (runtime/settings.py) leaves malloc alone too, at import, where an exception would make ``import
minigrad`` fail; ``minigrad`` refuses it at start-up and so does ``mg.runtime.settings.check_environment()``.
"""
from __future__ import annotations

import ctypes
import platform

from ..runtime import settings

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20       # glibc's maximum on 64-bit systems
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 16 << 20

applied = False


def tune_allocator() -> bool:
    """Apply the settings above (glibc on Linux, unless MINIGRAD_MALLOC_TUNING=0); True if applied."""
    global applied
    if applied:
        return True
    try:
        if not settings.malloc_tuning():
            return False
    except settings.SettingError:     # a value that is neither on nor off: no tuning (see the module doc)
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
              and libc.mallopt(_M_TOP_PAD, TOP_PAD) == 1)
    except (OSError, AttributeError):
        return False
    applied = bool(ok)
    return applied
