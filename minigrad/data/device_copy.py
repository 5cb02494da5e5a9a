"""Host batches to the GPU through pinned buffers on a copy stream, so the copy overlaps compute.

A copy from ordinary (pageable) host memory cannot run asynchronously: the driver stages it through
a page-locked buffer of its own while the host waits. ``PinnedCopier`` keeps page-locked host buffers
(a few per array position of a batch, reused batch after batch, grown when a batch is larger) and
copies from them with ``ndarray.set(host, stream=copy_stream)`` on a stream of its own, so the
DataLoader can start the next batch's copy before handing out the current batch.

Two events keep it correct: the compute stream waits for a batch's copy before the batch is used
(``wait``), and each copy waits for the kernels already queued on the compute stream, because the
device memory it writes was allocated on the compute stream's pool and may have been freed by a batch
those kernels still read.
"""
from __future__ import annotations

import numpy

from ..runtime.backend import module_for, to_backend

__all__ = ["PinnedCopier"]


class PinnedCopier:
    """Copies tuples of host arrays to the GPU: pinned staging, own stream, ``depth`` batches in flight."""

    def __init__(self, depth: int = 2):
        self._cupy = module_for("cupy")
        self.stream = self._cupy.cuda.Stream(non_blocking=True)
        self._buffers = [{} for _ in range(depth)]    # per slot: array position -> (pinned memory, bytes)
        self._done = [None] * depth                   # per slot: event after its last copy
        self._slot = 0

    def start(self, arrays):
        """Begin copying ``arrays`` (host or device) to the GPU. Returns (device arrays, ready event)."""
        cupy = self._cupy
        slot, self._slot = self._slot, (self._slot + 1) % len(self._buffers)
        if self._done[slot] is not None:
            self._done[slot].synchronize()            # the slot's buffers have been copied out
        compute = cupy.cuda.get_current_stream()
        self.stream.wait_event(compute.record())      # see the module doc: memory freed by queued kernels
        devices = []
        for position, array in enumerate(arrays):
            if not isinstance(array, numpy.ndarray):  # already a device array (or another module's)
                devices.append(to_backend(array, "cupy"))
                continue
            staged = self._pinned(slot, position, array)
            staged[...] = array
            device = cupy.empty(array.shape, dtype=array.dtype)
            device.set(staged, stream=self.stream)
            devices.append(device)
        self._done[slot] = ready = self.stream.record()
        return devices, ready

    def wait(self, ready) -> None:
        """Make the compute (current) stream wait for a batch's copy; the host does not wait."""
        self._cupy.cuda.get_current_stream().wait_event(ready)

    def _pinned(self, slot, position, array):
        """A page-locked host array of array's shape and dtype, for this slot and position."""
        memory, size = self._buffers[slot].get(position, (None, 0))
        if size < array.nbytes:
            size = max(array.nbytes, 1)
            memory = self._cupy.cuda.alloc_pinned_memory(size)
            self._buffers[slot][position] = (memory, size)
        flat = numpy.frombuffer(memory, dtype=numpy.uint8, count=array.nbytes)
        return flat.view(array.dtype).reshape(array.shape)    # (nbytes,) uint8 -> array's shape and dtype
