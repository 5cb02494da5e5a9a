"""mg.distributed: data-parallel SGD under ``mpirun -np 2`` equals one process with the global batch;
world-of-one semantics, sharding, DataParallel wrapping, errors. NCCL cases need GPUs and skip here."""
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import distributed as dist

from support import distributed_worker as worker
from support import sim_cupy

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "support", "distributed_worker.py")
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPIRUN = shutil.which("mpirun")


def _mpi_env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",  # CI containers run as root
               OMPI_MCA_rmaps_base_oversubscribe="1",                         # 2 ranks on a 1-2 core runner
               OMPI_MCA_btl_vader_single_copy_mechanism="none",               # no ptrace/CMA in containers
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MINIGRAD_BACKEND="numpy")
    return env


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    if MPIRUN is None:
        pytest.skip("mpirun not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev)")
    if not HAVE_MPI4PY:
        pytest.skip("mpi4py not installed: pip install -e '.[distributed]'")
    out = tmp_path_factory.mktemp("mpi2")
    proc = subprocess.run([MPIRUN, "-np", "2", sys.executable, WORKER, str(out)], env=_mpi_env(),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"mpirun failed:\n{proc.stdout}\n{proc.stderr}"
    return out


# -- the "done when" test: 2 processes x batch B/2 == 1 process x batch B -----------------------------
@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-10, 1e-12), ("float32", 1e-5, 1e-6)])
def test_two_processes_match_one_process_with_the_global_batch(two_process_run, dtype, rtol, atol):
    reference = worker.train(dtype, distributed=False).state_dict()  # one process, batch B, no MPI
    rank0 = np.load(two_process_run / f"rank0_{dtype}.npz")
    rank1 = np.load(two_process_run / f"rank1_{dtype}.npz")
    for name, value in reference.items():
        np.testing.assert_allclose(rank0[name], value, rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=f"{name}: replicas diverged")
        assert rank0[name].dtype == value.dtype
    steps = worker.EPOCHS * worker.N_EXAMPLES // worker.GLOBAL_BATCH
    assert int(rank0["n_buckets"]) > 1
    assert int(rank0["comm_calls"]) == steps * int(rank0["n_buckets"])  # one all-reduce per bucket per step
    assert float(rank0["comm_seconds"]) > 0


def test_collectives_replica_check_and_rank0_only_checkpoint(two_process_run):
    """Worker checks: all_reduce sum/mean/max/min (contiguous and strided), broadcast, objects, barrier,
    DataParallel refusing different models on different ranks; then the files rank 0 alone writes."""
    for r in (0, 1):
        assert (two_process_run / f"collectives_rank{r}.txt").read_text().startswith("ok world=2")
    checkpoints = sorted(p.name for p in two_process_run.glob("checkpoint_*.npz"))
    assert checkpoints == ["checkpoint_float32.npz", "checkpoint_float64.npz"]
    # the rank-0 checkpoint loads into the bare model: names carry no prefix
    model = worker.build_model("float64", seed=1)
    model.load_state_dict(dict(np.load(two_process_run / "checkpoint_float64.npz")))


def test_worker_alone_is_a_world_of_one_and_bitwise_equal(tmp_path):
    """Without mpirun the same script runs as one process (mpi4py or not) and equals the plain loop."""
    env = _mpi_env()
    proc = subprocess.run([sys.executable, WORKER, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "collectives_rank0.txt").read_text().startswith("ok world=1")
    alone = np.load(tmp_path / "rank0_float64.npz")
    assert int(alone["comm_calls"]) == 0
    for name, value in worker.train("float64", distributed=False).state_dict().items():
        np.testing.assert_array_equal(alone[name], value)


# -- world of one, in process --------------------------------------------------------------------------
def test_world_of_one_collectives_are_identity():
    dist.init()
    if dist.world_size() != 1:
        pytest.skip("the test process itself runs under mpirun")
    assert (dist.rank(), dist.world_size(), dist.is_main(), dist.local_rank()) == (0, 1, True, 0)
    a = np.arange(4.0)
    assert dist.all_reduce(a) is a and dist.broadcast(a) is a
    np.testing.assert_array_equal(a, np.arange(4.0))
    assert dist.broadcast_object("x") == "x" and dist.all_gather_object(3) == [3]
    dist.barrier()


def test_all_reduce_errors():
    with pytest.raises(ValueError, match="unknown op 'avg'.*'mean'"):
        dist.all_reduce(np.ones(2), op="avg")
    with pytest.raises(TypeError, match="op='mean' needs a floating array.*int64.*op='sum'"):
        dist.all_reduce(np.ones(2, dtype=np.int64))
    with pytest.raises(TypeError, match="expected a NumPy or CuPy array, got list"):
        dist.all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="root=3 is not a rank of a world of size 1"):
        dist.broadcast(np.ones(2), root=3)


def test_init_without_mpi4py_under_a_launcher_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from minigrad import distributed as d\n"
            "try:\n    d.init()\nexcept d.DistributedError as e:\n    print('ERR', e)\n")
    env = dict(os.environ, OMPI_COMM_WORLD_SIZE="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert "ERR" in out and "2 processes" in out and ".[distributed]" in out
    env["OMPI_COMM_WORLD_SIZE"] = "1"
    code_alone = "import sys; sys.modules['mpi4py'] = None\nfrom minigrad import distributed as d\n" \
                 "d.init(); print(d.world_size(), d.rank())"
    out = subprocess.run([sys.executable, "-c", code_alone], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "0"], out.stderr


def test_import_minigrad_does_not_start_mpi():
    code = "import sys, minigrad, minigrad.distributed; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "False"


# -- DataParallel ---------------------------------------------------------------------------------------
def test_data_parallel_wraps_without_changing_names_or_results(rng):
    model = worker.build_model("float64", seed=3)
    plain = worker.build_model("float64", seed=3)
    dp = dist.DataParallel(model, bucket_mb=1e-4)
    assert list(dp.state_dict()) == list(plain.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert [n for n, _ in dp.named_parameters()] == [n for n, _ in plain.named_parameters()]
    x = rng.standard_normal((4, 1, 6, 6))
    y = dp(x)
    np.testing.assert_array_equal(y, plain(x))
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(dp.backward(g), plain.backward(g))
    for (_, p), (_, q) in zip(dp.named_parameters(), plain.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)
    # checkpoints are interchangeable both ways
    plain.load_state_dict(dp.state_dict())
    dp.load_state_dict(plain.state_dict())
    dp.eval()
    assert not model.training and not model[0].training
    assert "DataParallel(world_size=1" in repr(dp) and "Conv2d" in repr(dp)


def test_buckets_group_by_dtype_and_respect_the_size(rng):
    model = mg.nn.Sequential(mg.nn.Linear(100, 50), mg.nn.Linear(50, 10))  # 5050 + 510 float32 params
    big = dist.DataParallel(model)
    assert [len(b) for b in big.buckets()] == [4]
    assert big.buckets()[0][0] is model[1].bias  # reverse order: backward produces the last layer first
    small = dist.DataParallel(model, bucket_mb=1000 * 4 / 2 ** 20)  # 1000 float32 per bucket
    sizes = [sum(p.size for p in b) for b in small.buckets()]
    assert sizes == [10 + 500 + 50, 5000]  # a parameter larger than a bucket gets a bucket of its own
    model[0].to(dtype="float64")
    assert sorted(len(b) for b in big.buckets()) == [2, 2]  # one dtype per bucket


def test_no_sync_and_explicit_all_reduce(rng):
    dp = dist.DataParallel(worker.build_model("float64", seed=0), sync_on_backward=False)
    x = rng.standard_normal((2, 1, 6, 6))
    with dp.no_sync():
        dp.backward(np.ones_like(dp(x)))
    dp.all_reduce_gradients()
    assert dp.comm_calls == 0  # world of one: nothing to communicate
    dp.reset_timers()
    assert dp.comm_seconds == 0.0


def test_data_parallel_errors():
    with pytest.raises(TypeError, match="expected a minigrad Layer to wrap, got list"):
        dist.DataParallel([1])
    with pytest.raises(ValueError, match="bucket_mb must be a positive number, got 0"):
        dist.DataParallel(mg.nn.Linear(2, 2), bucket_mb=0)


# -- sharding --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, world, drop_last", [(10, 2, False), (10, 3, False), (10, 3, True), (7, 4, False)])
def test_shards_partition_the_epoch_order(n, world, drop_last):
    order = mg.data.DataLoader(mg.data.ArrayDataset(np.arange(n)), shuffle=True, seed=5).order(2)
    shards = [dist.shard_indices(n, r, world, shuffle=True, seed=5, epoch=2, drop_last=drop_last)
              for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    interleaved = np.stack(shards, axis=1).reshape(-1)  # (per_rank, world) -> (per_rank * world,)
    if drop_last:
        np.testing.assert_array_equal(interleaved, order[:n - n % world])
    else:
        np.testing.assert_array_equal(interleaved[:n], order)
        assert set(interleaved[n:]) <= set(order)  # padding wraps around


def test_distributed_loader_batches_union_to_the_global_batches():
    dataset = mg.data.ArrayDataset(np.arange(24.0)[:, None])
    full = [b[0].ravel() for b in mg.data.DataLoader(dataset, batch_size=6, shuffle=True, seed=1)]
    parts = [list(dist.DistributedDataLoader(dataset, batch_size=3, shuffle=True, seed=1, rank=r, world_size=2))
             for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(full) == 4
    for step, batch in enumerate(full):
        np.testing.assert_array_equal(np.sort(np.concatenate([parts[0][step][0], parts[1][step][0]]).ravel()),
                                      np.sort(batch))
    loader = dist.DistributedDataLoader(dataset, batch_size=5, rank=1, world_size=2)
    assert len(loader) == 3 and "rank=1, world_size=2" in repr(loader)


def test_distributed_loader_resumes_mid_epoch():
    dataset = mg.data.ArrayDataset(np.arange(20.0))
    make = lambda: dist.DistributedDataLoader(dataset, batch_size=2, shuffle=True, seed=3, rank=1, world_size=2)
    first = make()
    it = iter(first)
    next(it), next(it)
    state = first.state_dict()
    rest = [b[0] for b in it]
    resumed = make()
    resumed.load_state_dict(state)
    for a, b in zip(rest, [b[0] for b in resumed], strict=True):
        np.testing.assert_array_equal(a, b)


def test_random_transforms_differ_between_ranks():
    dataset = mg.data.ArrayDataset(np.zeros((4, 1)))
    noise = lambda x, rng: x + rng.standard_normal(x.shape)
    a, b = (next(iter(dist.DistributedDataLoader(dataset, batch_size=2, seed=0, transform=noise, rank=r,
                                                 world_size=2)))[0] for r in (0, 1))
    assert not np.array_equal(a, b)


def test_sharding_errors():
    with pytest.raises(ValueError, match="rank=2 is out of range for world_size=2"):
        dist.shard_indices(10, 2, 2)
    with pytest.raises(ValueError, match="world_size must be an int >= 1, got 0"):
        dist.shard_indices(10, 0, 0)
    with pytest.raises(ValueError, match="drop_last=True with 1 examples and world_size=2"):
        dist.shard_indices(1, 0, 2, drop_last=True)
    with pytest.raises(ValueError, match="DistributedDataLoader: drop_last=True with batch_size=4.*only 3"):
        dist.DistributedDataLoader(mg.data.ArrayDataset(np.zeros(6)), batch_size=4, drop_last=True, rank=0,
                                   world_size=2)


# -- NCCL (GPU) -------------------------------------------------------------------------------------------
NCCL_SCRIPT = """
import cupy, numpy as np
from mpi4py import MPI
from minigrad.distributed.comm import _World
from minigrad.distributed.nccl import NcclCommunicator
world = _World(MPI.COMM_WORLD)
nccl = NcclCommunicator(world.comm, world.rank, world.size, world.local_rank)
a = cupy.arange(5, dtype=cupy.float32) * (world.rank + 1)
nccl.all_reduce(a, "sum")
np.testing.assert_allclose(a.get(), np.arange(5) * sum(range(1, world.size + 1)))
b = cupy.full(3, world.rank, dtype=cupy.float64)
nccl.broadcast(b, 0)
np.testing.assert_array_equal(b.get(), np.zeros(3))
print("nccl ok", world.size)
"""


@pytest.mark.gpu
def test_nccl_all_reduce_and_broadcast_on_gpus():
    """One rank per GPU (at most 2); on a 1-GPU machine a world of one still exercises the bootstrap."""
    try:
        count = mg.backend.module_for("cupy").cuda.runtime.getDeviceCount()
    except mg.BackendUnavailableError as exc:
        pytest.skip(f"NCCL needs CuPy and a CUDA GPU: {str(exc).split(';')[0]}")
    if MPIRUN is None or not HAVE_MPI4PY:
        pytest.skip("NCCL ranks are bootstrapped over MPI: needs mpirun and mpi4py")
    if sim_cupy.installed():
        pytest.skip("NCCL needs real GPUs: the simulated CuPy does not reach MPI ranks or provide cupy.cuda.nccl")
    n = min(2, count)
    proc = subprocess.run([MPIRUN, "-np", str(n), sys.executable, "-c", NCCL_SCRIPT], env=_mpi_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(f"nccl ok {n}") == n


# -- minigrad train --distributed ------------------------------------------------------------------------
def test_cli_train_distributed_matches_one_process(tmp_path):
    """`mpirun -np 2 minigrad train --distributed` == `minigrad train` (same global batch), rank 0 writes."""
    if MPIRUN is None or not HAVE_MPI4PY:
        pytest.skip("needs mpirun and mpi4py (apt-get install openmpi-bin libopenmpi-dev; "
                    "pip install -e '.[distributed]')")
    if mg.data.mnist_zarr_path() is None:
        pytest.skip("MNIST needs the data extra: pip install -e '.[data]'")
    args = ["-m", "minigrad.cli", "train", "--model", "mlp", "--limit-train", "512", "--limit-test", "100",
            "--epochs", "1", "--batch-size", "64", "--optimizer", "sgd", "--json", "--no-progress"]
    env = _mpi_env()
    two = subprocess.run([MPIRUN, "-np", "2", sys.executable, *args, "--distributed", "--out", str(tmp_path / "dp")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "single")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    lines = [line for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # only rank 0 prints the metrics
    assert two.stderr.count("Test accuracy") == 1 and "data-parallel over 2 processes, 32 per process" in two.stderr
    assert sorted(p.name for p in (tmp_path / "dp").iterdir()) == [".lock", "checkpoint.npz", "history.jsonl",
                                                                   "metrics.json"]   # .lock: rank 0's run lock
    dp, single = mg.load(tmp_path / "dp" / "checkpoint.npz"), mg.load(tmp_path / "single" / "checkpoint.npz")
    assert list(dp["model"]) == list(single["model"])
    for name, value in single["model"].items():
        np.testing.assert_allclose(dp["model"][name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_cli_distributed_resume_is_refused(tmp_path, capsys):
    from minigrad import cli
    assert cli.main(["train", "--distributed", "--resume", "--out", str(tmp_path)]) == 2
    assert "--resume is not supported with --distributed" in capsys.readouterr().err


def test_init_with_mpi4py_but_no_mpi_library_warns_and_runs_alone():
    code = "from minigrad import distributed as d\nd.init(); print(d.world_size(), d.rank())"
    env = dict(os.environ, MPI4PY_LIBMPI="/nonexistent/libmpi.so")
    env.pop("OMPI_COMM_WORLD_SIZE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "0"], out.stderr
    if HAVE_MPI4PY:
        assert "cannot load an MPI library" in out.stderr and "world of one" in out.stderr
