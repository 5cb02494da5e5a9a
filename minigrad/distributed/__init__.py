"""Data-parallel training over processes and machines (``mg.distributed``).

MPI (``mpi4py``, started with ``mpirun``) for NumPy arrays, NCCL (``cupy.cuda.nccl``,
bootstrapped over MPI) for CuPy arrays. Run alone, it is a world of one process::

    import minigrad as mg
    mg.distributed.init()                                   # rank / world size from mpirun
    model = mg.distributed.DataParallel(build_model())      # same weights everywhere
    loader = mg.distributed.DistributedDataLoader(train, batch_size=64 // mg.distributed.world_size(),
                                                  shuffle=True, seed=0)
    for x, y in loader:
        model.zero_grad(); out = model(x); model.backward(loss_grad(out, y)); opt.step()
    if mg.distributed.is_main():
        save_checkpoint(model.state_dict())                 # rank 0 only

    $ mpirun -np 2 python train.py

See docs/distributed.md for the design, benchmarks and multi-node use.
"""
from .comm import (DistributedError, all_gather_object, all_reduce, barrier, broadcast, broadcast_object, get_timeout,
                   init, is_initialized, is_main, local_rank, mpi_comm, rank, set_timeout, world_size)
from .data_parallel import DataParallel
from .sampler import DistributedDataLoader, shard_indices

__all__ = ["DistributedError", "init", "is_initialized", "world_size", "rank", "local_rank", "is_main", "barrier",
           "all_reduce", "broadcast", "broadcast_object", "all_gather_object", "mpi_comm", "DataParallel",
           "DistributedDataLoader", "shard_indices", "set_timeout", "get_timeout"]
