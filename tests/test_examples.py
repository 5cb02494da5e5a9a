"""The examples run as a user would run them, exit 0, and print the shapes they promise."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_conv_from_scratch_runs_and_prints_the_seed_shapes():
    result = run_example("conv_from_scratch.py")
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    out = result.stdout
    lines = out.splitlines()

    def assert_shape(label: str, shape: str):
        """The line that starts with label ends with the printed shape."""
        matches = [line.rstrip() for line in lines if line.strip().startswith(label)]
        assert matches, f"no line starting with {label!r} in:\n{out}"
        assert matches[0].endswith(shape), f"expected {label} -> {shape}, got: {matches[0]}"

    assert_shape("img_unfolded = unfold(img, 3, padding=1)", "(1, 9, 784)")
    assert_shape("out = kernel.reshape(1,-1) @ img_unfolded", "(1, 1, 784)")
    assert_shape("grad_cols = kernel.reshape(1,-1).T @ grad_output", "(1, 9, 784)")
    assert_shape("grad_img = fold(grad_cols)", "(1, 1, 28, 28)")
    assert_shape("img_unfolded.T  (reverses ALL axes)", "(784, 9, 1)")
    assert_shape("img_unfolded.T @ output", "(784, 9, 784)")
    assert_shape("grad_output @ img_unfolded.transpose(0,2,1)", "(1, 1, 9)")
    assert_shape(".reshape(kernel.shape)", "(1, 1, 3, 3)")
    assert_shape("grad_bias = grad_output.sum(axis=(0, 2))", "(1,)")
    assert_shape("dy @ cols.swapaxes(-2, -1)", "(4, 2, 2, 18)")
    assert_shape("fold(...) = dx", "(4, 6, 11, 9)")
    assert "FAIL" not in out
    assert "All checks passed." in out
    assert "gradcheck of the hand-written backward" in out
    # PyTorch is part of the test extra: the comparison must have run, not been skipped.
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "skipping the PyTorch comparison" in out
    else:
        assert "grad_kernel == torch kernel.grad" in out


def test_unet_denoise_saves_the_picture_and_denoises(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "grid.png"
    result = run_example("unet_denoise.py", "--limit-train", "512", "--epochs", "2", "--batch-size", "32",
                         "--limit-test", "100", "--columns", "4", "--out", str(png))
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    found = re.search(r"test MSE on 100 digits: noisy ([0-9.]+), denoised ([0-9.]+)", result.stdout)
    assert found, result.stdout
    noisy, denoised = map(float, found.groups())
    assert 0.05 < noisy < 0.2 and denoised < 0.7 * noisy, result.stdout   # measured: 0.115 -> 0.037
