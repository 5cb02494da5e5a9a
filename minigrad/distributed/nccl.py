"""NCCL collectives for CuPy arrays (GPU data parallelism), bootstrapped over MPI.

Rank 0 creates an NCCL unique id and broadcasts it over MPI; every rank then joins the
NCCL communicator with (world size, id, rank). Each process drives one GPU of its own: device
``local_rank``, made current when the communicator is created (``comm.init`` first refuses more
processes on a machine than GPUs). Collectives are queued on the current stream and return without
waiting: the caller's next kernels on that stream see the result.

Runs on GPUs, and on the simulated CuPy of the tests (which carries the collectives over MPI).
CuPy is imported here, lazily.
"""
from __future__ import annotations

__all__ = ["NcclCommunicator"]


class NcclCommunicator:
    """One NCCL communicator over all MPI ranks; in-place all-reduce and broadcast of CuPy arrays."""

    def __init__(self, mpi_comm, rank: int, size: int, device: int):
        from ..runtime.backend import module_for
        cupy = module_for("cupy")  # raises BackendUnavailableError saying what to install
        nccl = getattr(cupy.cuda, "nccl", None)   # set once imported (and by the simulated CuPy)
        if nccl is None:
            from cupy.cuda import nccl
        self._cupy, self._nccl = cupy, nccl
        self.device = device
        cupy.cuda.Device(device).use()
        uid = nccl.get_unique_id() if rank == 0 else None
        uid = mpi_comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(size, uid, rank)
        self._ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
        self._dtypes = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                        "float64": nccl.NCCL_FLOAT64, "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64,
                        "uint8": nccl.NCCL_UINT8, "int8": nccl.NCCL_INT8}

    def _dtype(self, array):
        try:
            return self._dtypes[str(array.dtype)]
        except KeyError:
            raise TypeError(f"NCCL: dtype {array.dtype} is not supported; expected one of "
                            f"{', '.join(self._dtypes)}") from None

    def _check_device(self, array, where):
        if array.device.id != self.device:
            raise ValueError(f"NCCL {where}: the array is on GPU {array.device.id} but this process communicates "
                             f"on GPU {self.device} (its local rank); call mg.distributed.init() before moving "
                             "the model or data to the GPU")

    def all_reduce(self, array, op: str):
        """In place on a C-contiguous CuPy array, queued on the current stream."""
        self._check_device(array, "all_reduce")
        stream = self._cupy.cuda.get_current_stream()
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array), self._ops[op],
                            stream.ptr)
        return array

    def broadcast(self, array, root: int):
        """In place, queued on the current stream."""
        self._check_device(array, "broadcast")
        stream = self._cupy.cuda.get_current_stream()
        self.comm.bcast(array.data.ptr, array.size, self._dtype(array), root, stream.ptr)
        return array
