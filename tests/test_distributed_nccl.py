"""NCCL setup on the GPU path: one GPU per process, refused clearly when there are fewer GPUs than processes,
the communicator made at ``mg.distributed.init()`` on GPU ``local_rank`` whatever the order of ``init()`` and
``set_backend("cupy")``, and the all-reduce timed alone with CUDA events.

The mpirun cases run on GPUs or on the simulated CuPy (MINIGRAD_TEST_CUPY=sim: ``cupy.cuda.nccl`` carried over
MPI, $MINIGRAD_SIM_GPUS devices per machine, and NCCL's own "Duplicate GPU detected" refusal).
"""
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg

from support import sim_cupy

MPIRUN = shutil.which("mpirun")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None

SCRIPT = """
import sys
import numpy as np
import minigrad as mg
from minigrad import distributed as dist

order = sys.argv[1]


def main():
    if order == "backend-first":
        mg.set_backend("cupy")
    world = dist.init()
    world.made_at_init = world.nccl is not None
    cupy = mg.backend.module_for("cupy")
    mg.set_backend("cupy")
    mg.manual_seed(0)
    model = dist.DataParallel(mg.nn.Sequential(mg.nn.Linear(4, 3), mg.nn.ReLU(), mg.nn.Linear(3, 2)))
    assert world.nccl is not None, "no communicator"
    assert world.nccl.device == world.local_rank == cupy.cuda.runtime.getDevice(), \
        (world.nccl.device, world.local_rank)
    assert world.nccl.comm.device_id() == world.local_rank
    x = cupy.asarray(np.full((2, 4), dist.rank() + 1.0, np.float32))
    model(x)
    model.backward(cupy.ones((2, 2), dtype=cupy.float32))
    grads = [p.grad.get() for p in model.parameters()]
    every = dist.all_gather_object(grads)
    for mine, theirs in zip(grads, every[1 - dist.rank()]):
        np.testing.assert_array_equal(mine, theirs)
    assert model.comm_calls == 1 and 0 < model.comm_seconds <= model.sync_seconds
    return world


try:
    world = main()
except dist.DistributedError as exc:
    sys.stdout.write(f"refused: {exc}\\n")    # one write per line: mpirun cannot splice two ranks' lines
    sys.stdout.flush()
    sys.exit(0)
sys.stdout.write(f"nccl ok {order} {dist.rank()} {world.nccl.device} "
                 f"{'made at init' if world.made_at_init else 'made later'}\\n")
sys.stdout.flush()
"""


def _run(order, processes, gpus):
    if MPIRUN is None or not HAVE_MPI4PY:
        pytest.skip("NCCL ranks are bootstrapped over MPI: needs mpirun and mpi4py")
    if sim_cupy.installed():
        env = dict(os.environ, MINIGRAD_SIM_GPUS=str(gpus))
    else:
        try:
            count = mg.backend.module_for("cupy").cuda.runtime.getDeviceCount()
        except mg.BackendUnavailableError as exc:
            pytest.skip(f"needs GPUs, or the simulated CuPy (MINIGRAD_TEST_CUPY=sim): {str(exc).split(';')[0]}")
        if count != gpus:
            pytest.skip(f"written for {gpus} GPU(s) on this machine, {count} here")
        env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_NUM_THREADS="1", MINIGRAD_BACKEND="numpy")
    proc = subprocess.run([MPIRUN, "-np", str(processes), sys.executable, "-c", SCRIPT, order], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("order", ["init-first", "backend-first"])
def test_communicator_is_made_at_init_on_the_local_rank_gpu_in_either_order(order):
    out = _run(order, processes=2, gpus=2)
    assert sorted(line for line in out.splitlines() if line.startswith("nccl ok")) == \
        [f"nccl ok {order} 0 0 made at init", f"nccl ok {order} 1 1 made at init"]


@pytest.mark.gpu
@pytest.mark.parametrize("order", ["init-first", "backend-first"])
def test_more_processes_than_gpus_are_refused_before_nccl_starts(order):
    out = _run(order, processes=2, gpus=1)
    refusals = [line for line in out.splitlines() if line.startswith("refused:")]
    assert len(refusals) == 2, out                      # every rank, none left waiting inside NCCL
    assert "mg.distributed: 2 processes on the machine of rank 0 but 1 GPU(s) visible" in refusals[0]
    assert "one GPU per process" in refusals[0] and "Duplicate GPU" not in out


@pytest.mark.gpu
def test_comm_seconds_come_from_cuda_events_around_the_all_reduce(monkeypatch):
    """The timer reads the GPU's clock between two events on the stream, not the host's."""
    if not mg.backend.cupy_available():
        pytest.skip("needs CuPy and a GPU, or MINIGRAD_TEST_CUPY=sim")
    from minigrad.distributed.data_parallel import _CollectiveTimer
    cupy = mg.backend.module_for("cupy")
    recorded = []

    class Event:
        def record(self, stream=None):
            recorded.append(self)

        def synchronize(self):
            self.synced = True

    monkeypatch.setattr(cupy.cuda, "Event", Event)
    monkeypatch.setattr(cupy.cuda, "get_elapsed_time",
                        lambda start, end: 250.0 * (recorded.index(end) - recorded.index(start)))
    timer = _CollectiveTimer(cupy.zeros(3, dtype=cupy.float32))
    assert len(recorded) == 1                            # started on the stream
    timer.stop()
    assert len(recorded) == 2 and timer.seconds() == 0.25 and recorded[1].synced
    host = _CollectiveTimer(np.zeros(3))                 # NumPy: the host clock
    host.stop()
    assert 0 <= host.seconds() < 1
