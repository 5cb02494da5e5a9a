"""Optional compiled kernels (Numba) for the passes NumPy can only run as several calls: ReLU, max pooling, the
convolutions' column copies and scatters (cpu_conv, cpu_samplemajor, cpu_batchlast) and stride-1 depthwise
convolutions (compiled_depthwise).

NumPy runs ReLU's forward as two passes (a comparison, a maximum) and its backward as two more; a 2 x 2 max pool
as seven; a column scatter as one strided add per kernel tap. Each call holds the interpreter lock while it starts,
so at two threads they queue. With Numba installed (``pip install -e ".[compiled]"``) each of these is one compiled
loop per block of the array (``numba_loops``, ``numba_conv``), run without the interpreter lock on minigrad's
thread pool. The GEMMs stay with BLAS.

Which kernels run is the convolution algorithm setting (``mg.set_conv_algorithm``, ``MINIGRAD_CONV``):

    "auto", "winograd"   the compiled kernels when Numba can be imported, else NumPy's passes
    "compiled"           the compiled kernels; refused (ImportError naming the extra) without Numba
    "numpy"              NumPy's passes only, even with Numba installed
    "reference"          NumPy's passes only (and the reference convolution)

Both paths give the same bits for ReLU and the column copies and scatters (the same operations in the same
order), PyTorch's bits for max pooling (its rule, which the NumPy path reaches by its NaN fallback), and the same
values to rounding for depthwise convolutions; the tests run on both. Blocks are cut by size, never by the thread
count, so the bits never depend on it. The first use on a machine compiles the loops it meets (seconds); later
processes load them from the disk cache, plus Numba's import (docs/performance.md).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import warnings

import numpy as np

from .algorithm import get_conv_algorithm
from .cpu_runtime import FAST_DTYPES, batch_chunks, run_chunks

__all__ = ["available", "active", "loops", "conv_loops", "takes", "blocks", "elementwise", "relu_forward",
           "relu_backward", "BLOCK_ELEMENTS", "INSTALL_HINT"]

BLOCK_ELEMENTS = 1 << 18        # elements per block of an elementwise loop (1 MiB of float32)
INSTALL_HINT = 'pip install -e ".[compiled]" (or pip install numba)'
_loops = _conv_loops = None     # the numba_loops and numba_conv modules once imported
_failure = None                 # why importing it failed (a message), once tried


def available() -> bool:
    """True when Numba is installed and minigrad's loops import (compiling nothing yet)."""
    global _loops, _conv_loops, _failure
    if _loops is not None:
        return True
    if _failure is not None:
        return False
    if importlib.util.find_spec("numba") is None:
        _failure = "Numba is not installed"
        return False
    # Numba colours its compile errors with colorama when that is installed, and colorama then writes a
    # terminal reset to stdout at exit whenever stdout is a terminal (mpirun's ranks' is): bytes before and
    # after `minigrad train --json`'s JSON. minigrad's loops raise no compile errors a user reads: no colour.
    os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")
    try:
        _conv_loops = importlib.import_module(".numba_conv", __package__)
        _loops = importlib.import_module(".numba_loops", __package__)
    except Exception as exc:            # a Numba that does not fit this NumPy/Python: say so once, run NumPy's passes
        _failure = f"Numba is installed but minigrad's compiled kernels could not be loaded: {exc!r}"
        warnings.warn(f"minigrad: {_failure}; using NumPy's passes instead", RuntimeWarning, stacklevel=2)
        return False
    return True


def require() -> None:
    """Raise ImportError (naming the extra to install) unless the compiled kernels can run."""
    if not available():
        raise ImportError(f"the 'compiled' kernels need Numba: {_failure}; install it with {INSTALL_HINT}, or use "
                          "mg.set_conv_algorithm('auto') to run NumPy's passes where Numba is missing")


def active() -> bool:
    """True when the compiled kernels run now (the setting, then whether Numba is there)."""
    algorithm = get_conv_algorithm()
    if algorithm in ("numpy", "reference"):
        return False
    if algorithm == "compiled":
        require()
        return True
    return available()


def loops():
    """The compiled loops (``numba_loops``); call only when ``active()``."""
    return _loops


def conv_loops():
    """The compiled loops of the convolutions (``numba_conv``); call only when ``active()``."""
    return _conv_loops


def takes(*arrays) -> bool:
    """True when the compiled kernels run and every array is a C-contiguous NumPy array (the first float32/float64)."""
    return (all(type(a) is np.ndarray and a.flags.c_contiguous for a in arrays)
            and arrays[0].dtype in FAST_DTYPES and active())


def blocks(count: int, item_bytes: int, budget: int):
    """[(i0, i1), ...]: count items (elements, planes, samples) of item_bytes each, in one block up to budget bytes
    (waking a thread costs more than it saves there), else in an even number of blocks of at most budget bytes (equal
    shares for 2 threads). Cut by size only: the same blocks on any thread count."""
    if count * item_bytes <= budget:
        return [(0, count)]
    return batch_chunks(count, item_bytes, budget)


def elementwise(loop, *arrays):
    """Run loop(*flat_blocks) over the arrays (one size, C-contiguous) flattened, in ``blocks`` of at most
    BLOCK_ELEMENTS on the thread pool (an elementwise loop gives the same bits on any thread count)."""
    flat = [a.reshape(-1) for a in arrays]                   # any shape -> (n,), views
    spans = blocks(flat[0].size, 1, BLOCK_ELEMENTS)
    if len(spans) == 1:                                      # small arrays (most calls): no pool bookkeeping
        loop(*flat)
        return
    run_chunks(spans, lambda start, stop: loop(*(a[start:stop] for a in flat)))


def relu_forward(x):
    """x: any shape -> (y, not x <= 0), one pass; None when the compiled kernels do not take x."""
    if not takes(x):
        return None
    y = np.empty_like(x)
    positive = np.empty(x.shape, dtype=bool)
    elementwise(_loops.relu_forward, x, y, positive)
    return y, positive


def relu_backward(positive, grad_out):
    """grad_out where positive, else 0, one pass; None when the compiled kernels do not take the arrays."""
    if not (takes(grad_out, positive) and positive.dtype == np.bool_ and positive.shape == grad_out.shape):
        return None
    grad_in = np.empty_like(grad_out)
    elementwise(_loops.relu_backward, positive, grad_out, grad_in)
    return grad_in
