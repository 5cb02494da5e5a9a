"""The runtime every CPU kernel shares: which arrays qualify, work buffers, chunks, the thread pool
and the partial-sum reduction.

A CPU kernel is its shape algebra plus one function that handles a chunk of the batch::

    chunks = batch_chunks(geom.batch, per_sample_bytes)      # [(n0, n1), ...], fixed by sizes only
    total = run_chunks(chunks, per_chunk)                    # per_chunk(n0, n1) -> partial sums or None

``batch_chunks`` cuts the batch into nearly equal chunks whose work buffers fit ``BUDGET`` bytes
(they stay in cache between the copy that writes them and the GEMM that reads them), and into at
least ``MIN_CHUNKS`` when the batch allows, so every thread of a small pool has work. The cut depends
on the batch size and the bytes per sample only, never on the thread count.

``run_chunks`` hands chunk k to thread k mod T (the calling thread runs its share too; BLAS runs
single-threaded inside) and adds what each chunk returns (its weight- and bias-gradient partial sums)
in chunk order, ((p0 + p1) + p2) + ..., whichever thread finishes first. So a kernel's result is the
same, bit for bit, with 1, 2 or 16 threads.

Work buffers are per thread and reused from call to call (``work_buffer``); a kernel's outputs are
fresh arrays.
"""
from __future__ import annotations

import functools
import math
import threading

import numpy as np

from ..runtime import threads
from .cpu_memory import tune_allocator

__all__ = ["BUDGET", "MIN_CHUNKS", "GEMM_COLUMNS", "supported", "work_buffer", "release_buffers", "split_range",
           "batch_chunks", "row_block", "run_chunks", "matmul_wide", "matmul_long", "SAVED_COLUMNS_MAX",
           "column_buffer", "keeps_columns", "padded_buffer", "all_finite"]

BUDGET = 8 << 20        # bytes of work buffer per chunk, per thread (the chunks' columns, tiles, planes)
MIN_CHUNKS = 2          # cut a batch into at least this many chunks when it has that many samples
GEMM_COLUMNS = 4096     # columns of a long operand per BLAS call in matmul_wide / matmul_long
SAVED_COLUMNS_MAX = 16 << 20   # a layer keeps its forward's columns for backward when all of them fit here
MAX_PARALLEL_CHUNKS = 4   # chunks running at once, each with its thread's work buffers (memory grows with it)
FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_local = threading.local()
_stores: list = []               # every thread's buffer dict, so release_buffers can clear them
_stores_lock = threading.Lock()
tune_allocator()                 # big outputs/gradients reuse heap pages instead of page-faulting each step


def supported(*arrays) -> bool:
    """True when every non-None array is a plain numpy.ndarray of one float32/float64 dtype."""
    dtype = None
    for a in arrays:
        if a is None:
            continue
        if type(a) is not np.ndarray or a.dtype not in FAST_DTYPES:
            return False
        if dtype is None:
            dtype = a.dtype
        elif a.dtype != dtype:
            return False
    return dtype is not None


def work_buffer(name: str, shape, dtype):
    """A per-thread reusable array (contents undefined), grown as needed, never shrunk."""
    store = getattr(_local, "buffers", None)
    if store is None:
        store = _local.buffers = {}
        with _stores_lock:
            _stores.append(store)
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = store.get(name)
    if raw is None or raw.size < size:
        store.pop(name, None)   # free the old one before allocating the bigger one
        raw = store[name] = np.empty(max(size, 64), dtype=np.uint8)
    return raw[:size].view(dtype).reshape(shape)


def all_finite(a) -> bool:
    """True when ``a`` (its last axis contiguous) holds no inf or nan: one dot product of every row with zeros, nan
    exactly for the rows that hold an inf or a nan (inf * 0 and nan * 0 are nan), 0 for the others. One read of
    the numbers, no temporary of their size, no overflow. A C-contiguous ``a`` is read as rows of its last two
    axes (a matrix-vector product; short rows would cost a call each), any other as rows of its last axis."""
    if a.flags.c_contiguous:
        rows = a.reshape(-1, a.shape[-2] * a.shape[-1]) if a.ndim > 2 else a
        product = np.dot
    else:
        rows, product = a, np.vecdot                                  # np.dot would copy rows spaced apart
    with np.errstate(invalid="ignore"):
        dots = product(rows, _zeros(rows.shape[-1], rows.dtype))
    return bool(np.vdot(dots, dots) == 0)


@functools.lru_cache(maxsize=16)
def _zeros(n, dtype):
    zeros = np.zeros(n, dtype=dtype)
    zeros.flags.writeable = False
    return zeros


def padded_buffer(name: str, x, pads, value=0.0):
    """x (..., H, W) -> the thread's work buffer (..., H+pt+pb, W+pl+pr): x inside, ``value`` in the border
    only (the interior is overwritten anyway). pads = (top, bottom, left, right)."""
    *lead, h, w = x.shape
    top, bottom, left, right = pads
    buf = work_buffer(name, (*lead, h + top + bottom, w + left + right), x.dtype)
    buf[..., :top, :] = value
    buf[..., top + h:, :] = value
    buf[..., top:top + h, :left] = value
    buf[..., top:top + h, left + w:] = value
    buf[..., top:top + h, left:left + w] = x
    return buf


def release_buffers() -> None:
    """Free every thread's work buffers (call while no kernel runs; they regrow on the next call)."""
    with _stores_lock:
        for store in _stores:
            store.clear()


def split_range(n: int, parts: int):
    """[(start, stop), ...]: n items in at most `parts` contiguous, nearly equal, non-empty ranges."""
    parts = max(1, min(parts, n))
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


def batch_chunks(batch: int, per_sample_bytes: int, budget: int | None = None, min_chunks: int | None = None):
    """The batch cut into nearly equal chunks of at most budget // per_sample_bytes samples (at least 1),
    and into at least min_chunks (default MIN_CHUNKS) chunks, a multiple of it, when the batch is that large."""
    budget = BUDGET if budget is None else budget
    min_chunks = MIN_CHUNKS if min_chunks is None else min_chunks
    per_chunk = max(1, budget // max(per_sample_bytes, 1))
    count = -(-batch // per_chunk)
    count = min_chunks * -(-count // min_chunks)        # a multiple of min_chunks: even shares for its threads
    return split_range(batch, count)


def row_block(rows_total: int, row_bytes: int, budget: int | None = None) -> int:
    """Rows per block when one sample is bigger than the budget: as many as fit, at least 1."""
    budget = BUDGET if budget is None else budget
    return max(1, min(rows_total, budget // max(row_bytes, 1)))


def column_buffer(saved, chunk, shape, dtype, name):
    """Where a chunk's forward columns go: a fresh array kept in ``saved`` (a dict the layer hands from forward
    to backward) when ``saved`` is given, else the thread's reusable work buffer ``name``."""
    if saved is None:
        return work_buffer(name, shape, dtype)
    cols = saved[chunk] = np.empty(shape, dtype=dtype)
    return cols


def keeps_columns(saved, batch_column_bytes: int, limit: int | None = None):
    """``saved`` when the whole batch's columns fit ``limit`` (default SAVED_COLUMNS_MAX), else None
    (backward recomputes them)."""
    limit = SAVED_COLUMNS_MAX if limit is None else limit
    return saved if saved is not None and batch_column_bytes <= limit else None


def matmul_wide(a, b, out):
    """out (P, N) = a (P, Q) @ b (Q, N) for a wide b, GEMM_COLUMNS columns per BLAS call.

    With few rows P and a short Q (a convolution's few filters over its columns), OpenBLAS runs a
    product over a block of a few thousand columns several times faster per column than over tens of
    thousands at once (docs/benchmarks.md, "Short, wide products").
    """
    n = b.shape[1]
    for start in range(0, n, GEMM_COLUMNS):
        stop = min(start + GEMM_COLUMNS, n)
        np.matmul(a, b[:, start:stop], out=out[:, start:stop])
    return out


def matmul_long(a, b):
    """a (P, N) @ b (Q, N)^T -> a new (P, Q) array, for a long shared dimension N: the products of
    GEMM_COLUMNS-long slices, added in order (same reason as matmul_wide)."""
    n = a.shape[1]
    total = np.matmul(a[:, :GEMM_COLUMNS], b[:, :GEMM_COLUMNS].T)
    for start in range(GEMM_COLUMNS, n, GEMM_COLUMNS):
        total += np.matmul(a[:, start:start + GEMM_COLUMNS], b[:, start:start + GEMM_COLUMNS].T)
    return total


class _OrderedSum:
    """Adds the chunks' partial results in chunk order, whichever thread delivers them first."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending = {}
        self._next = 0
        self.total = None

    def add(self, index: int, parts) -> None:
        with self._lock:
            self._pending[index] = parts
            while self._next in self._pending:
                parts = self._pending.pop(self._next)
                self._next += 1
                if self.total is None:           # a copy: the sums never write into a chunk's own arrays
                    self.total = None if parts is None else [None if p is None else p.copy() for p in parts]
                elif parts is not None:
                    for total, part in zip(self.total, parts):
                        if total is not None:
                            total += part


def run_chunks(chunks, per_chunk):
    """Run per_chunk(n0, n1) for every chunk on the thread pool; return the sum of what the chunks
    returned (tuples of arrays or None, each chunk's own fresh arrays), added in chunk order.

    Thread t of T runs chunks t, t + T, ..., T = min(get_num_threads(), MAX_PARALLEL_CHUNKS, chunks): more
    threads would each hold their own work buffers and, with NumPy calls queueing for the interpreter
    lock, gain little. With one chunk, or one thread, everything runs inline (a single-sample batch on
    several threads: with BLAS's own threads, which split a product by rows and columns, not sums).
    """
    summed = _OrderedSum()
    count = min(threads.get_num_threads(), MAX_PARALLEL_CHUNKS, len(chunks))

    def share(t):
        for index in range(t, len(chunks), count):
            summed.add(index, per_chunk(*chunks[index]))

    threads.parallel_map(share, range(count))
    return summed.total
