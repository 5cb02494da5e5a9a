"""Hostile settings and inputs at the command line (issue 29): each is refused with exit status 2 and exactly one
line on stderr, ``minigrad CMD: error: ...`` naming the offending setting, file, key or flag, and no traceback.

Every case runs the real ``minigrad`` program in a subprocess (under ``mpirun -np 2`` for the distributed ones):
bad MINIGRAD_* environment variables (refused at start-up, before any work), truncated or malformed MNIST IDX
files under --data-root, a checkpoint whose run configuration is not a mapping or lacks a key, a directory
where the run directory's temporary files go, a loss that becomes NaN, bad `minigrad bench` numbers, an empty
--out, and user mistakes under mpirun (printed once, by rank 0, every rank exiting with status 2).
"""
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.data.mnist import IDX_FILES, mnist_zarr_path, write_idx

MPIRUN = shutil.which("mpirun")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mnist = pytest.mark.skipif(mnist_zarr_path() is None,
                                 reason='needs MNIST from the data extra: pip install -e ".[data]"')
needs_mpi = pytest.mark.skipif(MPIRUN is None or not HAVE_MPI4PY,
                               reason="needs mpirun and mpi4py (apt-get install openmpi-bin libopenmpi-dev; "
                                      "pip install -e '.[distributed]')")
TINY = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--epochs", "1", "--progress", "off"]


def minigrad_command():
    """The installed `minigrad` entry point next to this Python, else `python -m minigrad.cli`."""
    script = Path(sys.executable).with_name("minigrad")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minigrad.cli"]


def clean_env(**settings):
    """This environment without any MINIGRAD_* setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIGRAD_")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", **settings)
    return env


def run(*args, cwd=None, **settings):
    return subprocess.run(minigrad_command() + list(args), capture_output=True, text=True, env=clean_env(**settings),
                          cwd=cwd, timeout=120)


def mpirun(*args, **settings):
    env = clean_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",   # CI containers run as root
                    OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none",
                    **settings)
    return subprocess.run([MPIRUN, "-np", "2", sys.executable, "-m", "minigrad.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def one_line_error(result, command, *words):
    """Exit status 2; stderr is exactly one line, ``minigrad COMMAND: error: ...`` containing every word."""
    err = result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{err}"
    assert "Traceback" not in err and "Warning" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"minigrad {command}: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def one_minigrad_line(result, command, *words):
    """Under mpirun: exit status 2, no traceback, and one line from minigrad (Open MPI adds its own box, which
    says that a process exited with a non-zero status)."""
    err = result.stderr + result.stdout
    assert result.returncode == 2, f"exit {result.returncode}\n{err}"
    assert "Traceback" not in err and "MPI_ABORT" not in err, err
    ours = [line for line in err.splitlines() if line.startswith("minigrad")]
    assert len(ours) == 1, err
    assert ours[0].startswith(f"minigrad {command}: error: "), ours[0]
    for word in words:
        assert word in ours[0], ours[0]
    return ours[0]


# -- environment variables: checked at start-up, before any work ----------------------------------------
@pytest.mark.parametrize("name, value, words", [
    ("MINIGRAD_NUM_THREADS", "0", ["positive int"]),
    ("MINIGRAD_NUM_THREADS", "-1", ["positive int"]),
    ("MINIGRAD_NUM_THREADS", "abc", ["positive int"]),
    ("MINIGRAD_DIST_TIMEOUT", "abc", ["seconds"]),          # one process: refused too, not ignored
    ("MINIGRAD_DIST_TIMEOUT", "0", ["seconds"]),
    ("MINIGRAD_CONV", "fast", ["winograd"]),
    ("MINIGRAD_MALLOC_TUNING", "maybe", ["off"]),
])
def test_a_bad_environment_setting_is_one_line_before_any_work(tmp_path, name, value, words):
    result = run("train", *TINY, "--out", str(tmp_path / "run"), **{name: value})
    one_line_error(result, "train", name, repr(value), *words)
    assert not (tmp_path / "run").exists()                  # refused before the run directory was made


def test_a_bad_thread_count_is_refused_by_every_command():
    one_line_error(run("info", MINIGRAD_NUM_THREADS="0"), "info", "MINIGRAD_NUM_THREADS", "'0'")


@needs_mpi
def test_a_bad_dist_timeout_under_mpirun_is_one_line_from_rank_0():
    result = mpirun("train", "--distributed", *TINY, "--out", "unused", MINIGRAD_DIST_TIMEOUT="abc")
    one_minigrad_line(result, "train", "MINIGRAD_DIST_TIMEOUT", "'abc'")


# -- MNIST IDX files under --data-root -------------------------------------------------------------------
def idx_directory(path, compress=False):
    """The four MNIST IDX files, tiny (64 train / 32 test images of noise), in ``path``."""
    rng = np.random.default_rng(0)
    path.mkdir()
    for split, n in (("train", 64), ("test", 32)):
        images, labels = IDX_FILES[split]
        suffix = ".gz" if compress else ""
        write_idx(path / (images + suffix), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(path / (labels + suffix), rng.integers(0, 10, n, dtype=np.uint8))
    return path


def test_a_truncated_idx_file_is_one_line_naming_it(tmp_path):
    root = idx_directory(tmp_path / "mnist")
    images = root / IDX_FILES["train"][0]
    images.write_bytes(images.read_bytes()[:5000])               # cut short
    result = run("train", *TINY, "--data-root", str(root), "--out", str(tmp_path / "run"))
    one_line_error(result, "train", str(images), "--data-root", "found")


def test_a_truncated_gzip_idx_file_is_one_line_naming_it(tmp_path):
    root = idx_directory(tmp_path / "mnist", compress=True)
    labels = root / (IDX_FILES["train"][1] + ".gz")
    labels.write_bytes(labels.read_bytes()[:20])
    result = run("train", *TINY, "--data-root", str(root), "--out", str(tmp_path / "run"))
    one_line_error(result, "train", str(labels), "--data-root")


def test_an_idx_file_with_a_bad_header_is_one_line_on_evaluate(tmp_path):
    root = idx_directory(tmp_path / "mnist")
    labels = root / IDX_FILES["test"][1]
    labels.write_bytes(b"\x12\x34\x56\x78" + labels.read_bytes()[4:])
    checkpoint = tmp_path / "lenet5.npz"
    mg.save(checkpoint, mg.models.lenet5(), run_config={"model": "lenet5"})
    result = run("evaluate", str(checkpoint), "--data-root", str(root), "--progress", "off")
    one_line_error(result, "evaluate", str(labels), "magic number", "0x12345678")


# -- run configurations of checkpoints -------------------------------------------------------------------
def with_run_config(path, run_config):
    """Rewrite the run configuration in the metadata of the checkpoint at ``path`` (CRC32 kept valid)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(bytes(arrays["__meta__"]))
    if run_config is None:
        del meta["metadata"]["run_config"]
    else:
        meta["metadata"]["run_config"] = run_config
    text = json.dumps(meta).encode("utf-8")
    arrays["__meta__"] = np.frombuffer(text, dtype=np.uint8)
    arrays["__meta_crc32__"] = np.array([zlib.crc32(text)], dtype=np.uint64)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    if mnist_zarr_path() is None:
        pytest.skip('needs MNIST from the data extra: pip install -e ".[data]"')
    out = tmp_path_factory.mktemp("hostile") / "run"
    result = run("train", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def run_copy(trained_run, tmp_path, run_config):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    with_run_config(out / "checkpoint.npz", run_config)
    return out


@pytest.mark.parametrize("run_config, words", [
    (["lenet5", 1], ["run configuration", "list", "mapping"]),
    ("lenet5", ["run configuration", "str", "mapping"]),
])
def test_a_run_configuration_that_is_not_a_mapping_on_resume(trained_run, tmp_path, run_config, words):
    out = run_copy(trained_run, tmp_path, run_config)
    result = run("train", "--out", str(out), "--resume", "--progress", "off")
    one_line_error(result, "train", str(out / "checkpoint.npz"), *words)


@pytest.mark.parametrize("missing", ["lr", "batch_size"])
def test_a_run_configuration_without_a_key_on_resume(trained_run, tmp_path, missing):
    config = {"model": "lenet5", "epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.004,
              "scheduler": "onecycle", "weight_decay": 0.0, "seed": 0, "limit_train": 64, "limit_test": 32}
    del config[missing]
    out = run_copy(trained_run, tmp_path, config)
    result = run("train", "--out", str(out), "--resume", "--progress", "off")
    one_line_error(result, "train", str(out / "checkpoint.npz"), repr(missing))


def test_a_run_configuration_with_a_wrong_type_on_resume(trained_run, tmp_path):
    config = {"model": "lenet5", "epochs": "two", "batch_size": 32, "optimizer": "adam", "lr": 0.004,
              "scheduler": "onecycle", "weight_decay": 0.0, "seed": 0, "limit_train": 64, "limit_test": 32}
    out = run_copy(trained_run, tmp_path, config)
    result = run("train", "--out", str(out), "--resume", "--progress", "off")
    one_line_error(result, "train", str(out / "checkpoint.npz"), "'epochs'", "'two'")


@pytest.mark.parametrize("run_config, words", [
    ([1, 2], ["run configuration", "list", "mapping"]),
    ({"epochs": 1}, ["'model'"]),
])
def test_a_malformed_run_configuration_on_evaluate(tmp_path, run_config, words):
    checkpoint = tmp_path / "bad.npz"
    mg.save(checkpoint, mg.models.lenet5(), run_config=run_config)
    result = run("evaluate", str(checkpoint), "--limit-test", "32", "--progress", "off")
    one_line_error(result, "evaluate", str(checkpoint), *words)


# -- the run directory -------------------------------------------------------------------------------------
def test_a_directory_named_like_a_temporary_file_in_the_run_directory(tmp_path):
    out = tmp_path / "run"
    blocker = out / ".checkpoint.npz.abc123.tmp"
    blocker.mkdir(parents=True)
    result = run("train", *TINY, "--out", str(out))
    one_line_error(result, "train", str(blocker), "directory", "--out")
    assert blocker.is_dir()                                 # nothing of the user's is removed


def test_an_empty_out_is_refused(tmp_path):
    result = run("train", *TINY, "--out", "", cwd=tmp_path)
    one_line_error(result, "train", "--out", "empty")
    assert not (tmp_path / "runs").exists()


# -- training ----------------------------------------------------------------------------------------------
@needs_mnist
def test_a_nan_loss_is_one_line_without_numpy_warnings(tmp_path):
    result = run("train", *TINY, "--optimizer", "sgd", "--lr", "1e30", "--out", str(tmp_path / "run"))
    one_line_error(result, "train", "non-finite", "--lr")


# -- minigrad bench ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--bogus"], ["--bogus"]),
    (["--threads", "0"], ["--threads", "0"]),
    (["--pause", "-1"], ["--pause", "-1"]),
    (["--repeat", "0"], ["--repeat", "0"]),
])
def test_bench_usage_mistakes_are_one_line(args, words):
    one_line_error(run("bench", "--quick", "--no-torch", *args), "bench", *words)


# -- under mpirun: once, by rank 0, and every rank exits with status 2 -----------------------------------
@needs_mpi
@needs_mnist
def test_a_batch_not_divisible_by_the_processes_is_one_line_from_rank_0(tmp_path):
    result = mpirun("train", "--distributed", *TINY, "--batch-size", "33", "--out", str(tmp_path / "run"))
    one_minigrad_line(result, "train", "--batch-size 33", "divisible", "(2)")


@needs_mpi
def test_a_usage_mistake_under_mpirun_is_one_line_from_rank_0():
    result = mpirun("train", "--distributed", "--epoch", "1")
    one_minigrad_line(result, "train", "--epoch")
