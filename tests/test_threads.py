"""mg.set_num_threads / get_num_threads / MINIGRAD_NUM_THREADS and the shared pool."""
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import threads


@pytest.fixture
def restore_threads():
    before = threads._num_threads
    yield
    threads._num_threads = before


def test_set_and_get(restore_threads):
    mg.set_num_threads(3)
    assert mg.get_num_threads() == 3
    mg.set_num_threads(1)
    assert mg.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_set_rejects_non_positive_ints(bad, restore_threads):
    with pytest.raises(ValueError, match="positive int"):
        mg.set_num_threads(bad)


def test_environment_variable(monkeypatch, restore_threads):
    monkeypatch.setenv("MINIGRAD_NUM_THREADS", "5")
    threads._num_threads = None
    assert mg.get_num_threads() == 5
    monkeypatch.setenv("MINIGRAD_NUM_THREADS", "zero")
    threads._num_threads = None
    with pytest.raises(ValueError, match="MINIGRAD_NUM_THREADS"):
        mg.get_num_threads()
    monkeypatch.delenv("MINIGRAD_NUM_THREADS")
    threads._num_threads = None
    assert mg.get_num_threads() >= 1


def test_parallel_map_runs_on_several_threads_in_order():
    seen = set()

    def work(i):
        seen.add(threading.get_ident())
        return i * i
    assert threads.parallel_map(work, range(4)) == [0, 1, 4, 9]
    assert threading.get_ident() in seen and len(seen) >= 2


def test_parallel_map_propagates_errors_and_nested_calls_run_inline():
    def fail(i):
        if i == 1:
            raise KeyError("piece 1")
        return threads.parallel_map(lambda j: j, [i, i])   # nested: inline
    with pytest.raises(KeyError, match="piece 1"):
        threads.parallel_map(fail, [0, 1])
    assert threads.parallel_map(fail, [0, 2]) == [[0, 0], [2, 2]]


def test_blas_is_single_threaded_inside_pieces():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads(_):
        info = [m for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]
        return max((m["num_threads"] for m in info), default=1)
    assert threads.parallel_map(blas_threads, [0, 1]) == [1, 1]
    np.ones((4, 4)) @ np.ones((4, 4))   # BLAS usable afterwards
