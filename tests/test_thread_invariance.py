"""The same bits with any thread count, at every batch size, whatever BLAS would do with its own threads.

OpenBLAS picks its kernels by instruction set; with its Haswell (AVX2) kernels a product split over 2 BLAS
threads gives other last bits than on 1 thread (a single-sample convolution used to differ by ~1e-6). minigrad
no longer lets BLAS thread any product (kernels/cpu_runtime.py, kernels/cpu_linear.py), so results depend on
the shapes alone. Each case runs in child processes with MINIGRAD_NUM_THREADS 1-4 and OPENBLAS_NUM_THREADS
1 and 2, with the machine's own kernels and, where the CPU has AVX2, with OPENBLAS_CORETYPE=Haswell (the
kernels of the AMD EPYC machines on which the difference was found).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg

from test_cli import DATA, minigrad_command, needs_mnist


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as handle:
            return " avx2" in handle.read()
    except OSError:
        return False


CORETYPES = [None] + (["Haswell"] if _has_avx2() else [])

_LAYERS = r"""
import hashlib, json
import numpy as np
import minigrad as mg
digests = {}
for batch in (1, 2, 3):
    rng = np.random.default_rng(batch)
    mg.manual_seed(0)
    cases = {"Conv2d": (mg.nn.Conv2d(16, 32, 3, padding=1), (batch, 16, 64, 64)),
             "Conv2d_s2": (mg.nn.Conv2d(8, 16, 3, stride=2, padding=1), (batch, 8, 65, 65)),
             # products of 33-100 MFLOP (one piece, or cut in two along the columns) and 134-403 MFLOP
             # (cut in 4 or 8 along the rows or columns): kernels/cpu_linear.py
             "Linear": (mg.nn.Linear(4096, 4096), (batch, 4096)),
             "Linear_wide_batch": (mg.nn.Linear(512, 512), (256 * batch, 512)),
             "BatchNorm2d": (mg.nn.BatchNorm2d(16), (batch, 16, 32, 32)),
             # ReLU run after the pool (nn/fusion.py), both on blocks of the pool's threads
             "ReLU_MaxPool2d": (mg.nn.Sequential(mg.nn.ReLU(), mg.nn.MaxPool2d(2)), (batch, 16, 64, 64))}
    for name, (layer, shape) in cases.items():
        x = rng.standard_normal(shape).astype(np.float32)
        y = layer(x)
        dx = layer.backward(rng.standard_normal(y.shape).astype(np.float32))
        arrays = [y, dx] + [p.grad for p in layer.parameters()] + [b for _, b in layer.named_buffers()]
        digests[f"{name}/{batch}"] = hashlib.sha1(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()
print(json.dumps(digests))
"""


def _run(code, threads, blas_threads, coretype):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE",)}
    env.update(MINIGRAD_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(blas_threads), MINIGRAD_BACKEND="numpy")
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("coretype", CORETYPES, ids=lambda c: c or "native")
def test_conv_linear_batchnorm_same_bits_at_batch_1_2_3_with_1_to_4_threads(coretype):
    settings = [(1, 1), (2, 1), (2, 2), (3, 2), (4, 2)]       # (MINIGRAD_NUM_THREADS, OPENBLAS_NUM_THREADS)
    results = {setting: _run(_LAYERS, *setting, coretype) for setting in settings}
    reference = results[(1, 1)]
    assert len(reference) == 18                 # 6 cases x batches 1, 2, 3
    for setting, digests in results.items():
        differ = sorted(key for key in reference if digests[key] != reference[key])
        assert not differ, f"{setting} (minigrad threads, BLAS threads) differs from (1, 1) in {differ}"


@needs_mnist
@pytest.mark.parametrize("coretype", CORETYPES[-1:], ids=lambda c: c or "native")
def test_train_batch_size_1_gives_the_same_weights_with_1_and_2_threads(tmp_path, coretype):
    """The issue's case: ``minigrad train --model resnet20 --batch-size 1`` on 1 and 2 threads (BatchNorm's
    running_var differed by up to 9.4 after a short run)."""
    weights = {}
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        env = dict(os.environ, MINIGRAD_BACKEND="numpy", MINIGRAD_NUM_THREADS=str(threads))
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        result = subprocess.run(minigrad_command() + ["train", *DATA, "--model", "resnet20", "--batch-size", "1",
                                                      "--limit-train", "24", "--limit-test", "8", "--epochs", "1",
                                                      "--no-progress", "--out", str(out)],
                                capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        weights[threads] = mg.load(out / "checkpoint.npz")["model"]
    assert weights[1].keys() == weights[2].keys()
    for key, value in weights[1].items():
        np.testing.assert_array_equal(value, weights[2][key], err_msg=key)
