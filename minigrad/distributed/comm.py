"""Process group: who am I, how many are we, and the collectives (all-reduce, broadcast, barrier).

Engines, no home-made protocol:

- host arrays (NumPy) go through MPI (``mpi4py``, processes started by ``mpirun``);
- device arrays (CuPy) go through NCCL (``cupy.cuda.nccl``, see ``nccl.py``), whose
  communicator is bootstrapped over MPI (rank 0 broadcasts the NCCL unique id).

Without ``mpirun`` (or without mpi4py installed) ``init()`` gives a world of one process in
which every collective is the identity, so the same training script runs alone unchanged.
``mpi4py`` is imported only by ``init()``, never by ``import minigrad`` (importing it starts MPI).
"""
from __future__ import annotations

import os
import warnings

from ..runtime.backend import backend_of, cupy_available, get_backend, module_for
from . import watchdog as _watchdog

__all__ = ["DistributedError", "init", "is_initialized", "world_size", "rank", "local_rank", "is_main",
           "barrier", "all_reduce", "broadcast", "broadcast_object", "all_gather_object", "mpi_comm",
           "set_timeout", "get_timeout", "launcher_rank", "leave_together"]

_OPS = ("sum", "mean", "max", "min")

# Environment variables that launchers set; if one says "more than one process" and mpi4py is
# missing, running as a world of one would silently train N independent copies.
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
_LAUNCHER_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


class DistributedError(RuntimeError):
    """The process group cannot be set up, or a collective was used wrongly."""


class _World:
    """The state behind the module-level functions (one per process)."""

    def __init__(self, comm):
        self.comm = comm  # mpi4py communicator, or None for a world of one
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.local_rank = 0
        self.local_size = 1   # processes on this machine
        if comm is not None and self.size > 1:
            from mpi4py import MPI
            node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # the processes on my machine
            self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
            node.Free()
        self.nccl = None  # NcclCommunicator on GPU local_rank, created by init() where GPUs are usable
        # MPI collectives wait with a deadline (watchdog.py): a stopped rank ends the job, not a hang
        self.watchdog = _watchdog.Watchdog(comm, _timeout) if comm is not None and self.size > 1 else None


_world: _World | None = None
_timeout = None   # seconds; None: $MINIGRAD_DIST_TIMEOUT or watchdog.DEFAULT_TIMEOUT


def set_timeout(seconds) -> None:
    """Seconds an MPI collective may take before the job ends naming the unresponsive ranks
    (default 120, or $MINIGRAD_DIST_TIMEOUT; ``minigrad train --dist-timeout``). Call on every rank."""
    global _timeout
    _timeout = _watchdog.resolve_timeout(seconds)
    if _world is not None and _world.watchdog is not None:
        _world.watchdog.timeout = _timeout


def get_timeout() -> float:
    """The collective timeout in seconds (see set_timeout)."""
    return _timeout if _timeout is not None else _watchdog.resolve_timeout()


def _launcher_size() -> int:
    for var in _LAUNCHER_SIZE_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def launcher_rank() -> int | None:
    """This process's rank as the launcher (mpirun) set it in the environment, None when not launched by one.

    Known before ``init()`` (which starts MPI): the ``minigrad`` command uses it to print a mistake of the
    command line, which every process makes alike, once (rank 0) instead of once per process."""
    for var in _LAUNCHER_RANK_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return None


def leave_together(seconds: float = 10.0) -> bool:
    """Under mpirun, wait until every process of the job gets here (at most ``seconds``); True if they all did.

    mpirun ends the whole job about a second after a process exits with a non-zero status: the ``minigrad``
    command calls this on every process before exiting on a mistake of the command line, so that rank 0 has
    printed it before any process exits. Starts MPI when ``init()`` has not (every process then does so alike);
    without mpi4py, or with a process that never gets here, it returns False (at the deadline) instead of
    hanging."""
    import time
    try:
        if _world is not None and _world.comm is not None:
            comm = _world.comm
        else:
            from mpi4py import MPI
            comm = MPI.COMM_WORLD
        if comm.Get_size() < 2:
            return True
        request = comm.Ibarrier()
        deadline = time.monotonic() + seconds
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True
    except Exception:  # noqa: BLE001 - no MPI library, MPI errors: the processes exit as they would have
        return False


def init() -> "_World":
    """Join the process group (idempotent); returns nothing useful but the state for debugging.

    Under ``mpirun -np N`` this uses ``mpi4py``'s COMM_WORLD (rank, size). Run alone, it is a
    world of one (rank 0, size 1) whether or not mpi4py is installed. When launched by mpirun
    but mpi4py is missing, raises DistributedError saying what to install.
    Where CuPy sees GPUs (whatever the active backend, so the order of ``init()`` and
    ``set_backend("cupy")`` does not matter), also makes GPU ``local_rank`` this process's device
    and creates the NCCL communicator on it. More processes on a machine than GPUs raise
    DistributedError before NCCL is touched: here on the 'cupy' backend, else (a NumPy run may
    have more processes than GPUs) at the first collective of CuPy arrays. Call ``init()`` before
    moving the model to the GPU.
    """
    global _world
    if _world is not None:
        return _world
    try:
        from mpi4py import MPI
    except Exception as exc:  # ImportError; RuntimeError "cannot load MPI library" (mpi4py without MPI)
        size = _launcher_size()
        what = "mpi4py is not installed" if isinstance(exc, ImportError) else "mpi4py cannot load an MPI library"
        if size > 1:
            raise DistributedError(
                f"this process was started by an MPI launcher with {size} processes, but {what} "
                f"({type(exc).__name__}: {exc}); install it with: pip install -e \".[distributed]\" "
                "(from the minigrad checkout; needs an MPI library, e.g. apt-get install openmpi-bin "
                "libopenmpi-dev)") from exc
        if not isinstance(exc, ImportError):
            warnings.warn(f"mg.distributed.init: {what} ({exc}); running as a world of one process",
                          RuntimeWarning, stacklevel=2)
        _world = _World(None)
    else:
        _world = _World(MPI.COMM_WORLD)
    if _world.size > 1 and cupy_available():
        # NumPy runs may start more processes than GPUs; a shortage is refused at init() on the cupy
        # backend, else at the first device collective (every rank decides alike: _gpu_shortage is collective)
        if get_backend() == "cupy" or _gpu_shortage(_world) is None:
            _nccl()
    return _world


def is_initialized() -> bool:
    return _world is not None


def _get() -> _World:
    return _world if _world is not None else init()


def mpi_comm():
    """The mpi4py communicator (COMM_WORLD), or None in a world of one without mpi4py."""
    return _get().comm


def world_size() -> int:
    """Number of processes (1 without mpirun)."""
    return _get().size


def rank() -> int:
    """This process's index in 0 .. world_size() - 1."""
    return _get().rank


def local_rank() -> int:
    """Index among the processes on this machine (selects the GPU)."""
    return _get().local_rank


def is_main() -> bool:
    """True on rank 0: the process that prints, logs and writes checkpoints."""
    return _get().rank == 0


def barrier() -> None:
    """Wait until every process gets here."""
    world = _get()
    if world.size > 1:
        world.watchdog.call(world.comm.Barrier, "barrier")


def _nccl():
    world = _get()
    if world.nccl is None:
        problem = _gpu_shortage(world)
        if problem is not None:
            raise DistributedError(problem)
        from .nccl import NcclCommunicator
        world.nccl = NcclCommunicator(world.comm, world.rank, world.size, world.local_rank)
    return world.nccl


def _gpu_shortage(world):
    """None when every machine has a GPU per process, else why NCCL cannot start (the same on every rank:
    collective over MPI). NCCL itself would fail inside with "Duplicate GPU detected"."""
    gpus = module_for("cupy").cuda.runtime.getDeviceCount()
    short = [(rank, size, count) for rank, (size, count) in
             enumerate(world.comm.allgather((world.local_size, gpus))) if size > count]
    if not short:
        return None
    rank, size, count = short[0]
    return (f"mg.distributed: {size} processes on the machine of rank {rank} but {count} GPU(s) visible there; "
            "NCCL needs one GPU per process. Start at most one process per GPU (e.g. mpirun -np "
            f"{count} on one machine), or use the 'numpy' backend (MPI)")


def _check_op(op, where):
    if op not in _OPS:
        raise ValueError(f"{where}: unknown op {op!r}; expected one of {', '.join(map(repr, _OPS))}")


def all_reduce(array, op: str = "mean"):
    """Reduce ``array`` element-wise over all processes; every process gets the result.

    ``op``: "mean" (default, the gradient average), "sum", "max" or "min". The array must have
    the same shape and dtype on every process. A contiguous array is reduced in place and
    returned; otherwise a reduced copy is returned. NumPy arrays use MPI, CuPy arrays NCCL.
    "mean" needs a floating dtype (an integer average would be truncated).
    """
    _check_op(op, "all_reduce")
    backend = backend_of(array)
    if op == "mean" and array.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: op='mean' needs a floating array, got dtype {array.dtype}; use op='sum'")
    world = _get()
    if world.size == 1:
        return array
    if not array.flags.c_contiguous:
        array = array.copy()  # C-contiguous copy (same backend)
    if backend == "cupy":
        _nccl().all_reduce(array, "sum" if op == "mean" else op)
    elif backend == "numpy":
        from mpi4py import MPI
        mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        world.watchdog.call(lambda: world.comm.Allreduce(MPI.IN_PLACE, array, op=mpi_op), "all_reduce")
    else:
        raise TypeError(f"all_reduce: arrays of the {backend!r} backend cannot be communicated; "
                        "use a NumPy or CuPy array")
    if op == "mean":
        array /= world.size
    return array


def broadcast(array, root: int = 0):
    """Overwrite ``array`` on every process with root's values (in place if contiguous); returns it."""
    world = _get()
    if not 0 <= root < world.size:
        raise ValueError(f"broadcast: root={root} is not a rank of a world of size {world.size}")
    if world.size == 1:
        return array
    if not array.flags.c_contiguous:
        array = array.copy()
    backend = backend_of(array)
    if backend == "cupy":
        _nccl().broadcast(array, root)
    elif backend == "numpy":
        world.watchdog.call(lambda: world.comm.Bcast(array, root=root), "broadcast")
    else:
        raise TypeError(f"broadcast: arrays of the {backend!r} backend cannot be communicated")
    return array


def broadcast_object(obj, root: int = 0):
    """A small picklable Python object from root to everyone (seeds, configs)."""
    world = _get()
    return obj if world.size == 1 else world.watchdog.call(lambda: world.comm.bcast(obj, root=root),
                                                             "broadcast_object")


def all_gather_object(obj) -> list:
    """Every process's ``obj``, as a list indexed by rank."""
    world = _get()
    return [obj] if world.size == 1 else world.watchdog.call(lambda: world.comm.allgather(obj), "all_gather_object")

