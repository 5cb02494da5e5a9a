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


@pytest.mark.parametrize("model_name,shape", [("lenet5", (70, 1, 28, 28)), ("resnet20", (9, 3, 32, 32))])
def test_training_steps_give_the_same_bits_with_any_thread_count(model_name, shape):
    """The CPU kernels cut their chunks by sizes only and add partial sums in chunk order
    (kernels/cpu_runtime), so three Adam steps end in identical weights with 1, 2, 3 or 4 threads."""
    def run(n_threads):
        mg.set_num_threads(n_threads)
        mg.manual_seed(0)
        model = mg.models.lenet5() if model_name == "lenet5" else mg.models.resnet20(num_classes=10, in_channels=3)
        optimizer = mg.optim.Adam(model.parameters(), lr=1e-3)
        loss = mg.nn.CrossEntropyLoss()
        rng = np.random.default_rng(0)
        for _ in range(3):
            x = rng.standard_normal(shape).astype(np.float32)
            optimizer.zero_grad()
            loss(model(x), rng.integers(0, 10, shape[0]))
            model.backward(loss.backward())
            optimizer.step()
        return [p.data.copy() for p in model.parameters()]

    before = mg.get_num_threads()
    try:
        reference = run(1)
        for n_threads in (2, 3, 4):
            assert all(np.array_equal(a, b) for a, b in zip(reference, run(n_threads))), n_threads
    finally:
        mg.set_num_threads(before)
