"""The small shared thread pool behind minigrad's CPU kernels.

    mg.set_num_threads(n)      # how many threads the CPU kernels use (default: the CPUs we may run on)
    mg.get_num_threads()       # env MINIGRAD_NUM_THREADS sets the default

A kernel splits its work into at most ``get_num_threads()`` independent pieces and hands them to
``parallel_map``: the calling thread runs the first piece, pool workers the others. While the pieces
run, BLAS is limited to one thread (``threadpoolctl``), so each piece's matrix multiplies run on the
core of the thread that called them instead of fighting over both cores. With one thread, or one
piece, everything runs inline and BLAS keeps its own threads.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["set_num_threads", "get_num_threads", "parallel_map", "blas_single_thread"]

_lock = threading.Lock()
_num_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_local = threading.local()          # .inside: True while this thread runs a parallel piece
_controller = None                   # threadpoolctl.ThreadpoolController, created on first use
_controller_failed = False


def _default_threads() -> int:
    env = os.environ.get("MINIGRAD_NUM_THREADS")
    if env is not None and env.strip():
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"MINIGRAD_NUM_THREADS must be a positive int, got {env!r}") from None
        if value < 1:
            raise ValueError(f"MINIGRAD_NUM_THREADS must be a positive int, got {env!r}")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Use n threads (n >= 1) in the CPU kernels. Results do not depend on n beyond rounding."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    with _lock:
        _num_threads = n


def get_num_threads() -> int:
    """Number of threads the CPU kernels use (default: $MINIGRAD_NUM_THREADS, else the usable CPUs)."""
    global _num_threads
    if _num_threads is None:
        value = _default_threads()
        with _lock:
            if _num_threads is None:
                _num_threads = value
    return _num_threads


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minigrad")
            _pool_size = workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def blas_single_thread():
    """Context manager limiting BLAS to one thread (a no-op when threadpoolctl is unavailable)."""
    global _controller, _controller_failed
    if _controller is None and not _controller_failed:
        try:
            from threadpoolctl import ThreadpoolController
            _controller = ThreadpoolController()
        except Exception:  # threadpoolctl missing or unable to inspect the process
            _controller_failed = True
    if _controller is None:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


def _run_piece(fn, item):
    _local.inside = True
    try:
        return fn(item)
    finally:
        _local.inside = False


def parallel_map(fn, items) -> list:
    """[fn(item) for item in items], the items spread over the pool; exceptions propagate.

    Give at most get_num_threads() items (each one a thread's whole share of the work).
    Nested calls (from inside a piece) run inline.
    """
    items = list(items)
    if len(items) <= 1 or getattr(_local, "inside", False):
        return [fn(item) for item in items]
    pool = _get_pool(len(items) - 1)
    with blas_single_thread():
        futures = [pool.submit(_run_piece, fn, item) for item in items[1:]]
        try:
            first = _run_piece(fn, items[0])
        finally:
            wait(futures)  # never leave a piece running on buffers the caller is about to reuse
        rest = [f.result() for f in futures]
    return [first] + rest
