"""No hung distributed job: under ``mpirun``, a rank stopped with SIGSTOP makes every live rank end the job
after the collective timeout with a line naming the stopped rank (minigrad/distributed/watchdog.py), through
the API and through ``minigrad train --distributed --dist-timeout``; the per-epoch line reports the images
per second of all processes."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

import minigrad as mg
from minigrad import distributed as dist
from minigrad.distributed import watchdog

from test_distributed import HAVE_MPI4PY, MPIRUN, _mpi_env

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "support", "stopped_rank_worker.py")

needs_mpi = pytest.mark.skipif(MPIRUN is None or not HAVE_MPI4PY,
                               reason="needs mpirun and mpi4py (apt-get install openmpi-bin libopenmpi-dev; "
                                      "pip install -e '.[distributed]')")


def _kill_leftovers(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@needs_mpi
def test_a_stopped_rank_ends_the_job_and_every_live_rank_names_it(tmp_path):
    start = time.monotonic()
    proc = subprocess.run([MPIRUN, "-np", "3", sys.executable, WORKER, str(tmp_path), "2", "3"], env=_mpi_env(),
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    _kill_leftovers(int(p.read_text()) for p in tmp_path.glob("pid*"))
    assert proc.returncode != 0 and "finished without noticing" not in proc.stdout
    for live in (0, 1):
        line = next((l for l in proc.stderr.splitlines() if l.startswith(f"mg.distributed: rank {live}: ")), None)
        assert line is not None, proc.stderr
        assert re.search(r"all_reduce \(collective #\d+\) did not complete within 3 s \(--dist-timeout\): rank 2 "
                         r"does not respond \(stopped, hung or dead\)", line), line
    assert elapsed < 60, f"the job took {elapsed:.0f} s to end"


def _rank_pid(marker, rank, timeout=30):
    """PID of the process with rank `rank` of the mpirun job whose environment holds `marker`."""
    needle = f"OMPI_COMM_WORLD_RANK={rank}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as handle:
                        environ = handle.read().split(b"\0")
                except OSError:
                    continue
                if marker.encode() in environ and needle in environ:
                    return int(entry)
        time.sleep(0.1)
    raise AssertionError(f"rank {rank} not found")


@needs_mpi
@pytest.mark.skipif(mg.data.mnist_zarr_path() is None, reason="MNIST needs the data extra: pip install "
                                                              "-e '.[data]'")
def test_cli_dist_timeout_ends_a_run_with_a_stopped_rank(tmp_path):
    marker = f"MINIGRAD_TEST_JOB={uuid.uuid4().hex}"
    env = dict(_mpi_env(), **dict([marker.split("=")]))
    out = tmp_path / "run"
    proc = subprocess.Popen([MPIRUN, "-np", "2", sys.executable, "-m", "minigrad.cli", "train", "--model", "mlp",
                             "--limit-train", "512", "--limit-test", "100", "--epochs", "500", "--batch-size", "64",
                             "--optimizer", "sgd", "--no-progress", "--distributed", "--dist-timeout", "3",
                             "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped = None
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("epoch 2/"):
                stopped = _rank_pid(marker, 1)
                os.kill(stopped, signal.SIGSTOP)
                break
        rest, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_leftovers([stopped] if stopped else [])
    assert stopped is not None, "".join(lines) + stderr
    assert proc.returncode != 0
    assert re.search(r"mg.distributed: rank 0: \w+ \(collective #\d+\) did not complete within 3 s \(--dist-timeout\): "
                     r"rank 1 does not respond", stderr), stderr
    # the epoch line counts the images of both processes: the dataset over the epoch's seconds
    first = next(line for line in lines if line.startswith("epoch 1/"))
    rate = float(re.search(r"([\d.]+) images/s \(all 2 processes\)", first).group(1))
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    record = next(r for r in records if r["type"] == "epoch")
    assert rate == pytest.approx(512 / record["seconds"], rel=0.01, abs=1)
    assert record["images_per_s"] == pytest.approx(rate, rel=0.01, abs=1)    # history.jsonl: the same figure


def test_the_history_counts_the_images_of_all_processes(tmp_path):
    # one process of a world of 3 (no MPI needed with explicit rank/world_size): 10 examples are padded to 12,
    # 4 per process; the epoch record's images_per_s is the job's (12 images), not this process's 4
    import numpy as np
    rng = np.random.default_rng(0)
    data = mg.data.ArrayDataset(rng.standard_normal((10, 3)).astype(np.float32), rng.integers(0, 2, 10))
    loader = dist.DistributedDataLoader(data, batch_size=2, rank=0, world_size=3)
    model = mg.nn.Linear(3, 2)
    history = mg.train.fit(model, mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.1), loader,
                           epochs=1, progress=False, log_path=tmp_path / "history.jsonl")
    record = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[-1])
    assert record["type"] == "epoch"
    assert record["images_per_s"] * record["seconds"] == pytest.approx(12)
    assert history["images_per_s"] == [record["images_per_s"]]


def test_the_timeout_setting(monkeypatch):
    monkeypatch.delenv(watchdog.ENV, raising=False)
    assert watchdog.resolve_timeout() == watchdog.DEFAULT_TIMEOUT <= 120
    monkeypatch.setenv(watchdog.ENV, "7.5")
    assert watchdog.resolve_timeout() == 7.5
    monkeypatch.setenv(watchdog.ENV, "soon")
    with pytest.raises(ValueError, match="MINIGRAD_DIST_TIMEOUT must be a number of seconds"):
        watchdog.resolve_timeout()
    for bad in (0, -1, float("inf"), float("nan"), True, "5"):
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds > 0"):
            dist.set_timeout(bad)


def test_cli_refuses_a_bad_or_stray_dist_timeout(capsys):
    from minigrad import cli
    assert cli.main(["train", "--dist-timeout", "5"]) == 2
    assert "--dist-timeout applies to --distributed runs only" in capsys.readouterr().err


def test_the_timeout_line_when_every_rank_is_inside_the_collective():
    # a slow collective (a large broadcast on a slow link) or too short a timeout: no rank is to blame
    line = watchdog.timeout_reason("broadcast", 4, 3, [], {1: (4, "broadcast"), 2: (4, "broadcast")})
    assert line == ("broadcast (collective #4) did not complete within 3 s (--dist-timeout): every rank responds "
                    "and is inside collective #4 (broadcast), which has not completed within the timeout: it is "
                    "slow (e.g. a large message on a slow link) or the timeout is too short for it; a larger "
                    "--dist-timeout (or MINIGRAD_DIST_TIMEOUT) lets it finish")
    assert "not all" not in line


@pytest.mark.parametrize("pongs, where", [
    ({1: (4, "all_reduce"), 2: (3, None)}, "rank 1 is in collective #4 (all_reduce), rank 2 is outside collectives "
                                           "after #3"),                        # rank 2 computes (or has stopped calling)
    ({1: (4, "barrier")}, "rank 1 is in collective #4 (barrier)"),            # a different collective: a program bug
    ({1: (5, "all_reduce")}, "rank 1 is in collective #5 (all_reduce)"),      # one collective ahead
])
def test_the_timeout_line_when_not_every_rank_is_inside_the_collective(pongs, where):
    line = watchdog.timeout_reason("all_reduce", 4, 2.5, [], pongs)
    assert line == ("all_reduce (collective #4) did not complete within 2.5 s (--dist-timeout): every rank responds, "
                    "but not all of them are inside it: " + where)


def test_the_timeout_line_names_the_silent_ranks():
    assert watchdog.timeout_reason("all_reduce", 7, 3, [2], {1: (7, "all_reduce")}).endswith(
        ": rank 2 does not respond (stopped, hung or dead)")
    assert watchdog.timeout_reason("barrier", 1, 120, [1, 3], {2: (1, "barrier")}) == (
        "barrier (collective #1) did not complete within 120 s (--dist-timeout): ranks 1, 3 do not respond "
        "(stopped, hung or dead)")


_SLOW_COLLECTIVE = r"""
import time
from mpi4py import MPI
from minigrad.distributed import watchdog
dog = watchdog.Watchdog(MPI.COMM_WORLD, 1.0)
dog.call(lambda: (MPI.COMM_WORLD.Barrier(), time.sleep(60)), "broadcast")   # every rank inside a slow collective
print("finished without noticing", flush=True)
"""


@needs_mpi
def test_a_collective_slower_than_the_timeout_on_every_rank_ends_the_job_saying_so():
    proc = subprocess.run([MPIRUN, "-np", "2", sys.executable, "-c", _SLOW_COLLECTIVE], env=_mpi_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "finished without noticing" not in proc.stdout
    for rank in (0, 1):
        line = next((l for l in proc.stderr.splitlines() if l.startswith(f"mg.distributed: rank {rank}: ")), None)
        assert line is not None, proc.stderr
        assert "broadcast (collective #1) did not complete within 1 s (--dist-timeout): every rank responds and is " \
               "inside collective #1 (broadcast), which has not completed within the timeout" in line, line
        assert "a larger --dist-timeout (or MINIGRAD_DIST_TIMEOUT) lets it finish" in line, line


def test_a_collective_that_completes_while_the_ranks_answer_does_not_end_the_job():
    """The deadline passed, the pings went out, and the collective finished before the answers were in:
    nothing to end (a late collective is not a hung one). No MPI needed: the messaging is replaced."""
    dog = object.__new__(watchdog.Watchdog)
    dog.rank, dog.size, dog.timeout = 0, 2, 1.0
    dog.count, dog.what, dog.started = 3, "all_reduce", time.monotonic() - 2.0
    sent, ended = [], []
    dog._isend = lambda obj, dest, tag: sent.append((dest, tag))

    def serve(pongs=None):               # the collective completes; rank 1 answers that it is outside it
        dog.started = None
        if pongs is not None:
            pongs[1] = (3, None)

    dog._serve = serve
    dog._end = lambda reason, notify=(), ack_to=None: ended.append(reason)
    dog._timed_out()
    assert sent and ended == []
    dog.count, dog.started = 4, time.monotonic() - 2.0      # a collective that stays stuck still ends the job
    dog._serve = lambda pongs=None: None
    dog._timed_out()
    assert len(ended) == 1 and "rank 1" in ended[0]
