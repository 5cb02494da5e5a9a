"""The small shared thread pool behind minigrad's CPU kernels.

    mg.set_num_threads(n)      # how many threads the CPU kernels use (default: the CPUs we may run on)
    mg.get_num_threads()       # env MINIGRAD_NUM_THREADS sets the default

A kernel cuts its work into chunks (``kernels/cpu_runtime``) and hands ``parallel_map`` one share of
chunks per thread: the calling thread runs the first share, pool workers the others. While the pieces
run, BLAS is limited to one thread (``threadpoolctl``), so each piece's matrix multiplies run on the
core of the thread that called them instead of fighting over both cores. A single piece runs
inline, also under single-threaded BLAS: how OpenBLAS splits a product over its own threads (and so the
last bits of some products, with some of its kernels) would otherwise depend on the thread count.
"""
from __future__ import annotations

import contextlib
import os
import threading
import queue

from . import settings

__all__ = ["set_num_threads", "get_num_threads", "parallel_map", "blas_single_thread"]

_lock = threading.Lock()
_num_threads: int | None = None
_workers: list = []                  # _Worker threads, created on demand, never stopped (daemons)
_local = threading.local()          # .inside: True while this thread runs a parallel piece
_controller = None                   # threadpoolctl.ThreadpoolController, created on first use
_controller_failed = False


def _default_threads() -> int:
    value = settings.num_threads()      # $MINIGRAD_NUM_THREADS; a bad value raises settings.SettingError
    if value is not None:
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Use n threads (1 <= n <= settings.MAX_THREADS, 4096) in the CPU kernels. Their results are the same bits
    for any n: chunks are cut by sizes only and partial sums added in chunk order (kernels/cpu_runtime)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= settings.MAX_THREADS:
        raise ValueError(f"set_num_threads: expected a positive int up to {settings.MAX_THREADS}, got {n!r}")
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


class _Job:
    __slots__ = ("event", "result", "error")

    def __init__(self):
        self.event = threading.Event()
        self.result = self.error = None


class _Worker:
    """One pool thread with its own queue: piece k always runs on worker k-1, so each thread
    reuses its own work buffers from call to call (and memory use is deterministic)."""

    def __init__(self, index: int):
        self.tasks = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"minigrad-worker-{index}", daemon=True)
        self.thread.start()

    def _loop(self):
        _local.inside = True
        while True:
            fn, item, job = self.tasks.get()
            try:
                job.result = fn(item)
            except BaseException as exc:  # handed to the caller, re-raised there
                job.error = exc
            finally:
                job.event.set()


def _get_workers(count: int) -> list:
    with _lock:
        while len(_workers) < count:
            _workers.append(_Worker(len(_workers) + 1))
        return _workers[:count]


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


def parallel_map(fn, items) -> list:
    """[fn(item) for item in items], the items spread over the pool; exceptions propagate.

    Give at most get_num_threads() items (each one a thread's whole share of the work).
    Nested calls (from inside a piece) run inline.
    """
    items = list(items)
    if getattr(_local, "inside", False):
        return [fn(item) for item in items]
    if len(items) <= 1:              # BLAS single-threaded here too: its own threads' split is not ours to rely on
        with blas_single_thread():
            return [fn(item) for item in items]
    workers = _get_workers(len(items) - 1)
    jobs = [_Job() for _ in items[1:]]
    with blas_single_thread():
        for worker, item, job in zip(workers, items[1:], jobs):
            worker.tasks.put((fn, item, job))
        _local.inside = True
        try:
            first = fn(items[0])
        finally:
            _local.inside = False
            for job in jobs:       # never leave a piece running on buffers the caller is about to reuse
                job.event.wait()
    for job in jobs:
        if job.error is not None:
            raise job.error
    return [first] + [job.result for job in jobs]
