"""CUDA kernels are compiled before timed regions: ``cuda.warm_up`` builds every kernel, ``fit`` calls it before
the first epoch's clock (a "compile" history event), ``minigrad bench --backend cupy`` before its timings
(``compile_seconds`` in the report). On a GPU or the simulated CuPy (MINIGRAD_TEST_CUPY=sim)."""
import json

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend as B
from minigrad.kernels import cuda


@pytest.fixture
def cupy_backend():
    if not B.cupy_available():
        pytest.skip("needs CuPy and a GPU, or MINIGRAD_TEST_CUPY=sim")
    mg.set_backend("cupy")


def _clear():
    cuda.kernel.cache_clear()
    cuda.reduction.cache_clear()


@pytest.mark.gpu
def test_warm_up_builds_every_kernel(cupy_backend):
    _clear()
    cuda.warm_up("float32")
    assert cuda.kernel.cache_info().currsize == len(cuda.KERNELS)
    assert cuda.reduction.cache_info().currsize == len(cuda.REDUCTIONS)


@pytest.mark.gpu
def test_fit_compiles_the_kernels_before_the_first_epoch(cupy_backend):
    _clear()
    built_at_start = {}

    class Probe(mg.train.Callback):
        def on_train_begin(self, state):
            built_at_start["kernels"] = cuda.kernel.cache_info().currsize
            built_at_start["reductions"] = cuda.reduction.cache_info().currsize

    rng = np.random.default_rng(0)
    data = mg.data.ArrayDataset(rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16))
    model = mg.nn.Sequential(mg.nn.Linear(4, 3))
    history = mg.train.fit(model, mg.nn.CrossEntropyLoss(), mg.optim.Adam(model.parameters()),
                           mg.data.DataLoader(data, batch_size=8), epochs=1, callbacks=[Probe()], progress=False)
    assert built_at_start == {"kernels": len(cuda.KERNELS), "reductions": len(cuda.REDUCTIONS)}
    events = [e for e in history.get("events", []) if e["type"] == "compile"]
    assert len(events) == 1 and events[0]["seconds"] >= 0
    assert len(history["seconds"]) == 1                   # the epoch's time is separate


@pytest.mark.gpu
def test_bench_reports_compile_time_apart(cupy_backend, tmp_path, capsys):
    import argparse
    from minigrad import bench
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    _clear()
    out = tmp_path / "bench.json"
    args = parser.parse_args(["--backend", "cupy", "--quick", "--cases", "pool", "--repeat", "1", "--no-torch",
                              "--json", str(out)])
    assert bench.run(args) == 0
    report = json.loads(out.read_text())
    assert report["compile_seconds"] is not None and report["compile_seconds"] >= 0
    assert "CUDA kernels compiled" in capsys.readouterr().out
